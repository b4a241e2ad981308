"""The latency benchmark's documents: copied from a usable index, else random."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from benchmarks.query_latency import fill
from features.base import ModelInfo
from indexing.stores import Document
from indexing.stores.embedded import EmbeddedStore

BOVW, CNN = ModelInfo("bovw", 6, "a"), ModelInfo("cnn", 4, "b")
MODELS = {m.name: SimpleNamespace(info=m, dim=m.dim) for m in (BOVW, CNN)}


def source(path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = {"bovw": rng.random((5, 6), np.float32), "cnn": rng.random((5, 4), np.float32)}
    with EmbeddedStore(path) as store:
        store.create({"bovw": BOVW, "cnn": CNN})
        store.upsert(
            Document(f"d{i}", f"{i}.png", "x", "train",
                     {m: rows[m][i] for m in rows if (m, i) != ("cnn", 1)})  # d1 lacks cnn
            for i in range(5)
        )  # fmt: skip
    return rows


def test_documents_with_every_method_are_copied_from_the_index(tmp_path):
    rows = source(tmp_path / "src")
    said = fill(tmp_path / "out", MODELS, 3, f"local:{tmp_path / 'src'}?index=hnsw")
    assert said == f"the first 3 documents of local:{tmp_path / 'src'}?index=hnsw"
    with EmbeddedStore(tmp_path / "out") as store:
        got = store.get(["d0", "d1", "d2", "d3"])
    assert sorted(got) == ["d0", "d2", "d3"]
    for i in (0, 2, 3):
        for m in ("bovw", "cnn"):
            expected = rows[m][i] / np.linalg.norm(rows[m][i])
            np.testing.assert_allclose(got[f"d{i}"].vectors[m], expected, atol=1e-6)


def test_an_index_built_by_other_models_is_not_used(tmp_path):
    source(tmp_path / "src")
    other = {**MODELS, "cnn": SimpleNamespace(info=ModelInfo("cnn", 4, "other"), dim=4)}
    for url in (f"local:{tmp_path / 'src'}", f"local:{tmp_path / 'none'}", "http://es:9200"):
        models = other if url.endswith("src") else MODELS
        assert fill(tmp_path / "out", models, 7, url) == "random unit vectors"
        with EmbeddedStore(tmp_path / "out") as store:
            assert store.count() == 7
            store.drop()
