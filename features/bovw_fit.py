"""Fitting BoVW on train images: vocabularies, idf, then the mean and PCA of the raw vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cbir.core.progress import Stopwatch, progress
from features.base import ModelError
from features.bovw_report import VocabularyReport
from features.sift import ImageDescriptors
from features.vocabulary import smoothed_idf

if TYPE_CHECKING:
    from features.bovw import BovwExtractor


@dataclass
class ImageFeatures:
    """What BoVW reads from a batch of n images before any vocabulary is involved."""

    descriptors: list[ImageDescriptors]
    labs: np.ndarray | None  # float32 (n, side, side, 3), colour channel on
    hogs: np.ndarray | None  # float32 (n, hog_dim), HOG channel on

    def __len__(self) -> int:
        return len(self.descriptors)


CHUNK = 500


def fit_bovw(
    extractor: BovwExtractor, images: Sequence[np.ndarray], show_progress: bool = False
) -> VocabularyReport:
    """Fit every learned part of `extractor` on `images` (RGB uint8); sets and returns its report."""
    c = extractor.config
    if len(images) == 0:
        raise ModelError("no train images to fit the BoVW model on")
    if c.pca_dim and len(images) < c.pca_dim:
        raise ModelError(
            f"PCA to {c.pca_dim:,} dimensions needs at least that many train images, got "
            f"{len(images):,}; train on more images or lower pca_dim (0 turns PCA off)"
        )
    seconds: dict[str, float] = {}

    clock = Stopwatch()
    features = _describe_all(extractor, images, show_progress)
    seconds["describe"] = clock.seconds

    clock = Stopwatch()
    sample = extractor.fit_vocabulary(features)
    seconds["vocabulary"] = clock.seconds

    clock = Stopwatch()
    usage = np.zeros(c.vocabulary_size, np.int64)
    cells = []
    bar = progress(desc="assign words", total=len(features), disable=not show_progress)
    with bar:
        for start in range(0, len(features), CHUNK):
            part = _slice(features, start, start + CHUNK)
            cells.append(extractor.word_cells(part, usage))
            bar.update(len(part))
    document_frequency = sum((chunk.sum(axis=1) > 0).sum(axis=0) for chunk in cells)
    extractor.idf = smoothed_idf(document_frequency, len(features)) if c.idf else None
    raw = np.concatenate(
        [
            extractor.raw_vectors(_slice(features, i * CHUNK, (i + 1) * CHUNK), chunk)
            for i, chunk in enumerate(cells)
        ]
    )
    del cells
    seconds["assign"] = clock.seconds

    variance_kept = None
    if c.pca_dim:
        clock = Stopwatch()
        extractor.mean, extractor.components, variance_kept = fit_pca(raw, c.pca_dim)
        seconds["pca"] = clock.seconds

    report = VocabularyReport(
        images=len(features),
        descriptors=sum(len(d) for d in features.descriptors),
        words=c.vocabulary_size,
        words_used=int((usage > 0).sum()),
        vocabulary_sample=sample,
        images_without_descriptors=[i for i, d in enumerate(features.descriptors) if not len(d)],
        pca_variance_kept=variance_kept,
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )
    extractor.report = report
    return report


def fit_pca(raw: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean float32 (D,), components float32 (D, dim) and the variance fraction kept.

    Rows that are all zero (images with nothing described) are left out. The covariance is
    D x D, so its top eigenvectors (scipy's subset eigensolver) are cheaper than an SVD of
    the n x D data when n > D.
    """
    from scipy.linalg import eigh

    rows = raw[raw.any(axis=1)]
    if len(rows) < dim:
        raise ModelError(
            f"only {len(rows):,} train images have a non-zero vector; PCA to {dim:,} "
            "dimensions needs at least that many: lower pca_dim or train on more images"
        )
    mean = rows.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = rows - mean
    covariance = (centred.T @ centred) / np.float32(len(rows))
    d = covariance.shape[0]
    values, vectors = eigh(covariance, subset_by_index=[d - dim, d - 1])
    order = np.argsort(values)[::-1]
    components = np.ascontiguousarray(vectors[:, order], dtype=np.float32)
    kept = float(values.sum() / max(np.trace(covariance), 1e-12))
    return mean, components, kept


def _describe_all(
    extractor: BovwExtractor, images: Sequence[np.ndarray], show_progress: bool
) -> ImageFeatures:
    parts = []
    with progress(desc="describe", total=len(images), disable=not show_progress) as bar:
        for start in range(0, len(images), CHUNK):
            chunk = [np.asarray(im) for im in images[start : start + CHUNK]]
            parts.append(extractor.describe(chunk))
            bar.update(len(chunk))
    return ImageFeatures(
        [d for p in parts for d in p.descriptors],
        np.concatenate([p.labs for p in parts]) if parts[0].labs is not None else None,
        np.concatenate([p.hogs for p in parts]) if parts[0].hogs is not None else None,
    )


def _slice(features: ImageFeatures, start: int, stop: int) -> ImageFeatures:
    return ImageFeatures(
        features.descriptors[start:stop],
        None if features.labs is None else features.labs[start:stop],
        None if features.hogs is None else features.hogs[start:stop],
    )
