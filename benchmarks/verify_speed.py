"""How long `+gv` takes per query: the unverified search of the candidates (the reference),
the query's two local views, and the verification of the candidates, timed apart.

Used by benchmarks/copy_detection.py, and by `cbir bench --only verify` through it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from indexing.search import SearchService
from indexing.stores.base import Hit
from indexing.verified_search import query_views, verified_hits

PHASES = ("search", "query_views", "verify", "verify_cpu")


@dataclass(frozen=True)
class TimedQuery:
    """One query's first hits, re-ranked hits and the ms of each phase (PHASES).

    `verify_cpu` is the CPU time of this process (all its threads) during `verify`: on a
    shared machine it grows far less than the wall time when other work takes the cores.
    """

    first: list[Hit]
    verified: list[Hit]
    ms: dict[str, float]


def timed_query(service: SearchService, image: np.ndarray, method: str = "cnn") -> TimedQuery:
    """`method` then `method+gv` for one uint8 RGB image, each phase timed (service.local set)."""
    if service.local is None:
        raise ValueError("the index has no local features; build it with `cbir index --local`")
    t0 = time.perf_counter()
    first = service.search_image(image, method, service.reranking.top).hits
    t1 = time.perf_counter()
    views = query_views(image, service.local.options)
    t2, cpu = time.perf_counter(), time.process_time()
    verified, _ = verified_hits(first, views, service.local, service.reranking)
    t3, cpu = time.perf_counter(), time.process_time() - cpu
    ms = {"search": t1 - t0, "query_views": t2 - t1, "verify": t3 - t2, "verify_cpu": cpu}
    return TimedQuery(first, verified, {k: v * 1000 for k, v in ms.items()})


def summary(times: list[dict[str, float]]) -> dict[str, float]:
    """`<phase>_p50_ms` and `<phase>_p95_ms` of every phase over the queries."""
    out = {}
    for phase in PHASES:
        values = [t[phase] for t in times]
        out[f"{phase}_p50_ms"] = round(statistics.median(values), 2)
        out[f"{phase}_p95_ms"] = round(float(np.percentile(values, 95)), 2)
    return out
