"""Benchmarks of the indexing path with the real models: encode throughput, index writes, latency.

Each function returns a JSON-ready dict of medians (seconds, images/s, docs/s, milliseconds)
together with the reference it is compared with, measured in the same run:

- `encode_throughput`: images/s of `indexing.encoding.encode_batches` in this process (the
  reference) and on Ray (`ray_encode_throughput`), decoding and model loading included;
- `write_throughput`: `EmbeddedStore.upsert` of documents carrying every method's vector,
  against writing the same float32 bytes to a flat file with fsync (the disk's own cost);

Single-query latency is `benchmarks.query_latency`. The store for the write figures holds
random unit vectors of each method's dimension: writes cost the same whatever the vectors say.
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
from indexing.datasets import Dataset, ImageRecord
from indexing.encoding import RayOptions, encode_batches, ray_session
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
