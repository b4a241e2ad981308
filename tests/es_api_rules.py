"""What Elasticsearch refuses, by server version, for EsRequestChecker to refuse too.

Each check raises Refused (HTTP status, error type, reason) as a server would answer.
Every rule names its source in RULE_SOURCES: a file of the API specification
(github elastic/elasticsearch-specification) or a constant / method of the server
(github elastic/elasticsearch). They encode our reading of those sources; they are not
Elasticsearch, and tests/test_es_requests.py checks each of them in turn.
"""

from __future__ import annotations

from typing import Any

Version = tuple[int, int]

RULE_SOURCES = {
    "max_dims": "server DenseVectorFieldMapper.MAX_DIMS_COUNT: 1024 before 8.8, 2048 before 8.11, 4096",
    "index_types": "spec _types/mapping/DenseVectorProperty.ts DenseVectorIndexOptionsType "
    "(@availability since) and the release notes",
    "int4_even": "server DenseVectorFieldMapper int4 quantization: 'only supports even dimensions'",
    "bbq_min_dims": "server DenseVectorFieldMapper.BBQ_MIN_DIMS = 64",
    "graph_params": "server DenseVectorFieldMapper flat index options parse no m / ef_construction",
    "field_meta": "server TypeParsers.parseMeta: <= 5 entries, keys <= 20 chars, string values <= 50",
    "meta_replaced": "server Mapping.merge: a mapping update replaces _meta whole",
    "dims_fixed": "server DenseVectorFieldMapper: dims is not updateable (merge conflict)",
    "knn": "server KnnSearchBuilder (top-level knn, 8.4); spec _types/Knn.ts KnnSearch",
    "num_candidates": "server KnnSearchBuilder.NUM_CANDS_LIMIT = 10_000",
    "rescore_vector": "spec _types/Knn.ts KnnSearch.rescore_vector @availability stack since=8.18.0",
    "result_window": "server IndexSettings.MAX_RESULT_WINDOW_SETTING default 10_000",
    "no_docvalues_vectors": "server DenseVectorFieldType.docValueFormat: "
    "doesn't support docvalue_fields or aggregations",
    "exclude_vectors": "spec _global/search/_types/SourceFilter.ts exclude_vectors, since 9.2",
    "compatible_with": "server RestCompatibleVersionHelper: compatible-with its major or the one before",
}
# DenseVectorIndexOptionsType values and the server version that introduced each.
INDEX_TYPES: dict[str, Version] = {
    "hnsw": (8, 0),
    "int8_hnsw": (8, 12),
    "flat": (8, 13),
    "int8_flat": (8, 13),
    "int4_hnsw": (8, 15),
    "int4_flat": (8, 15),
    "bbq_hnsw": (8, 16),
    "bbq_flat": (8, 16),
    "bbq_disk": (9, 2),
}
HNSW_PARAMS = {"m", "ef_construction"}
QUANTIZED_PARAMS = {"confidence_interval"}
DENSE_VECTOR_KEYS = {"type", "dims", "index", "similarity", "index_options", "element_type", "meta"}
NUM_CANDS_LIMIT = 10_000
BBQ_MIN_DIMS = 64


def max_dims_count(version: Version) -> int:
    return 1024 if version < (8, 8) else 2048 if version < (8, 11) else 4096


def parse_version(text: str) -> Version:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


SEARCH_KEYS = {
    "fields",
    "docvalue_fields",
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
    "rescore_vector",
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
    def __init__(self, status: int, kind: str, reason: str, caused_by: str | None = None):
        super().__init__(reason)
        self.status, self.kind, self.reason, self.caused_by = status, kind, reason, caused_by


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


# -- mappings --------------------------------------------------------------------------------


def check_mapping(version: Version, mappings: dict[str, Any]) -> None:
    """`create` / `put_mapping` bodies: known keys, and dense_vector rules of `version`."""
    unknown = set(mappings) - {"_meta", "dynamic", "properties"}
    if unknown:
        raise Refused(
            400, "mapper_parsing_exception", f"unknown mapping key [{sorted(unknown)[0]}]"
        )
    for name, prop in (mappings.get("properties") or {}).items():
        check_property(version, name, prop)


def check_property(version: Version, name: str, prop: dict[str, Any]) -> None:
    if "properties" in prop:
        for sub, inner in prop["properties"].items():
            check_property(version, f"{name}.{sub}", inner)
        return
    if "meta" in prop:
        check_field_meta(name, prop["meta"])
    if prop.get("type") != "dense_vector":
        return
    unknown = set(prop) - DENSE_VECTOR_KEYS
    if unknown:
        raise Refused(
            400, "mapper_parsing_exception", f"unknown parameter [{sorted(unknown)[0]}] on [{name}]"
        )
    dims, limit = prop.get("dims"), max_dims_count(version)
    if not isinstance(dims, int) or not 1 <= dims <= limit:
        raise Refused(
            400,
            "mapper_parsing_exception",
            f"The number of dimensions should be in the range [1, {limit}] but was [{dims}]",
        )
    options = prop.get("index_options")
    if options is None:
        return
    kind = options.get("type")
    if kind not in INDEX_TYPES or version < INDEX_TYPES[kind]:
        raise Refused(
            400,
            "mapper_parsing_exception",
            f"Unknown vector index options type [{kind}] for field [{name}]",
        )
    allowed = {"type"} | (HNSW_PARAMS if kind.endswith("hnsw") else set())
    allowed |= QUANTIZED_PARAMS if kind.startswith(("int8", "int4")) else set()
    extra = set(options) - allowed
    if extra:
        raise Refused(
            400,
            "mapper_parsing_exception",
            f"Mapping definition for [{name}] has unsupported parameters: [{sorted(extra)[0]}]",
        )
    if kind.startswith("int4") and dims % 2:
        raise Refused(
            400,
            "mapper_parsing_exception",
            f"int4_hnsw only supports even dimensions; provided={dims}",
        )
    if kind.startswith("bbq") and dims < BBQ_MIN_DIMS:
        raise Refused(
            400,
            "mapper_parsing_exception",
            f"bbq_hnsw does not support dimensions fewer than {BBQ_MIN_DIMS}; provided={dims}",
        )


def check_field_meta(name: str, meta: Any) -> None:
    if not isinstance(meta, dict) or len(meta) > 5:
        raise Refused(
            400,
            "mapper_parsing_exception",
            f"[meta] can't have more than 5 entries on field [{name}]",
        )
    for key, value in meta.items():
        if len(key) > 20:
            raise Refused(
                400,
                "mapper_parsing_exception",
                f"[meta] keys can't be longer than 20 chars, but got [{key}] for field [{name}]",
            )
        if not isinstance(value, str | int | float) or (isinstance(value, str) and len(value) > 50):
            raise Refused(
                400,
                "mapper_parsing_exception",
                f"[meta] values can't be longer than 50 chars for field [{name}]",
            )


def merge_mapping(mappings: dict[str, Any], update: dict[str, Any]) -> None:
    """A mapping update: properties merge (dims fixed, meta updateable), _meta is replaced."""
    properties = mappings.setdefault("properties", {})
    for name, prop in (update.get("properties") or {}).items():
        old = properties.get(name)
        if old is None:
            properties[name] = prop
        elif "properties" in prop:
            merge_mapping(old, prop)
        else:
            if old.get("type") != prop.get("type") or old.get("dims") != prop.get("dims"):
                raise Refused(
                    400,
                    "illegal_argument_exception",
                    f"Mapper for [{name}] conflicts with existing mapper: Cannot update parameter [dims]",
                )
            properties[name] = {**old, **prop}
    if "_meta" in update:
        mappings["_meta"] = update["_meta"]


# -- search ----------------------------------------------------------------------------------


def check_search(mappings: dict[str, Any], body: dict[str, Any], version: Version = (9, 1)) -> None:
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
    for name in body.get("docvalue_fields", []):
        if properties.get(name, {}).get("type") == "dense_vector":
            raise Refused(
                400,
                "illegal_argument_exception",
                f"Field [{name}] of type [dense_vector] doesn't support docvalue_fields or aggregations",
            )
    source = body.get("_source")
    if isinstance(source, dict) and "exclude_vectors" in source and version < (9, 2):
        raise Refused(400, "x_content_parse_exception", "[_source] unknown field [exclude_vectors]")
    if "knn" in body:
        knn = body["knn"]
        if version < (8, 4):
            raise Refused(400, "parsing_exception", "Unknown key for a START_OBJECT in [knn].")
        if "rescore_vector" in knn and version < (8, 18):
            raise Refused(400, "x_content_parse_exception", "[knn] unknown field [rescore_vector]")
        if set(knn) - KNN_KEYS:
            raise Refused(
                400, "parsing_exception", f"[knn] unknown field {sorted(set(knn) - KNN_KEYS)}"
            )
        for key in ("field", "query_vector", "k", "num_candidates"):
            if key not in knn:  # k and num_candidates have defaults from 8.12; we always send them
                raise Refused(400, "x_content_parse_exception", f"[knn] requires [{key}]")
        if not knn["k"] <= knn["num_candidates"] <= NUM_CANDS_LIMIT:
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
