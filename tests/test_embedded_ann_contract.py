"""The store contract (tests/test_store_contract.py) again, on `local:PATH?index=hnsw`.

At an ef_search far above the corpora's sizes the graph finds every row, so the approximate
store must honour every promise of the exact one: tie order, filters, deletes, zero vectors.
"""

from __future__ import annotations

import pytest

from indexing.stores import open_store
from tests.test_store_contract import *  # noqa: F403 (the contract's tests, collected here)

pytest.importorskip("faiss")


@pytest.fixture
def store(tmp_path, monkeypatch):
    # Small corpora and strict filters would take the exact scan; make every search use the graph.
    monkeypatch.setattr("indexing.stores.embedded_ann.use_graph", lambda *counts: True)
    opened = open_store(f"local:{tmp_path / 'index'}?index=hnsw&ef_search=2000", env={})
    assert opened.approximate
    yield opened
    opened.drop()
    opened.close()
