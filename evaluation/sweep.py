"""Small parameter sweeps of a feature method, measured on a validation split carved out of train.

For the notebooks: fit one extractor per setting on some train images, encode a held-out
part of train as queries against another part as documents, rank by exact cosine in
memory and measure with `evaluation.evaluate` (relevant = same label). The test split is
never touched, so a sweep can be used to choose parameters without tuning on test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbir.core.errors import DatasetError
from cbir.core.progress import Stopwatch
from evaluation.analysis import stratified_sample
from evaluation.evaluate import evaluate
from evaluation.qrels import LabelQrels
from evaluation.run import ArrayRun
from features.base import Extractor
from indexing.datasets import Dataset, Split


@dataclass
class ValidationSplit:
    """Train images split three ways: fit the model, be the documents, be the queries."""

    fit_images: list[np.ndarray]
    documents: list[np.ndarray]
    document_labels: list[str]
    queries: list[np.ndarray]
    query_labels: list[str]


def validation_split(
    dataset: Dataset,
    *,
    fit_per_label: int,
    documents_per_label: int,
    queries_per_label: int,
    seed: int = 0,
) -> ValidationSplit:
    """Disjoint, class-stratified parts of the dataset's train split, drawn with `seed`.

    Queries, documents and fit images are disjoint, so no image is both fitted on and
    searched for; only the chosen images are decoded. Raises DatasetError without a
    labelled train split.
    """
    records = [r for r in dataset.records(Split.TRAIN) if r.label is not None]
    if not records:
        raise DatasetError(
            f"dataset {dataset.source} has no labelled train images to carve a validation split from"
        )
    labels = [r.label for r in records]
    queries = stratified_sample(labels, queries_per_label, seed)
    rest = np.setdiff1d(np.arange(len(records)), queries)
    documents = rest[stratified_sample([labels[i] for i in rest], documents_per_label, seed + 1)]
    rest = np.setdiff1d(rest, documents)
    fit = rest[stratified_sample([labels[i] for i in rest], fit_per_label, seed + 2)]

    def load(rows: np.ndarray) -> list[np.ndarray]:
        return [dataset.image(records[i]) for i in rows]

    return ValidationSplit(
        fit_images=load(fit),
        documents=load(documents),
        document_labels=[labels[i] for i in documents],
        queries=load(queries),
        query_labels=[labels[i] for i in queries],
    )


@dataclass
class SweepResult:
    """One setting: its parameters, the measures (trec_eval names) and the seconds it took."""

    setting: dict[str, Any]
    measures: dict[str, float]
    dim: int
    fit_seconds: float
    encode_seconds: float
    zero_vectors: int = 0  # documents and queries the method could not describe
    extra: dict[str, Any] = field(default_factory=dict)


def rank_by_cosine(
    queries: np.ndarray, documents: np.ndarray, query_labels: Sequence[str],
    document_labels: Sequence[str], k: int,
) -> tuple[LabelQrels, ArrayRun]:  # fmt: skip
    """Qrels (same label) and a run of every document per query scored by cosine.

    `queries` float32 (q, dim) and `documents` float32 (n, dim) are unit (or zero) rows.
    The run holds all n documents: trec_eval's ordering and the measures' cut-off at k
    then decide, so ties at rank k are broken as trec_eval breaks them.
    """
    topics = [f"q{i:05d}" for i in range(len(queries))]
    docnos = [f"d{i:05d}" for i in range(len(documents))]
    scores = np.asarray(queries, np.float64) @ np.asarray(documents, np.float64).T
    index = np.broadcast_to(np.arange(len(documents)), scores.shape)
    qrels = LabelQrels(dict(zip(topics, query_labels, strict=True)), docnos, list(document_labels))
    return qrels, ArrayRun(topics, index, scores, docnos, tag=f"sweep-k{k}")


def sweep(
    make: Callable[[Mapping[str, Any]], Extractor],
    settings: Sequence[Mapping[str, Any]],
    split: ValidationSplit,
    *,
    k: int = 100,
    on_result: Callable[[SweepResult], None] | None = None,
) -> list[SweepResult]:
    """Fit `make(setting)` on the split's fit images for each setting and measure retrieval.

    Measures: `map_minRk_k` (AP@k / min(R, k)), `map_cut_k`, `P_10`, `ndcg_cut_10`.
    `on_result` is called after each setting (e.g. to print progress).
    """
    names = [f"map_minRk.{k}", f"map_cut.{k}", "P.10", "ndcg_cut.10"]
    results = []
    for setting in settings:
        extractor = make(setting)
        clock = Stopwatch()
        extractor.fit(split.fit_images)
        fit_seconds = clock.seconds
        clock = Stopwatch()
        documents = extractor.encode(split.documents)
        queries = extractor.encode(split.queries)
        encode_seconds = clock.seconds
        qrels, run = rank_by_cosine(
            queries, documents, split.query_labels, split.document_labels, k
        )
        ev = evaluate(qrels, run, names)
        zero = int((~documents.any(axis=1)).sum() + (~queries.any(axis=1)).sum())
        result = SweepResult(
            setting=dict(setting),
            measures={m: float(v) for m, v in ev.summary.items()},
            dim=int(documents.shape[1]),
            fit_seconds=round(fit_seconds, 2),
            encode_seconds=round(encode_seconds, 2),
            zero_vectors=zero,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
