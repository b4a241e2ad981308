"""Would float16 / int8 storage speed up one exact query here? The scan per storage type.

    python -m benchmarks.scan_precision --n 50000 --dim 2048 --repeats 30

One query's top-10 over n unit vectors: the store's float32 kernel (`exact_top_k`, the
reference), `faiss.IndexFlatIP`, faiss scalar quantizers (fp16, 8bit: the codes
a float16 / int8 store would scan, whose shortlist would then be re-scored in float32), and
float32 at a quarter of the dimensions (what PCA to dim/4 would scan). Rounds interleave the
kinds so that all see the same machine load; medians and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.stores import unit_rows
from indexing.stores.topk import exact_top_k


def kinds(matrix: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Name -> a function searching one query (float32 (1, dim)): int64 (1, 10) row ids."""
    import faiss

    n, dim = matrix.shape
    keys = np.arange(n, dtype=np.int64)
    quarter = np.ascontiguousarray(matrix[:, : dim // 4])
    flat = faiss.IndexFlatIP(dim)
    flat.add(matrix)
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "store float32 (exact_top_k)": lambda q: exact_top_k(q, matrix, 10, keys)[1],
        "faiss IndexFlatIP float32": lambda q: flat.search(q, 10)[1],
        f"store float32 at {dim // 4} dims": (
            lambda q: exact_top_k(q[:, : dim // 4], quarter, 10, keys)[1]
        ),
    }
    # QT_8bit_direct is left out: this faiss build returns all-zero scores for it with IP.
    for name in ("QT_fp16", "QT_8bit"):
        index = faiss.IndexScalarQuantizer(
            dim, getattr(faiss.ScalarQuantizer, name), faiss.METRIC_INNER_PRODUCT
        )
        index.train(matrix)
        index.add(matrix)
        out[f"faiss IndexScalarQuantizer {name}"] = lambda q, index=index: index.search(q, 10)[1]
    return out


def run(n: int, dim: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    matrix = unit_rows(rng, n, dim)
    # Near copies of stored rows: every kind should find that row first.
    planted = rng.choice(n, repeats + 1, replace=False)
    queries = matrix[planted] + 0.3 * unit_rows(rng, repeats + 1, dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    searches = kinds(matrix)
    ms: dict[str, list[float]] = {name: [] for name in searches}
    found: dict[str, list[bool]] = {name: [] for name in searches}
    load_start = os.getloadavg()
    for q, row in zip(queries, planted, strict=True):
        for name, search in searches.items():
            began = time.perf_counter()
            ids = search(q[None, :])
            ms[name].append((time.perf_counter() - began) * 1000)
            found[name].append(int(ids[0, 0]) == row)
    reference = float(np.median(ms["store float32 (exact_top_k)"][1:]))
    return {
        "n": n, "dim": dim, "queries": repeats, "cpus": os.cpu_count(),
        "load_average_start": load_start, "load_average_end": os.getloadavg(),
        "kinds": {
            name: {
                "p50_ms": float(np.median(times[1:])),
                "p95_ms": float(np.percentile(times[1:], 95)),
                "vs_store_float32": float(np.median(times[1:])) / reference,
                "planted_row_first": float(np.mean(found[name])),
            }
            for name, times in ms.items()
        },
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n, args.dim, args.repeats), indent=2))


if __name__ == "__main__":
    main()
