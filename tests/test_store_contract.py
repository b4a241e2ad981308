"""One contract, every store: the embedded store always, Elasticsearch when CBIR_ES_URL is set.

Scores are checked against cosine similarities computed here in float64 numpy; orders
against the documented tie rule (score descending, doc id descending).
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document, ModelMismatchError, StoreError
from indexing.stores.urls import open_store

ES_URL = os.environ.get("CBIR_ES_URL")
CNN = ModelInfo("cnn", 8, "cnn-0001")
BOVW = ModelInfo("bovw", 5, "bovw-0001")
LABELS = ("airplane", "bird", "cat")

STORES = [
    "embedded",
    pytest.param(
        "elasticsearch",
        marks=[
            pytest.mark.elasticsearch,
            pytest.mark.skipif(
                not ES_URL, reason="CBIR_ES_URL not set: no Elasticsearch server to test against"
            ),
        ],
    ),
]


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    if request.param == "embedded":
        url = f"local:{tmp_path / 'index'}"
    else:
        url = f"{ES_URL.rstrip('/')}/cbir-test-{uuid.uuid4().hex[:12]}"
    opened = open_store(url, env=os.environ)
    yield opened
    opened.drop()
    opened.close()


def corpus(n: int = 24, seed: int = 0, dim: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"train/{LABELS[i % 3]}/{i:04d}": rng.standard_normal(dim) * 3 for i in range(n)}


def documents(vectors: dict[str, np.ndarray], field: str = "cnn") -> list[Document]:
    return [
        Document(doc_id, f"images/{doc_id}.png", doc_id.split("/")[1], split_of(doc_id), {field: v})
        for doc_id, v in vectors.items()
    ]


def split_of(doc_id: str) -> str:
    return "val" if int(doc_id[-4:]) % 4 == 0 else "train"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def reference(query: np.ndarray, vectors: dict[str, np.ndarray], k: int) -> list[tuple[str, float]]:
    ranked = sorted(
        ((doc_id, cosine(query, v)) for doc_id, v in vectors.items()),
        key=lambda pair: (pair[1], pair[0]),
        reverse=True,
    )
    return ranked[:k]


def assert_hits(hits, expected, tol=1e-5):
    assert [h.doc_id for h in hits] == [doc_id for doc_id, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=tol)


def reopen(store):
    """A second, independent store object on the same index."""
    return open_store(store.url, env=os.environ)


def test_empty_index(store):
    assert not store.exists()
    assert store.fields == {}
    store.create({"cnn": CNN})
    assert store.exists()
    assert store.count() == 0
    assert store.search("cnn", np.ones((2, 8)), 5) == [[], []]
    assert store.ids_with("cnn") == set()
    assert store.get(["train/cat/0001"]) == {}


def test_exact_scores_and_order_match_numpy(store):
    vectors = corpus()
    store.create({"cnn": CNN}, meta={"dataset": "synthetic"})
    assert store.upsert(documents(vectors)) == len(vectors)
    query = np.random.default_rng(9).standard_normal(8)
    (hits,) = store.search("cnn", query, 10)
    assert_hits(hits, reference(query, vectors, 10))
    assert hits[0].path == f"images/{hits[0].doc_id}.png"
    assert hits[0].label == hits[0].doc_id.split("/")[1]
    assert hits[0].split == split_of(hits[0].doc_id)
    assert store.meta == {"dataset": "synthetic"}


def test_ties_rank_larger_doc_id_first_also_at_the_cut(store):
    vectors = corpus(12)
    twin = np.arange(1, 9, dtype=np.float64)
    for doc_id in ("train/cat/0100", "train/cat/0101", "train/bird/0102", "train/airplane/0103"):
        vectors[doc_id] = twin * 2  # same direction: equal cosines
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    (hits,) = store.search("cnn", twin, 2)
    assert [h.doc_id for h in hits] == ["train/cat/0101", "train/cat/0100"]
    assert hits[0].score == hits[1].score
    (hits,) = store.search("cnn", twin, 6)
    assert [h.doc_id for h in hits[:4]] == sorted(
        ["train/cat/0100", "train/cat/0101", "train/bird/0102", "train/airplane/0103"], reverse=True
    )
    assert_hits(hits, reference(twin, vectors, 6))


def test_k_larger_than_the_collection_returns_everything(store):
    vectors = corpus(7)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    query = np.ones(8)
    (hits,) = store.search("cnn", query, 1000)
    assert_hits(hits, reference(query, vectors, 1000))
    assert len(hits) == 7


def test_batch_search_equals_one_query_at_a_time(store):
    vectors = corpus(30)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    queries = np.random.default_rng(4).standard_normal((6, 8)).astype(np.float32)
    batch = store.search("cnn", queries, 5)
    assert len(batch) == 6
    for query, hits in zip(queries, batch, strict=True):
        (single,) = store.search("cnn", query, 5)
        assert [h.doc_id for h in hits] == [h.doc_id for h in single]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in single], atol=1e-6)
        assert_hits(hits, reference(query, vectors, 5))


def test_upsert_is_idempotent_and_replaces_by_id(store):
    vectors = corpus(10)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    store.upsert(documents(vectors))
    assert store.count() == 10
    query = np.ones(8)
    (first,) = store.search("cnn", query, 10)
    assert_hits(first, reference(query, vectors, 10))

    changed = "train/bird/0001"
    vectors[changed] = np.full(8, 5.0)
    store.upsert([Document(changed, "moved.png", "dog", "val", {"cnn": vectors[changed]})])
    assert store.count() == 10
    (hits,) = store.search("cnn", query, 10)
    assert_hits(hits, reference(query, vectors, 10))
    assert hits[0].doc_id == changed and hits[0].label == "dog" and hits[0].path == "moved.png"
    stored = store.get([changed])[changed]
    np.testing.assert_allclose(stored.vectors["cnn"], np.full(8, 8**-0.5), atol=1e-6)
    assert (stored.path, stored.label, stored.split) == ("moved.png", "dog", "val")


def test_fields_merge_a_later_field_keeps_the_earlier_one(store):
    cnn, bovw = corpus(8, seed=1), corpus(8, seed=2, dim=5)
    store.create({"cnn": CNN})
    store.upsert(documents(cnn, "cnn"))
    store.create({"cnn": CNN, "bovw": BOVW})  # add a field to the existing index
    assert store.fields == {"cnn": CNN, "bovw": BOVW}
    half = dict(list(bovw.items())[:4])
    store.upsert(documents(half, "bovw"))
    assert store.ids_with("cnn") == set(cnn)
    assert store.ids_with("bovw") == set(half)
    query = np.ones(5)
    (hits,) = store.search("bovw", query, 10)
    assert_hits(hits, reference(query, half, 10))  # only documents that have the field
    store.upsert(documents(bovw, "bovw"))
    assert store.ids_with("bovw") == set(bovw)
    doc_id = next(iter(cnn))
    got = store.get([doc_id])[doc_id]
    np.testing.assert_allclose(
        got.vectors["cnn"], cnn[doc_id] / np.linalg.norm(cnn[doc_id]), atol=1e-6
    )
    np.testing.assert_allclose(
        got.vectors["bovw"], bovw[doc_id] / np.linalg.norm(bovw[doc_id]), atol=1e-6
    )
    (hits,) = store.search("cnn", np.ones(8), 3)
    assert_hits(hits, reference(np.ones(8), cnn, 3))


def test_delete(store):
    vectors = corpus(10)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    gone = ["train/bird/0001", "train/cat/0005", "train/airplane/0009"]
    assert store.delete([*gone, "train/cat/9999"]) == 3
    assert store.count() == 7
    assert store.get(gone) == {}
    assert store.ids_with("cnn") == set(vectors) - set(gone)
    kept = {k: v for k, v in vectors.items() if k not in gone}
    (hits,) = store.search("cnn", np.ones(8), 100)
    assert_hits(hits, reference(np.ones(8), kept, 100))
    assert store.delete(gone) == 0


def test_filters_on_label_and_split(store):
    vectors = corpus(24)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    query = np.random.default_rng(5).standard_normal(8)

    def only(keep):
        return {k: v for k, v in vectors.items() if keep(k)}

    (hits,) = store.search("cnn", query, 100, {"label": "cat"})
    assert_hits(hits, reference(query, only(lambda d: d.split("/")[1] == "cat"), 100))
    (hits,) = store.search("cnn", query, 5, {"label": ["cat", "bird"], "split": "train"})
    expected = only(lambda d: d.split("/")[1] in ("cat", "bird") and split_of(d) == "train")
    assert_hits(hits, reference(query, expected, 5))
    (hits,) = store.search("cnn", query, 3, {"split": "val"})
    assert_hits(hits, reference(query, only(lambda d: split_of(d) == "val"), 3))
    assert store.search("cnn", query, 3, {"label": "dog"}) == [[]]
    with pytest.raises(StoreError, match="cannot filter on 'path'"):
        store.search("cnn", query, 3, {"path": "x"})


def test_zero_vectors_are_encoded_but_never_hits(store):
    vectors = corpus(5)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    store.upsert([Document("train/cat/0500", "blank.png", "cat", "train", {"cnn": np.zeros(8)})])
    assert "train/cat/0500" in store.ids_with("cnn")
    np.testing.assert_array_equal(store.get(["train/cat/0500"])["train/cat/0500"].vectors["cnn"], 0)
    (hits,) = store.search("cnn", -np.ones(8), 100)
    assert "train/cat/0500" not in {h.doc_id for h in hits}
    assert_hits(hits, reference(-np.ones(8), vectors, 100))
    assert store.search("cnn", np.zeros((1, 8)), 3) == [[]]


def test_a_query_from_another_model_is_refused(store):
    store.create({"cnn": CNN})
    store.upsert(documents(corpus(3)))
    retrained = ModelInfo("cnn", 8, "cnn-0002")
    with pytest.raises(ModelMismatchError, match=r"cnn-0001.*cnn-0002"):
        store.search("cnn", np.ones(8), 3, model=retrained)
    with pytest.raises(ModelMismatchError, match=r"dim 8.*dim 16"):
        store.search("cnn", np.ones(16), 3, model=ModelInfo("cnn", 16, "cnn-0001"))
    assert len(store.search("cnn", np.ones(8), 3, model=CNN)[0]) == 3
    with pytest.raises(ModelMismatchError, match=r"cnn-0001.*cnn-0002"):
        store.create({"cnn": retrained})


def test_bad_input_is_refused_with_a_clear_error(store):
    store.create({"cnn": CNN})
    with pytest.raises(StoreError, match="shape \\(8,\\)"):
        store.upsert([Document("a", vectors={"cnn": np.ones(7)})])
    with pytest.raises(StoreError, match="field 'bovw'"):
        store.upsert([Document("a", vectors={"bovw": np.ones(5)})])
    with pytest.raises(StoreError, match="NaN"):
        store.upsert([Document("a", vectors={"cnn": np.full(8, np.nan)})])
    with pytest.raises(StoreError, match="whitespace"):
        store.upsert([Document("a b", vectors={"cnn": np.ones(8)})])
    assert store.count() == 0  # nothing of a refused batch is written
    with pytest.raises(StoreError, match="no field 'bovw'"):
        store.search("bovw", np.ones(5), 3)
    with pytest.raises(StoreError, match="\\(q, 8\\)"):
        store.search("cnn", np.ones(3), 3)
    with pytest.raises(StoreError, match="positive integer"):
        store.search("cnn", np.ones(8), 0)
    with pytest.raises(StoreError, match="cannot name a vector field"):
        store.create({"label": CNN})


def test_a_reopened_store_holds_what_was_committed(store):
    vectors = corpus(9)
    store.create({"cnn": CNN}, meta={"k": 1})
    store.upsert(documents(vectors))
    (before,) = store.search("cnn", np.ones(8), 4)
    again = reopen(store)
    try:
        assert again.count() == 9
        assert again.fields == {"cnn": CNN}
        assert again.meta == {"k": 1}
        assert again.search("cnn", np.ones(8), 4) == [before]
    finally:
        again.close()


def test_approximate_search_scores_are_cosines(store):
    vectors = corpus(20)
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    query = np.random.default_rng(2).standard_normal(8)
    (hits,) = store.search("cnn", query, 5, exact=False, num_candidates=50)
    assert len(hits) == 5
    for hit in hits:
        assert hit.score == pytest.approx(cosine(query, vectors[hit.doc_id]), abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_query_expansion_searches_again_with_the_weighted_neighbours(store):
    """alpha-QE goes through `get` and `search` only, so every store must give the numpy answer."""
    from indexing.expansion import Expansion, expanded_search

    vectors = {d: v / np.linalg.norm(v) for d, v in corpus(n=30, seed=3).items()}
    store.create({"cnn": CNN})
    store.upsert(documents(vectors))
    expansion = Expansion(4, 2.0)

    def expected(query, pool, k):
        first = reference(query, pool, expansion.k)
        new = query + sum(max(s, 0.0) ** expansion.alpha * pool[d] for d, s in first)
        return reference(new / np.linalg.norm(new), pool, k)

    query = np.random.default_rng(11).standard_normal(8)
    query /= np.linalg.norm(query)
    (hits,) = expanded_search(store, "cnn", query[None], 6, expansion, model=CNN, exact=True)
    assert_hits(hits, expected(query, vectors, 6), tol=1e-4)
    doc = sorted(vectors)[5]  # an indexed query: left out of both rounds
    others = {d: v for d, v in vectors.items() if d != doc}
    (own,) = expanded_search(
        store, "cnn", vectors[doc][None], 6, expansion, model=CNN, exact=True, exclude=[doc]
    )
    assert_hits(own, expected(vectors[doc], others, 6), tol=1e-4)
