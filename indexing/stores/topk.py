"""Exact top-k by inner product, in query blocks, with deterministic ties.

Written with numpy rather than faiss because it must honour a tie order (larger key first,
even across the k-th place) and row masks (filters, deleted rows) on a memory-mapped matrix;
`benchmarks/stores.py` measures it against `faiss.IndexFlatIP` on the same data.
Each block is one BLAS matrix product, then a selection per few rows on a thread pool (numpy
releases the GIL there). The selection first bounds each row's k-th score from below (the
smallest of the maxima of k disjoint column groups: each group holds a score at least that
large), keeps the few scores above the bound, and sorts only those: a `np.argpartition` over
every score cost twice the matrix product itself (issue #21).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Score-matrix bytes per query block: big enough for BLAS to run at full speed.
BLOCK_BYTES = 128 * 2**20
SELECT_ROWS = 8
# Above this share of a row's scores (1/32) the candidates are sorted by argpartition instead.
PARTITION_SHARE = 32


def search_threads() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 16))
    except AttributeError:  # not on Linux
        return max(1, min(os.cpu_count() or 1, 16))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(search_threads(), thread_name_prefix="cbir-topk")


def exact_top_k(
    queries: np.ndarray,
    matrix: np.ndarray,
    k: int,
    keys: np.ndarray,
    allowed: np.ndarray | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `matrix` with the largest inner product with each query.

    queries: float32 (q, d). matrix: float32 (n, d), may be a memory map. keys: int64 (n,),
    distinct; among equal scores the larger key ranks first, also at the k-th place.
    allowed: bool (n,) or None; other rows are never returned.
    Returns scores float32 (q, k') and rows int64 (q, k'), best first, k' = min(k, allowed rows).
    """
    q, n = len(queries), len(matrix)
    if allowed is not None and allowed.all():
        allowed = None
    if allowed is not None:
        rows = np.flatnonzero(allowed)
        if len(rows) <= n // 2:
            # Few rows pass: searching a copy of them beats scoring and masking all rows.
            scores, picked = exact_top_k(queries, matrix[rows], k, keys[rows], None, block_bytes)
            return scores, rows[picked]
    n_allowed = n if allowed is None else int(allowed.sum())
    k = min(k, n_allowed)
    out_scores = np.empty((q, k), np.float32)
    out_rows = np.empty((q, k), np.int64)
    if k == 0 or q == 0:
        return out_scores, out_rows
    excluded = None if allowed is None else np.flatnonzero(~allowed)
    block = max(1, min(q, block_bytes // (4 * n)))
    buffer = np.empty((block, n), np.float32)
    threads = search_threads()
    for start in range(0, q, block):
        stop = min(q, start + block)
        scores = buffer[: stop - start]
        np.matmul(queries[start:stop], matrix.T, out=scores)
        if excluded is not None:
            scores[:, excluded] = -np.inf
        chunks = np.array_split(np.arange(stop - start), min(threads, stop - start))
        jobs = [
            _pool().submit(
                _select,
                scores[c[0] : c[-1] + 1],
                k,
                keys,
                out_scores[start + c[0] : start + c[-1] + 1],
                out_rows[start + c[0] : start + c[-1] + 1],
            )
            for c in chunks
            if len(c)
        ]
        for job in jobs:
            job.result()
    return out_scores, out_rows


def _select(
    scores: np.ndarray, k: int, keys: np.ndarray, out_scores: np.ndarray, out_rows: np.ndarray
) -> None:
    """Top k of each row of `scores` (float32 (m, n)) into the outputs, best first."""
    # A few rows at a time keep the comparison mask and candidates in cache.
    for start in range(0, len(scores), SELECT_ROWS):
        rows = slice(start, start + SELECT_ROWS)
        _select_rows(scores[rows], k, keys, out_scores[rows], out_rows[rows])


def _select_rows(
    scores: np.ndarray, k: int, keys: np.ndarray, out_scores: np.ndarray, out_rows: np.ndarray
) -> None:
    m, n = scores.shape
    if k >= n:
        order = np.lexsort((np.broadcast_to(-keys, scores.shape), -scores), axis=1)[:, :k]
        out_rows[:] = order
        out_scores[:] = np.take_along_axis(scores, order, axis=1)
        return
    width = n // k
    bound = scores[:, : k * width].reshape(m, k, width).max(axis=2).min(axis=1)
    flat = np.flatnonzero(scores >= bound[:, None])  # row-major: row by row, columns ascending
    # Many scores above the bound happen on clustered real vectors (a CIFAR-10 class is 5,000
    # near-equal neighbours: about 6,000 of 50,000 scores per row pass), where sorting them
    # costs more than one argpartition of the row.
    if len(flat) > m * max(4 * k, n // PARTITION_SHARE):
        _select_by_partition(scores, k, keys, out_scores, out_rows)
        return
    row, column = np.divmod(flat, n)
    counts = np.bincount(row, minlength=m)
    if counts.min(initial=k) < k:  # only with NaN scores: let argpartition rank them
        _select_by_partition(scores, k, keys, out_scores, out_rows)
        return
    # + 0.0 turns -0.0 into 0.0, so that equal scores have equal bits.
    values = scores.ravel()[flat] + np.float32(0.0)
    order = _candidate_order(row, values, keys[column])
    starts = np.cumsum(counts) - counts
    take = order[(starts[:, None] + np.arange(k)).ravel()]
    out_rows[:] = column[take].reshape(m, k)
    out_scores[:] = values[take].reshape(m, k)


def _candidate_order(row: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Indices sorting candidates by row, then score descending, then key descending."""
    bits = values.view(np.uint32)
    # IEEE floats sort as unsigned integers once negatives have all bits flipped and
    # positives their sign bit set; inverted, that is descending order.
    ascending = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000))
    combined = (row.astype(np.int64) << 32) | (~ascending).astype(np.int64)
    order = np.argsort(combined)
    ranked = combined[order]
    if (ranked[1:] == ranked[:-1]).any():  # equal scores in a row: the key decides
        return np.lexsort((-keys, -values, row))
    return order


def _select_by_partition(
    scores: np.ndarray, k: int, keys: np.ndarray, out_scores: np.ndarray, out_rows: np.ndarray
) -> None:
    """`_select_rows` by one `np.argpartition` over every score (k < columns)."""
    n = scores.shape[1]
    # Column 0 holds the (k+1)-th largest score, columns 1.. the k largest (unordered).
    part = np.argpartition(scores, n - k - 1, axis=1)[:, n - k - 1 :]
    part_scores = np.take_along_axis(scores, part, axis=1)
    top, top_scores = part[:, 1:], part_scores[:, 1:]
    order = np.lexsort((-keys[top], -top_scores), axis=1)
    out_rows[:] = np.take_along_axis(top, order, axis=1)
    out_scores[:] = np.take_along_axis(top_scores, order, axis=1)
    # A tie across the k-th place: which tied rows make the cut depends on keys, not on
    # where argpartition happened to put them; redo those rows in full.
    for r in np.flatnonzero(out_scores[:, -1] == part_scores[:, 0]):
        candidates = np.flatnonzero(scores[r] >= out_scores[r, -1])
        best = candidates[np.lexsort((-keys[candidates], -scores[r, candidates]))[:k]]
        out_rows[r] = best
        out_scores[r] = scores[r, best]
