"""Alpha query expansion (α-QE): search again with the query moved towards its neighbours.

Radenović, Tolias and Chum, "Fine-tuning CNN image retrieval with no human annotation"
(TPAMI 2018), after Chum et al.'s average query expansion (ICCV 2007): the new query is
the L2-normalised sum of the query and its top `k` neighbours' vectors, each weighted by
its cosine similarity to the query raised to the power `alpha` (negative cosines weigh 0).
It uses nothing but the index's own vectors: no label enters the query.

Written here because neither the vector stores nor faiss offer it; it is a weighted sum of
vectors the store already holds, then a second search through the same store API, so it
works unchanged on the embedded store and on Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cbir.core.errors import CbirError
from features.base import ModelInfo, l2_normalise
from indexing.stores.base import Hit, VectorStore, drop_left_out, search_leaving_out


@dataclass(frozen=True)
class Expansion:
    """How many neighbours expand a query (`k`) and how sharply they are weighted (`alpha`)."""

    k: int = 10
    alpha: float = 3.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise CbirError(f"query expansion needs k >= 1 neighbours, got {self.k}")
        if not self.alpha >= 0:
            raise CbirError(f"query expansion needs alpha >= 0, got {self.alpha}")

    @classmethod
    def parse(cls, text: str) -> Expansion:
        """'K' or 'K:ALPHA', e.g. '10:3' (the command-line form)."""
        head, _, tail = text.partition(":")
        try:
            return cls(int(head), float(tail) if tail else cls.alpha)
        except ValueError:
            raise CbirError(
                f"cannot read query expansion {text!r}: write K or K:ALPHA, e.g. 10:3"
            ) from None

    def __str__(self) -> str:
        return f"{self.k}:{self.alpha:g}"


def expand_vectors(
    queries: np.ndarray,
    neighbours: Sequence[np.ndarray],
    similarities: Sequence[np.ndarray],
    alpha: float,
) -> np.ndarray:
    """The expanded queries: l2(q + sum_i max(s_i, 0)^alpha * x_i), one row per query.

    queries: float (q, d), L2-normalised. neighbours[j]: float (n_j, d), the j-th query's
    neighbours (n_j may be 0: the query is kept). similarities[j]: (n_j,) their cosines.
    """
    out = np.array(queries, dtype=np.float32, copy=True)
    for j, (vectors, sims) in enumerate(zip(neighbours, similarities, strict=True)):
        if len(vectors):
            weights = np.clip(np.asarray(sims, np.float64), 0.0, None) ** alpha
            out[j] += (weights[:, None] * np.asarray(vectors, np.float64)).sum(0).astype(np.float32)
    return l2_normalise(out)


def neighbour_vectors(
    store: VectorStore, field: str, hit_lists: Sequence[Sequence[Hit]], dim: int
) -> list[np.ndarray]:
    """The stored `field` vectors of each hit list's documents, fetched once per document."""
    wanted = list(dict.fromkeys(h.doc_id for hits in hit_lists for h in hits))
    stored = store.get(wanted)
    vectors = {doc_id: doc.vectors[field] for doc_id, doc in stored.items() if field in doc.vectors}
    missing = [doc_id for doc_id in wanted if doc_id not in vectors]
    if missing:
        raise CbirError(
            f"{len(missing):,} hits of field {field!r} have no stored vector in {store.url} "
            f"(e.g. {missing[0]!r}); the index changed during the search: search again"
        )
    # one matrix, then a row selection per list: stacking per list costs 5x the store read
    matrix = np.stack([vectors[doc_id] for doc_id in wanted]) if wanted else np.zeros((0, dim))
    row = {doc_id: i for i, doc_id in enumerate(wanted)}
    return [
        matrix[[row[h.doc_id] for h in hits]].astype(np.float32, copy=False)
        if hits
        else np.zeros((0, dim), np.float32)
        for hits in hit_lists
    ]


def expanded_search(
    store: VectorStore,
    field: str,
    queries: np.ndarray,
    k: int,
    expansion: Expansion,
    *,
    model: ModelInfo | None = None,
    exact: bool = True,
    num_candidates: int | None = None,
    first: Sequence[Sequence[Hit]] | None = None,
    exclude: Sequence[str | None] | None = None,
) -> list[list[Hit]]:
    """Top `k` for each query after α-QE on its first `expansion.k` hits.

    `first`: hit lists already searched with these queries (at least `expansion.k` long
    where the index has that many), reused rather than searched again. `exclude`: per query,
    a doc id left out of both rounds (the query itself when it is an indexed document).
    """
    queries = np.asarray(queries, np.float32)
    skip = list(exclude) if exclude is not None else [None] * len(queries)
    options = {"model": model, "exact": exact, "num_candidates": num_candidates}
    if first is None:
        top = search_leaving_out(store, field, queries, expansion.k, skip, **options)
    else:
        top = drop_left_out(first, skip, expansion.k)
    neighbours = neighbour_vectors(store, field, top, queries.shape[1])
    similarities = [np.array([h.score for h in hits], np.float64) for hits in top]
    expanded = expand_vectors(queries, neighbours, similarities, expansion.alpha)
    # a query with no hits (a zero vector) stays zero, and the store answers it with no hits
    expanded[~np.any(queries != 0, axis=1)] = 0
    return search_leaving_out(store, field, expanded, k, skip, **options)
