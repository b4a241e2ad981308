"""Each rule EsRequestChecker enforces, refused at the versions that refuse it; the id of
each case is the rule, and RULE_SOURCES names where it comes from (spec file or server
constant). The checker is a request checker, not a server: this checks the checker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.es_api_rules import RULE_SOURCES
from tests.es_standin import EsRequestChecker


def vector(dims, kind="hnsw", **options):
    return {
        "type": "dense_vector",
        "dims": dims,
        "index": True,
        "similarity": "cosine",
        "index_options": {"type": kind, **options},
    }


def send(es, method, path, body):
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        es.url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def create(dims, kind="hnsw", meta=None, **options):
    prop = vector(dims, kind, **options)
    if meta is not None:
        prop["meta"] = meta
    return "PUT", "/idx", {"mappings": {"properties": {"v": prop}}}


KNN = {"field": "v", "query_vector": [1.0] * 4, "k": 1, "num_candidates": 10}
CASES = {
    # rule: (version refusing, version accepting, request)
    "max_dims": ("8.10.4", "8.11.0", create(2_304)),
    "index_types": ("8.15.5", "8.16.0", create(64, "bbq_hnsw")),
    "int4_even": ("9.1.0", None, create(65, "int4_hnsw")),
    "bbq_min_dims": ("9.1.0", None, create(32, "bbq_flat")),
    "graph_params": ("9.1.0", None, create(64, "int8_flat", m=16)),
    "field_meta": ("9.1.0", None, create(4, meta={"k": "x" * 51})),
    "knn": ("8.3.3", "8.4.0", ("POST", "/ready/_search", {"knn": KNN})),
    "num_candidates": (
        "9.1.0",
        None,
        ("POST", "/ready/_search", {"knn": {**KNN, "num_candidates": 10_001}}),
    ),
    "rescore_vector": (
        "8.17.1",
        "8.18.0",
        ("POST", "/ready/_search", {"knn": {**KNN, "rescore_vector": {"oversample": 3.0}}}),
    ),
    "result_window": ("9.1.0", None, ("POST", "/ready/_search", {"size": 10_001})),
    "no_docvalues_vectors": ("9.1.0", None, ("POST", "/ready/_search", {"docvalue_fields": ["v"]})),
    "exclude_vectors": (
        "9.1.0",
        "9.2.0",
        ("POST", "/ready/_search", {"_source": {"exclude_vectors": False}}),
    ),
    "dims_fixed": ("9.1.0", None, ("PUT", "/ready/_mapping", {"properties": {"v": vector(8)}})),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_checker_refuses_what_the_version_refuses(rule):
    refusing, accepting, (method, path, body) = CASES[rule]
    for version, expected in ((refusing, 400), (accepting, 200)):
        if version is None:
            continue
        with EsRequestChecker(version=version) as es:
            if path.startswith("/ready"):  # rules on an existing 4-dim index
                assert send(es, *create(4))[0] == 200
            status, answer = send(es, method, path.replace("/ready", "/idx"), body)
            assert status == expected, f"{rule} ({RULE_SOURCES[rule]}) at {version}: {answer}"


def test_a_mapping_update_merges_properties_and_replaces_meta():
    with EsRequestChecker() as es:
        send(es, "PUT", "/idx", {"mappings": {"_meta": {"a": 1}, "properties": {"x": vector(4)}}})
        send(es, "PUT", "/idx/_mapping", {"_meta": {"b": 2}, "properties": {"y": vector(4)}})
        mappings = es.indices["idx"].mappings
        assert mappings["_meta"] == {"b": 2}, RULE_SOURCES["meta_replaced"]
        assert set(mappings["properties"]) == {"x", "y"}


def test_every_rule_has_a_source_and_a_case():
    assert set(CASES) | {"meta_replaced", "compatible_with"} == set(RULE_SOURCES)
