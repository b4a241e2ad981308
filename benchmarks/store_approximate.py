"""What the HNSW index costs on real vectors: latency, recall@k, P@10 and AP@100/min(R,100).

    python -m benchmarks.store_approximate local:$CBIR_HOME/index --queries 500

Reads an existing index (read-only) and copies its documents into a scratch store, which is
searched exactly and through `?index=hnsw` at a few ef_search. Queries are indexed documents
(spread over the labels), left out of their own results; relevant = same label. Per method
and for RRF fusion of all methods: search-only latency p50/p95 (encoding the query image is
not included: `cbir bench --only latency` measures it), recall@k against exact, and the
change in P@10 and AP@k/min(R,k). Fusion runs its searches on one thread each, in parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from indexing.fusion import fuse
from indexing.stores.base import Document, Hit
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.embedded_ann import recall_at_k


def copy_store(source: EmbeddedStore, target: Path) -> dict[str, str | None]:
    """Write the source's documents and vectors into a new store; returns doc id -> label."""
    snapshot = source.current()
    ids, paths, labels, splits = (
        snapshot.array(name).to_pylist() for name in ("doc_id", "path", "label", "split")
    )
    with EmbeddedStore(target) as store:
        store.create({name: view.model for name, view in snapshot.fields.items()})
        for start in range(0, len(snapshot), 10_000):
            positions = range(start, min(len(snapshot), start + 10_000))
            store.upsert(
                Document(
                    ids[p], paths[p], labels[p], splits[p],
                    {name: np.array(view.matrix[view.doc_row[p]])
                     for name, view in snapshot.fields.items() if view.doc_row[p] >= 0},
                )
                for p in positions
            )  # fmt: skip
    return dict(zip(ids, labels, strict=True))


def measures(
    hits: list[list[Hit]], queries: list[str], labels: dict[str, str | None], k: int
) -> dict[str, float]:
    """Mean P@10 and AP@k/min(R,k) with the query itself left out; relevant = same label."""
    counts: dict[str | None, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    precision, average = [], []
    for query, found in zip(queries, hits, strict=True):
        ranked = [h.doc_id for h in found if h.doc_id != query][:k]
        relevant = np.array([labels[d] == labels[query] for d in ranked], float)
        r = counts[labels[query]] - 1
        precision.append(relevant[:10].sum() / 10)
        cumulative = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
        average.append(float((cumulative * relevant).sum()) / min(r, k) if r else 0.0)
    return {"P_10": float(np.mean(precision)), f"AP@{k}/min(R,{k})": float(np.mean(average))}


def timed_search(store: EmbeddedStore, field: str, vectors: np.ndarray, k: int, **options):
    """One search per query; (hit lists, milliseconds per query)."""
    hits, ms = [], []
    for vector in vectors:
        began = time.perf_counter()
        hits.append(store.search(field, vector, k, **options)[0])
        ms.append((time.perf_counter() - began) * 1000)
    return hits, ms


def percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(ms[1:], [50, 95])  # the first query warms up
    return {"p50_ms": float(p50), "p95_ms": float(p95)}


def run(
    url: str, queries: int, k: int, ef_values: list[int], workdir: str | None
) -> dict[str, Any]:
    source = EmbeddedStore.open(url)
    snapshot = source.current()
    fields = list(snapshot.fields)
    step = max(1, len(snapshot) // queries)
    chosen = [p for p in range(0, len(snapshot), step)[:queries]
              if all(v.doc_row[p] >= 0 for v in snapshot.fields.values())]  # fmt: skip
    query_ids = snapshot.values("doc_id", chosen)
    vectors = {
        name: np.array(view.matrix[view.doc_row[chosen]]) for name, view in snapshot.fields.items()
    }
    out: dict[str, Any] = {
        "source": url, "documents": len(snapshot), "queries": len(chosen), "k": k,
        "load_average_start": os.getloadavg(), "methods": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        labels = copy_store(source, Path(tmp) / "index")
        source.close()
        settings: list[tuple[str, dict[str, Any]]] = [("exact", {"exact": True})]
        settings += [(f"hnsw ef_search={ef}", {"num_candidates": ef}) for ef in ef_values]
        with EmbeddedStore.open(f"local:{Path(tmp) / 'index'}?index=hnsw") as store:
            for name in fields:
                began = time.perf_counter()
                store.search(name, vectors[name][:1], 1)
                out.setdefault("graph_build_s", {})[name] = time.perf_counter() - began
            exact: dict[str, list[list[Hit]]] = {}
            pool = ThreadPoolExecutor(len(fields))
            for label, options in settings:
                lists, row = {}, {}
                for name in fields:
                    lists[name], ms = timed_search(store, name, vectors[name], k + 1, **options)
                    exact.setdefault(name, lists[name])
                    row[name] = {
                        **percentiles(ms),
                        **measures(lists[name], query_ids, labels, k),
                        f"recall_at_{k + 1}": recall_at_k(
                            [[h.doc_id for h in x] for x in lists[name]],
                            [[h.doc_id for h in x] for x in exact[name]],
                        ),
                    }
                fused, ms = [], []
                for i in range(len(chosen)):
                    began = time.perf_counter()
                    jobs = {
                        n: pool.submit(store.search, n, vectors[n][i], k + 1, **options)
                        for n in fields
                    }
                    fused.append(fuse({n: job.result()[0] for n, job in jobs.items()}, k + 1))
                    ms.append((time.perf_counter() - began) * 1000)
                row["fusion"] = {**percentiles(ms), **measures(fused, query_ids, labels, k)}
                out["methods"][label] = row
                print(label, json.dumps(row), file=sys.stderr)
            pool.shutdown()
    out["load_average_end"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="local:PATH of an existing index (only read)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument(
        "--ef", type=lambda v: [int(x) for x in v.split(",")], default=[64, 128, 256]
    )
    parser.add_argument("--workdir", help="where the scratch copy goes (default: the temp dir)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.store, args.queries, args.k, args.ef, args.workdir), indent=2))


if __name__ == "__main__":
    main()
