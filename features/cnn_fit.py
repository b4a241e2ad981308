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

if TYPE_CHECKING:
    from features.cnn import CnnExtractor


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
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        take = round(len(rows) * fraction)
        if 0 < take < len(rows):
            val.append(rng.choice(rows, take, replace=False))
    val_rows = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
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
) -> FitReport:
    """Train `extractor`'s network on `images` uint8 (n, 32, 32, 3) with int `labels` (n,)."""
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
    report.val_retrieval = validation_retrieval(
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


def validation_retrieval(
    queries: np.ndarray,
    query_labels: np.ndarray,
    index: np.ndarray,
    index_labels: np.ndarray,
    k: int = 100,
) -> dict[str, float]:
    """trec_eval measures of exact cosine search: held-out queries against the train rows."""
    from evaluation.evaluate import evaluate
    from evaluation.qrels import LabelQrels
    from evaluation.run import ArrayRun
    from indexing.stores.topk import exact_top_k

    k = min(k, len(index))
    scores, rows = exact_top_k(
        queries.astype(np.float32), index.astype(np.float32), k, np.arange(len(index))
    )
    topics = [f"q{i}" for i in range(len(queries))]
    docnos = [f"d{i:06d}" for i in range(len(index))]
    qrels = LabelQrels(dict(zip(topics, query_labels.tolist(), strict=True)), docnos, index_labels)
    run = ArrayRun(topics, rows, scores.astype(np.float64), docnos)
    summary = evaluate(qrels, run, [f"map_cut.{k}", f"map_minRk.{k}", "P.10", f"P.{k}"]).summary
    return {name: float(value) for name, value in summary.items() if name != "num_q"}
