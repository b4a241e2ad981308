"""Request-level tests of the Elasticsearch store against EsRequestChecker (not a server).

These check the requests we send (mapping, bulk NDJSON, script_score and knn bodies,
msearch, headers) against the documented REST API, and how we read the answers. They say
nothing about Elasticsearch itself: the contract suite does that when CBIR_ES_URL is set.
"""

from __future__ import annotations

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document, ModelMismatchError, StoreError
from indexing.stores import es_bodies as bodies
from indexing.stores.es import BulkWriteError, ElasticsearchStore
from indexing.stores.urls import open_store
from tests.es_standin import EsRequestChecker, Index

CNN = ModelInfo("cnn", 4, "cnn-fp")
BOVW = ModelInfo("bovw", 3, "bovw-fp")


@pytest.fixture
def es():
    with EsRequestChecker(version="9.1.3") as standin:
        yield standin


def connect(es, path="/images", **options) -> ElasticsearchStore:
    return ElasticsearchStore.open(es.url + path, env={}, initial_backoff=0.001, **options)


def hit(doc_id, score, label="cat", **extra):
    values = {"doc_id": [doc_id], "path": [f"{doc_id}.png"], "label": [label], "split": ["train"]}
    return {"_index": "images", "_id": doc_id, "_score": score, "fields": values, **extra}


def test_mapping_has_keywords_one_cosine_dense_vector_per_field_and_model_meta(es):
    store = connect(es, "/images?index_options=int8_hnsw&m=32")
    store.create({"cnn": CNN, "bovw": BOVW}, meta={"dataset": "cifar10"})
    (create,) = es.calls("PUT", "/images")
    mappings = create.json()["mappings"]
    assert mappings["dynamic"] == "strict"
    for name in ("doc_id", "path", "label", "split"):
        assert mappings["properties"][name] == {"type": "keyword"}
    assert mappings["properties"]["cnn"] == {
        "type": "dense_vector",
        "dims": 4,
        "index": True,
        "similarity": "cosine",
        "index_options": {"type": "int8_hnsw", "m": 32, "ef_construction": 100},
        "meta": {"cbir_model": "cnn", "cbir_fingerprint": "cnn-fp"},
    }
    assert mappings["properties"]["empty"]["properties"]["bovw"] == {"type": "boolean"}
    assert mappings["_meta"] == {"cbir": {"format": 2, "meta": {"dataset": "cifar10"}}}
    assert store.fields == {"cnn": CNN, "bovw": BOVW}
    assert store.meta == {"dataset": "cifar10"}


def test_flat_index_options_carry_no_graph_parameters(es):
    connect(es, "/flat?index_options=flat").create({"cnn": CNN})
    (create,) = es.calls("PUT", "/flat")
    assert create.json()["mappings"]["properties"]["cnn"]["index_options"] == {"type": "flat"}


def test_adding_a_field_puts_only_its_properties_with_the_model_in_the_field_meta(es):
    store = connect(es)
    store.create({"cnn": CNN}, meta={"dataset": "cifar10"})
    store.create({"cnn": CNN, "bovw": BOVW})
    (put,) = es.calls("PUT", "/images/_mapping")
    body = put.json()
    assert set(body) == {"properties"}  # no _meta: the server would replace it whole
    assert set(body["properties"]) == {"bovw", "empty"}
    assert body["properties"]["bovw"]["dims"] == 3
    assert body["properties"]["bovw"]["meta"] == {
        "cbir_model": "bovw",
        "cbir_fingerprint": "bovw-fp",
    }
    assert store.fields == {"cnn": CNN, "bovw": BOVW} and store.meta == {"dataset": "cifar10"}
    with pytest.raises(ModelMismatchError, match=r"cnn-fp.*other-fp"):
        store.create({"cnn": ModelInfo("cnn", 4, "other-fp")})


def test_upsert_sends_partial_updates_as_ndjson_and_refreshes_before_the_next_read(es):
    store = connect(es)
    store.create({"cnn": CNN, "bovw": BOVW})
    written = store.upsert(
        [
            Document("train/cat/0001", "a.png", "cat", "train", {"cnn": [3, 0, 4, 0]}),
            Document("train/cat/0002", "b.png", "cat", "train", {"cnn": [0, 0, 0, 0]}),
        ]
    )
    assert written == 2
    (bulk,) = es.calls("PUT", "/_bulk")
    assert bulk.body.endswith(b"\n") and "x-ndjson" in bulk.headers["content-type"]
    action, source, _, zero = bulk.ndjson()
    assert action == {
        "update": {"_index": "images", "_id": "train/cat/0001", "retry_on_conflict": 3}
    }
    assert source["doc_as_upsert"] is True
    assert source["doc"] == {
        "doc_id": "train/cat/0001",
        "path": "a.png",
        "label": "cat",
        "split": "train",
        "cnn": pytest.approx([0.6, 0.0, 0.8, 0.0]),
        "empty": {"cnn": False},
    }
    assert "bovw" not in source["doc"]  # fields not given are left as they are
    assert zero["doc"]["cnn"] is None and zero["doc"]["empty"] == {"cnn": True}
    assert not es.calls("POST", "/images/_refresh")  # not per batch
    store.upsert([Document("train/cat/0003", vectors={"cnn": [1, 0, 0, 0]})])
    assert not es.calls("POST", "/images/_refresh")
    assert store.count() == 3
    assert len(es.calls("POST", "/images/_refresh")) == 1  # once, before reading
    assert store.count() == 3
    assert len(es.calls("POST", "/images/_refresh")) == 1


def test_close_refreshes_what_was_written_since_the_last_read(es):
    store = connect(es)
    store.create({"cnn": CNN})
    store.upsert([Document("a", vectors={"cnn": [1, 0, 0, 0]})])
    store.close()
    assert len(es.calls("POST", "/images/_refresh")) == 1


def test_rejections_with_429_are_retried(es):
    store = connect(es)
    store.create({"cnn": CNN})
    es.reject("b", 429, "es_rejected_execution_exception")
    es.reject("b", 429, "es_rejected_execution_exception")
    docs = [Document(i, vectors={"cnn": [1, 2, 3, 4]}) for i in "abc"]
    assert store.upsert(docs) == 3
    bulks = es.calls("PUT", "/_bulk")
    assert len(bulks) == 3
    assert [line["update"]["_id"] for line in bulks[-1].ndjson()[::2]] == ["b"]
    assert store.count() == 3


def test_requests_that_time_out_are_retried(es):
    store = ElasticsearchStore.open(es.url + "/images", env={}, request_timeout=0.2)
    store.create({"cnn": CNN})
    es.stall("/_bulk", 1.0)
    assert store.upsert([Document("a", vectors={"cnn": [1, 2, 3, 4]})]) == 1
    assert len(es.calls("PUT", "/_bulk")) == 2  # the first attempt timed out
    assert store.count() == 1


def test_per_document_failures_are_raised_with_their_ids_never_swallowed(es):
    store = connect(es)
    store.create({"cnn": CNN})
    es.reject("b", 400, "document_parsing_exception")
    docs = [Document(i, vectors={"cnn": [1, 2, 3, 4]}) for i in "abc"]
    with pytest.raises(
        BulkWriteError, match=r"rejected 1 of 3 documents: b \(400: document_parsing_exception"
    ) as error:
        store.upsert(docs)
    assert error.value.failures[0][:2] == ("b", 400)
    assert store.count() == 2  # the others were written


def test_exact_search_sends_script_score_in_msearch_and_converts_scores(es):
    store = connect(es)
    store.create({"cnn": CNN})
    es.answer(hit("b", 1.8), hit("a", 1.5))
    es.answer(hit("c", 1.25))
    results = store.search(
        "cnn", np.array([[2, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]]), 2, {"split": "train"}
    )
    (msearch,) = es.calls("POST", "/images/_msearch")
    assert "x-ndjson" in msearch.headers["content-type"] and msearch.body.endswith(b"\n")
    header, body, header2, body2 = msearch.ndjson()  # the zero query is not sent
    assert header == header2 == {}
    assert body["size"] == 2
    script_score = body["query"]["script_score"]
    assert script_score["query"] == {
        "bool": {"filter": [{"exists": {"field": "cnn"}}, {"terms": {"split": ["train"]}}]}
    }
    # clamped: float error must not take an opposite vector below 0 ("non-negative score")
    assert (
        script_score["script"]["source"]
        == "Math.max(cosineSimilarity(params.query_vector, 'cnn') + 1.0, 0.0)"
    )
    assert body["_source"] is False and body["docvalue_fields"] == [
        "doc_id",
        "path",
        "label",
        "split",
    ]
    assert script_score["script"]["params"]["query_vector"] == [1.0, 0.0, 0.0, 0.0]
    assert body["sort"] == [{"_score": {"order": "desc"}}, {"doc_id": {"order": "desc"}}]
    assert body2["query"]["script_score"]["script"]["params"]["query_vector"] == [
        0.0,
        1.0,
        0.0,
        0.0,
    ]
    assert [[(h.doc_id, round(h.score, 6)) for h in hits] for hits in results] == [
        [("b", 0.8), ("a", 0.5)],
        [],
        [("c", 0.25)],
    ]
    assert results[0][0].label == "cat" and results[0][0].path == "b.png"


def test_approximate_search_sends_knn_and_sorts_ties_by_doc_id(es):
    store = connect(es)
    store.create({"cnn": CNN})
    es.answer(hit("a", 0.9), hit("c", 0.9), hit("b", 0.95))
    (hits,) = store.search(
        "cnn", [1, 1, 0, 0], 3, {"label": ["dog", "cat"]}, exact=False, num_candidates=40
    )
    (msearch,) = es.calls("POST", "/images/_msearch")
    _, body = msearch.ndjson()
    assert body["size"] == 3
    assert body["knn"] == {
        "field": "cnn",
        "query_vector": pytest.approx([2**-0.5, 2**-0.5, 0, 0]),
        "k": 3,
        "num_candidates": 40,
        "filter": [{"terms": {"label": ["cat", "dog"]}}],
    }
    assert [(h.doc_id, round(h.score, 6)) for h in hits] == [("b", 0.9), ("c", 0.8), ("a", 0.8)]


def test_batches_are_split_into_several_msearch_requests(es):
    store = connect(es, msearch_size=2)
    store.create({"cnn": CNN})
    results = store.search("cnn", np.eye(4), 3)
    assert results == [[], [], [], []]
    assert [len(r.ndjson()) for r in es.calls("POST", "/images/_msearch")] == [4, 4]


def test_search_limits_and_msearch_errors(es):
    store = connect(es)
    store.create({"cnn": CNN})
    with pytest.raises(StoreError, match="at most 10,000 hits"):
        store.search("cnn", np.ones(4), 10_001)
    with pytest.raises(StoreError, match="num_candidates must be between k"):
        store.search("cnn", np.ones(4), 50, exact=False, num_candidates=10)
    with pytest.raises(ModelMismatchError, match="cnn-fp"):
        store.search("cnn", np.ones(4), 5, model=ModelInfo("cnn", 4, "new"))
    store.create({"cnn": CNN, "bovw": BOVW})
    es.indices["images"].mappings["properties"]["bovw"]["dims"] = 99  # the server now disagrees
    with pytest.raises(StoreError, match="failed a search: illegal_argument_exception"):
        store.search("bovw", np.ones(3), 5, exact=False)


def test_get_reads_small_pages_without_source_vectors_through_fields(es):
    store = connect(es)
    store.create({"cnn": CNN, "bovw": BOVW})
    es.answer(
        {
            "_id": "a",
            "_score": 1.0,
            "fields": {
                "doc_id": ["a"],
                "path": ["a.png"],
                "label": ["cat"],
                "split": ["train"],
                "cnn": [0.6, 0, 0.8, 0],
                "empty.bovw": [True],
                "empty.cnn": [False],
            },
        }
    )
    got = store.get(["a", "zz"])
    (search,) = es.calls("POST", "/images/_search")
    assert search.json() == {
        "query": {"ids": {"values": ["a", "zz"]}},
        "size": 2,
        "_source": False,
        "docvalue_fields": ["doc_id", "path", "label", "split", "empty.bovw", "empty.cnn"],
        "fields": ["bovw", "cnn"],
        "track_total_hits": False,
    }
    assert set(got) == {"a"}
    np.testing.assert_allclose(got["a"].vectors["cnn"], [0.6, 0, 0.8, 0])
    np.testing.assert_array_equal(got["a"].vectors["bovw"], np.zeros(3))
    assert (got["a"].path, got["a"].label, got["a"].split) == ("a.png", "cat", "train")


def test_get_pages_are_sized_to_keep_answers_near_8_mb():
    assert bodies.get_page_size(2_048 + 256) == 8 * 2**20 // (2_304 * bodies.JSON_BYTES_PER_FLOAT)
    assert 100 <= bodies.get_page_size(2_304) <= 200  # ~8 MB of JSON per page, not 0.5 GB
    assert bodies.get_page_size(4) == 1_000 and bodies.get_page_size(10**9) == 1


def test_get_of_many_ids_goes_out_in_pages(es):
    store = connect(es)
    store.create({"big": ModelInfo("big", 4_096, "fp")})
    page = bodies.get_page_size(4_096)
    store.get([f"d{i}" for i in range(2 * page + 1)])
    sizes = [r.json()["size"] for r in es.calls("POST", "/images/_search")]
    assert sizes == [page, page, 1]


def test_ids_with_pages_by_search_after(es):
    store = connect(es)
    store.create({"cnn": CNN})
    page = [{"_id": f"d{i:05d}", "_score": None, "sort": [f"d{i:05d}"]} for i in range(10_000)]
    es.answer(*page)
    es.answer({"_id": "zz", "_score": None, "sort": ["zz"]})
    assert len(store.ids_with("cnn")) == 10_001
    first, second = (r.json() for r in es.calls("POST", "/images/_search"))
    assert first["query"]["bool"]["should"] == [
        {"exists": {"field": "cnn"}},
        {"term": {"empty.cnn": True}},
    ]
    assert first["sort"] == [{"doc_id": {"order": "asc"}}] and first["_source"] is False
    assert "search_after" not in first and second["search_after"] == ["d09999"]


def test_delete_sends_bulk_deletes_and_ignores_unknown_ids(es):
    store = connect(es)
    store.create({"cnn": CNN})
    store.upsert([Document("a", vectors={"cnn": [1, 0, 0, 0]})])
    assert store.delete(["a", "missing"]) == 1
    delete = es.calls("PUT", "/_bulk")[-1]
    assert delete.ndjson() == [
        {"delete": {"_index": "images", "_id": "a"}},
        {"delete": {"_index": "images", "_id": "missing"}},
    ]
    store.drop()
    assert es.calls("DELETE", "/images") and not store.exists()
    store.drop()  # dropping what is gone is fine


def test_requests_ask_for_the_clients_rest_compatibility_and_open_does_not(es):
    store = connect(es)
    store.create({"cnn": CNN})
    root, *rest = es.requests
    assert root.path == "/" and root.headers["accept"] == "*/*"
    assert all("compatible-with=9" in r.headers["accept"] for r in rest)


def test_credentials_come_from_the_environment(es):
    ElasticsearchStore.open(es.url, env={"CBIR_ES_USER": "elastic", "CBIR_ES_PASSWORD": "s3cret"})
    assert es.requests[-1].headers["authorization"] == "Basic ZWxhc3RpYzpzM2NyZXQ="
    ElasticsearchStore.open(es.url, env={"CBIR_ES_API_KEY": "a2V5OnZhbHVl"})
    assert es.requests[-1].headers["authorization"] == "ApiKey a2V5OnZhbHVl"
    with pytest.raises(StoreError, match="not both"):
        ElasticsearchStore.open(es.url, env={"CBIR_ES_API_KEY": "k", "CBIR_ES_USER": "u"})
    with pytest.raises(StoreError, match="do not put credentials in the store URL"):
        open_store(es.url.replace("http://", "http://user:pw@"), env={})


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("7.17.9", r"is 7\.17\.9; cbir needs 8\.x or 9\.x"),
        (
            "8.17.0",
            r"is 8\.17\.0, but the installed elasticsearch client .* pip install 'elasticsearch>=8\.16,<9'",
        ),
    ],
)
def test_servers_we_cannot_serve_give_one_line_naming_the_url(version, message):
    with EsRequestChecker(version=version) as es:
        with pytest.raises(StoreError, match=message) as error:
            ElasticsearchStore.open(es.url + "/idx", env={})
        assert f"{es.url}/idx" in str(error.value) and "\n" not in str(error.value)


def test_unreachable_or_not_elasticsearch_is_one_line_naming_the_url():
    with EsRequestChecker() as es:
        url = es.url
    with pytest.raises(StoreError, match=rf"cannot reach Elasticsearch at {url}/cbir") as error:
        ElasticsearchStore.open(url, env={})
    assert "\n" not in str(error.value)
    with (
        EsRequestChecker(product_header=False) as es,
        pytest.raises(StoreError, match="not Elasticsearch"),
    ):
        ElasticsearchStore.open(es.url, env={})


def test_an_index_not_made_by_cbir_is_refused(es):
    es.indices["logs"] = Index({"properties": {}})
    with pytest.raises(StoreError, match="was not created by cbir"):
        connect(es, "/logs").fields  # noqa: B018
