"""Retrieval measured on a validation split: held-out queries against the train rows, exact cosine.

Measured the way `cbir evaluate` does (same label = relevant, trec_eval measures), so a
model is judged without ever looking at the test split.
"""

from __future__ import annotations

import numpy as np

from evaluation.evaluate import evaluate
from evaluation.qrels import LabelQrels
from evaluation.run import ArrayRun
from indexing.stores.topk import exact_top_k


def validation_retrieval(
    queries: np.ndarray,
    query_labels: np.ndarray,
    index: np.ndarray,
    index_labels: np.ndarray,
    k: int = 100,
) -> dict[str, float]:
    """trec_eval measures of exact cosine search: held-out queries against the train rows."""
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
