"""The Elasticsearch store: one index, keyword metadata, one `dense_vector` per method.

Named `es` so that it does not shadow the `elasticsearch` package. Writes go through
`helpers.streaming_bulk` (chunked, retried with backoff on 429 and other transient
statuses; every per-document failure is collected and raised, never swallowed) and are
refreshed before `upsert`/`delete` return, so reads see them. Searches go out in `msearch`
batches: exact (`script_score` + `cosineSimilarity`) by default, approximate (`knn`) with
`exact=False`; scores come back as cosine similarity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import es_bodies as bodies
from indexing.stores.base import (
    MAX_DIM,
    Document,
    Filters,
    Hit,
    ModelMismatchError,
    StoreError,
    VectorStore,
    check_field_name,
    check_model,
    describe_model,
)
from indexing.stores.es_connection import (
    EsTarget,
    connect,
    one_line,
    parse_es_url,
    reason,
    translate_errors,
)
from indexing.stores.prepare import check_k, parse_filters, prepare_documents, prepare_queries

# Failures listed in a bulk error message (the count says how many there were).
LISTED_FAILURES = 10


class BulkWriteError(StoreError):
    """Some documents of a bulk request were rejected; the others were written."""

    def __init__(self, message: str, failures: list[tuple[str, int, str]]):
        super().__init__(message)
        self.failures = failures  # (doc id, HTTP status, "type: reason")


class ElasticsearchStore(VectorStore):
    """A store in an Elasticsearch index (`http(s)://host:port[/INDEX]`)."""

    def __init__(
        self,
        target: EsTarget,
        client: Any,
        server_version: tuple[int, int],
        *,
        chunk_size: int = 500,
        max_chunk_bytes: int = 32 * 2**20,
        max_retries: int = 5,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        msearch_size: int = 64,
    ):
        self.target = target
        self.url = target.url
        self.index = target.index
        self.client = client
        self.server_version = server_version
        self.bulk_options = {
            "chunk_size": chunk_size,
            "max_chunk_bytes": max_chunk_bytes,
            "max_retries": max_retries,
            "initial_backoff": initial_backoff,
            "max_backoff": max_backoff,
            "retry_on_status": (429, 502, 503, 504),
        }
        self.msearch_size = msearch_size
        self._fields: dict[str, ModelInfo] | None = None
        self._meta: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        url: str,
        env: Mapping[str, str] | None = None,
        *,
        request_timeout: float = 60.0,
        **options: Any,
    ) -> ElasticsearchStore:
        """Connect and check the server version; one-line StoreError naming the URL if not.

        Requests that time out are retried (3 times, with backoff); `options` go to the store
        (bulk chunking and retries, msearch batch size).
        """
        target = parse_es_url(url)
        client, version = connect(target, env, request_timeout=request_timeout)
        return cls(target, client, version, **options)

    def _errors(self, what: str):
        return translate_errors(self.url, what)

    # -- index and fields ------------------------------------------------------------------

    def exists(self) -> bool:
        with self._errors("check"):
            return bool(self.client.indices.exists(index=self.index))

    def _read_mapping(self) -> tuple[dict[str, ModelInfo], dict[str, Any]]:
        """Fields and metadata from the index's `_meta`; empty when there is no index."""
        import elasticsearch

        with self._errors("read the mapping of"):
            try:
                response = self.client.indices.get_mapping(index=self.index)
            except elasticsearch.NotFoundError:
                return {}, {}
        mappings = next(iter(response.body.values()))["mappings"]
        parsed = bodies.read_index_meta(mappings.get("_meta"))
        if parsed is None:
            raise StoreError(
                f"index {self.url} was not created by cbir (no _meta.{bodies.META_KEY} in its "
                "mapping); choose another index name in the URL"
            )
        return parsed

    def _known_fields(self, refresh: bool = False) -> dict[str, ModelInfo]:
        if self._fields is None or refresh:
            self._fields, self._meta = self._read_mapping()
        return self._fields

    @property
    def fields(self) -> dict[str, ModelInfo]:
        return dict(self._known_fields(refresh=True))

    @property
    def meta(self) -> dict[str, Any]:
        self._known_fields(refresh=True)
        return dict(self._meta)

    def _field(self, field: str) -> ModelInfo:
        fields = self._known_fields()
        if field not in fields:
            fields = self._known_fields(refresh=True)  # another process may have added it
        if field not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise StoreError(f"{self.url} has no field {field!r} (fields: {known}); index it first")
        return fields[field]

    def create(
        self, fields: Mapping[str, ModelInfo], meta: Mapping[str, Any] | None = None
    ) -> None:
        for name, info in fields.items():
            check_field_name(name)
            if not isinstance(info, ModelInfo) or not 1 <= info.dim <= MAX_DIM:
                raise StoreError(
                    f"field {name!r} needs a ModelInfo with 1 <= dim <= {MAX_DIM}, got {info!r}"
                )
        if not self.exists():
            import elasticsearch

            body = bodies.new_index_body(fields, meta or {}, self.target)
            with self._errors("create"):
                try:
                    self.client.indices.create(index=self.index, mappings=body)
                    self._fields, self._meta = dict(fields), dict(meta or {})
                    return
                except elasticsearch.BadRequestError as exc:
                    if "resource_already_exists_exception" not in reason(exc):
                        raise
                    # another process created it meanwhile: merge our fields below
        existing, old_meta = self._read_mapping()
        added = {}
        for name, info in fields.items():
            if name in existing and existing[name] != info:
                raise ModelMismatchError(
                    f"field {name!r} of {self.url} was built by {describe_model(existing[name])}, "
                    f"not {describe_model(info)}: index into a new index (another URL) or drop this one"
                )
            if name not in existing:
                added[name] = info
        new_meta = dict(old_meta if meta is None else meta)
        if added or new_meta != old_meta:
            with self._errors("add fields to"):
                self.client.indices.put_mapping(
                    index=self.index,
                    properties=bodies.added_fields_properties(added, self.target)
                    if added
                    else None,
                    meta=bodies.index_meta({**existing, **added}, new_meta),
                )
        self._fields, self._meta = {**existing, **added}, new_meta

    # -- writing ---------------------------------------------------------------------------

    def _bulk(self, actions: Iterable[dict[str, Any]], what: str) -> tuple[int, int]:
        """Run bulk actions; returns (written, not found). BulkWriteError lists rejections."""
        from elasticsearch import helpers

        written = missing = 0
        failures: list[tuple[str, int, str]] = []
        with self._errors(what):
            for ok, item in helpers.streaming_bulk(
                self.client, actions, raise_on_error=False, **self.bulk_options
            ):
                op, result = next(iter(item.items()))
                status = int(result.get("status", 0))
                if ok:
                    written += 1
                elif op == "delete" and status == 404:
                    missing += 1
                else:
                    failures.append((str(result.get("_id")), status, error_text(result)))
            self.client.indices.refresh(index=self.index)
        if failures:
            listed = "; ".join(f"{i} ({s}: {e})" for i, s, e in failures[:LISTED_FAILURES])
            more = (
                f" and {len(failures) - LISTED_FAILURES} more"
                if len(failures) > LISTED_FAILURES
                else ""
            )
            raise BulkWriteError(
                f"Elasticsearch at {self.url} rejected {len(failures)} of "
                f"{written + missing + len(failures)} documents: {listed}{more}",
                failures,
            )
        return written, missing

    def upsert(self, documents: Iterable[Document]) -> int:
        documents = list(documents)
        named = {name for doc in documents for name in getattr(doc, "vectors", {})}
        fields = self._known_fields()
        if not named <= set(fields):
            fields = self._known_fields(refresh=True)  # another process may have added them
        prepared = prepare_documents(documents, fields, self.url)
        if not prepared.documents:
            return 0
        written, _ = self._bulk(bodies.upsert_actions(self.index, prepared), "write to")
        return written

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        written, _ = self._bulk(bodies.delete_actions(self.index, ids), "delete from")
        return written

    def drop(self) -> None:
        import elasticsearch

        with self._errors("delete"), contextlib.suppress(elasticsearch.NotFoundError):
            self.client.indices.delete(index=self.index)
        self._fields, self._meta = None, {}

    def close(self) -> None:
        self.client.close()

    # -- reading ---------------------------------------------------------------------------

    def count(self) -> int:
        with self._errors("count"):
            return int(self.client.count(index=self.index)["count"])

    def get(self, ids: Iterable[str]) -> dict[str, Document]:
        ids = list(dict.fromkeys(ids))
        fields = self._known_fields()
        # From 9.2 on, vectors are left out of _source unless asked for.
        source: Any = {"exclude_vectors": False} if self.server_version >= (9, 2) else True
        found: dict[str, Document] = {}
        for start in range(0, len(ids), bodies.MAX_HITS):
            chunk = ids[start : start + bodies.MAX_HITS]
            body = {"query": {"ids": {"values": chunk}}, "size": len(chunk), "_source": source}
            with self._errors("read"):
                response = self.client.search(index=self.index, body=body)
            for hit in response["hits"]["hits"]:
                src = hit["_source"]
                empty = src.get("empty") or {}
                vectors = {}
                for name, info in fields.items():
                    if src.get(name) is not None:
                        vectors[name] = np.asarray(src[name], np.float32)
                    elif empty.get(name):
                        vectors[name] = np.zeros(info.dim, np.float32)
                found[hit["_id"]] = Document(
                    hit["_id"], src.get("path"), src.get("label"), src.get("split"), vectors
                )
        return {doc_id: found[doc_id] for doc_id in ids if doc_id in found}

    def ids_with(self, field: str) -> set[str]:
        self._field(field)
        query = {
            "bool": {
                "should": [{"exists": {"field": field}}, {"term": {f"empty.{field}": True}}],
                "minimum_should_match": 1,
            }
        }
        ids: set[str] = set()
        after = None
        while True:
            body: dict[str, Any] = {
                "size": bodies.MAX_HITS,
                "query": query,
                "_source": False,
                "sort": [{"doc_id": {"order": "asc"}}],
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            with self._errors("read"):
                hits = self.client.search(index=self.index, body=body)["hits"]["hits"]
            ids.update(hit["_id"] for hit in hits)
            if len(hits) < bodies.MAX_HITS:
                return ids
            after = hits[-1]["sort"]

    def search(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        model: ModelInfo | None = None,
        exact: bool = True,
        num_candidates: int | None = None,
    ) -> list[list[Hit]]:
        """Exact (`script_score`) or approximate (`knn`, `num_candidates`) cosine top-k.

        Elasticsearch returns at most 10,000 hits a query; larger k is refused.
        Approximate hits are re-sorted by (score, doc id) after fetching; which of several
        documents tied at the k-th place make the cut is then up to the server.
        """
        k = check_k(k)
        if k > bodies.MAX_HITS:
            raise StoreError(
                f"Elasticsearch returns at most {bodies.MAX_HITS:,} hits per query; asked for "
                f"k={k:,} (use the embedded store for longer rankings)"
            )
        conditions = parse_filters(filters)
        info = self._field(field)
        if model is not None:
            check_model(field, info, model, self.url)
        queries, zero = prepare_queries(vectors, field, info.dim)
        if not exact:
            candidates = (
                bodies.default_num_candidates(k) if num_candidates is None else num_candidates
            )
            if not k <= candidates <= bodies.MAX_HITS:
                raise StoreError(
                    f"num_candidates must be between k ({k}) and {bodies.MAX_HITS:,}, got {candidates}"
                )
        requests = []
        for q in np.flatnonzero(~zero):
            if exact:
                requests.append(bodies.exact_search(field, queries[q], k, conditions))
            else:
                requests.append(bodies.knn_search(field, queries[q], k, candidates, conditions))
        responses = self._msearch(requests)
        answers = iter(responses)
        return [
            [] if zero[q] else bodies.hits_from(next(answers), exact, k)
            for q in range(len(queries))
        ]

    def _msearch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        for start in range(0, len(requests), self.msearch_size):
            searches: list[dict[str, Any]] = []
            for body in requests[start : start + self.msearch_size]:
                searches.extend(({}, body))
            with self._errors("search"):
                answer = self.client.msearch(index=self.index, searches=searches)
            for item in answer["responses"]:
                if "error" in item:
                    raise StoreError(
                        f"Elasticsearch at {self.url} failed a search: {error_text(item)}"
                    )
                responses.append(item)
        return responses


def error_text(result: Mapping[str, Any]) -> str:
    """`type: reason` of a bulk item or msearch response error, on one line."""
    error = result.get("error")
    if isinstance(error, dict):
        cause = (error.get("root_cause") or [error])[0]
        return one_line(
            f"{cause.get('type', error.get('type'))}: {cause.get('reason', error.get('reason'))}"
        )
    return one_line(error if error is not None else f"status {result.get('status')}")
