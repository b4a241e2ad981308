"""Average precision over the whole ranking of a labelled collection, computed in memory.

For supervised retrieval on CIFAR-10 the literature ranks all 50,000 training images for each
of the 10,000 test queries: a 500-million-line run file that nobody should write. Here every
query's cosine similarities to every document are computed in chunks of queries, each row
is ranked exactly as trec_eval ranks a run (score descending, ties by docno descending in
byte order; scores in float32, as trec_eval 9.0.8 holds them), and two measures are read off:

- `ap_all`: AP over the full ranking, sum of precision at each relevant rank / R, R = the
  documents of the query's label: trec_eval's `map` on the full run ("mAP@ALL");
- `ap_found@k`: the hashing papers' "mAP@k": sum of precision at the relevant ranks within
  the first k / the relevant documents found within the first k (0 when none is found). It
  is not trec_eval's map_cut (divided by R) nor map_minRk (divided by min(R, k)).

A query whose label no document has (R = 0) is left out of both means, as trec_eval leaves
a topic without judgments out. Exact definitions: docs/evaluation-measures.md.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.errors import EvaluationError

DEFAULT_CUTOFF = 1000
Progress = Callable[[int], None]  # called with the number of queries done so far


@dataclass
class FullRanking:
    """Per-query values of one method; means over the queries with R > 0."""

    cutoff: int
    ap_all: np.ndarray  # float64 (n,)
    ap_found: np.ndarray  # float64 (n,), divided by relevant found in the first `cutoff`
    num_rel: np.ndarray  # int64 (n,), R

    @property
    def judged(self) -> np.ndarray:
        return self.num_rel > 0

    def summary(self) -> dict[str, float | int]:
        """`{"num_q", "map_all", "map_found_<k>"}` over the queries with R > 0."""
        judged = self.judged
        n = int(judged.sum())
        mean = (lambda v: float(v[judged].sum() / n)) if n else (lambda v: 0.0)
        return {
            "num_q": n,
            "map_all": mean(self.ap_all),
            f"map_found_{self.cutoff}": mean(self.ap_found),
        }


def byte_order_rank(docnos: Sequence[str]) -> np.ndarray:
    """int64 (len(docnos),): each docno's position in UTF-8 byte order (trec_eval's strcmp)."""
    keys = [d.encode("utf-8", "surrogateescape") for d in docnos]
    rank = np.empty(len(keys), dtype=np.int64)
    rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    return rank


def full_ranking(
    queries: np.ndarray,
    documents: np.ndarray,
    query_labels: Sequence[Hashable],
    doc_labels: Sequence[Hashable],
    docnos: Sequence[str],
    *,
    cutoff: int = DEFAULT_CUTOFF,
    chunk: int = 256,
    progress: Progress | None = None,
) -> FullRanking:
    """AP over the full cosine ranking of `documents` (m, d) for each of `queries` (n, d).

    Relevant = same label. Zero vectors have cosine 0 with everything. Memory is about
    60 bytes per document per query of a chunk (256 x 50,000: 0.8 GB).
    """
    queries, documents = _unit_rows(queries, "queries"), _unit_rows(documents, "documents")
    if queries.shape[1] != documents.shape[1]:
        raise EvaluationError(
            f"queries have {queries.shape[1]} dims, documents {documents.shape[1]}"
        )
    if len(query_labels) != len(queries) or len(doc_labels) != len(documents):
        raise EvaluationError("one label per query and per document is needed")
    if len(docnos) != len(documents):
        raise EvaluationError(f"{len(docnos)} docnos for {len(documents)} documents")
    if cutoff <= 0:
        raise EvaluationError(f"cutoff must be positive, got {cutoff}")
    codes = {label: i for i, label in enumerate(dict.fromkeys([*doc_labels, *query_labels]))}
    doc_codes = np.fromiter((codes[x] for x in doc_labels), np.int64, len(doc_labels))
    query_codes = np.fromiter((codes[x] for x in query_labels), np.int64, len(query_labels))
    sizes = np.bincount(doc_codes, minlength=len(codes))
    tie = byte_order_rank(docnos).astype(np.uint64)
    n, m = len(queries), len(documents)
    ap_all, ap_found = np.zeros(n), np.zeros(n)
    depth = min(cutoff, m)
    ranks = np.arange(1, m + 1, dtype=np.float64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        scores = queries[start:stop] @ documents.T + np.float32(0.0)  # -0.0 ties 0.0, as in C
        order = np.argsort(_sort_keys(scores, tie), axis=1)[:, ::-1]
        relevant = doc_codes[order] == query_codes[start:stop, None]
        hits = np.cumsum(relevant, axis=1)
        terms = np.where(relevant, hits / ranks, 0.0)
        totals = np.cumsum(terms, axis=1)  # sequential, as trec_eval sums
        num_rel = sizes[query_codes[start:stop]]
        ap_all[start:stop] = _over(totals[:, -1] if m else np.zeros(stop - start), num_rel)
        if depth:
            ap_found[start:stop] = _over(totals[:, depth - 1], hits[:, depth - 1])
        if progress is not None:
            progress(stop)
    return FullRanking(cutoff, ap_all, ap_found, sizes[query_codes].astype(np.int64))


def stored_full_rankings(
    store, methods: Sequence[str], vectors, queries, labels: Mapping[str, Hashable]
) -> dict[str, dict]:
    """Full-ranking summaries per method, documents' vectors read from a store (`store.get`).

    `vectors[m]` are the query vectors, `queries` have a `.label`, `labels` maps each indexed
    docno to its label; documents without an `m` vector are left out of `m`'s ranking.
    """
    docnos = list(labels)
    documents = store.get(docnos)
    out = {}
    for method in methods:
        have = [d for d in docnos if method in documents[d].vectors]
        matrix = np.stack([documents[d].vectors[method] for d in have])
        result = full_ranking(
            vectors[method], matrix, [q.label for q in queries], [labels[d] for d in have], have
        )
        out[method] = {**result.summary(), "documents": len(have)}
    return out


def _sort_keys(scores: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is (float32 score, docno byte order) ascending."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    monotone = np.where(negative, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    return (monotone << np.uint64(32)) | tie


def _unit_rows(matrix: np.ndarray, what: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        raise EvaluationError(f"{what}: expected a 2-d array, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise EvaluationError(f"{what}: a vector has a NaN or infinite value")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1).astype(np.float32)


def _over(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    ok = denominator > 0
    return np.where(ok, numerator / np.where(ok, denominator, 1), 0.0)
