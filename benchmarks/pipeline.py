"""Benchmarks of the indexing path with the real models: encode throughput, index writes, latency.

Each function returns a JSON-ready dict of medians (seconds, images/s, docs/s, milliseconds)
together with the reference it is compared with, measured in the same run:

- `encode_throughput`: images/s of `indexing.encoding.encode_batches` in this process (the
  reference) and on Ray (`ray_encode_throughput`), decoding and model loading included;
- `write_throughput`: `EmbeddedStore.upsert` of documents carrying every method's vector,
  against writing the same float32 bytes to a flat file with fsync (the disk's own cost);
- `query_latency`: one query as `cbir search` / the web page run it (encode one image with
  the real model in this process, then `store.search`), against `faiss.IndexFlatIP.search`
  of the same vector on the same matrix.

The stores for the write and latency figures hold random unit vectors of each method's
dimension: exact search and writes cost the same whatever the vectors say, and 50,000 real
vectors would take longer to encode than the whole benchmark.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stores import unit_rows
from features.base import ModelInfo
from features.registry import load_extractor
from indexing.datasets import Dataset, ImageRecord
from indexing.encoding import RayOptions, encode_batches, ray_session
from indexing.fusion import fuse
from indexing.stores.base import Document
from indexing.stores.embedded import EmbeddedStore


def spread(records: Sequence[ImageRecord], n: int) -> list[ImageRecord]:
    """`n` records spread evenly over `records` (every label of a label-ordered split)."""
    if n >= len(records):
        return list(records)
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def _encode_once(
    dataset: Dataset,
    records: Sequence[ImageRecord],
    dirs: Mapping[str, Path],
    ray: RayOptions | None,
    batch_size: int,
) -> float:
    start = time.perf_counter()
    encoded = 0
    for result in encode_batches(
        dataset.iter_batches(records=list(records), batch_size=batch_size),
        dirs,
        ray=ray,
        show_progress=False,
    ):
        encoded += len(result.records)
    seconds = time.perf_counter() - start
    if encoded == 0:
        raise RuntimeError("no image of the benchmark sample could be decoded")
    return seconds


def encode_throughput(
    dataset: Dataset,
    records: Sequence[ImageRecord],
    dirs: Mapping[str, Path],
    repeats: int,
    batch_size: int = 250,
) -> dict[str, Any]:
    """In-process images/s per method (median of `repeats` passes over `records`)."""
    out: dict[str, Any] = {"images": len(records), "batch_size": batch_size, "methods": {}}
    for method, path in dirs.items():
        runs = [
            _encode_once(dataset, records, {method: path}, None, batch_size) for _ in range(repeats)
        ]
        seconds = statistics.median(runs)
        out["methods"][method] = {"seconds": seconds, "images_per_s": len(records) / seconds}
    return out


def ray_encode_throughput(
    dataset: Dataset,
    records: Sequence[ImageRecord],
    dirs: Mapping[str, Path],
    repeats: int,
    options: RayOptions,
    batch_size: int = 250,
) -> dict[str, Any]:
    """Ray images/s per method, beside in-process images/s measured in the same process.

    Ray is started once (its start-up time is reported apart); each pass creates the actors,
    which load the model, so that cost is inside the figure as it is in `cbir index`.
    Passes alternate between Ray and in-process so that both see the same machine load.
    """
    import ray as ray_api

    out: dict[str, Any] = {"images": len(records), "batch_size": batch_size, "methods": {}}
    start = time.perf_counter()
    with ray_session(options):
        out["ray_start_s"] = time.perf_counter() - start
        out["ray_cpus"] = int(ray_api.cluster_resources().get("CPU", 0))
        for method, path in dirs.items():
            rounds = [
                (
                    _encode_once(dataset, records, {method: path}, options, batch_size),
                    _encode_once(dataset, records, {method: path}, None, batch_size),
                )
                for _ in range(repeats)
            ]
            ray_s = statistics.median(r[0] for r in rounds)
            local_s = statistics.median(r[1] for r in rounds)
            out["methods"][method] = {
                "ray_seconds": ray_s,
                "ray_images_per_s": len(records) / ray_s,
                "in_process_seconds": local_s,
                "in_process_images_per_s": len(records) / local_s,
                "speedup": statistics.median(r[1] / r[0] for r in rounds),
            }
    return out


def write_throughput(
    fields: Mapping[str, int], n: int, repeats: int, batch: int = 1_000, workdir: Path | None = None
) -> dict[str, Any]:
    """Docs/s of upserting `n` documents with one vector per field (`batch` per commit).

    The reference writes the same float32 rows to one flat file, fsynced per batch.
    """
    store_s, flat_s = [], []
    for round_no in range(repeats):
        rng = np.random.default_rng(round_no)
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            store = EmbeddedStore(Path(tmp) / "index")
            store.create({name: ModelInfo(name, dim, "bench") for name, dim in fields.items()})
            timed_store = timed_flat = 0.0
            with open(Path(tmp) / "flat.f32", "wb") as flat:
                for first in range(0, n, batch):
                    size = min(batch, n - first)
                    rows = {name: unit_rows(rng, size, dim) for name, dim in fields.items()}
                    docs = [
                        Document(
                            f"train/{i:06d}",
                            f"img/{i:06d}.png",
                            str(i % 10),
                            "train",
                            {name: rows[name][i - first] for name in fields},
                        )
                        for i in range(first, first + size)
                    ]
                    began = time.perf_counter()
                    store.upsert(docs)
                    timed_store += time.perf_counter() - began
                    began = time.perf_counter()
                    for matrix in rows.values():
                        flat.write(matrix.tobytes())
                    flat.flush()
                    os.fsync(flat.fileno())
                    timed_flat += time.perf_counter() - began
            store.close()
        store_s.append(timed_store)
        flat_s.append(timed_flat)
    store_median, flat_median = statistics.median(store_s), statistics.median(flat_s)
    return {
        "documents": n,
        "batch": batch,
        "fields": dict(fields),
        "store_seconds": store_median,
        "store_docs_per_s": n / store_median,
        "flat_file_seconds": flat_median,
        "flat_file_docs_per_s": n / flat_median,
    }


def percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(milliseconds, dtype=np.float64), [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def query_latency(
    dataset: Dataset,
    queries: Sequence[ImageRecord],
    dirs: Mapping[str, Path],
    n: int,
    k: int = 10,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Single-query latency per method at `n` documents: encode one image + search, in-process.

    Every query is timed once (the first, a warm-up, is left out); with several methods,
    `fusion` encodes and searches with each, then fuses (what the web page's fusion does).
    """
    import faiss

    models = {m: load_extractor(path) for m, path in dirs.items()}
    images = [dataset.image(r) for r in queries]
    out: dict[str, Any] = {"documents": n, "queries": len(images) - 1, "k": k, "methods": {}}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        store = EmbeddedStore(Path(tmp) / "index")
        store.create({m: model.info for m, model in models.items()})
        rng = np.random.default_rng(0)
        for first in range(0, n, 5_000):
            size = min(5_000, n - first)
            rows = {m: unit_rows(rng, size, model.dim) for m, model in models.items()}
            store.upsert(
                Document(f"train/{i:06d}", f"img/{i:06d}.png", str(i % 10), "train",
                         {m: rows[m][i - first] for m in models})
                for i in range(first, first + size)
            )  # fmt: skip
        timings: dict[str, dict[str, list[float]]] = {}
        for method, model in models.items():
            view = store.current().fields[method]
            index = faiss.IndexFlatIP(model.dim)
            index.add(np.ascontiguousarray(view.matrix))
            times: dict[str, list[float]] = {"total": [], "encode": [], "search": [], "faiss": []}
            for image in images:
                began = time.perf_counter()
                vector = model.encode_one(image)
                encoded = time.perf_counter()
                store.search(method, vector[None, :], k, model=model.info)
                searched = time.perf_counter()
                index.search(vector[None, :], k)
                done = time.perf_counter()
                for name, seconds in (
                    ("total", searched - began),
                    ("encode", encoded - began),
                    ("search", searched - encoded),
                    ("faiss", done - searched),
                ):
                    times[name].append(seconds * 1000)
            timings[method] = {name: values[1:] for name, values in times.items()}
        if len(models) > 1:
            fused = []
            for image in images:
                began = time.perf_counter()
                lists = {
                    m: store.search(m, model.encode_one(image)[None, :], k, model=model.info)[0]
                    for m, model in models.items()
                }
                fuse(lists, k)
                fused.append((time.perf_counter() - began) * 1000)
            timings["fusion"] = {"total": fused[1:]}
        store.close()
    for method, times in timings.items():
        out["methods"][method] = {
            **percentiles(times["total"]),
            **{f"{name}_{key}": value for name in ("encode", "search", "faiss") if name in times
               for key, value in percentiles(times[name]).items()},
        }  # fmt: skip
    return out
