"""Scale smoke test of the Elasticsearch store on a real server (only when CBIR_ES_URL is set).

50,000 documents of 2,048 + 256 dims, `get` of 20,000 ids, 10,000 batched queries, and two
processes adding fields to the same index at once. Slow: minutes on a laptop-sized server.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document
from indexing.stores.urls import open_store

ES_URL = os.environ.get("CBIR_ES_URL")
pytestmark = [
    pytest.mark.elasticsearch,
    pytest.mark.slow,
    pytest.mark.skipif(not ES_URL, reason="CBIR_ES_URL not set: no Elasticsearch server"),
]
DOCS, BIG, SMALL = 50_000, 2_048, 256
BATCH = 1_000


def vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float32)


def add_field(url: str, name: str, dim: int, barrier) -> None:
    with open_store(url) as store:
        barrier.wait()
        store.create({name: ModelInfo(name, dim, f"{name}-fp")})


@pytest.fixture
def url():
    url = f"{ES_URL.rstrip('/')}/cbir-scale-{uuid.uuid4().hex[:12]}"
    yield url
    with open_store(url) as store:
        store.drop()


def test_fifty_thousand_wide_documents(url):
    rng = np.random.default_rng(0)
    big, small = ModelInfo("big", BIG, "big-fp"), ModelInfo("small", SMALL, "small-fp")
    with open_store(url) as store:
        store.create({"big": big, "small": small})
        kept = {}
        for start in range(0, DOCS, BATCH):
            a, b = vectors(rng, BATCH, BIG), vectors(rng, BATCH, SMALL)
            docs = [
                Document(
                    f"d{start + i:06d}",
                    f"{start + i}.png",
                    "x",
                    "train",
                    {"big": a[i], "small": b[i]},
                )
                for i in range(BATCH)
            ]
            if start == 0:
                kept = {d.doc_id: d.vectors["big"] for d in docs[:100]}
            assert store.upsert(docs) == BATCH
        assert store.count() == DOCS

        ids = [f"d{i:06d}" for i in range(0, DOCS, DOCS // 20_000)][:20_000]
        got = store.get(ids)
        assert len(got) == 20_000
        for doc_id, vector in kept.items():
            if doc_id in got:
                expected = vector / np.linalg.norm(vector)
                np.testing.assert_allclose(got[doc_id].vectors["big"], expected, atol=1e-5)

        queries = vectors(rng, 10_000, SMALL)
        results = store.search("small", queries, 10)
        assert len(results) == 10_000 and all(len(hits) == 10 for hits in results)
        assert all(-1.0 <= h.score <= 1.0 for hits in results[:100] for h in hits)

    barrier = multiprocessing.Barrier(2)
    workers = [
        multiprocessing.Process(target=add_field, args=(url, name, 64, barrier))
        for name in ("left", "right")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    with open_store(url) as store:
        assert {"left", "right", "big", "small"} <= set(store.fields)
