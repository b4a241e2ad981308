"""Version, licence and failure handling of the Elasticsearch store, against EsRequestChecker.

EsRequestChecker is a request checker pretending to be a given server version, not a
server: these tests say what we send and how we read answers, not what Elasticsearch does.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document, ModelMismatchError, StoreError
from indexing.stores import es_bodies as bodies
from indexing.stores.es import BulkWriteError, ElasticsearchStore
from indexing.stores.es_connection import FEATURES, max_dims, parse_es_url
from indexing.stores.es_reads import ApproximateScoresWarning
from tests.es_standin import EsRequestChecker

CNN = ModelInfo("cnn", 64, "cnn-fp")
WIDE = ModelInfo("wide", 2_304, "wide-fp")


def open_at(es, path="/images", **options) -> ElasticsearchStore:
    return ElasticsearchStore.open(es.url + path, env={}, initial_backoff=0.001, **options)


@pytest.fixture
def client_8x(monkeypatch):
    """Make the installed 9.x client announce itself as 8.19 would: its version and the
    REST-compatibility header (`compatible-with=8`), all an 8.x server sees of a client."""
    from elasticsearch._sync.client import _base

    monkeypatch.setattr("elasticsearch.__versionstr__", "8.19.0")
    monkeypatch.setattr(
        _base,
        "_COMPAT_MIMETYPE_SUB",
        _base._COMPAT_MIMETYPE_SUB.replace("compatible-with=9", "compatible-with=8"),
    )


@pytest.fixture
def es():
    with EsRequestChecker(version="9.1.3") as checker:
        yield checker


# -- server versions and features -----------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "options", "message"),
    [
        ("8.3.3", "", r"is 8\.3\.3; top-level knn search needs 8\.4 or newer"),
        ("8.11.4", "?index_options=int8_hnsw", r"index_options=int8_hnsw needs 8\.12 or newer"),
        ("8.12.2", "?index_options=flat", r"index_options=flat needs 8\.13 or newer"),
        ("8.14.3", "?index_options=int4_hnsw", r"index_options=int4_hnsw needs 8\.15 or newer"),
        ("8.15.5", "?index_options=bbq_hnsw", r"index_options=bbq_hnsw needs 8\.16 or newer"),
    ],
)
def test_a_server_too_old_for_a_feature_is_one_line_naming_version_and_feature(
    version, options, message, client_8x
):
    with EsRequestChecker(version=version) as es:
        with pytest.raises(StoreError, match=message) as error:
            ElasticsearchStore.open(es.url + "/idx" + options, env={})
        assert "\n" not in str(error.value) and f"{es.url}/idx" in str(error.value)


def test_bbq_disk_needs_9_2():
    with EsRequestChecker(version="9.1.3") as es, pytest.raises(StoreError, match=r"9\.2"):
        ElasticsearchStore.open(es.url + "/idx?index_options=bbq_disk", env={})


def test_the_feature_table_is_the_one_the_checker_enforces():
    from tests.es_api_rules import INDEX_TYPES

    for kind, since in INDEX_TYPES.items():
        assert FEATURES[f"index_options={kind}"] == since
    assert [max_dims(v) for v in ((8, 7), (8, 8), (8, 10), (8, 11), (9, 0))] == [
        1024,
        2048,
        2048,
        4096,
        4096,
    ]


@pytest.mark.parametrize(("version", "ok"), [("8.10.4", False), ("8.11.0", True)])
def test_dims_over_the_versions_limit_are_refused_before_asking(version, ok, client_8x):
    with EsRequestChecker(version=version) as es:
        store = open_at(es)
        if ok:
            store.create({"wide": WIDE})
            assert store.fields == {"wide": WIDE}
        else:
            with pytest.raises(StoreError, match=r"dim <= 2,048 \(Elasticsearch 8\.10"):
                store.create({"wide": WIDE})
            assert not es.calls("PUT", "/images")


def test_int4_needs_even_dims_and_bbq_64(es):
    with pytest.raises(StoreError, match="needs an even number"):
        open_at(es, "/a?index_options=int4_hnsw").create({"odd": ModelInfo("odd", 65, "f")})
    with pytest.raises(StoreError, match="needs at least 64"):
        open_at(es, "/b?index_options=bbq_flat").create({"small": ModelInfo("small", 32, "f")})
    assert not es.calls("PUT", "/a") and not es.calls("PUT", "/b")


def test_graph_parameters_with_a_flat_type_are_refused():
    with pytest.raises(StoreError, match="HNSW graph parameters; index_options=int8_flat"):
        parse_es_url("http://h:9200/i?index_options=int8_flat&m=32")
    assert parse_es_url("http://h:9200/i?index_options=int8_hnsw&m=32").hnsw["m"] == 32


# -- licences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "licence", "ok"),
    [("9.3.1", "basic", False), ("9.3.1", "enterprise", True), ("9.3.1", "trial", True)],
)
def test_bbq_disk_is_chosen_only_with_a_licence_that_allows_its_writes(version, licence, ok):
    with EsRequestChecker(version=version, licence=licence) as es:
        url = es.url + "/idx?index_options=bbq_disk"
        if ok:
            ElasticsearchStore.open(url, env={}).create({"cnn": CNN})
        else:
            with pytest.raises(StoreError, match=r"needs an active enterprise or trial licence"):
                ElasticsearchStore.open(url, env={})
            assert not es.calls("PUT", "/idx")
        assert es.calls("GET", "/_license")


def test_no_licence_is_asked_for_unlicensed_options(es):
    open_at(es, "/idx?index_options=bbq_hnsw").create({"cnn": CNN})
    assert not es.calls("GET", "/_license")


# -- quantized scores -------------------------------------------------------------------------


def test_quantized_knn_is_rescored_with_the_float_vectors_from_8_18(client_8x):
    with EsRequestChecker(version="8.19.2") as es:
        store = open_at(es, "/idx?index_options=int8_hnsw")
        store.create({"cnn": CNN})
        assert store.approximate_scores is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            store.search("cnn", np.ones(64), 5, exact=False)
        (msearch,) = es.calls("POST", "/idx/_msearch")
        assert msearch.ndjson()[1]["knn"]["rescore_vector"] == {"oversample": 3.0}


def test_quantized_knn_before_8_18_is_flagged_approximate(client_8x):
    with EsRequestChecker(version="8.17.1") as es:
        store = open_at(es, "/idx?index_options=int8_hnsw")
        store.create({"cnn": CNN})
        assert "8.17 has no knn rescore_vector" in store.approximate_scores
        with pytest.warns(ApproximateScoresWarning, match="quantized"):
            store.search("cnn", np.ones(64), 5, exact=False)
        (msearch,) = es.calls("POST", "/idx/_msearch")
        assert "rescore_vector" not in msearch.ndjson()[1]["knn"]
        store.search("cnn", np.ones(64), 5)  # exact search reads the floats: no warning


def test_float_hnsw_needs_no_rescoring(es):
    store = open_at(es)
    store.create({"cnn": CNN})
    assert store.approximate_scores is None and not store.rescore


# -- partial answers and busy servers ---------------------------------------------------------


def test_answers_from_some_shards_or_timed_out_are_errors(es):
    store = open_at(es)
    store.create({"cnn": CNN})
    es.partial(failed=1)
    with pytest.raises(StoreError, match=r"from only 1 of 2 shards \(1 failed: circuit_breaking"):
        store.search("cnn", np.ones(64), 3)
    es.partial(timed_out=True)
    with pytest.raises(StoreError, match="timed out on a search"):
        store.search("cnn", np.ones(64), 3)
    es.partial(failed=1)
    with pytest.raises(StoreError, match="answered a get from only 1 of 2"):
        store.get(["a"])
    es.partial(failed=2)
    with pytest.raises(StoreError, match="answered a count from only 0 of 2"):
        store.count()


def test_busy_msearch_items_are_retried_alone(es):
    store = open_at(es)
    store.create({"cnn": CNN})
    es.busy(429)  # the first item is refused once as busy; the second is answered
    es.answer({"_id": "b", "_score": 1.25, "fields": {"label": ["dog"]}})
    es.answer({"_id": "a", "_score": 1.5, "fields": {"label": ["cat"]}})
    first, second = store.search("cnn", np.eye(2, 64), 1)
    calls = es.calls("POST", "/images/_msearch")
    assert [len(c.ndjson()) for c in calls] == [4, 2]  # the refused item alone, again
    assert (first[0].doc_id, round(first[0].score, 6)) == ("a", 0.5)
    assert (second[0].doc_id, round(second[0].score, 6)) == ("b", 0.25)


def test_msearch_items_busy_past_the_retries_fail_with_the_reason(es):
    store = open_at(es, max_retries=2)
    store.create({"cnn": CNN})
    es.busy(503, 503, 503)
    with pytest.raises(StoreError, match="failed a search: es_rejected_execution_exception"):
        store.search("cnn", np.ones(64), 1)
    assert len(es.calls("POST", "/images/_msearch")) == 3


# -- writes that stop part-way ----------------------------------------------------------------


def test_a_bulk_stopping_part_way_keeps_the_failures_and_still_refreshes(es):
    store = open_at(es, chunk_size=2)
    store.create({"cnn": CNN})
    es.reject("b", 400, "document_parsing_exception")
    es.refuse("/_bulk", 413, "request_entity_too_large", caused_by="chunk too big", after=1)
    docs = [Document(i, vectors={"cnn": np.ones(64)}) for i in "abcd"]
    with pytest.raises(
        BulkWriteError, match=r"request_entity_too_large.*after 1 documents"
    ) as error:
        store.upsert(docs)
    assert "b (400: document_parsing_exception" in str(error.value)
    assert "caused by exception: chunk too big" in str(error.value)
    assert [f[:2] for f in error.value.failures] == [("b", 400)]
    assert es.calls("POST", "/images/_refresh")  # what was written is visible


# -- concurrent field adds --------------------------------------------------------------------


def test_two_processes_adding_fields_at_once_keep_both_model_records(es):
    first, second = open_at(es), open_at(es)
    first.create({"cnn": CNN})
    assert second.fields == {"cnn": CNN}
    bovw = ModelInfo("bovw", 80, "bovw-fp")
    extra = ModelInfo("extra", 96, "extra-fp")
    first.create({"bovw": bovw}, meta={"run": 1})  # both read the mapping before either wrote
    second.create({"extra": extra})
    assert open_at(es).fields == {"cnn": CNN, "bovw": bovw, "extra": extra}
    assert open_at(es).meta == {"run": 1}


def test_the_same_field_added_with_another_model_at_once_is_caught(es, monkeypatch):
    first, second = open_at(es), open_at(es)
    first.create({"cnn": CNN})
    first.upsert([Document("a", vectors={"cnn": np.ones(64)})])
    # `second` read the mapping before `first` added cnn: it adds its own cnn (same dims).
    stale = iter([({}, {})])
    real = second._read_mapping
    monkeypatch.setattr(second, "_read_mapping", lambda: next(stale, None) or real())
    second.create({"cnn": ModelInfo("cnn", 64, "other-fp")})
    with pytest.raises(ModelMismatchError, match="other-fp"):
        first.count()  # the first reader after the write notices the record changed
    with pytest.raises(ModelMismatchError, match=r"Cannot update parameter \[dims\]|dim 64"):
        open_at(es).create({"cnn": ModelInfo("cnn", 80, "x")})


# -- connection and error text ----------------------------------------------------------------


def test_https_without_a_port_is_443_and_http_9200():
    assert parse_es_url("https://example.es.io/idx").base_url == "https://example.es.io:443"
    assert parse_es_url("http://localhost/idx").base_url == "http://localhost:9200"


def test_tls_options_with_an_http_url_give_a_one_line_store_error(es):
    with pytest.raises(StoreError, match="CBIR_ES_CA_CERTS needs an https:// URL") as error:
        ElasticsearchStore.open(es.url, env={"CBIR_ES_CA_CERTS": "/etc/ca.pem"})
    assert "\n" not in str(error.value)


def test_error_messages_keep_caused_by(es):
    store = open_at(es)
    store.create({"cnn": CNN})
    es.refuse("/_msearch", 400, "search_phase_execution_exception", caused_by="too many clauses")
    with pytest.raises(
        StoreError,
        match=r"search_phase_execution_exception: .*caused by exception: too many clauses",
    ):
        store.search("cnn", np.ones(64), 3)


def test_search_bodies_use_only_parameters_the_official_client_knows():
    with pytest.raises(TypeError, match="no parameter 'knn_options'"):
        bodies.search_params(size=1, knn_options={})
    params = bodies.knn_search("cnn", np.ones(2), 1, 10, {}, rescore=True)
    assert bodies.search_body(params)["_source"] is False
