"""The embedded store's approximate index (`local:PATH?index=hnsw`): answers, recall, crash safety."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document, open_store
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.embedded_ann import ANN, AnnOptions, IndexKind, graph_files, recall_at_k
from tests.conftest import REPO
from tests.test_embedded_store import kill, wait_for

pytest.importorskip("faiss")

DIM = 24
MODEL = ModelInfo("cnn", DIM, "ann-test")


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 20 centres: neighbourhoods a graph can find, like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, DIM))
    rows = centres[rng.integers(0, 20, n)] + 0.4 * rng.standard_normal((n, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def docs(vectors: np.ndarray, first: int = 0) -> list[Document]:
    return [
        Document(f"d{first + i:05d}", None, str((first + i) % 3), "train", {"cnn": v})
        for i, v in enumerate(vectors)
    ]


def url(path, **options) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"index": "hnsw", **options}.items())
    return f"local:{path}?{query}"


def ids(hits) -> list[list[str]]:
    return [[h.doc_id for h in found] for found in hits]


def test_the_url_chooses_the_index_and_its_settings(tmp_path):
    store = open_store(url(tmp_path / "i", m=16, ef_search=64), env={})
    assert store.options == AnnOptions(IndexKind.HNSW, m=16, ef_search=64)
    assert store.url == f"local:{tmp_path / 'i'}?index=hnsw&m=16&ef_construction=80&ef_search=64"
    assert open_store(store.url, env={}).options == store.options
    assert not open_store(f"local:{tmp_path}", env={}).approximate


def test_high_ef_gives_the_exact_top_k_with_filters_and_exact_cosines(tmp_path):
    vectors = clustered(1500)
    with EmbeddedStore.open(url(tmp_path / "i", ef_search=1500)) as store:
        store.create({"cnn": MODEL})
        store.upsert(docs(vectors))
    queries = clustered(30, seed=1)
    with EmbeddedStore.open(url(tmp_path / "i", ef_search=1500)) as store:
        assert store.approximate
        for filters in (None, {"label": ["0", "1"]}):
            approximate = store.search("cnn", queries, 15, filters)
            exact = store.search("cnn", queries, 15, filters, exact=True)
            assert ids(approximate) == ids(exact)
            for q, found in enumerate(approximate):
                for hit in found:
                    cosine = float(vectors[int(hit.doc_id[1:])] @ queries[q])
                    assert hit.score == pytest.approx(cosine, abs=1e-6)
                    assert filters is None or hit.label in filters["label"]
            assert store.recall_at_k("cnn", queries, approximate, 15, filters=filters) == 1.0


def test_a_small_ef_misses_neighbours_and_recall_says_so(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)  # no structure: hard for a graph
    model = ModelInfo("cnn", 64, "ann-test")
    with EmbeddedStore.open(url(tmp_path / "i", m=4, ef_construction=8, ef_search=1)) as store:
        store.create({"cnn": model})
        store.upsert(Document(f"d{i}", vectors={"cnn": v}) for i, v in enumerate(vectors))
        queries = rng.standard_normal((40, 64)).astype(np.float32)
        hits = store.search("cnn", queries, 50)
        recall = store.recall_at_k("cnn", queries, hits, 50)
        exact = ids(store.search("cnn", queries, 50, exact=True))
    assert recall == pytest.approx(recall_at_k(ids(hits), exact))
    assert 0.0 < recall < 0.9


def test_recall_on_a_planted_case():
    approximate = [["a", "b", "c"], ["d", "y", "z"], ["p"], []]
    exact = [["a", "b", "x"], ["d", "e", "f"], [], ["q", "r"]]
    # 2/3, 1/3, (no exact hits: left out), 0/2
    assert recall_at_k(approximate, exact) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert recall_at_k([["a", "b"]], [["b", "a"]]) == 1.0


def test_upserts_deletes_compaction_and_reopening(tmp_path, monkeypatch):
    monkeypatch.setattr("indexing.stores.embedded_writes.MIN_STALE_ROWS", 100)
    path = tmp_path / "i"
    vectors = clustered(1200)
    with EmbeddedStore.open(url(path, ef_search=2000)) as store:
        store.create({"cnn": MODEL})
        store.upsert(docs(vectors[:1000]))
    assert [rows for rows, _ in graph_files(path, "cnn.0.f32", AnnOptions(IndexKind.HNSW))] == [
        1000
    ]
    with EmbeddedStore.open(url(path, ef_search=2000)) as store:
        store.upsert(docs(vectors[1000:], first=1000))  # the tail, beyond the saved graph
        assert store.delete([f"d{i:05d}" for i in range(0, 1200, 2)]) == 600
        queries = vectors[[1, 2, 1101, 1102]]
        hits = store.search("cnn", queries, 5)
        assert (hits[0][0].doc_id, hits[2][0].doc_id) == ("d00001", "d01101")
        assert all(int(h.doc_id[1:]) % 2 == 1 for found in hits for h in found)
        assert ids(hits) == ids(store.search("cnn", queries, 5, exact=True))
        # Rewriting every live document makes stale rows outnumber live ones: compaction.
        store.upsert(
            Document(f"d{i:05d}", None, "x", "train", {"cnn": -vectors[i]})
            for i in range(1, 1200, 2)
        )
    files = sorted(p.name for p in (path / ANN).iterdir())
    assert len(files) == 1 and files[0].startswith("cnn.1.f32.")  # compacted, old graph gone
    with EmbeddedStore.open(url(path, ef_search=2000)) as store:
        (found,) = store.search("cnn", -vectors[5], 3)
        assert found[0].doc_id == "d00005"
        assert store.count() == 600


# A writer that builds a graph and stops inside its save, after the temp file is written.
HOLDING_WRITER = """
import sys
from indexing.stores import embedded_ann
from indexing.stores.embedded import EmbeddedStore
from tests.test_embedded_ann import MODEL, clustered, docs

path = sys.argv[1]
store = EmbeddedStore.open(f"local:{path}?index=hnsw")
store.create({"cnn": MODEL})
store.upsert(docs(clustered(600)))
store.close()
replace = embedded_ann.os.replace

def replace_then_hold(source, target):
    if not str(target).endswith(".faiss"):  # os is shared: other files are renamed as usual
        return replace(source, target)
    print("holding", flush=True)
    sys.stdin.read()

embedded_ann.os.replace = replace_then_hold
store = EmbeddedStore.open(f"local:{path}?index=hnsw")
store.upsert(docs(clustered(900)[600:], first=600))
store.close()
"""


def test_sigkill_while_saving_a_graph_leaves_a_usable_store(tmp_path):
    path = tmp_path / "i"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDING_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    wait_for(writer, "holding")  # 900 rows committed, the 900-row graph only in a temp file
    kill(writer)
    names = sorted(p.name for p in (path / ANN).iterdir())
    assert names[0].startswith(".") and names[0].endswith(".tmp")
    assert names[1] == "cnn.0.f32.hnsw32-80.600.faiss"
    vectors = np.concatenate([clustered(600), clustered(900)[600:]])  # what the writer wrote
    with EmbeddedStore.open(url(path, ef_search=1000)) as store:
        assert store.count() == 900
        hits = store.search("cnn", vectors[[10, 700, 899]], 4)  # graph of 600 + exact tail
        assert [found[0].doc_id for found in hits] == ["d00010", "d00700", "d00899"]
        assert ids(hits) == ids(store.search("cnn", vectors[[10, 700, 899]], 4, exact=True))
        store.upsert(docs(vectors[:1]))  # the next writer clears the crashed temp file
    names = sorted(p.name for p in (path / ANN).iterdir())
    assert names == ["cnn.0.f32.hnsw32-80.901.faiss"]


def test_a_store_built_without_an_index_gets_one_on_first_approximate_search(tmp_path):
    path = tmp_path / "i"
    with EmbeddedStore(path) as store:
        store.create({"cnn": MODEL})
        store.upsert(docs(clustered(800)))
    assert not (path / ANN).exists()
    with EmbeddedStore.open(url(path, ef_search=800)) as store:
        (found,) = store.search("cnn", clustered(800)[42], 1)
        assert found[0].doc_id == "d00042"
    assert [p.name for p in (path / ANN).iterdir()] == ["cnn.0.f32.hnsw32-80.800.faiss"]


def test_evaluate_on_an_approximate_index_reports_recall_against_exact(settings, tmp_path):
    from tests.test_evaluate_end_to_end import indexed as build
    from tests.test_evaluate_end_to_end import run_evaluate

    root, _ = build.__wrapped__(tmp_path, settings)
    exact = run_evaluate(settings, root, tmp_path / "exact")
    approximate = run_evaluate(
        settings, root, tmp_path / "hnsw", store_url=f"{settings.store}?index=hnsw&ef_search=100"
    )
    assert exact.exact and not approximate.exact
    for method in ("bovw", "cnn"):
        measures = approximate.methods[method].measures
        assert measures.pop("recall_10_vs_exact") == 1.0  # 60 documents, ef_search 100
        assert measures == exact.methods[method].measures
