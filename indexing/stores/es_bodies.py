"""Request bodies for Elasticsearch (8.x and 9.x) and the conversion of its answers.

Plain functions from our values to the documented JSON, so that tests can read them:
the index mapping, bulk update/delete actions, exact (`script_score`) and approximate
(`knn`) searches, and hits with their scores turned back into cosine similarity. Search
bodies are built as keyword arguments of the official client's `Elasticsearch.search`
(`search_params`), whose names the client generates from the API specification; a name it
does not know is refused here, before any request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores.base import Hit, StoreError
from indexing.stores.es_connection import EsTarget
from indexing.stores.prepare import PreparedDocuments, order_hits

META_KEY = "cbir"
FORMAT = 2  # 1: model records in _meta (lost by concurrent put_mapping); 2: in each field's meta
READ_FORMATS = (1, 2)
SOURCE_FIELDS = ["doc_id", "path", "label", "split"]
# index.max_result_window and the knn num_candidates ceiling (KnnSearchBuilder.NUM_CANDS_LIMIT).
MAX_HITS = 10_000
# Field `meta` (TypeParsers.parseMeta): at most 5 entries, keys <= 20 chars, string values <= 50.
MODEL_KEY, FINGERPRINT_KEY = "cbir_model", "cbir_fingerprint"
META_VALUE_CHARS = 50
# Oversampling for knn.rescore_vector (the server's default for bbq is 3.0).
RESCORE_OVERSAMPLE = 3.0
# Bytes a float takes in a JSON answer, roughly: sizes `get` pages.
JSON_BYTES_PER_FLOAT = 22


@functools.cache
def _search_parameters() -> frozenset[str]:
    from elasticsearch import Elasticsearch

    return frozenset(inspect.signature(Elasticsearch.search).parameters) - {"self", "body"}


# Client keyword -> JSON key where they differ.
_JSON_NAMES = {"source": "_source", "from_": "from"}


def search_params(**params: Any) -> dict[str, Any]:
    """`params` if the client's `search` takes each of them (TypeError otherwise)."""
    unknown = set(params) - _search_parameters()
    if unknown:
        raise TypeError(f"Elasticsearch.search() takes no parameter {sorted(unknown)[0]!r}")
    return params


def search_body(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of `search_params(...)`, for an msearch item."""
    return {_JSON_NAMES.get(key, key): value for key, value in params.items()}


def field_mapping(info: ModelInfo, target: EsTarget) -> dict[str, Any]:
    """A cosine dense_vector whose own `meta` records the model that built it."""
    options: dict[str, Any] = {"type": target.index_options.value}
    if target.index_options.is_hnsw:
        options.update(target.hnsw)
    for value in (info.name, info.fingerprint):
        if len(value) > META_VALUE_CHARS:
            raise StoreError(
                f"model name / fingerprint {value!r} is longer than the {META_VALUE_CHARS} "
                "characters Elasticsearch keeps in a field's meta"
            )
    return {
        "type": "dense_vector",
        "dims": info.dim,
        "index": True,
        "similarity": "cosine",
        "index_options": options,
        "meta": {MODEL_KEY: info.name, FINGERPRINT_KEY: info.fingerprint},
    }


def index_meta(meta: Mapping[str, Any], legacy_fields: Mapping[str, Any] | None = None) -> dict:
    """The mapping's `_meta`: the format and the free-form metadata.

    Model records live in each field's `meta`: a mapping update merges `properties` but
    replaces `_meta` whole, so records kept here would be lost to a concurrent update.
    Records of a format-1 index are carried over as they were.
    """
    ours: dict[str, Any] = {"format": FORMAT, "meta": dict(meta)}
    if legacy_fields:
        ours["fields"] = dict(legacy_fields)
    return {META_KEY: ours}


def read_index_meta(
    mappings: Mapping[str, Any],
) -> tuple[dict[str, ModelInfo], dict[str, Any], dict[str, Any]] | None:
    """(fields, metadata, legacy records) from a mapping, or None when cbir did not write it."""
    ours = (mappings.get("_meta") or {}).get(META_KEY)
    if not isinstance(ours, dict) or ours.get("format") not in READ_FORMATS:
        return None
    legacy = dict(ours.get("fields", {}))
    fields = {name: ModelInfo.from_json(info) for name, info in legacy.items()}
    for name, prop in (mappings.get("properties") or {}).items():
        field_meta = prop.get("meta") or {}
        if prop.get("type") == "dense_vector" and MODEL_KEY in field_meta:
            fields[name] = ModelInfo(
                field_meta[MODEL_KEY], int(prop["dims"]), field_meta.get(FINGERPRINT_KEY, "")
            )
    return fields, dict(ours.get("meta", {})), legacy


def new_index_body(
    fields: Mapping[str, ModelInfo], meta: Mapping[str, Any], target: EsTarget
) -> dict[str, Any]:
    """`mappings` for `indices.create`: keyword metadata, one dense_vector per field."""
    properties: dict[str, Any] = {name: {"type": "keyword"} for name in SOURCE_FIELDS}
    properties.update(added_fields_properties(fields, target))
    return {"_meta": index_meta(meta), "dynamic": "strict", "properties": properties}


def added_fields_properties(fields: Mapping[str, ModelInfo], target: EsTarget) -> dict[str, Any]:
    """Properties for new vector fields and their `empty.<field>` flags (for `put_mapping`)."""
    properties: dict[str, Any] = {
        name: field_mapping(info, target) for name, info in fields.items()
    }
    properties["empty"] = {
        "properties": {name: {"type": "boolean"} for name in fields},
    }
    return properties


def upsert_actions(index: str, prepared: PreparedDocuments) -> Iterator[dict[str, Any]]:
    """Partial-update actions for `helpers.streaming_bulk` (fields not given are kept).

    A zero vector is written as null (no vector: cosine undefined, Elasticsearch refuses it)
    with `empty.<field>: true`, so the document still counts as encoded for that field.
    """
    partial: list[dict[str, Any]] = [
        {"doc_id": d.doc_id, "path": d.path, "label": d.label, "split": d.split}
        for d in prepared.documents
    ]
    for name, rows in prepared.fields.items():
        vectors = rows.matrix.tolist()
        for position, vector, empty in zip(
            rows.positions, vectors, rows.empty.tolist(), strict=True
        ):
            partial[position][name] = None if empty else vector
            partial[position].setdefault("empty", {})[name] = empty
    for doc, body in zip(prepared.documents, partial, strict=True):
        yield {
            "_op_type": "update",
            "_index": index,
            "_id": doc.doc_id,
            "retry_on_conflict": 3,
            "doc": body,
            "doc_as_upsert": True,
        }


def delete_actions(index: str, ids: list[str]) -> Iterator[dict[str, Any]]:
    for doc_id in ids:
        yield {"_op_type": "delete", "_index": index, "_id": doc_id}


def filter_clauses(filters: Mapping[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    return [{"terms": {key: list(values)}} for key, values in sorted(filters.items())]


def exact_search(
    field: str, vector: np.ndarray, k: int, filters: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    """Brute-force cosine over every document with the field (`script_score`).

    Scores must not be negative in Elasticsearch ("Must be a non-negative score"), hence
    `+ 1.0`, clamped at 0 because float error can take an opposite vector's cosine just
    below -1; the sort on doc_id makes ties (also at the k-th place) come out as trec_eval
    orders them. Metadata comes from doc values: no `_source` (and vectors) is parsed.
    """
    return search_params(
        size=k,
        query={
            "script_score": {
                "query": {
                    "bool": {"filter": [{"exists": {"field": field}}, *filter_clauses(filters)]}
                },
                "script": {
                    "source": f"Math.max(cosineSimilarity(params.query_vector, '{field}') + 1.0, 0.0)",
                    "params": {"query_vector": vector.tolist()},
                },
            }
        },
        sort=[{"_score": {"order": "desc"}}, {"doc_id": {"order": "desc"}}],
        track_scores=True,
        track_total_hits=False,
        source=False,
        docvalue_fields=SOURCE_FIELDS,
    )


def knn_search(
    field: str,
    vector: np.ndarray,
    k: int,
    num_candidates: int,
    filters: Mapping[str, tuple[str, ...]],
    rescore: bool = False,
) -> dict[str, Any]:
    """Approximate kNN on the field's HNSW (or flat) index; its `_score` is (1 + cosine) / 2.

    `rescore` re-scores the candidates with the stored float vectors (`rescore_vector`,
    8.18+), so that a quantized index still gives exact cosines for the hits it returns.
    """
    knn: dict[str, Any] = {
        "field": field,
        "query_vector": vector.tolist(),
        "k": k,
        "num_candidates": num_candidates,
    }
    clauses = filter_clauses(filters)
    if clauses:
        knn["filter"] = clauses
    if rescore:
        knn["rescore_vector"] = {"oversample": RESCORE_OVERSAMPLE}
    return search_params(
        size=k, knn=knn, track_total_hits=False, source=False, docvalue_fields=SOURCE_FIELDS
    )


def default_num_candidates(k: int) -> int:
    return min(MAX_HITS, max(100, 2 * k))


def get_page_size(dims: int, budget_bytes: int = 8 * 2**20) -> int:
    """Documents per `get` request so that one answer stays near `budget_bytes` of JSON."""
    return max(1, min(1_000, budget_bytes // max(1, dims * JSON_BYTES_PER_FLOAT)))


def get_search(ids: list[str], fields: Mapping[str, ModelInfo]) -> dict[str, Any]:
    """A page of `get`: metadata and `empty.*` from doc values, vectors through `fields`."""
    return search_params(
        query={"ids": {"values": ids}},
        size=len(ids),
        source=False,
        docvalue_fields=[*SOURCE_FIELDS, *(f"empty.{name}" for name in sorted(fields))],
        fields=sorted(fields),
        track_total_hits=False,
    )


def first(values: Mapping[str, Any], key: str) -> Any:
    """The first value of `key` in a hit's `fields` (which lists every value), or None."""
    found = values.get(key)
    return found[0] if found else None


def hits_from(response: Mapping[str, Any], exact: bool, k: int) -> list[Hit]:
    """Hits of one search response, scores as cosine similarity, in our tie order."""
    hits = []
    for hit in response["hits"]["hits"]:
        raw = hit.get("_score")
        if raw is None:  # sorted searches may leave _score out; the sort value is the same
            raw = hit["sort"][0]
        score = float(raw) - 1.0 if exact else 2.0 * float(raw) - 1.0
        values = hit.get("fields", {})
        hits.append(
            Hit(
                hit["_id"],
                score,
                first(values, "label"),
                first(values, "path"),
                first(values, "split"),
            )
        )
    return order_hits(hits)[:k]
