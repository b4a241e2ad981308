"""Search results: a `Hit` per document, or a whole batch as arrays (`RankedHits`).

A batch of 10,000 queries x 100 hits is a million `Hit` tuples, whose building (and freeing)
costs about as much as the exact search itself; `RankedHits` holds the same ranking as three
arrays and builds `Hit` objects, with their labels, paths and splits, only when asked.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Hit(NamedTuple):
    """A search result: `score` is the cosine similarity of query and document.

    A named tuple, not a dataclass: batch searches build millions of them.
    """

    doc_id: str
    score: float
    label: str | None
    path: str | None
    split: str | None


# Above this many hits at once, building them pauses the garbage collector (5x faster).
MANY_HITS = 10_000
# Hit from a (doc_id, score, label, path, split) tuple without Python-level __new__: 1.5x faster.
NEW_HIT = functools.partial(tuple.__new__, Hit)
METADATA_COLUMNS = ("label", "path", "split")

# Given query rows (int64 (r,)), their labels, paths and splits: object arrays (r, k).
Metadata = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True, eq=False)
class RankedHits:
    """The best hits of each query as arrays, best first, in the order `search` returns them.

    doc_ids: object (q, k), str, None from `found[i]` on; scores: float (q, k), -inf from
    `found[i]` on (float32 cosines from the embedded store); found: int64 (q,), the real hits of each row (0 for a zero
    query vector). `metadata` fetches labels, paths and splits for `hits` / `hit_lists`.
    """

    doc_ids: np.ndarray
    scores: np.ndarray
    found: np.ndarray
    metadata: Metadata = field(repr=False)

    def __len__(self) -> int:
        return len(self.found)

    def hits(self, row: int) -> list[Hit]:
        """Row `row` as `Hit` objects, exactly what `search` returns for that query."""
        return self.hit_lists(np.array([row], np.int64))[0]

    def hit_lists(self, rows: np.ndarray | None = None) -> list[list[Hit]]:
        """Every row (or the rows `rows`, int64) as lists of `Hit`, as `search` returns them."""
        rows = np.arange(len(self), dtype=np.int64) if rows is None else rows
        found = self.found[rows].tolist()
        width = max(found, default=0)
        if width == 0:
            return [[] for _ in found]
        hit_lists = []
        with gc_paused(len(found) * width > MANY_HITS):
            columns = [self.doc_ids[rows, :width], self.scores[rows, :width]]
            columns += [values[:, :width] for values in self.metadata(rows)]
            values = [c.tolist() for c in columns]  # doc_ids, scores, labels, paths, splits
            for r, n in enumerate(found):
                row = [v[r] if n == width else v[r][:n] for v in values]
                hit_lists.append(list(map(NEW_HIT, zip(*row, strict=True))))
        return hit_lists

    def id_lists(self) -> list[list[str]]:
        """The doc ids of each row, best first, without building hits."""
        return [ids[:n] for ids, n in zip(self.doc_ids.tolist(), self.found.tolist(), strict=True)]

    @classmethod
    def from_hit_lists(cls, hit_lists: Sequence[Sequence[Hit]], k: int) -> RankedHits:
        """The arrays of `hit_lists` (at most `k` hits each), e.g. from a store's `search`."""
        found = np.array([len(hits) for hits in hit_lists], np.int64)
        if (found > k).any():
            raise ValueError(f"a hit list holds {int(found.max())} hits, more than k={k}")
        doc_ids = np.full((len(hit_lists), k), None, object)
        scores = np.full((len(hit_lists), k), -np.inf, np.float64)  # as given: no rounding
        metadata = np.full((len(METADATA_COLUMNS), len(hit_lists), k), None, object)
        for row, hits in enumerate(hit_lists):
            n = len(hits)
            doc_ids[row, :n] = [h.doc_id for h in hits]
            scores[row, :n] = [h.score for h in hits]
            for i, name in enumerate(METADATA_COLUMNS):
                metadata[i, row, :n] = [getattr(h, name) for h in hits]
        return cls(doc_ids, scores, found, lambda rows: list(metadata[:, rows]))


@contextlib.contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects (hits).

    A million hit tuples trigger hundreds of collections that find nothing to free; they
    cost most of the time of building them. The collector is re-enabled if it was enabled.
    """
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
