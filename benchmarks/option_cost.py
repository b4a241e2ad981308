"""What the single-query latency options cost in AP@100/min(R,100) and P@10: PCA sizes, HNSW.

    python -m benchmarks.option_cost local:PATH --dataset cifar10 --dims 2048,1024,512 \
        --ef 128 --cache DIR

The BoVW vector is the L2-normalised projection on PCA components sorted by variance
(`features.bovw`), so its first p coordinates, normalised again, are exactly what a model
trained with `pca_dim = p` on the same vocabulary gives: this measures `pca_dim` 512 or 1024
on an existing index without retraining it. Queries are the dataset's test split encoded
with the index's models (cached in DIR); relevant = same label; exact search (the store's
kernel), k = 100; fusion is RRF 1:1 with the cnn list, as `cbir evaluate` runs it untuned.
At the full size the figures must equal `cbir evaluate`'s on the same index (a check).
Latency: one query's exact top-10 over all documents, median of repeats, the full size in the
same run as the reference.

HNSW (`--ef`): the same queries searched with `PATH?index=hnsw&ef_search=EF` (the graph is
built and saved in PATH on first use, as any reader of such a URL would), per method and
fused, with recall@100 against the exact top-100.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cbir.core.config import Settings
from indexing.dataset_kinds import open_dataset
from indexing.encoding import encode_batches
from indexing.fusion import fuse
from indexing.stores.base import Hit
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.topk import exact_top_k

K = 100


def query_vectors(
    url: str, dataset: str, data: str | None, settings: Settings, cache: Path
) -> dict[str, Any]:
    """Test-split vectors of every field (float32 (q, dim)) and labels, encoded once and cached."""
    store = EmbeddedStore.open(url)
    fields = store.fields
    key = "-".join(f"{m}{fields[m].fingerprint}" for m in sorted(fields))
    path = cache / f"queries-{dataset}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    ds = open_dataset(dataset, settings, data)
    records = ds.records("test")
    dirs = {m: Path(p) for m, p in store.meta["models"].items() if m in fields}
    rows: dict[str, list[np.ndarray]] = {m: [] for m in dirs}
    labels: list[str] = []
    batches = ds.iter_batches(records=records, batch_size=500)
    for result in encode_batches(batches, dirs, ray=None, show_progress=False):
        labels += [r.label for r in result.records]
        for m in dirs:
            rows[m].append(result.vectors[m])
    out = {m: np.concatenate(v).astype(np.float32) for m, v in rows.items()}
    out["labels"] = np.array(labels)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def truncated(matrix: np.ndarray, dim: int) -> np.ndarray:
    """The first `dim` coordinates of each row, L2-normalised (zero rows stay zero)."""
    part = np.ascontiguousarray(matrix[:, :dim], dtype=np.float32)
    norms = np.linalg.norm(part, axis=1, keepdims=True)
    return part / np.where(norms > 0, norms, 1)


def measures(ranked: np.ndarray, query_labels: np.ndarray, doc_labels: np.ndarray) -> dict:
    """Mean AP@100/min(R,100) and P@10 of int64 (q, 100) document positions."""
    relevant = (doc_labels[ranked] == query_labels[:, None]).astype(np.float64)
    counts = {label: int((doc_labels == label).sum()) for label in np.unique(query_labels)}
    r = np.array([min(counts[label], K) for label in query_labels], np.float64)
    precision = np.cumsum(relevant, axis=1) / np.arange(1, relevant.shape[1] + 1)
    average = (precision * relevant).sum(axis=1) / np.maximum(r, 1)
    return {"AP@100/min(R,100)": float(average.mean()), "P_10": float(relevant[:, :10].mean())}


def rrf(first: np.ndarray, second: np.ndarray, doc_ids: list[str]) -> np.ndarray:
    """RRF 1:1 of two (q, 100) position lists through `indexing.fusion.fuse`, as positions."""
    position = {d: i for i, d in enumerate(doc_ids)}
    out = []
    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        lists = {
            name: [Hit(doc_ids[p], 0.0, None, None, None) for p in ranks]
            for name, ranks in (("bovw", a), ("cnn", b))
        }
        out.append([position[h.doc_id] for h in fuse(lists, K)])
    return np.array(out, np.int64)


def single_query_ms(docs: np.ndarray, queries: np.ndarray, repeats: int) -> dict[str, float]:
    keys = np.arange(len(docs), dtype=np.int64)
    ms = []
    for q in queries[: repeats + 1]:
        began = time.perf_counter()
        exact_top_k(q[None, :], docs, 10, keys)
        ms.append((time.perf_counter() - began) * 1000)
    p50, p95 = np.percentile(ms[1:], [50, 95])
    return {"search_p50_ms": float(p50), "search_p95_ms": float(p95)}


def approximate(
    url: str,
    ef: int,
    queries: dict[str, np.ndarray],
    exact: dict[str, np.ndarray | None],
    doc_ids: list[str],
    doc_labels: np.ndarray,
) -> dict[str, Any]:
    """Measures and recall@100 vs exact of HNSW search at `ef`, per method and fused."""
    position = {d: i for i, d in enumerate(doc_ids)}
    out: dict[str, Any] = {}
    ranked = {}
    with EmbeddedStore.open(f"{url.partition('?')[0]}?index=hnsw&ef_search={ef}") as store:
        for m, full in exact.items():
            if full is None:
                continue
            began = time.perf_counter()
            found = store.search_ranked(m, queries[m], K)  # ids and scores only: no Hit objects
            seconds = time.perf_counter() - began
            ranked[m] = np.array([[position[d] for d in ids] for ids in found.id_lists()])
            recall = np.mean(
                [len(set(a) & set(b)) / len(b) for a, b in zip(ranked[m], full, strict=True)]
            )
            out[m] = {
                **measures(ranked[m], queries["labels"], doc_labels),
                f"recall_{K}_vs_exact": float(recall),
                "batch_search_s (graph build on first use included)": seconds,
            }
    if len(ranked) == 2:
        fused = rrf(ranked["bovw"], ranked["cnn"], doc_ids)
        out["fusion"] = measures(fused, queries["labels"], doc_labels)
    return out


def run(
    url: str,
    dims: list[int],
    cache: Path,
    *,
    dataset: str = "cifar10",
    data: str | None = None,
    settings: Settings | None = None,
    repeats: int = 200,
    ef_values: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Figures per PCA size of bovw (and fusion), and per HNSW ef_search; see the module."""
    settings = settings or Settings.resolve()
    queries = query_vectors(url, dataset, data, settings, cache)
    snapshot = EmbeddedStore.open(url).current()
    doc_ids = snapshot.array("doc_id").to_pylist()
    doc_labels = np.array(snapshot.array("label").to_pylist())
    docs = {m: np.asarray(v.matrix[v.doc_row]) for m, v in snapshot.fields.items()}
    keys = np.arange(len(doc_ids), dtype=np.int64)
    cnn = exact_top_k(queries["cnn"], docs["cnn"], K, keys)[1] if "cnn" in docs else None
    out: dict[str, Any] = {
        "index": url, "documents": len(doc_ids), "queries": len(queries["labels"]),
        "load_average_start": os.getloadavg(), "bovw": {},
    }  # fmt: skip
    full = None
    for dim in dims:
        d, q = truncated(docs["bovw"], dim), truncated(queries["bovw"], dim)
        ranked = exact_top_k(q, d, K, keys)[1]
        if dim == docs["bovw"].shape[1]:
            full = ranked
        figures = {"bovw": measures(ranked, queries["labels"], doc_labels)}
        if cnn is not None:
            figures["fusion"] = measures(rrf(ranked, cnn, doc_ids), queries["labels"], doc_labels)
        figures.update(single_query_ms(d, q, repeats))
        out["bovw"][dim] = figures
        print(dim, figures, file=sys.stderr)
    if cnn is not None:
        out["cnn"] = measures(cnn, queries["labels"], doc_labels)
    if ef_values and full is None:
        full = exact_top_k(queries["bovw"], docs["bovw"], K, keys)[1]
    exact = {"bovw": full, "cnn": cnn}
    out["hnsw"] = {
        ef: approximate(url, ef, queries, exact, doc_ids, doc_labels) for ef in ef_values
    }
    out["load_average_end"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="local:PATH of an index with a bovw field (and cnn)")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data", help="dataset path (folder datasets; cifar10: CBIR_CIFAR10)")
    parser.add_argument("--dims", default="2048,1024,512")
    parser.add_argument("--cache", default="/tmp/cbir-pca-cost", help="query vectors go here")
    parser.add_argument("--repeats", type=int, default=200, help="single queries timed")
    parser.add_argument("--ef", default="", help="HNSW ef_search values, e.g. 64,128")
    args = parser.parse_args(argv)
    dims = [int(d) for d in args.dims.split(",")]
    ef_values = [int(e) for e in args.ef.split(",") if e]
    result = run(
        args.store, dims, Path(args.cache), dataset=args.dataset, data=args.data,
        repeats=args.repeats, ef_values=tuple(ef_values),
    )  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
