"""Single-query latency, end to end, per method and per embedded-store option, at n documents.

A query is what `cbir search` and the web page run: encode one image with the real model in
this process, search the store, and for fusion do that for every method (in parallel
threads, as `SearchService` does) and fuse. The same queries run against the exact store
(beside `faiss.IndexFlatIP.search` of the same vector: the reference) and against the same
documents opened with each URL option, e.g. `?index=hnsw&ef_search=128`.

The documents are the first n of an existing index whose fields the same models built
(`source`, e.g. CBIR_STORE: real vectors, which is what an approximate index's speed depends
on), else random unit vectors (then only the exact store's figures mean anything).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stores import unit_rows
from features.base import Extractor
from indexing.methods import FUSION
from indexing.stores.base import Document, StoreError
from indexing.stores.embedded import EmbeddedStore

HNSW = "?index=hnsw&ef_search=128"


def percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(milliseconds, dtype=np.float64), [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def fill(directory: Path, models: Mapping[str, Extractor], n: int, source: str | None) -> str:
    """Write n documents with every method's vector; returns where the vectors came from."""
    with EmbeddedStore(directory) as store:
        store.create({m: model.info for m, model in models.items()})
        copied = _copy(store, models, n, source) if source else 0
        if copied:
            return f"the first {copied:,} documents of {source}"
        rng = np.random.default_rng(0)
        for first in range(0, n, 5_000):
            size = min(5_000, n - first)
            rows = {m: unit_rows(rng, size, model.dim) for m, model in models.items()}
            store.upsert(
                Document(f"train/{i:06d}", f"img/{i:06d}.png", str(i % 10), "train",
                         {m: rows[m][i - first] for m in models})
                for i in range(first, first + size)
            )  # fmt: skip
    return "random unit vectors"


def _copy(store: EmbeddedStore, models: Mapping[str, Extractor], n: int, source: str) -> int:
    """Copy up to n documents of `source` holding every method's vector (0: unusable source)."""
    if not source.startswith("local:"):
        return 0
    try:
        origin = EmbeddedStore.open(source.partition("?")[0])
        snapshot = origin.current()
    except StoreError:
        return 0
    fields = snapshot.fields
    if any(m not in fields or fields[m].model != model.info for m, model in models.items()):
        return 0
    complete = np.ones(len(snapshot), bool)
    for m in models:
        complete &= fields[m].doc_row >= 0
    chosen = np.flatnonzero(complete)[:n]
    for first in range(0, len(chosen), 5_000):
        part = chosen[first : first + 5_000]
        ids, paths, labels, splits = (
            snapshot.values(c, part) for c in ("doc_id", "path", "label", "split")
        )
        rows = {m: np.asarray(fields[m].matrix[fields[m].doc_row[part]]) for m in models}
        store.upsert(
            Document(ids[i], paths[i], labels[i], splits[i], {m: rows[m][i] for m in models})
            for i in range(len(part))
        )
    origin.close()
    return len(chosen)


def timed(
    store: EmbeddedStore, models: Mapping[str, Extractor], images: list[np.ndarray], k: int,
    reference: bool,
) -> dict[str, Any]:  # fmt: skip
    """Per method: total, encode and search percentiles (and faiss's, with `reference`)."""
    import faiss

    from indexing.search import SearchService

    figures: dict[str, Any] = {}
    for method, model in models.items():
        info = model.info  # hashes the learned state: once, as SearchService does
        index = None
        if reference:
            index = faiss.IndexFlatIP(model.dim)
            index.add(np.ascontiguousarray(store.current().fields[method].matrix))
        times: dict[str, list[float]] = {"total": [], "encode": [], "search": [], "faiss": []}
        for image in images:
            began = time.perf_counter()
            vector = model.encode_one(image)
            encoded = time.perf_counter()
            store.search(method, vector[None, :], k, model=info)
            searched = time.perf_counter()
            times["total"].append(searched - began)
            times["encode"].append(encoded - began)
            times["search"].append(searched - encoded)
            if index is not None:
                index.search(vector[None, :], k)
                times["faiss"].append(time.perf_counter() - searched)
        figures[method] = {
            **percentiles([1000 * s for s in times["total"][1:]]),  # the first warms up
            **{f"{name}_{key}": value for name in ("encode", "search", "faiss") if times[name]
               for key, value in percentiles([1000 * s for s in times[name][1:]]).items()},
        }  # fmt: skip
    if len(models) > 1:
        service = SearchService(store, models, None)
        fused = []
        for image in images:
            began = time.perf_counter()
            service.search_image(image, FUSION, k)
            fused.append((time.perf_counter() - began) * 1000)
        service.close()  # also the store's connections; the caller may reopen them
        figures[FUSION] = {**percentiles(fused[1:]), "methods_in_parallel": True}
    return figures


def query_latency(
    images: list[np.ndarray],
    models: Mapping[str, Extractor],
    n: int,
    directory: Path,
    k: int = 10,
    options: Sequence[str] = (HNSW,),
    source: str | None = None,
) -> dict[str, Any]:
    """Latency per method on the exact store, then per store URL option (`?index=hnsw...`)."""
    out: dict[str, Any] = {
        "documents": n, "queries": len(images) - 1, "k": k,
        "vectors": fill(directory, models, n, source),
    }  # fmt: skip
    with EmbeddedStore(directory) as store:
        out["documents"] = store.count()
        out["methods"] = timed(store, models, images, k, reference=True)
    out["store_options"] = {}
    for query in options:
        with EmbeddedStore.open(f"local:{directory}{query}") as store:
            began = time.perf_counter()
            for method, model in models.items():  # builds and saves each field's index
                store.search(method, np.ones(model.dim, np.float32), 1)
            built = time.perf_counter() - began
        # Served as a server would: a store opened afresh, the saved indexes mapped.
        with EmbeddedStore.open(f"local:{directory}{query}") as store:
            out["store_options"][query] = {
                "index_build_s": built,
                "methods": timed(store, models, images, k, reference=False),
            }
    return out
