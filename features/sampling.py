"""Drawing rows per label: validation splits, query samples, balanced subsets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def stratified_rows(labels: np.ndarray, take: Callable[[int], int], seed: int = 0) -> np.ndarray:
    """int64 rows, sorted: `take(n)` rows of each label drawn without replacement (seeded).

    Labels are visited in `np.unique` order and a label with `take(n) == 0` draws nothing, so a
    seed gives the same rows on every run. `take(n)` must not exceed n.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = take(len(members))
        if count > 0:
            chosen.append(rng.choice(members, count, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)
