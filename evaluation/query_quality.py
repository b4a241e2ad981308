"""How good one search was, when its query has a label: P@k and AP@k / min(R, k).

The same kernel as every other measure (evaluation/compute.py), on one topic: relevant =
an indexed document with the query's label; R = the indexed documents of that label, less
the query itself when it is indexed (it is left out of its own results).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from evaluation.compute import PAD, topic_values
from evaluation.measures import Measure
from indexing.search import SearchResult

RELEVANT, NOT_RELEVANT = 1, -2  # grades as compute.topic_values reads them


def query_quality(result: SearchResult, label_counts: Mapping[str, int]) -> dict | None:
    """{"precision", "ap", "relevant"} for a labelled query, else None."""
    label = result.query.label
    if label is None or label not in label_counts:
        return None
    relevant = label_counts[label] - (1 if result.query.indexed else 0)
    k = result.k
    grades = np.full((1, max(k, len(result.hits))), PAD, np.int64)
    grades[0, : len(result.hits)] = [
        RELEVANT if h.label == label else NOT_RELEVANT for h in result.hits
    ]
    values = topic_values(
        grades,
        np.array([len(result.hits)]),
        np.array([[0, relevant]]),
        [Measure("P", k), Measure("map_minRk", k)],
    )
    return {
        "precision": float(values[f"P_{k}"][0]),
        "ap": float(values[f"map_minRk_{k}"][0]),
        "relevant": relevant,
    }
