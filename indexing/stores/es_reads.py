"""Reading an Elasticsearch store: count, get, ids_with and batched (msearch) search.

A mixin of ElasticsearchStore, kept apart to keep modules small. Every answer is checked
for shard failures and timeouts; msearch items refused as busy (429, 5xx) are retried.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import es_bodies as bodies
from indexing.stores.base import Document, Filters, Hit, StoreError, check_model
from indexing.stores.es_connection import describe_error, one_line
from indexing.stores.prepare import check_k, parse_filters, prepare_queries

# msearch item statuses worth retrying (the server was busy, not the request wrong).
RETRY_STATUSES = (429, 502, 503, 504)


class ApproximateScoresWarning(UserWarning):
    """kNN scores of a quantized index on a server without `rescore_vector` are approximate."""


class EsReads:
    """count, get, ids_with and search for ElasticsearchStore (which sets the attributes)."""

    client: Any
    index: str
    url: str
    msearch_size: int
    max_retries: int
    initial_backoff: float
    max_backoff: float
    rescore: bool
    approximate_scores: str | None

    def count(self) -> int:
        self._before_reading()
        with self._errors("count"):
            response = self.client.count(index=self.index)
        self._check_complete(response, "count")
        return int(response["count"])

    def _check_complete(self, response: Mapping[str, Any], what: str) -> None:
        """Refuse an answer from only some shards, or one cut short by a timeout."""
        shards = response.get("_shards") or {}
        if shards.get("failed"):
            causes = "; ".join(
                describe_error(f.get("reason") or {}) for f in shards.get("failures", [])[:3]
            )
            raise StoreError(
                f"Elasticsearch at {self.url} answered a {what} from only "
                f"{shards.get('successful')} of {shards.get('total')} shards "
                f"({shards['failed']} failed{': ' + causes if causes else ''}); the answer "
                "would be incomplete: check the cluster's health and retry"
            )
        if response.get("timed_out"):
            raise StoreError(
                f"Elasticsearch at {self.url} timed out on a {what} and answered with partial "
                "results; retry, or search fewer queries at a time"
            )

    def _search_one(self, params: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
        with self._errors("read"):
            response = self.client.search(index=self.index, **params)
        self._check_complete(response, what)
        return response["hits"]["hits"]

    def get(self, ids: Iterable[str]) -> dict[str, Document]:
        """Documents in small pages: metadata from doc values, vectors through `fields`."""
        ids = list(dict.fromkeys(ids))
        fields = self._known_fields()
        self._before_reading()
        page = bodies.get_page_size(sum(info.dim for info in fields.values()))
        found: dict[str, Document] = {}
        for start in range(0, len(ids), page):
            chunk = ids[start : start + page]
            for hit in self._search_one(bodies.get_search(chunk, fields), "get"):
                values = hit.get("fields", {})
                vectors = {}
                for name, info in fields.items():
                    if values.get(name):
                        vectors[name] = np.asarray(values[name], np.float32).reshape(-1)
                    elif bodies.first(values, f"empty.{name}"):
                        vectors[name] = np.zeros(info.dim, np.float32)
                found[hit["_id"]] = Document(
                    hit["_id"],
                    bodies.first(values, "path"),
                    bodies.first(values, "label"),
                    bodies.first(values, "split"),
                    vectors,
                )
        return {doc_id: found[doc_id] for doc_id in ids if doc_id in found}

    def ids_with(self, field: str) -> set[str]:
        self._field(field)
        self._before_reading()
        query = {
            "bool": {
                "should": [{"exists": {"field": field}}, {"term": {f"empty.{field}": True}}],
                "minimum_should_match": 1,
            }
        }
        ids: set[str] = set()
        after = None
        while True:
            params = bodies.search_params(
                size=bodies.MAX_HITS,
                query=query,
                source=False,
                sort=[{"doc_id": {"order": "asc"}}],
                track_total_hits=False,
            )
            if after is not None:
                params["search_after"] = after
            hits = self._search_one(params, "listing of ids")
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
        if not exact and self.approximate_scores:
            warnings.warn(self.approximate_scores, ApproximateScoresWarning, stacklevel=2)
        self._before_reading()
        requests = []
        for q in np.flatnonzero(~zero):
            if exact:
                params = bodies.exact_search(field, queries[q], k, conditions)
            else:
                params = bodies.knn_search(
                    field, queries[q], k, candidates, conditions, rescore=self.rescore
                )
            requests.append(bodies.search_body(params))
        responses = self._msearch(requests)
        answers = iter(responses)
        return [
            [] if zero[q] else bodies.hits_from(next(answers), exact, k)
            for q in range(len(queries))
        ]

    def _msearch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        for start in range(0, len(requests), self.msearch_size):
            responses.extend(self._msearch_batch(requests[start : start + self.msearch_size]))
        return responses

    def _msearch_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One msearch; items refused as busy (429, 5xx) are sent again with backoff."""
        answers: list[dict[str, Any] | None] = [None] * len(batch)
        todo = list(range(len(batch)))
        for attempt in range(self.max_retries + 1):
            searches: list[dict[str, Any]] = []
            for i in todo:
                searches.extend(({}, batch[i]))
            with self._errors("search"):
                answer = self.client.msearch(index=self.index, searches=searches)
            retry = []
            for i, item in zip(todo, answer["responses"], strict=True):
                if "error" not in item:
                    self._check_complete(item, "search")
                    answers[i] = item
                elif item.get("status") in RETRY_STATUSES and attempt < self.max_retries:
                    retry.append(i)
                else:
                    raise StoreError(
                        f"Elasticsearch at {self.url} failed a search: {error_text(item)}"
                    )
            if not retry:
                break
            todo = retry
            time.sleep(min(self.max_backoff, self.initial_backoff * 2**attempt))
        return [a for a in answers if a is not None]


def error_text(result: Mapping[str, Any]) -> str:
    """`type: reason (caused by ...)` of a bulk item or msearch response error, on one line."""
    error = result.get("error")
    if isinstance(error, dict):
        return describe_error(error)
    return one_line(error if error is not None else f"status {result.get('status')}")
