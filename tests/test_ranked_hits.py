"""`search_ranked`: the same ranking as `search`, held as arrays, in both stores' code paths."""

from __future__ import annotations

import abc
import itertools

import numpy as np
import pytest

from evaluation.run import ArrayRun
from features.base import ModelInfo
from indexing.stores import Document, VectorStore
from indexing.stores.base import Hit
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.embedded_snapshot import ranked_hits
from indexing.stores.hits import RankedHits

DIM = 8
MODEL = ModelInfo("cnn", DIM, "ranked-test")


def patterns() -> np.ndarray:
    """Vectors with 1 or 4 entries of +-1: unit length after scaling by 1 or 1/2, so every
    cosine between two of them is a multiple of 1/4, exact in float32 whatever the summation
    order, and many documents tie."""
    rows = []
    for size in (1, 4):
        for where in itertools.combinations(range(DIM), size):
            for signs in itertools.product((1.0, -1.0), repeat=size):
                row = np.zeros(DIM, np.float32)
                row[list(where)] = signs
                rows.append(row)
    return np.array(rows, np.float32)


def documents(n: int = 90, seed: int = 0) -> list[Document]:
    vectors = patterns()[np.random.default_rng(seed).integers(0, len(patterns()), n)]
    vectors[[7, 31]] = 0  # encoded, but never a hit
    return [
        Document(f"d{i:03d}", f"img/{i}.png", "ab"[i % 2], "train" if i < 60 else "test",
                 {"cnn": v})
        for i, v in enumerate(vectors)
    ]  # fmt: skip


def build(path, query: str = "") -> EmbeddedStore:
    """A store with ties, zero vectors, deleted and replaced documents (stale rows)."""
    store = EmbeddedStore.open(f"local:{path}{query}")
    store.create({"cnn": MODEL})
    docs = documents()
    store.upsert(docs)
    store.delete(["d003", "d050", "d051"])
    replaced = documents(seed=1)[10:20]
    store.upsert(replaced)  # new vectors for d010..d019: their old rows go stale
    return store


def expected(store: EmbeddedStore, queries: np.ndarray, k: int, filters=None):
    """Brute force: every live, non-zero, kept document, by exact cosine, then doc id, desc."""
    live = {d: doc for d, doc in store.get(f"d{i:03d}" for i in range(90)).items()}
    out = []
    for query in queries:
        norm = np.linalg.norm(query)
        if norm == 0:
            out.append([])
            continue
        scored = []
        for doc_id, doc in live.items():
            vector = doc.vectors["cnn"]
            keep = all(
                getattr(doc, key) in ((v,) if isinstance(v, str) else v)
                for key, v in (filters or {}).items()
            )
            if keep and np.linalg.norm(vector) > 0:
                scored.append((float(np.dot(query / norm, vector)), doc_id))
        out.append(sorted(scored, reverse=True)[:k])
    return out


def queries() -> np.ndarray:
    rows = patterns()[np.random.default_rng(5).integers(0, len(patterns()), 12)]
    rows[4] = 0  # a zero query vector: no hits
    return rows


def assert_same(ranked: RankedHits, hits: list[list[Hit]], k: int) -> None:
    """`ranked` holds exactly `hits`: ids, scores, order, found; padding past found."""
    assert ranked.doc_ids.shape == ranked.scores.shape == (len(hits), k)
    assert ranked.found.tolist() == [len(h) for h in hits]
    for row, row_hits in enumerate(hits):
        n = len(row_hits)
        assert ranked.doc_ids[row, :n].tolist() == [h.doc_id for h in row_hits]
        assert ranked.scores[row, :n].tolist() == [h.score for h in row_hits]
        assert all(d is None for d in ranked.doc_ids[row, n:])
        assert np.all(ranked.scores[row, n:] == -np.inf)
        assert ranked.hits(row) == row_hits
    assert ranked.hit_lists() == hits
    assert ranked.id_lists() == [[h.doc_id for h in row] for row in hits]


@pytest.mark.parametrize(
    "filters", [None, {"label": "a"}, {"split": "test"}, {"label": ["a", "b"], "split": "train"}]
)
@pytest.mark.parametrize("k", [1, 5, 200])  # 200: more than the store holds
def test_arrays_hold_the_exact_ranking_that_search_returns(tmp_path, filters, k):
    with build(tmp_path / "i") as store:
        query = queries()
        ranked = store.search_ranked("cnn", query, k, filters)
        hits = store.search("cnn", query, k, filters)
        assert_same(ranked, hits, k)
        truth = expected(store, query, k, filters)
        assert [[(h.score, h.doc_id) for h in row] for row in hits] == truth
        assert ranked.found[4] == 0 and max(ranked.found) == min(k, len(truth[0]))
        if k == 5:  # documents tie across the k-th place: which of them make the cut is tested
            full = expected(store, query, 1000, filters)
            assert any(len(f) > k and f[k - 1][0] == f[k][0] for f in full)
        docs = store.get(h.doc_id for h in hits[0])
        assert [(h.label, h.path, h.split) for h in hits[0]] == [
            (docs[h.doc_id].label, docs[h.doc_id].path, docs[h.doc_id].split) for h in hits[0]
        ]


def test_one_query_and_no_passing_document(tmp_path):
    with build(tmp_path / "i") as store:
        one = store.search_ranked("cnn", patterns()[3], 4)
        assert (
            one.doc_ids.shape == (1, 4) and one.hits(0) == store.search("cnn", patterns()[3], 4)[0]
        )
        none = store.search_ranked("cnn", queries(), 3, {"label": "no such label"})
        assert none.found.tolist() == [0] * 12 and none.hit_lists() == [[]] * 12


@pytest.mark.parametrize("many", [False, True])
def test_rows_the_graph_could_not_fill_are_cut(tmp_path, many, monkeypatch):
    """An approximate search may find fewer than k rows (-1, score -inf): found says so."""
    if many:  # the object-array path for many hits, as for a large batch
        monkeypatch.setattr("indexing.stores.embedded_snapshot.MANY_HITS", 0)
    with build(tmp_path / "i") as store:
        snapshot = store.current()
        view = snapshot.fields["cnn"]
        live = np.flatnonzero(view.searchable)
        rows = np.array([[live[0], live[1], -1], [live[2], -1, -1], [live[3], live[4], live[5]]])
        scores = np.where(rows >= 0, np.float32(0.5), -np.inf).astype(np.float32)
        zero = np.array([False, False, True])
        ranked = ranked_hits(snapshot, view, scores, rows, zero, 4)
        assert ranked.found.tolist() == [2, 1, 0]
        ids = snapshot.values("doc_id", view.row_position[live[:3]])
        assert ranked.id_lists() == [ids[:2], ids[2:3], []]
        lists = ranked.hit_lists()
        assert [len(h) for h in lists] == [2, 1, 0]
        assert lists[0][0] == Hit(ids[0], 0.5, *(
            snapshot.value(c, view.row_position[live[0]]) for c in ("label", "path", "split")
        ))  # fmt: skip
        assert ranked.doc_ids[0, 2:].tolist() == [None, None]
        assert ranked.scores[1, 1:].tolist() == [-np.inf] * 3


def test_the_approximate_index_gives_the_same_arrays_as_its_search(tmp_path):
    pytest.importorskip("faiss")
    with build(tmp_path / "i", "?index=hnsw&m=8&ef_search=4") as store:
        query = queries()
        for options in ({}, {"num_candidates": 200}, {"exact": True}):
            for filters in (None, {"split": "train"}):
                ranked = store.search_ranked("cnn", query, 10, filters, **options)
                assert_same(ranked, store.search("cnn", query, 10, filters, **options), 10)
        # at an ef that covers the store the graph finds the exact scores (tied documents
        # at the cut are the graph's pick); recall takes the arrays or the hits alike
        exact = store.search_ranked("cnn", query, 10, exact=True)
        wide = store.search_ranked("cnn", query, 10, num_candidates=200)
        assert np.array_equal(wide.scores, exact.scores) and wide.found[4] == 0
        recall = store.recall_at_k("cnn", query, wide, 10)
        assert recall == store.recall_at_k("cnn", query, wide.hit_lists(), 10)
        assert store.recall_at_k("cnn", query, exact, 10) == 1.0


class FakeStore(VectorStore):
    """A store that only answers `search`, with given hit lists (as Elasticsearch would)."""

    url = "fake:"

    def __init__(self, answer: list[list[Hit]]):
        self.answer = answer
        self.calls: list[dict] = []

    def search(self, field, vectors, k, filters=None, *, model=None, exact=True,
               num_candidates=None):  # fmt: skip
        self.calls.append({"exact": exact, "num_candidates": num_candidates, "k": k})
        return self.answer


def _unused(*args, **kwargs):
    raise AssertionError("only search is part of this test")


for _name in VectorStore.__abstractmethods__ - {"search"}:
    setattr(FakeStore, _name, _unused)
abc.update_abstractmethods(FakeStore)


def test_the_default_converts_the_hits_of_any_store():
    answer = [
        [Hit("b", 0.9000000000000001, "cat", "b.png", "train"), Hit("a", 0.5, None, None, None)],
        [],
        [Hit("c", -0.25, "dog", "c.png", "test")],
    ]
    store = FakeStore(answer)
    ranked = store.search_ranked("cnn", np.ones((3, 4)), 3, num_candidates=50)
    assert store.calls == [{"exact": True, "num_candidates": 50, "k": 3}]  # its own default
    assert_same(ranked, answer, 3)  # scores as given, float64: no rounding
    store.search_ranked("cnn", np.ones((3, 4)), 3, exact=False)
    assert store.calls[-1]["exact"] is False
    with pytest.raises(ValueError, match="more than k=1"):
        store.search_ranked("cnn", np.ones((3, 4)), 1)


def test_a_run_from_the_arrays_is_the_run_from_the_hits(tmp_path):
    with build(tmp_path / "i") as store:
        query = queries()
        docnos = [f"d{i:03d}" for i in range(90)]
        topics = [f"q{i}" for i in range(len(query))]
        for k, filters in ((5, None), (200, {"label": "b"})):
            ranked = store.search_ranked("cnn", query, k, filters)
            from_ids = ArrayRun.from_ids(topics, ranked.doc_ids, ranked.scores, docnos)
            from_hits = ArrayRun.from_hits(topics, store.search("cnn", query, k, filters), docnos)
            assert np.array_equal(from_ids.doc_index, from_hits.doc_index)
            assert np.array_equal(from_ids.scores, from_hits.scores)
            assert from_ids.scores.dtype == from_hits.scores.dtype
        empty = ArrayRun.from_ids(["x", "y"], np.full((2, 0), None, object), np.zeros((2, 0)), [])
        assert (
            empty.doc_index.tolist()
            == ArrayRun.from_hits(["x", "y"], [[], []], []).doc_index.tolist()
        )
