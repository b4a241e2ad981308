"""Scale run of the embedded store: a million vectors, exact and HNSW, on this machine.

    python -m benchmarks.store_scale --n 1000000 --dim 512 --dir /tmp/scale  # heavy: ~30 min, ~5 GB
    python -m benchmarks.store_scale --n 100000 --dim 2048 --dir /tmp/scale
    python -m benchmarks.store_scale --small
    python -m benchmarks.store_scale --n 1000000 --dim 512 --open-only  # build + open: ~2 min

Builds the store (upserts, then the HNSW graph), then serves it from a fresh process: open
times, single-query latency p50/p95 and recall@k against the exact search of the same store
per ef_search, exact latency, exact correctness against `faiss.knn` on the same rows, resident
memory while serving, disk. Opening is also timed alone, in fresh processes, from the
columns file against loading the catalog's rows (the reference, as before the columns file);
`--open-only` builds the exact store and measures only that. Vectors are `benchmarks.stores.clustered_rows` (synthetic, with
neighbourhoods). The load average is recorded at start and end: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stores import clustered_rows, fill
from features.base import ModelInfo
from indexing.stores.embedded import EmbeddedStore

FIELD = "cnn"


def disk_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def memory_mb() -> dict[str, float]:
    """This process's resident memory (anonymous and file-backed) and its peak, MiB (Linux)."""
    wanted = {"VmRSS", "RssAnon", "RssFile", "VmHWM"}
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[f"{key}_mb"] = int(value.split()[0]) / 1024
    return out


def url(directory: Path, m: int, ef_construction: int) -> str:
    return f"local:{directory}?index=hnsw&m={m}&ef_construction={ef_construction}"


def build(
    directory: Path, n: int, dim: int, m: int, ef_construction: int, graph: bool = True
) -> dict[str, Any]:
    """Upsert n clustered unit vectors (50,000 per commit), then build and save the graph."""
    if directory.exists():
        shutil.rmtree(directory)
    began = time.perf_counter()
    with EmbeddedStore(directory) as store:
        store.create({FIELD: ModelInfo(FIELD, dim, "scale")})
        fill(store, FIELD, n, dim, 50_000, seed=1, rows=clustered_rows)
    upsert_s = time.perf_counter() - began  # closing included: it writes the columns file
    exact_disk = disk_mb(directory)
    if not graph:
        return {
            "upsert_s": upsert_s,
            "upsert_docs_per_s": n / upsert_s,
            "disk_exact_store_mb": exact_disk,
        }
    began = time.perf_counter()
    with EmbeddedStore.open(url(directory, m, ef_construction)) as store:
        store.search(FIELD, clustered_rows(np.random.default_rng(2), 1, dim), 10)
    graph_s = time.perf_counter() - began
    return {
        "upsert_s": upsert_s,
        "upsert_docs_per_s": n / upsert_s,
        "graph_build_s": graph_s,
        "disk_exact_store_mb": exact_disk,
        "disk_with_graph_mb": disk_mb(directory),
        "build_peak_rss_mb": memory_mb().get("VmHWM_mb"),
    }


# Opens the store in a fresh process: the columns file, or (`catalog`) the catalog's rows.
OPEN_PROBE = """
import json, sys, time
from indexing.stores import embedded_columns
from indexing.stores.embedded import EmbeddedStore

if sys.argv[2] == "catalog":  # the reference: what opening cost before the columns file
    embedded_columns.read_columns = lambda *args: None
    embedded_columns.write_columns = lambda *args: None
began = time.perf_counter()
store = EmbeddedStore(sys.argv[1])
documents = store.count()
opened = time.perf_counter() - began
store.get(["train/000007"])
print(json.dumps({"open_s": opened, "then_get_s": time.perf_counter() - began - opened}))
"""


def open_figures(directory: Path, repeats: int) -> dict[str, Any]:
    """Median seconds to open the store (to its document count) in a fresh process.

    Rounds alternate between the columns file and the catalog so both see the same load;
    Python's start and imports are outside the timed part. `then_get_s`: one `get` after.
    """
    rounds: dict[str, list[dict[str, float]]] = {"columns": [], "catalog": []}
    for _ in range(repeats):
        for source in rounds:
            probe = subprocess.run(
                [sys.executable, "-c", OPEN_PROBE, str(directory), source],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            rounds[source].append(json.loads(probe.stdout))
    return {
        "repeats": repeats,
        "load_average": os.getloadavg(),
        **{
            f"{source}_{key}_median": float(np.median([r[key] for r in runs]))
            for source, runs in rounds.items()
            for key in ("open_s", "then_get_s")
        },
        "columns_open_s": [r["open_s"] for r in rounds["columns"]],
        "catalog_open_s": [r["open_s"] for r in rounds["catalog"]],
    }


def latencies(run, queries: np.ndarray) -> tuple[list[float], list[Any]]:
    times, results = [], []
    for q in queries:
        began = time.perf_counter()
        results.append(run(q))
        times.append((time.perf_counter() - began) * 1000)
    return times, results


def percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(ms, [50, 95])
    return {"p50_ms": float(p50), "p95_ms": float(p95)}


def serve(
    directory: Path,
    dim: int,
    m: int,
    ef_construction: int,
    ef_values: list[int],
    queries: int,
    exact_queries: int,
    k: int,
) -> dict[str, Any]:
    """Open the built store in this (fresh) process and measure what serving it costs."""
    import faiss

    query = clustered_rows(np.random.default_rng(3), queries, dim)
    out: dict[str, Any] = {"memory_before_open": memory_mb()}
    began = time.perf_counter()
    store = EmbeddedStore.open(url(directory, m, ef_construction))
    documents = store.count()  # reads the catalog and maps the vectors
    out["open_documents_s"] = time.perf_counter() - began
    view = store.current().fields[FIELD]
    began = time.perf_counter()
    store._graph(FIELD, view)  # maps the saved graph (no growth: it covers every row)
    out["open_graph_s"] = time.perf_counter() - began
    out["documents"] = documents
    exact_ms, exact_hits = latencies(
        lambda q: store.search(FIELD, q, k, exact=True)[0], query[:exact_queries]
    )
    out["exact"] = percentiles(exact_ms[1:])
    # Exact store vs an independent kernel (faiss.knn) on the same mapped rows.
    _, reference = faiss.knn(
        query[:exact_queries], np.asarray(view.matrix), k, metric=faiss.METRIC_INNER_PRODUCT
    )
    ours = [[int(h.doc_id.rsplit("/", 1)[1]) for h in hits] for hits in exact_hits]
    out["exact_same_ids_as_faiss_knn"] = float(np.mean(np.array(ours) == reference))
    out["hnsw"] = []
    for ef in ef_values:
        ms, hits = latencies(
            lambda q, ef=ef: store.search(FIELD, q, k, num_candidates=ef)[0], query
        )
        recall = store.recall_at_k(FIELD, query[:exact_queries], hits[:exact_queries], k)
        out["hnsw"].append({"ef_search": ef, **percentiles(ms[1:]), f"recall_at_{k}": recall})
        print(f"ef_search={ef}: {out['hnsw'][-1]}", file=sys.stderr)
    out["memory_serving"] = memory_mb()
    store.close()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(args.dir) / f"scale-{args.n}x{args.dim}"
    result: dict[str, Any] = {
        "n": args.n, "dim": args.dim, "m": args.m, "ef_construction": args.ef_construction,
        "k": args.k, "queries": args.queries, "exact_queries": args.exact_queries,
        "cpus": os.cpu_count(), "load_average_start": os.getloadavg(),
        "data": "benchmarks.stores.clustered_rows: 1,000 centres, noise norm 0.6",
    }  # fmt: skip
    result["build"] = build(
        directory, args.n, args.dim, args.m, args.ef_construction, graph=not args.open_only
    )
    print(f"build: {result['build']}", file=sys.stderr)
    result["open"] = open_figures(directory, args.open_repeats)
    print(f"open: {result['open']}", file=sys.stderr)
    if args.open_only:
        result["load_average_end"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(directory)
        return result
    command = [
        sys.executable, "-m", "benchmarks.store_scale", "--serve", str(directory),
        "--dim", str(args.dim), "--m", str(args.m), "--ef-construction", str(args.ef_construction),
        "--ef", ",".join(map(str, args.ef)), "--queries", str(args.queries),
        "--exact-queries", str(args.exact_queries), "-k", str(args.k),
    ]  # fmt: skip
    served = subprocess.run(command, capture_output=True, text=True, check=False)
    sys.stderr.write(served.stderr)
    result["serve"] = (
        json.loads(served.stdout) if served.returncode == 0 else {"error": served.stderr[-2000:]}
    )
    result["load_average_end"] = os.getloadavg()
    if not args.keep:
        shutil.rmtree(directory)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument(
        "--ef", type=lambda v: [int(x) for x in v.split(",")], default=[32, 64, 128]
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--exact-queries", type=int, default=30)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--dir", default="/tmp", help="where the store is built (and removed)")
    parser.add_argument("--keep", action="store_true", help="keep the built store")
    parser.add_argument("--small", action="store_true", help="20,000 x 128: a quick check")
    parser.add_argument("--open-repeats", type=int, default=5)
    parser.add_argument(
        "--open-only", action="store_true", help="build the exact store, time opening it only"
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        served = serve(
            Path(args.serve), args.dim, args.m, args.ef_construction, args.ef,
            args.queries, args.exact_queries, args.k,
        )  # fmt: skip
        print(json.dumps(served))
        return
    if args.small:
        args.n, args.dim = 20_000, 128
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
