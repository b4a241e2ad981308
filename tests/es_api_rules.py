"""What the documented Elasticsearch REST API refuses, for RecordingEsStandIn to refuse too.

Each check raises Refused (HTTP status, error type, reason) as a server would answer.
These encode our reading of the API documentation; they are not Elasticsearch.
"""

from __future__ import annotations

from typing import Any

SEARCH_KEYS = {
    "query",
    "knn",
    "size",
    "from",
    "sort",
    "_source",
    "track_scores",
    "track_total_hits",
    "search_after",
}
KNN_KEYS = {
    "field",
    "query_vector",
    "k",
    "num_candidates",
    "filter",
    "similarity",
    "boost",
    "_name",
}
SCRIPT_SCORE_KEYS = {"query", "script", "min_score", "boost", "_name"}
UPDATE_KEYS = {
    "doc",
    "doc_as_upsert",
    "upsert",
    "script",
    "scripted_upsert",
    "detect_noop",
    "_source",
}
ACTION_KEYS = {
    "_index",
    "_id",
    "retry_on_conflict",
    "routing",
    "if_seq_no",
    "if_primary_term",
    "require_alias",
}


class Refused(Exception):
    def __init__(self, status: int, kind: str, reason: str):
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason


def check_headers(version: str, headers: dict[str, str]) -> None:
    """REST compatibility: a server serves compatible-with its major or the one before."""
    major = int(version.split(".")[0])
    for header in ("accept", "content-type"):
        value = headers.get(header, "")
        if "compatible-with=" in value:
            wanted = int(value.rsplit("compatible-with=", 1)[1].split(";")[0])
            if wanted not in (major, major - 1):
                raise Refused(
                    400,
                    "media_type_header_exception",
                    f"Invalid media-type value on headers [{header}]: compatible-with={wanted}",
                )


def check_document(mappings: dict[str, Any], doc: dict[str, Any], doc_id: str) -> None:
    """Strict dynamic mapping and dense_vector rules, as a server applies them."""
    properties = mappings.get("properties", {})
    for key, value in doc.items():
        mapping = properties.get(key)
        if mapping is None:
            raise Refused(
                400, "strict_dynamic_mapping_exception", f"[{key}] not allowed in [{doc_id}]"
            )
        if "properties" in mapping:
            for sub in value or {}:
                if sub not in mapping["properties"]:
                    raise Refused(
                        400, "strict_dynamic_mapping_exception", f"[{key}.{sub}] not allowed"
                    )
        elif mapping.get("type") == "dense_vector" and value is not None:
            if len(value) != mapping["dims"]:
                raise Refused(
                    400,
                    "document_parsing_exception",
                    f"[{key}] has {len(value)} dims, mapping says {mapping['dims']}",
                )
            if mapping.get("similarity") == "cosine" and not any(value):
                raise Refused(
                    400,
                    "document_parsing_exception",
                    "The [cosine] similarity does not support vectors with zero magnitude.",
                )


# -- search ----------------------------------------------------------------------------------


def check_search(mappings: dict[str, Any], body: dict[str, Any]) -> None:
    unknown = set(body) - SEARCH_KEYS
    if unknown:
        raise Refused(
            400,
            "parsing_exception",
            f"Unknown key for a START_OBJECT in [{sorted(unknown)[0]}].",
        )
    if body.get("size", 10) + body.get("from", 0) > 10_000:
        raise Refused(400, "illegal_argument_exception", "Result window is too large")
    properties = mappings.get("properties", {})
    if "knn" in body:
        knn = body["knn"]
        if set(knn) - KNN_KEYS:
            raise Refused(
                400, "parsing_exception", f"[knn] unknown field {sorted(set(knn) - KNN_KEYS)}"
            )
        for key in ("field", "query_vector", "k", "num_candidates"):
            if key not in knn:  # k and num_candidates have defaults from 8.12; we always send them
                raise Refused(400, "x_content_parse_exception", f"[knn] requires [{key}]")
        if not knn["k"] <= knn["num_candidates"] <= 10_000:
            raise Refused(
                400, "illegal_argument_exception", "[num_candidates] must be in [k, 10000]"
            )
        dims = properties.get(knn["field"], {}).get("dims")
        if dims != len(knn["query_vector"]):
            raise Refused(
                400,
                "illegal_argument_exception",
                "the query vector has a different dimension than the index vectors",
            )
    query = body.get("query", {})
    if "script_score" in query:
        script_score = query["script_score"]
        if set(script_score) - SCRIPT_SCORE_KEYS or not {"query", "script"} <= set(script_score):
            raise Refused(400, "parsing_exception", "[script_score] takes query and script")
        if "source" not in script_score["script"]:
            raise Refused(400, "parsing_exception", "[script] requires source")
