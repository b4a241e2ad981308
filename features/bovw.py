"""Bag of visual words: dense RootSIFT soft-assigned to a k-means vocabulary, with colour and HOG channels.

One vector per image, in this order:
  SIFT words: spatial pyramid of soft word counts (image + its mirror), idf, sqrt, L2 per level;
  colour words (optional): Lab pixels soft-assigned to a small colour vocabulary, pyramid;
  HOG (optional): scikit-image HOG of the small gray image plus its mirror, L2;
then the weighted concatenation is L2-normalised, centred on the train mean and projected
by PCA (fitted on train) to `pca_dim` dimensions, and L2-normalised again. An image with
nothing to describe (e.g. flat, with colour and HOG off) gets a zero vector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from features.base import Extractor, ModelError, l2_normalise
from features.bovw_config import BovwConfig
from features.bovw_fit import ImageFeatures, fit_bovw
from features.bovw_photo import PhotoSampler
from features.bovw_report import VocabularyReport
from features.colour import colour_cells, fit_colour_vocabulary, lab_pixels
from features.hog import hog_vector
from features.imaging import resize_square
from features.sift import SiftSampler, root_sift
from features.vocabulary import (
    cell_of,
    fit_kmeans,
    pool_cells,
    pyramid,
    soft_assign,
)

CHUNK = 256  # images per encoding step: bounds memory, keeps faiss's matrix products large
STATE_FILES = ("vocabulary", "idf", "colour_vocabulary", "colour_sigma", "mean", "components")


class BovwExtractor(Extractor):
    """SIFT bag of visual words; see the module docstring and `BovwConfig` for the parameters."""

    name = "bovw"

    def __init__(self, **params: Any):
        self.config = BovwConfig(**params)
        c = self.config
        self.sampler = SiftSampler(
            c.sampling, c.upscale, c.grid_step, c.grid_margin, c.keypoint_size, c.mirror
        )
        self.photo_sampler = _photo_sampler(c) if c.is_photo else None
        self.vocabulary: np.ndarray | None = None  # float32 (k, 128)
        self.idf: np.ndarray | None = None  # float32 (k,), ones when idf is off
        self.colour_vocabulary: np.ndarray | None = None  # float32 (colour_words, 3)
        self.colour_sigma: np.ndarray | None = None  # float32 (1,)
        self.mean: np.ndarray | None = None  # float32 (raw_dim,)
        self.components: np.ndarray | None = None  # float32 (raw_dim, pca_dim)
        self.report: VocabularyReport | None = None  # diagnostics of the last fit
        self._float64: tuple[np.ndarray, np.ndarray] | None = None  # (components, float64 copy)

    # --- the Extractor interface -------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def input_side(self) -> int:
        return self.config.input_side  # CIFAR: the side x side image; photo: the working side

    @property
    def params(self) -> dict[str, Any]:
        return self.config.to_params()

    @property
    def is_fitted(self) -> bool:
        return self.vocabulary is not None

    def fit(
        self,
        images: Sequence[np.ndarray],
        labels: np.ndarray | None = None,
        show_progress: bool = False,
    ) -> BovwExtractor:
        """Fit vocabularies, idf, mean and PCA on train `images` (RGB uint8); labels are ignored."""
        fit_bovw(self, images, show_progress=show_progress)
        return self

    def encode(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not self.is_fitted:
            raise ModelError("bovw extractor is not fitted; run `cbir train bovw`")
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), CHUNK):
            chunk = images[start : start + CHUNK]
            out[start : start + len(chunk)] = self.project(self.raw_vectors(self.describe(chunk)))
        return out

    def save_state(self, directory: Path) -> None:
        for name in STATE_FILES:
            value = getattr(self, name)
            if value is not None:
                np.save(directory / f"{name}.npy", value)

    def load_state(self, directory: Path) -> None:
        # Import faiss (and its OpenMP runtime) now, so that a worker's thread cap, applied
        # after its models load (indexing.encoding.BatchEncoder), reaches it too.
        import faiss  # noqa: F401

        c = self.config
        wanted = {"vocabulary"} | ({"idf"} if c.idf else set())
        wanted |= {"colour_vocabulary", "colour_sigma"} if c.colour else set()
        wanted |= {"mean", "components"} if c.pca_dim else set()
        for name in STATE_FILES:
            path = Path(directory) / f"{name}.npy"
            if name in wanted and not path.is_file():
                raise ModelError(f"{path} is missing; train the model again (`cbir train bovw`)")
            setattr(self, name, np.load(path) if name in wanted else None)
        if self.vocabulary.shape != (c.vocabulary_size, 128):
            raise ModelError(
                f"{directory}: vocabulary has shape {self.vocabulary.shape}, parameters say "
                f"({c.vocabulary_size}, 128); train the model again"
            )

    def state_digest(self) -> bytes:
        digest = hashlib.sha256()
        for name in STATE_FILES:
            value = getattr(self, name)
            digest.update(name.encode())
            if value is not None:
                digest.update(np.ascontiguousarray(value).tobytes())
        return digest.digest()

    # --- the pipeline, step by step (fit uses the same steps) ---------------------------

    def describe(self, images: Sequence[np.ndarray]) -> ImageFeatures:
        """SIFT descriptors, Lab pixels and HOG of RGB uint8 images of any size.

        CIFAR recipe: SIFT on the side x side image upscaled; photo recipe: on the whole image
        at its working resolution. Colour and HOG read the side x side image in both.
        """
        import cv2

        c = self.config
        descriptors, labs, hogs = [], [], []
        for image in images:
            small = resize_square(image, c.side)
            if self.photo_sampler is not None:
                descriptors.append(self.photo_sampler.describe(np.asarray(image, np.uint8)))
            else:
                big = cv2.resize(small, (c.upscale, c.upscale), interpolation=cv2.INTER_LINEAR)
                descriptors.append(self.sampler.describe(cv2.cvtColor(big, cv2.COLOR_RGB2GRAY)))
            if c.colour:
                labs.append(lab_pixels(small))
            if c.hog:
                hogs.append(hog_vector(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), mirror=c.mirror))
        return ImageFeatures(
            descriptors,
            np.asarray(labs, dtype=np.float32) if c.colour else None,
            np.asarray(hogs, dtype=np.float32).reshape(len(images), -1) if c.hog else None,
        )

    def unit_descriptors(self, descriptors: np.ndarray) -> np.ndarray:
        """float32 (m, 128) unit-length descriptors: RootSIFT, or L2-normalised SIFT.

        The photo recipe's descriptors are already RootSIFT (quantised): only rescaled to unit length.
        """
        if self.config.is_photo:
            return l2_normalise(descriptors.astype(np.float32))
        if self.config.root_sift:
            return root_sift(descriptors)
        return l2_normalise(descriptors.astype(np.float32))

    def word_cells(self, features: ImageFeatures, usage: np.ndarray | None = None) -> np.ndarray:
        """Soft word counts on the finest pyramid grid: float32 (n, grid*grid, k).

        When `usage` int64 (k,) is given, each word's count as nearest word of an image
        descriptor (mirrors excluded) is added to it.
        """
        c = self.config
        n, grid = len(features), c.sift_grid
        parts = [(d.descriptors, d.positions, i) for i, d in enumerate(features.descriptors)]
        parts += [(d.mirrored, d.mirrored_positions, i) for i, d in enumerate(features.descriptors)]
        own = np.concatenate([np.full(len(p[0]), p[2], np.int64) for p in parts])
        if len(own) == 0:
            return np.zeros((n, grid * grid, c.vocabulary_size), np.float32)
        raw = np.concatenate([p[0] for p in parts])
        positions = np.concatenate([p[1] for p in parts])
        indices, weights = soft_assign(self.unit_descriptors(raw), self.vocabulary, c.knn, c.sigma)
        if usage is not None:
            originals = sum(len(d) for d in features.descriptors)
            usage += np.bincount(indices[:originals, 0], minlength=c.vocabulary_size)
        cells = cell_of(positions, grid)
        return pool_cells(own, cells, indices, weights, n, grid * grid, c.vocabulary_size)

    def raw_vectors(self, features: ImageFeatures, cells: np.ndarray | None = None) -> np.ndarray:
        """The weighted, L2-normalised concatenation of the channels: float32 (n, raw_dim)."""
        c = self.config
        if cells is None:
            cells = self.word_cells(features)
        blocks = [pyramid(cells, c.sift_grid, c.pyramid, self.idf)]
        if c.colour:
            counts = colour_cells(
                features.labs,
                self.colour_vocabulary,
                float(self.colour_sigma[0]),
                c.colour_knn,
                c.colour_grid,
                c.mirror,
            )
            blocks.append(c.colour_weight * pyramid(counts, c.colour_grid, c.colour_pyramid))
        if c.hog:
            blocks.append(c.hog_weight * l2_normalise(features.hogs))
        return l2_normalise(np.concatenate(blocks, axis=1))

    def project(self, raw: np.ndarray) -> np.ndarray:
        """Centre and PCA-project raw vectors float32 (n, raw_dim) to unit float32 (n, dim).

        Zero raw vectors (nothing described) stay zero rather than becoming minus the mean.
        """
        if not self.config.pca_dim:
            return raw
        empty = ~raw.any(axis=1)
        # float64 so that the float32 result does not depend on the row's place in the batch
        centred = raw.astype(np.float64) - self.mean
        out = l2_normalise((centred @ self._components64()).astype(np.float32))
        out[empty] = 0.0
        return out

    def _components64(self) -> np.ndarray:
        if self._float64 is None or self._float64[0] is not self.components:
            self._float64 = (self.components, self.components.astype(np.float64))
        return self._float64[1]

    def fit_vocabulary(self, features: ImageFeatures) -> int:
        """k-means on a seeded sample of RootSIFT descriptors of `features` (at most
        `vocabulary_images` images x `descriptors_per_image`), and the colour vocabulary.

        Returns the number of descriptors the k-means saw.
        """
        c = self.config
        rng = np.random.default_rng(c.seed)
        with_descriptors = [i for i, d in enumerate(features.descriptors) if len(d)]
        take = min(c.vocabulary_images, len(with_descriptors))
        chosen = np.sort(rng.choice(len(with_descriptors), take, replace=False))
        sample = []
        for j in chosen:
            d = features.descriptors[with_descriptors[j]].descriptors
            if len(d) > c.descriptors_per_image:
                d = d[np.sort(rng.choice(len(d), c.descriptors_per_image, replace=False))]
            sample.append(d)
        descriptors = np.concatenate(sample) if sample else np.zeros((0, 128), np.uint8)
        self.vocabulary = fit_kmeans(
            self.unit_descriptors(descriptors),
            c.vocabulary_size,
            seed=c.seed,
            n_init=c.kmeans_init,
        )
        if c.colour:
            pick = np.sort(rng.choice(len(features), min(5000, len(features)), replace=False))
            centres, sigma = fit_colour_vocabulary(features.labs[pick], c.colour_words, c.seed)
            self.colour_vocabulary = centres
            self.colour_sigma = np.array([sigma], dtype=np.float32)
        return len(descriptors)


def _photo_sampler(c: BovwConfig) -> PhotoSampler:
    return PhotoSampler(
        c.sampling,
        c.working_side,
        c.min_working_side,
        c.max_keypoints,
        c.grid_step,
        c.grid_margin,
        c.keypoint_size,
        c.mirror,
    )


__all__ = ["BovwConfig", "BovwExtractor", "ImageFeatures", "VocabularyReport"]
