"""The Elasticsearch store: one index, keyword metadata, one `dense_vector` per method.

Named `es` so that it does not shadow the `elasticsearch` package. Writes go through
`helpers.streaming_bulk` (chunked, retried with backoff on 429 and other transient
statuses; every per-document failure is collected and raised, never swallowed). The index
is refreshed once before this store next reads (or closes), not after every batch, so a
job's many upserts make few segments and reads still see every write. Searches go out in
`msearch` batches (items refused with 429/5xx retried with backoff): exact (`script_score`
+ `cosineSimilarity`) by default, approximate (`knn`) with `exact=False`; scores come back
as cosine similarity. An answer from only some shards, or one that timed out, is an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from features.base import ModelInfo
from indexing.stores import es_bodies as bodies
from indexing.stores.base import (
    Document,
    ModelMismatchError,
    StoreError,
    VectorStore,
    check_field_name,
    describe_model,
)
from indexing.stores.es_connection import (
    BBQ_MIN_DIMS,
    FEATURES,
    RESCORE_VECTOR,
    EsTarget,
    connect,
    max_dims,
    parse_es_url,
    reason,
    translate_errors,
    version_text,
)
from indexing.stores.es_reads import EsReads, error_text
from indexing.stores.prepare import prepare_documents

# Failures listed in a bulk error message (the count says how many there were).
LISTED_FAILURES = 10


class BulkWriteError(StoreError):
    """Some documents of a bulk request were rejected; the others were written."""

    def __init__(self, message: str, failures: list[tuple[str, int, str]]):
        super().__init__(message)
        self.failures = failures  # (doc id, HTTP status, "type: reason")


class ElasticsearchStore(EsReads, VectorStore):
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
        self.max_retries, self.initial_backoff, self.max_backoff = (
            max_retries,
            initial_backoff,
            max_backoff,
        )
        self._fields: dict[str, ModelInfo] | None = None
        self._meta: dict[str, Any] = {}
        self._legacy: dict[str, Any] = {}
        self._unrefreshed = False
        options = target.index_options
        self.rescore = options.is_quantized and server_version >= FEATURES[RESCORE_VECTOR]
        # Why approximate (kNN) scores are not exact cosines here, or None when they are.
        self.approximate_scores: str | None = (
            f"index_options={options.value} scores kNN hits from quantized vectors and "
            f"Elasticsearch {version_text(server_version)} has no knn rescore_vector "
            f"({version_text(FEATURES[RESCORE_VECTOR])}+)"
            if options.is_quantized and not self.rescore
            else None
        )

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
        """Fields (from each field's meta) and metadata (`_meta`); empty when there is no index."""
        import elasticsearch

        with self._errors("read the mapping of"):
            try:
                response = self.client.indices.get_mapping(index=self.index)
            except elasticsearch.NotFoundError:
                return {}, {}
        mappings = next(iter(response.body.values()))["mappings"]
        parsed = bodies.read_index_meta(mappings)
        if parsed is None:
            raise StoreError(
                f"index {self.url} was not created by cbir (no _meta.{bodies.META_KEY} in its "
                "mapping); choose another index name in the URL"
            )
        fields, meta, self._legacy = parsed
        return fields, meta

    def _known_fields(self, refresh: bool = False) -> dict[str, ModelInfo]:
        if self._fields is None or refresh:
            self._fields, self._meta = self._read_mapping()
        return self._fields

    def _check_dims(self, name: str, info: ModelInfo) -> None:
        """Refuse what this server version cannot index, before asking it."""
        version, kind = self.server_version, self.target.index_options
        if not isinstance(info, ModelInfo) or not 1 <= info.dim <= max_dims(version):
            raise StoreError(
                f"field {name!r} needs a ModelInfo with 1 <= dim <= {max_dims(version):,} "
                f"(Elasticsearch {version_text(version)}'s dense_vector limit; 4,096 from 8.11), "
                f"got {info!r}"
            )
        if kind.value.startswith("int4") and info.dim % 2:
            raise StoreError(
                f"field {name!r} has {info.dim} dims; index_options={kind.value} needs an even "
                "number: choose int8_hnsw"
            )
        if kind.value.startswith("bbq") and info.dim < BBQ_MIN_DIMS:
            raise StoreError(
                f"field {name!r} has {info.dim} dims; index_options={kind.value} needs at least "
                f"{BBQ_MIN_DIMS}: choose int8_hnsw or hnsw"
            )

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
        """Create the index, or add fields: `properties` merge, so concurrent adders coexist.

        Each field's model record is in its own mapping `meta` (merged with `properties`);
        `_meta` (the free-form metadata) is only sent when it changes, and is replaced whole.
        """
        for name, info in fields.items():
            check_field_name(name)
            self._check_dims(name, info)
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
        self._check_same_models(fields, existing)
        added = {name: info for name, info in fields.items() if name not in existing}
        new_meta = dict(old_meta if meta is None else meta)
        if added:
            self._put_fields(added)
        if new_meta != old_meta:
            with self._errors("update the metadata of"):
                self.client.indices.put_mapping(
                    index=self.index, meta=bodies.index_meta(new_meta, self._legacy)
                )
        self._fields, self._meta = self._read_mapping()
        self._check_same_models(fields, self._fields)

    def _check_same_models(
        self, fields: Mapping[str, ModelInfo], existing: Mapping[str, ModelInfo]
    ) -> None:
        for name, info in fields.items():
            if name in existing and existing[name] != info:
                raise ModelMismatchError(
                    f"field {name!r} of {self.url} was built by {describe_model(existing[name])}, "
                    f"not {describe_model(info)}: index into a new index (another URL) or drop this one"
                )

    def _put_fields(self, added: Mapping[str, ModelInfo]) -> None:
        """Add vector fields; a conflict with a field another process just added is a mismatch."""
        import elasticsearch

        properties = bodies.added_fields_properties(added, self.target)
        with self._errors("add fields to"):
            try:
                self.client.indices.put_mapping(index=self.index, properties=properties)
            except elasticsearch.BadRequestError:
                self._check_same_models(added, self._read_mapping()[0])
                raise

    # -- writing ---------------------------------------------------------------------------

    def _bulk(self, actions: Iterable[dict[str, Any]], what: str) -> tuple[int, int]:
        """Run bulk actions; returns (written, not found). BulkWriteError lists rejections.

        A request that fails part-way (after the client's retries) still reports the
        documents rejected before it, and what was written is refreshed before reads.
        """
        from elasticsearch import helpers

        written = missing = 0
        failures: list[tuple[str, int, str]] = []
        stopped: StoreError | None = None
        self._unrefreshed = True
        try:
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
        except StoreError as exc:
            stopped = exc
        if not failures and stopped is None:
            return written, missing
        listed = "; ".join(f"{i} ({s}: {e})" for i, s, e in failures[:LISTED_FAILURES])
        more = (
            f" and {len(failures) - LISTED_FAILURES} more"
            if len(failures) > LISTED_FAILURES
            else ""
        )
        message = (
            f"Elasticsearch at {self.url} rejected {len(failures)} of "
            f"{written + missing + len(failures)} documents: {listed}{more}"
        )
        if stopped is not None:
            earlier = f"; earlier, {message}" if failures else ""
            message = f"{stopped} (after {written} documents were written{earlier})"
            with contextlib.suppress(StoreError):
                self._refresh()
        raise BulkWriteError(message, failures)

    def _refresh(self) -> None:
        """Make every write so far visible to searches; check the fields' models still hold."""
        with self._errors("refresh"):
            self.client.indices.refresh(index=self.index)
        self._unrefreshed = False
        if self._fields:
            self._check_same_models(self._fields, self._read_mapping()[0])

    def _before_reading(self) -> None:
        if self._unrefreshed:
            self._refresh()

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
        try:
            if self._unrefreshed:
                self._refresh()
        finally:
            self.client.close()

    # -- reading ---------------------------------------------------------------------------
