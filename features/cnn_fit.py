"""Fitting the CIFAR network as an extractor: carve validation, train, centre, validate.

The validation split (a seeded, class-balanced share of the train images) serves early
stopping and model choice, and afterwards measures retrieval the way `cbir evaluate` does
(held-out images as queries, the rest as the index, same label = relevant, exact cosine),
so a model is judged without ever looking at the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from features.cnn_train import EpochStats, TrainConfig, train_network
from features.sampling import stratified_rows

if TYPE_CHECKING:
    from features.cnn import CnnExtractor


# (queries, query labels, index, index labels) -> measure name -> value
RetrievalScorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], dict[str, float]]


@dataclass
class FitReport:
    train_rows: np.ndarray  # int64: rows of the given images the network trained on
    val_rows: np.ndarray  # int64: rows held out for validation
    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    val_accuracy: float = 0.0
    val_retrieval: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    device: str = "cpu"
    recalibrated: bool = False
    recalibrated_accuracy: float | None = None


def carve_validation(
    labels: np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows), sorted: `fraction` of each label, seeded."""

    def share(count: int) -> int:  # a label too small to split stays whole in train
        take = round(count * fraction)
        return take if 0 < take < count else 0

    val_rows = stratified_rows(labels, share, seed)
    keep = np.ones(len(labels), bool)
    keep[val_rows] = False
    return np.flatnonzero(keep), val_rows.astype(np.int64)


def fit_cifarnet(
    extractor: CnnExtractor,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig | None = None,
    val_fraction: float = 0.1,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    score_retrieval: RetrievalScorer | None = None,
) -> FitReport:
    """Train `extractor`'s network on `images` uint8 (n, 32, 32, 3) with int `labels` (n,).

    `score_retrieval(queries, query_labels, index, index_labels)` measures retrieval of the
    validation embeddings against the train ones (the stage passes the trec_eval measures of
    evaluation/validation.py); without it the report's `val_retrieval` stays empty.
    """
    config = config or TrainConfig(widths=extractor.widths)
    config.widths = extractor.widths
    train_rows, val_rows = carve_validation(labels, val_fraction, config.seed)
    if len(val_rows) == 0:
        raise ValueError("too few images per label to carve out a validation split")
    result = train_network(
        images[train_rows],
        labels[train_rows],
        images[val_rows],
        labels[val_rows],
        config,
        num_classes=extractor.num_classes,
        on_epoch=on_epoch,
        on_step=on_step,
    )
    extractor.mean = None
    extractor.set_network(result.model)
    raw_train = _embed_all(extractor, images[train_rows])
    extractor.mean = raw_train.mean(0).astype(np.float32)
    report = FitReport(
        train_rows=train_rows,
        val_rows=val_rows,
        epochs=result.epochs,
        best_epoch=result.best_epoch,
        val_accuracy=result.val_accuracy,
        train_seconds=result.seconds,
        device=result.device,
        recalibrated=result.recalibrated,
        recalibrated_accuracy=result.recalibrated_accuracy,
    )
    if score_retrieval is not None:
        report.val_retrieval = score_retrieval(
            extractor.encode(list(images[val_rows])),
            labels[val_rows],
            extractor.encode(list(images[train_rows])),
            labels[train_rows],
        )
    return report


def _embed_all(extractor: CnnExtractor, images: np.ndarray) -> np.ndarray:
    step = extractor.batch_size
    return np.concatenate(
        [extractor.embed(images[s : s + step]) for s in range(0, len(images), step)]
    )
