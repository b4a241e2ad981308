"""Request bodies for Elasticsearch (8.x and 9.x) and the conversion of its answers.

Plain functions from our values to the documented JSON, so that tests can read them:
the index mapping, bulk update/delete actions, exact (`script_score`) and approximate
(`knn`) searches, and hits with their scores turned back into cosine similarity.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores.base import Hit
from indexing.stores.es_connection import EsTarget
from indexing.stores.prepare import PreparedDocuments, order_hits

META_KEY = "cbir"
FORMAT = 1
SOURCE_FIELDS = ["doc_id", "path", "label", "split"]
# index.max_result_window and the knn num_candidates ceiling.
MAX_HITS = 10_000


def field_mapping(info: ModelInfo, target: EsTarget) -> dict[str, Any]:
    options: dict[str, Any] = {"type": target.index_options.value}
    if target.index_options.is_hnsw:
        options.update(target.hnsw)
    return {
        "type": "dense_vector",
        "dims": info.dim,
        "index": True,
        "similarity": "cosine",
        "index_options": options,
    }


def index_meta(fields: Mapping[str, ModelInfo], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping's `_meta`: which model built each field, and the free-form metadata."""
    return {
        META_KEY: {
            "format": FORMAT,
            "fields": {name: info.to_json() for name, info in sorted(fields.items())},
            "meta": dict(meta),
        }
    }


def read_index_meta(
    meta: Mapping[str, Any] | None,
) -> tuple[dict[str, ModelInfo], dict[str, Any]] | None:
    """Fields and metadata from a mapping's `_meta`, or None when cbir did not write it."""
    ours = (meta or {}).get(META_KEY)
    if not isinstance(ours, dict) or ours.get("format") != FORMAT:
        return None
    fields = {name: ModelInfo.from_json(info) for name, info in ours.get("fields", {}).items()}
    return fields, dict(ours.get("meta", {}))


def new_index_body(
    fields: Mapping[str, ModelInfo], meta: Mapping[str, Any], target: EsTarget
) -> dict[str, Any]:
    """`mappings` for `indices.create`: keyword metadata, one dense_vector per field."""
    properties: dict[str, Any] = {name: {"type": "keyword"} for name in SOURCE_FIELDS}
    properties.update(added_fields_properties(fields, target))
    return {"_meta": index_meta(fields, meta), "dynamic": "strict", "properties": properties}


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

    Scores must not be negative in Elasticsearch, hence `+ 1.0`; the sort on doc_id makes
    ties (also at the k-th place) come out as trec_eval orders them.
    """
    return {
        "size": k,
        "query": {
            "script_score": {
                "query": {
                    "bool": {"filter": [{"exists": {"field": field}}, *filter_clauses(filters)]}
                },
                "script": {
                    "source": f"cosineSimilarity(params.query_vector, '{field}') + 1.0",
                    "params": {"query_vector": vector.tolist()},
                },
            }
        },
        "sort": [{"_score": {"order": "desc"}}, {"doc_id": {"order": "desc"}}],
        "track_scores": True,
        "track_total_hits": False,
        "_source": SOURCE_FIELDS,
    }


def knn_search(
    field: str,
    vector: np.ndarray,
    k: int,
    num_candidates: int,
    filters: Mapping[str, tuple[str, ...]],
) -> dict[str, Any]:
    """Approximate kNN on the field's HNSW (or flat) index; its `_score` is (1 + cosine) / 2."""
    knn: dict[str, Any] = {
        "field": field,
        "query_vector": vector.tolist(),
        "k": k,
        "num_candidates": num_candidates,
    }
    clauses = filter_clauses(filters)
    if clauses:
        knn["filter"] = clauses
    return {"size": k, "knn": knn, "track_total_hits": False, "_source": SOURCE_FIELDS}


def default_num_candidates(k: int) -> int:
    return min(MAX_HITS, max(100, 2 * k))


def hits_from(response: Mapping[str, Any], exact: bool, k: int) -> list[Hit]:
    """Hits of one search response, scores as cosine similarity, in our tie order."""
    hits = []
    for hit in response["hits"]["hits"]:
        raw = hit.get("_score")
        if raw is None:  # sorted searches may leave _score out; the sort value is the same
            raw = hit["sort"][0]
        score = float(raw) - 1.0 if exact else 2.0 * float(raw) - 1.0
        source = hit.get("_source", {})
        hits.append(
            Hit(hit["_id"], score, source.get("label"), source.get("path"), source.get("split"))
        )
    return order_hits(hits)[:k]
