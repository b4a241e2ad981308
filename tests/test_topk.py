"""The exact top-k kernel against a plain Python sort, on data full of exact ties."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.stores.topk import exact_top_k


def python_top_k(queries, matrix, k, keys, allowed):
    ranked = []
    for query in queries:
        scores = matrix @ query
        rows = [r for r in range(len(matrix)) if allowed is None or allowed[r]]
        rows.sort(key=lambda r: (-scores[r], -keys[r]))
        ranked.append(rows[:k])
    return ranked


@pytest.mark.parametrize("seed", range(60))
def test_matches_a_plain_sort_with_ties_masks_and_small_blocks(seed):
    rng = np.random.default_rng(seed)
    n, dim, q = int(rng.integers(1, 60)), int(rng.integers(1, 4)), int(rng.integers(1, 7))
    # Small integers make many exactly equal scores, also across the k-th place.
    matrix = rng.integers(-2, 3, (n, dim)).astype(np.float32)
    queries = rng.integers(-2, 3, (q, dim)).astype(np.float32)
    keys = rng.permutation(n).astype(np.int64)
    allowed = None if seed % 3 == 0 else rng.random(n) < rng.uniform(0.1, 1.0)
    k = int(rng.integers(1, n + 5))
    scores, rows = exact_top_k(
        queries, matrix, k, keys, allowed, block_bytes=int(rng.integers(4, 600))
    )
    expected = python_top_k(queries, matrix, k, keys, allowed)
    for i in range(q):
        assert rows[i].tolist() == expected[i]
        np.testing.assert_array_equal(scores[i], matrix[expected[i]] @ queries[i])


def test_nothing_allowed_or_no_rows_gives_empty_results():
    matrix = np.eye(3, dtype=np.float32)
    scores, rows = exact_top_k(matrix, matrix, 2, np.arange(3), np.zeros(3, bool))
    assert scores.shape == rows.shape == (3, 0)
    scores, rows = exact_top_k(matrix, np.zeros((0, 3), np.float32), 2, np.arange(0))
    assert rows.shape == (3, 0)


def test_float32_scores_match_faiss_flat_inner_product():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((2000, 32)).astype(np.float32)
    queries = rng.standard_normal((50, 32)).astype(np.float32)
    index = faiss.IndexFlatIP(32)
    index.add(matrix)
    expected_scores, expected_rows = index.search(queries, 10)
    scores, rows = exact_top_k(queries, matrix, 10, np.arange(2000))
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("seed", "k", "order"),
    [(0, 1, None), (1, 10, "ascending"), (2, 100, "descending"), (3, 37, None)],
)
def test_many_rows_with_ties_across_the_kth_place_and_sorted_columns(seed, k, order):
    # Thousands of columns take the bounded selection (k disjoint groups); columns sorted by
    # score make the bound as loose as it gets, and 0.0 / -0.0 scores must tie.
    rng = np.random.default_rng(seed)
    n, q = 3_000, 5
    matrix = rng.integers(-3, 4, (n, 2)).astype(np.float32)
    queries = rng.integers(-2, 3, (q, 2)).astype(np.float32)
    queries[0] = [0.0, -1.0] if order is None else queries[0]
    if order is not None:
        matrix = matrix[np.argsort(matrix @ queries[1], kind="stable")]
        matrix = matrix[::-1].copy() if order == "descending" else matrix
    keys = rng.permutation(n).astype(np.int64)
    allowed = None if seed % 2 == 0 else rng.random(n) < 0.7
    scores, rows = exact_top_k(queries, matrix, k, keys, allowed)
    expected = python_top_k(queries, matrix, k, keys, allowed)
    for i in range(q):
        assert rows[i].tolist() == expected[i]
        np.testing.assert_array_equal(scores[i], matrix[expected[i]] @ queries[i])


def test_unit_vectors_match_a_full_sort():
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((20_000, 16)).astype(np.float32)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    keys = rng.permutation(20_000).astype(np.int64)
    scores, rows = exact_top_k(queries, matrix, 50, keys)
    full = queries @ matrix.T
    for i in range(20):
        expected = np.lexsort((-keys, -full[i]))[:50]
        assert rows[i].tolist() == expected.tolist()
        np.testing.assert_array_equal(scores[i], full[i, expected])


@pytest.mark.parametrize("clustered", [True, False])
def test_clustered_and_spread_vectors_take_their_path_and_match_a_full_sort(clustered, monkeypatch):
    import indexing.stores.topk as topk

    rng = np.random.default_rng(11)
    if clustered:  # three clusters of equal vectors: a third of every row ties at the top
        centres = rng.standard_normal((3, 16))
        matrix = centres[rng.integers(0, 3, 6_000)]
    else:
        matrix = rng.standard_normal((6_000, 16))
    matrix = matrix.astype(np.float32)
    queries = matrix[:24] + np.float32(0.01)
    keys = rng.permutation(6_000).astype(np.int64)
    calls = []
    original = topk._select_by_partition
    monkeypatch.setattr(topk, "_select_by_partition", lambda *a: calls.append(1) or original(*a))
    scores, rows = exact_top_k(queries, matrix, 20, keys)
    assert bool(calls) == clustered
    full = queries @ matrix.T
    for i in range(len(queries)):
        expected = np.lexsort((-keys, -full[i]))[:20]
        assert rows[i].tolist() == expected.tolist()
        np.testing.assert_array_equal(scores[i], full[i, expected])
