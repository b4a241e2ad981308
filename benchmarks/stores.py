"""Embedded-store benchmarks: search against faiss.IndexFlatIP, open time, write throughput.

    python -m benchmarks.stores            # the sizes of issue #4 (needs ~2 GB of disk, minutes)
    python -m benchmarks.stores --small    # a quick run on small sizes

Every figure is a median over `repeats` runs. The faiss reference is measured in the same
process on the same data, interleaved round by round with our search, and the ratio is the
median of the per-round ratios, so that a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cbir.core.progress import summary_line
from features.base import ModelInfo
from indexing.stores.base import Document
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.topk import exact_top_k, search_threads


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    return statistics.median(seconds(run) for _ in range(repeats))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def clustered_rows(
    rng: np.random.Generator, n: int, dim: int, clusters: int = 1_000, spread: float = 0.6
) -> np.ndarray:
    """Unit rows drawn around `clusters` random centres (noise of norm `spread` per row).

    Image embeddings have neighbourhoods; uniform random vectors in 512 dimensions do not (every
    point is nearly equally far from every other), so graph recall on them says little.
    The centres depend only on (dim, clusters), so queries drawn later share them.
    """
    centres = unit_rows(np.random.default_rng([dim, clusters]), clusters, dim)
    noise = unit_rows(rng, n, dim) * np.float32(spread)
    rows = centres[rng.integers(0, clusters, n)] + noise
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fill(
    store: EmbeddedStore,
    field: str,
    n: int,
    dim: int,
    batch: int,
    seed: int,
    rows: Callable[[np.random.Generator, int, int], np.ndarray] = unit_rows,
) -> None:
    """Upsert n documents with unit vectors (`rows(rng, n, dim)`) in `field`, `batch` per commit."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        matrix = rows(rng, min(batch, n - start), dim)
        store.upsert(
            Document(f"train/{i:06d}", f"img/{i:06d}.png", str(i % 10), "train", {field: row})
            for i, row in zip(range(start, start + len(matrix)), matrix, strict=True)
        )


def search_vs_faiss(
    n: int = 50_000, dim: int = 512, queries: int = 10_000, k: int = 100, repeats: int = 5
) -> dict[str, Any]:
    """Batched exact search: the embedded store's two APIs (and its kernel) vs faiss.IndexFlatIP.

    `store.search` returns a list of `Hit` tuples per query (a million of them here);
    `store.search_ranked` returns the same ranking as arrays (`RankedHits`), as faiss does.
    """
    import faiss

    rng = np.random.default_rng(0)
    query = unit_rows(rng, queries, dim)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(tmp) / "index")
        store.create({"cnn": ModelInfo("cnn", dim, "bench")})
        fill(store, "cnn", n, dim, 5_000, seed=1)
        view = store.current().fields["cnn"]
        matrix = np.array(view.matrix)
        index = faiss.IndexFlatIP(dim)
        index.add(matrix)
        # Interleaved, so that all see the same load on a shared machine; ratios are per round.
        rounds = [
            (
                seconds(lambda: index.search(query, k)),
                seconds(lambda: store.search("cnn", query, k)),
                seconds(lambda: store.search_ranked("cnn", query, k)),
                seconds(lambda: exact_top_k(query, view.matrix, k, view.row_position)),
            )
            for _ in range(repeats)
        ]
        faiss_s, store_s, ranked_s, kernel_s = (
            statistics.median(r[i] for r in rounds) for i in range(4)
        )
        _, faiss_ids = index.search(query[:100], k)
        _, rows = exact_top_k(query[:100], view.matrix, k, view.row_position)
        ranked = store.search_ranked("cnn", query[:100], k)
        same = ranked.hit_lists() == store.search("cnn", query[:100], k)
        store.close()
    ratio = {
        name: statistics.median(r[i] / r[0] for r in rounds)
        for i, name in ((1, "search"), (2, "search_ranked"), (3, "kernel"))
    }
    print(
        f"search {queries:,} x {n:,} x {dim}, k={k}, median of {repeats} interleaved rounds: "
        f"faiss.IndexFlatIP {faiss_s:.2f} s; store.search (Hit lists) {store_s:.2f} s, "
        f"{ratio['search']:.2f}x; store.search_ranked (arrays) {ranked_s:.2f} s, "
        f"{ratio['search_ranked']:.2f}x; kernel {kernel_s:.2f} s, {ratio['kernel']:.2f}x "
        f"(load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after)",
        file=sys.stderr,
    )
    return {
        "n": n,
        "dim": dim,
        "queries": queries,
        "k": k,
        "apis": {
            "faiss_IndexFlatIP_s": "faiss.IndexFlatIP.search: scores and ids, two arrays",
            "embedded_search_s": "EmbeddedStore.search: a list of Hit tuples per query",
            "embedded_search_ranked_s": "EmbeddedStore.search_ranked: RankedHits arrays",
            "embedded_kernel_s": "indexing.stores.topk.exact_top_k alone: rows and scores",
        },
        "faiss_IndexFlatIP_s": faiss_s,
        "embedded_search_s": store_s,
        "embedded_search_ranked_s": ranked_s,
        "embedded_kernel_s": kernel_s,
        "ratio_search_to_faiss": ratio["search"],
        "ratio_search_ranked_to_faiss": ratio["search_ranked"],
        "ratio_kernel_to_faiss": ratio["kernel"],
        "rounds": repeats,
        "rounds_s": [
            dict(zip(("faiss", "search", "search_ranked", "kernel"), r, strict=True))
            for r in rounds
        ],
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "same_ids_as_faiss": float((rows == faiss_ids).mean()),
        "search_ranked_equals_search": same,
        "faiss_threads": faiss.omp_get_max_threads(),
        "thread_pools": thread_pools(),
        "search_threads": search_threads(),
    }


def thread_pools() -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process and their thread counts."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl is not installed (it comes with scikit-learn)"}]
    keys = ("user_api", "internal_api", "num_threads", "version", "threading_layer", "filepath")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def approximate_tradeoff(
    n: int = 50_000,
    dim: int = 512,
    queries: int = 1_000,
    k: int = 10,
    m: int = 32,
    ef_construction: int = 80,
    ef_values: tuple[int, ...] = (16, 32, 64, 128, 256),
    workdir: Path | None = None,
) -> dict[str, Any]:
    """QPS and recall@k of the HNSW index (`?index=hnsw`) per ef_search, beside exact search.

    Clustered synthetic unit vectors (`clustered_rows`); one query per call, as the web page
    searches; recall@k is against the exact search of the same store.
    """
    rng = np.random.default_rng(11)
    query = clustered_rows(rng, queries, dim)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "index"
        with EmbeddedStore(path) as store:
            store.create({"cnn": ModelInfo("cnn", dim, "bench")})
            fill(store, "cnn", n, dim, 10_000, seed=12, rows=clustered_rows)
        url = f"local:{path}?index=hnsw&m={m}&ef_construction={ef_construction}"
        with EmbeddedStore.open(url) as store:
            build_s = seconds(
                lambda: store.search("cnn", query[:1], k)
            )  # builds and saves the graph
        result: dict[str, Any] = {
            "n": n, "dim": dim, "queries": queries, "k": k, "m": m,
            "ef_construction": ef_construction, "graph_build_s": build_s,
            "data": "clustered_rows: 1,000 centres, noise norm 0.6", "settings": [],
        }  # fmt: skip
        with EmbeddedStore.open(url) as store:
            exact_s = seconds(lambda: [store.search("cnn", q, k, exact=True) for q in query])
            result["exact_qps"] = queries / exact_s
            for ef in ef_values:
                began = time.perf_counter()
                lists = [store.search("cnn", q, k, num_candidates=ef)[0] for q in query]
                took = time.perf_counter() - began
                recall = store.recall_at_k("cnn", query, lists, k)
                result["settings"].append(
                    {"ef_search": ef, "qps": queries / took, "recall": recall}
                )
                print(
                    f"hnsw m={m} ef_search={ef}: {queries / took:,.0f} q/s, recall@{k} {recall:.3f} "
                    f"(exact {queries / exact_s:,.0f} q/s)",
                    file=sys.stderr,
                )
    return result


def open_and_write(
    n: int = 50_000,
    fields: tuple[tuple[str, int], ...] = (("bovw", 4096), ("cnn", 512)),
    open_dim: int = 2048,
    batch: int = 1_000,
    repeats: int = 5,
) -> dict[str, Any]:
    """Write throughput (one field after another, `batch` docs per commit) and open time."""
    result: dict[str, Any] = {"n": n, "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(tmp) / "cifar-like")
        store.create({name: ModelInfo(name, dim, "bench") for name, dim in fields})
        for seed, (name, dim) in enumerate(fields):
            start = time.perf_counter()
            fill(store, name, n, dim, batch, seed)
            seconds = time.perf_counter() - start
            print(summary_line(f"write {name} ({dim} dims)", n, seconds, "docs"), file=sys.stderr)
            result[f"write_{name}_{dim}d_s"] = seconds
            result[f"write_{name}_{dim}d_docs_per_s"] = n / seconds
        store.close()

        url = Path(tmp) / "open"
        store = EmbeddedStore(url)
        store.create({"field": ModelInfo("field", open_dim, "bench")})
        fill(store, "field", n, open_dim, 5_000, seed=7)
        store.close()
        one = unit_rows(np.random.default_rng(3), 1, open_dim)

        def open_store() -> None:
            with EmbeddedStore(url) as opened:
                opened.count()

        def open_and_search() -> None:
            with EmbeddedStore(url) as opened:
                opened.search("field", one, 10)

        result[f"open_{n}x{open_dim}_s"] = median_seconds(open_store, repeats)
        result[f"open_and_first_search_{n}x{open_dim}_s"] = median_seconds(open_and_search, repeats)
    return result


def run(small: bool = False) -> dict[str, Any]:
    """All store benchmarks; `small` shrinks every size for a quick check."""
    if small:
        return {
            "search": search_vs_faiss(n=5_000, dim=128, queries=1_000, k=10, repeats=3),
            "approximate": approximate_tradeoff(n=5_000, dim=128, queries=200),
            "store": open_and_write(n=5_000, fields=(("bovw", 256), ("cnn", 64)), open_dim=256),
        }
    return {
        "search_k10": search_vs_faiss(k=10),
        "search_k100": search_vs_faiss(k=100),
        "approximate": approximate_tradeoff(),
        "store": open_and_write(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes, a quick check")
    args = parser.parse_args(argv)
    print(json.dumps(run(small=args.small), indent=2))


if __name__ == "__main__":
    main()
