"""EsRequestChecker: a request checker on a local HTTP port, not a server.

It checks *our requests* against what a given Elasticsearch version accepts (it pretends
to be that version: 8.11, 8.19, 9.x ...) and tests nothing about Elasticsearch itself.

It records every request, answers the endpoints ElasticsearchStore calls with responses
shaped as the API documents them, and refuses (HTTP 400, an Elasticsearch-style error
body) what that version refuses (tests/es_api_rules.py, each rule with its source):
mappings with too many dims, index_options types the version lacks, graph parameters on
flat types, int4 with odd dims, bbq under 64 dims, oversized field meta, dims changed by
put_mapping; unknown keys in search bodies, knn before 8.4 or rescore_vector before 8.18,
num_candidates outside [k, 10000], dense_vector in docvalue_fields; bulk lines that are not
NDJSON pairs, documents with fields the strict mapping lacks, vectors of the wrong length
or of zero magnitude under cosine, and REST-compatibility headers it cannot serve.
A mapping update merges properties and replaces `_meta`, as the server does.

It keeps documents only so that _count, the mapping and bulk results are plausible; search
answers are whatever hits a test queues with `answer(...)` (or none). Tests can also make
it answer from only some shards, time out, refuse msearch items as busy, or refuse a whole
request (`partial`, `busy`, `refuse`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.es_api_rules import (
    ACTION_KEYS,
    UPDATE_KEYS,
    Refused,
    check_document,
    check_headers,
    check_mapping,
    check_search,
    merge_mapping,
    parse_version,
)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode().split("\n") if line]


@dataclass
class Index:
    mappings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)


class EsRequestChecker:
    """`with EsRequestChecker(version="9.1.0") as es:` then point a store at `es.url`."""

    def __init__(self, version: str = "9.1.0", product_header: bool = True, licence: str = "basic"):
        self.version = version
        self.licence = licence
        self.product_header = product_header
        self.partials: list[dict[str, Any]] = []  # shard/timeout states of the next searches
        self.busy_items: list[int] = []  # statuses for the next msearch items (429, 503...)
        self.refusals: dict[str, list[list[Any]]] = {}  # path suffix -> whole-request errors
        self.requests: list[Recorded] = []
        self.indices: dict[str, Index] = {}
        self.answers: list[list[dict[str, Any]]] = []  # hits for the next searches, in order
        self.rejections: dict[str, list[tuple[int, str]]] = {}  # doc id -> statuses to give first
        self.stalls: dict[str, list[float]] = {}  # path suffix -> seconds to wait before answering
        self.lock = threading.Lock()
        self.stalled = threading.Event()  # never set: stalls wait out their time
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> EsRequestChecker:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, *hits: dict[str, Any]) -> None:
        """Queue the hits of the next search (one call per search, msearch items included)."""
        self.answers.append(list(hits))

    def reject(self, doc_id: str, status: int, kind: str) -> None:
        """Make the next bulk item for `doc_id` fail with `status` / error type `kind`."""
        self.rejections.setdefault(doc_id, []).append((status, kind))

    def stall(self, suffix: str, seconds: float) -> None:
        """Make the next request to a path ending in `suffix` wait `seconds` before answering."""
        self.stalls.setdefault(suffix, []).append(seconds)

    def partial(self, failed: int = 0, timed_out: bool = False) -> None:
        """Make the next search answer from `failed` fewer shards (of 2), or as timed out."""
        state: dict[str, Any] = {"timed_out": timed_out}
        if failed:
            failure = {"type": "circuit_breaking_exception", "reason": "[parent] Data too large"}
            state["_shards"] = {
                "total": 2,
                "successful": 2 - failed,
                "skipped": 0,
                "failed": failed,
                "failures": [{"shard": 0, "index": "x", "reason": failure}] * failed,
            }
        self.partials.append(state)

    def busy(self, *statuses: int) -> None:
        """Make the next msearch items fail with these statuses (429, 503), one item each."""
        self.busy_items.extend(statuses)

    def refuse(
        self, suffix: str, status: int, kind: str, caused_by: str | None = None, after: int = 0
    ) -> None:
        """Make a request to a path ending in `suffix` fail whole, once `after` have passed."""
        self.refusals.setdefault(suffix, []).append([status, kind, caused_by, after])

    @property
    def server_version(self) -> tuple[int, int]:
        return parse_version(self.version)

    def _stall_for(self, path: str) -> float:
        for suffix, waits in self.stalls.items():
            if path.endswith(suffix) and waits:
                return waits.pop(0)
        return 0.0

    def calls(self, method: str, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- dispatch ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with standin.lock:
                    standin.requests.append(request)
                    stall = standin._stall_for(request.path)
                if stall:
                    standin.stalled.wait(stall)  # a slow server: the client should time out
                with standin.lock:
                    try:
                        check_headers(standin.version, request.headers)
                        status, body = standin._route(request)
                        standin._refusal_for(request.path)
                    except Refused as exc:
                        status = exc.status
                        error: dict[str, Any] = {"type": exc.kind, "reason": exc.reason}
                        root = dict(error)
                        if exc.caused_by:
                            error["caused_by"] = {"type": "exception", "reason": exc.caused_by}
                        body = {"error": {"root_cause": [root], **error}, "status": exc.status}
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                if standin.product_header:
                    self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        return Handler

    def _refusal_for(self, path: str) -> None:
        for suffix, queued in self.refusals.items():
            if path.endswith(suffix) and queued:
                if queued[0][3] > 0:
                    queued[0][3] -= 1
                    continue
                status, kind, caused_by, _ = queued.pop(0)
                raise Refused(status, kind, f"refused by the checker at {path}", caused_by)

    def _route(self, r: Recorded) -> tuple[int, Any]:
        segments = [s for s in r.path.split("/") if s]
        if not segments:
            return 200, {
                "name": "standin",
                "cluster_name": "recording-standin",
                "version": {"number": self.version, "build_flavor": "default"},
                "tagline": "You Know, for Search",
            }
        if segments == ["_bulk"]:
            return self._bulk(r, None)
        if segments == ["_license"]:
            return 200, {"license": {"status": "active", "type": self.licence, "uid": "x"}}
        name, rest = segments[0], segments[1:]
        if not rest:
            return self._index(r, name)
        endpoint = rest[0]
        if endpoint == "_mapping":
            return self._mapping(r, name)
        index = self._existing(name)
        if endpoint == "_bulk":
            return self._bulk(r, name)
        if endpoint == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if endpoint == "_count":
            state = self.partials.pop(0) if self.partials else {}
            shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
            return 200, {"count": len(index.docs), "_shards": shards, **state}
        if endpoint == "_search":
            return 200, self._search(index, r.json())
        if endpoint == "_msearch":
            return self._msearch(index, r)
        raise Refused(400, "illegal_argument_exception", f"no handler for {r.method} {r.path}")

    def _existing(self, name: str) -> Index:
        if name not in self.indices:
            raise Refused(404, "index_not_found_exception", f"no such index [{name}]")
        return self.indices[name]

    # -- indices and mappings ----------------------------------------------------------------

    def _index(self, r: Recorded, name: str) -> tuple[int, Any]:
        if r.method == "HEAD":
            return (200 if name in self.indices else 404), None
        if r.method == "DELETE":
            self._existing(name)
            del self.indices[name]
            return 200, {"acknowledged": True}
        if r.method == "PUT":
            body = r.json() if r.body else {}
            unknown = set(body) - {"mappings", "settings", "aliases"}
            if unknown:
                raise Refused(
                    400, "parse_exception", f"unknown key [{sorted(unknown)[0]}] for create index"
                )
            if name in self.indices:
                raise Refused(
                    400, "resource_already_exists_exception", f"index [{name}] already exists"
                )
            check_mapping(self.server_version, body.get("mappings", {}))
            self.indices[name] = Index(body.get("mappings", {}))
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
        raise Refused(405, "illegal_argument_exception", f"{r.method} /{name}")

    def _mapping(self, r: Recorded, name: str) -> tuple[int, Any]:
        index = self._existing(name)
        if r.method == "GET":
            return 200, {name: {"mappings": index.mappings}}
        body = r.json()
        check_mapping(self.server_version, body)
        merge_mapping(index.mappings, body)  # properties merge, _meta is replaced
        return 200, {"acknowledged": True}

    # -- bulk ----------------------------------------------------------------------------------

    def _bulk(self, r: Recorded, default_index: str | None) -> tuple[int, Any]:
        if "x-ndjson" not in r.headers.get("content-type", ""):
            raise Refused(400, "illegal_argument_exception", "bulk bodies are NDJSON")
        if not r.body.endswith(b"\n"):
            raise Refused(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            )
        lines = r.ndjson()
        items = []
        while lines:
            action = lines.pop(0)
            if len(action) != 1 or next(iter(action)) not in (
                "index",
                "create",
                "update",
                "delete",
            ):
                raise Refused(
                    400, "illegal_argument_exception", f"Malformed action/metadata line [{action}]"
                )
            op, meta = next(iter(action.items()))
            if set(meta) - ACTION_KEYS:
                raise Refused(
                    400,
                    "illegal_argument_exception",
                    f"Action/metadata line contains unknown parameter {sorted(set(meta) - ACTION_KEYS)}",
                )
            source = None if op == "delete" else lines.pop(0)
            items.append({op: self._bulk_item(op, meta, source, default_index)})
        errors = any("error" in next(iter(i.values())) for i in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    def _bulk_item(
        self, op: str, meta: dict[str, Any], source: Any, default_index: str | None
    ) -> dict[str, Any]:
        name, doc_id = meta.get("_index", default_index), meta.get("_id")
        item: dict[str, Any] = {"_index": name, "_id": doc_id}
        try:
            if doc_id is None and op in ("update", "delete"):
                raise Refused(400, "action_request_validation_exception", "id is missing")
            if self.rejections.get(doc_id):
                raise Refused(
                    *self.rejections[doc_id].pop(0), f"rejected by the stand-in for {doc_id}"
                )
            index = self._existing(name)
            if op == "delete":
                if doc_id not in index.docs:
                    return {**item, "status": 404, "result": "not_found"}
                del index.docs[doc_id]
                return {**item, "status": 200, "result": "deleted"}
            if op == "update":
                if set(source) - UPDATE_KEYS or "doc" not in source:
                    raise Refused(
                        400, "x_content_parse_exception", f"bad update body keys {sorted(source)}"
                    )
                exists = doc_id in index.docs
                if not exists and not source.get("doc_as_upsert"):
                    raise Refused(
                        404, "document_missing_exception", f"[{doc_id}]: document missing"
                    )
                merged = merge(dict(index.docs.get(doc_id, {})), source["doc"])
            else:
                exists, merged = doc_id in index.docs, source
            check_document(index.mappings, merged, doc_id)
            index.docs[doc_id] = merged
            return {
                **item,
                "status": 200 if exists else 201,
                "result": "updated" if exists else "created",
            }
        except Refused as exc:
            return {**item, "status": exc.status, "error": {"type": exc.kind, "reason": exc.reason}}

    def _search(self, index: Index, body: dict[str, Any]) -> dict[str, Any]:
        check_search(index.mappings, body, self.server_version)
        hits = self.answers.pop(0) if self.answers else []
        state = self.partials.pop(0) if self.partials else {}
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            **state,
            "hits": {
                "total": {"value": len(hits), "relation": "eq"},
                "max_score": None,
                "hits": hits,
            },
        }

    def _msearch(self, index: Index, r: Recorded) -> tuple[int, Any]:
        if not r.body.endswith(b"\n"):
            raise Refused(
                400,
                "illegal_argument_exception",
                "The msearch request must be terminated by a newline [\\n]",
            )
        lines = r.ndjson()
        if len(lines) % 2:
            raise Refused(
                400, "illegal_argument_exception", "msearch takes header and body lines in pairs"
            )
        responses = []
        for body in lines[1::2]:
            try:
                if self.busy_items:
                    status = self.busy_items.pop(0)
                    raise Refused(status, "es_rejected_execution_exception", "queue capacity")
                responses.append({**self._search(index, body), "status": 200})
            except Refused as exc:
                responses.append(
                    {
                        "error": {
                            "root_cause": [{"type": exc.kind, "reason": exc.reason}],
                            "type": exc.kind,
                            "reason": exc.reason,
                        },
                        "status": exc.status,
                    }
                )
        return 200, {"took": 1, "responses": responses}


def merge(target: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge, as a partial update merges objects into the stored source."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
    return target
