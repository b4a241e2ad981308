"""open_store: which store a URL means, and the URL's own checks."""

from __future__ import annotations

import pytest

from cbir.core.config import Settings
from indexing.stores import StoreError
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.es_connection import IndexOptions, parse_es_url
from indexing.stores.urls import open_store


def test_the_default_store_is_embedded_under_cbir_home(tmp_path):
    store = open_store(settings=Settings.resolve(env={}, home=tmp_path))
    assert isinstance(store, EmbeddedStore)
    assert store.directory == tmp_path / "index"
    assert open_store(env={"CBIR_HOME": str(tmp_path)}).url == f"local:{tmp_path / 'index'}"


def test_cbir_store_chooses_the_store(tmp_path):
    store = open_store(settings=Settings.resolve(env={"CBIR_STORE": f"local:{tmp_path}/x"}))
    assert store.url == f"local:{tmp_path}/x"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "neither local:PATH"),
        ("local:", "names no directory"),
        ("local:/x?index=ivf", "choose one of flat, hnsw"),
        ("local:/x?index=hnsw&m=1", "m must be an integer from 2 to 4096"),
        ("local:/x?index=hnsw&ef_search=many", "ef_search must be an integer"),
        ("local:/x?shards=2", "unknown option 'shards'"),
        ("local:/x?ef_search=16", "need index=hnsw"),
        ("http://localhost:9200/Images", "not a valid Elasticsearch index name"),
        ("http://localhost:9200/a/b", "not a valid Elasticsearch index name"),
        ("http://localhost:9200/_x", "not a valid Elasticsearch index name"),
        ("http://localhost:9200?index_options=ivf", "choose one of hnsw, int8_hnsw"),
        ("http://localhost:9200?shards=2", "unknown option 'shards'"),
        ("http://localhost:9200?m=1", "must be an integer >= 2"),
        ("http://localhost:port", "invalid port"),
    ],
)
def test_bad_urls_are_refused_before_connecting(url, message):
    with pytest.raises(StoreError, match=message):
        open_store(url, env={})


def test_es_url_defaults():
    target = parse_es_url("http://localhost")
    assert (target.base_url, target.index, target.url) == (
        "http://localhost:9200",
        "cbir",
        "http://localhost:9200/cbir",
    )
    assert target.index_options is IndexOptions.HNSW
    target = parse_es_url("https://[::1]:9243/cifar-10?index_options=bbq_hnsw&ef_construction=200")
    assert target.base_url == "https://[::1]:9243" and target.index == "cifar-10"
    assert target.index_options is IndexOptions.BBQ_HNSW
    assert target.hnsw == {"m": 16, "ef_construction": 200}
