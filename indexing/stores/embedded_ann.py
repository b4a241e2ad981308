"""Approximate search in the embedded store: a faiss HNSW graph over a prefix of a field's rows.

Chosen in the store URL: `local:PATH?index=hnsw&m=32&ef_construction=80&ef_search=128`.
The graph is derived data, never part of a commit: the file `ann/FILE.hnswM-EFC.ROWS.faiss`
indexes rows 0..ROWS-1 of the vector file FILE (append-only until compaction renames it), so
any such file with ROWS <= the committed rows is valid whatever crashed when. Rows past it,
the tail, are scanned exactly; stale and filtered rows are masked out of the graph search.
Graph hits are re-scored from the float32 rows, so scores are the exact cosines.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from indexing.stores import embedded_catalog as catalog
from indexing.stores.base import StoreError
from indexing.stores.topk import exact_top_k

ANN = "ann"
# Graph files: the vector file, the graph's m and ef_construction, the rows it covers.
FILE = re.compile(r"(?P<vectors>.+)\.hnsw(?P<m>\d+)-(?P<efc>\d+)\.(?P<rows>\d+)\.faiss")
# A tail longer than this (and than a tenth of the graph) is added to the graph.
TAIL_ROWS = 10_000
# Below this share of the graph's rows passing a mask, an exact scan beats the masked graph.
MIN_PASSING = 0.2
RESCORE_QUERIES = 256
# Up to this many queries a graph search runs on the calling thread only (see `_search`).
SINGLE_THREAD_QUERIES = 4


class IndexKind(enum.StrEnum):
    FLAT = "flat"  # exact scan (the default)
    HNSW = "hnsw"


@dataclasses.dataclass(frozen=True)
class AnnOptions:
    """The approximate index a store URL asks for."""

    kind: IndexKind = IndexKind.FLAT
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 128

    @property
    def approximate(self) -> bool:
        return self.kind is not IndexKind.FLAT

    def query(self) -> str:
        """The URL query string that gives these options ('' for the exact default)."""
        if not self.approximate:
            return ""
        return (
            f"?index={self.kind.value}&m={self.m}&ef_construction={self.ef_construction}"
            f"&ef_search={self.ef_search}"
        )


def parse_options(query: str, url: str) -> AnnOptions:
    """`index=hnsw&m=32` (a URL's query string) as options; StoreError naming what is wrong."""
    values: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key == "index":
            try:
                values["kind"] = IndexKind(value)
            except ValueError:
                raise StoreError(
                    f"store URL {url!r}: index={value!r}; choose one of "
                    f"{', '.join(k.value for k in IndexKind)}"
                ) from None
        elif key in ("m", "ef_construction", "ef_search"):
            low = 2 if key == "m" else 1
            if not value.isdigit() or not low <= int(value) <= 4096:
                raise StoreError(
                    f"store URL {url!r}: {key} must be an integer from {low} to 4096, got {value!r}"
                )
            values[key] = int(value)
        else:
            raise StoreError(
                f"store URL {url!r}: unknown option {key!r}; local stores take "
                "index, m, ef_construction, ef_search"
            )
    options = AnnOptions(**values)
    if not options.approximate and len(values) > ("kind" in values):
        raise StoreError(f"store URL {url!r}: m and ef_* need index=hnsw")
    return options


def _faiss():
    try:
        import faiss
    except ImportError:
        raise StoreError("index=hnsw needs faiss: pip install faiss-cpu") from None
    return faiss


def graph_files(directory: Path, vector_file: str, options: AnnOptions) -> list[tuple[int, Path]]:
    """(rows covered, path) of the graph files for `vector_file` built with `options`, most rows first."""
    found = []
    folder = directory / ANN
    if not folder.is_dir():
        return []
    for path in folder.iterdir():
        match = FILE.fullmatch(path.name)
        if (
            match
            and match["vectors"] == vector_file
            and (int(match["m"]), int(match["efc"])) == (options.m, options.ef_construction)
        ):
            found.append((int(match["rows"]), path))
    return sorted(found, reverse=True)


def new_graph(dim: int, options: AnnOptions) -> Any:
    faiss = _faiss()
    graph = faiss.IndexHNSWFlat(dim, options.m, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = options.ef_construction
    return graph


def read_graph(path: Path, *, writable: bool) -> Any:
    """A graph file; memory-mapped read-only unless `writable` (a mapped graph cannot grow)."""
    faiss = _faiss()
    flags = 0 if writable else faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
    return faiss.read_index(str(path), flags)


def extend(graph: Any, matrix: np.ndarray, rows: int, chunk: int = 50_000) -> None:
    """Add rows graph.ntotal..rows-1 of `matrix` (float32 (n, dim)) to an in-memory graph."""
    for start in range(graph.ntotal, rows, chunk):
        graph.add(np.ascontiguousarray(matrix[start : min(rows, start + chunk)]))


def save_graph(graph: Any, directory: Path, vector_file: str, options: AnnOptions) -> Path:
    """Write the graph atomically (temp file, fsync, rename), then drop its smaller predecessors."""
    faiss = _faiss()
    folder = directory / ANN
    folder.mkdir(exist_ok=True)
    name = f"{vector_file}.hnsw{options.m}-{options.ef_construction}.{graph.ntotal}.faiss"
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    faiss.write_index(graph, str(temporary))
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, folder / name)
    catalog.fsync_directory(folder)
    for rows, path in graph_files(directory, vector_file, options):
        if rows < graph.ntotal:  # readers that mapped it keep their mapping
            path.unlink(missing_ok=True)
    return folder / name


def remove_unused(directory: Path, vector_files: set[str]) -> None:
    """Delete graphs of vector files the store no longer has, and temp files of crashed writers."""
    folder = directory / ANN
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        match = FILE.fullmatch(path.name)
        if match is None or match["vectors"] not in vector_files:
            path.unlink(missing_ok=True)


def needs_extending(graph_rows: int, rows: int) -> bool:
    return rows - graph_rows > max(TAIL_ROWS, graph_rows // 10)


def use_graph(passing: int, covered: int, k: int) -> bool:
    """Whether the graph beats an exact scan when `passing` of its `covered` rows may be hits."""
    return passing > k and passing >= MIN_PASSING * covered


def approximate_top_k(
    graph: Any,
    queries: np.ndarray,
    matrix: np.ndarray,
    k: int,
    keys: np.ndarray,
    allowed: np.ndarray,
    ef_search: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`exact_top_k`'s answer, approximately: the graph for its rows, an exact scan of the tail.

    graph covers rows 0..graph.ntotal-1 of matrix (float32 (n, dim)); allowed: bool (n,).
    Returns scores float32 (q, k') (exact inner products, best first) and rows int64 (q, k');
    a query for which the graph found fewer rows ends in rows -1 (score -inf).
    """
    faiss = _faiss()
    covered = min(graph.ntotal, len(matrix))
    if covered == 0 or not use_graph(int(allowed[:covered].sum()), covered, k):
        return exact_top_k(queries, matrix, k, keys, allowed)
    bitmap = np.packbits(allowed[:covered], bitorder="little")
    params = faiss.SearchParametersHNSW()
    params.efSearch = max(ef_search, k)
    params.sel = faiss.IDSelectorBitmap(covered, faiss.swig_ptr(bitmap))
    _, found = _search(faiss, graph, np.ascontiguousarray(queries, np.float32), k, params)
    parts = [_rescore(queries, matrix, found)]
    if covered < len(matrix):
        tail_scores, tail_rows = exact_top_k(
            queries, matrix[covered:], k, keys[covered:], allowed[covered:]
        )
        parts.append((tail_scores, tail_rows + covered))
    return _merge(parts, k, keys)


def _search(faiss: Any, graph: Any, queries: np.ndarray, k: int, params: Any) -> Any:
    """`graph.search`, on this thread alone for a few queries (nothing to share out).

    An OpenMP team per call costs a wake-up of its other thread: with OMP_WAIT_POLICY=PASSIVE
    (set by the CLI) on a busy machine that took one bovw query from 2.3 to 18.5 ms (p50).
    The thread count is per calling thread in OpenMP, so other threads' searches keep theirs.
    """
    if len(queries) > SINGLE_THREAD_QUERIES:
        return graph.search(queries, k, params=params)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return graph.search(queries, k, params=params)
    finally:
        faiss.omp_set_num_threads(threads)


def _rescore(
    queries: np.ndarray, matrix: np.ndarray, found: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float32 inner products of each query with its found rows (-1: none, -inf)."""
    scores = np.full(found.shape, -np.inf, np.float32)
    for start in range(0, len(found), RESCORE_QUERIES):
        block = found[start : start + RESCORE_QUERIES]
        valid = block >= 0
        rows = matrix[np.where(valid, block, 0).ravel()].reshape(*block.shape, -1)
        block_scores = np.einsum("qkd,qd->qk", rows, queries[start : start + len(block)])
        scores[start : start + len(block)] = np.where(valid, block_scores, -np.inf)
    return scores, found


def _merge(
    parts: list[tuple[np.ndarray, np.ndarray]], k: int, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several (scores, rows) candidate lists per query: score, then key, descending."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    rows = np.concatenate([p[1] for p in parts], axis=1)
    keyed = np.where(rows >= 0, keys[np.maximum(rows, 0)], -1)
    order = np.lexsort((-keyed, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


def recall_at_k(approximate: list[list[str]], exact: list[list[str]]) -> float:
    """Mean over queries of |approximate ∩ exact| / |exact| (queries without exact hits left out).

    Each list holds one query's doc ids, best first; both searched with the same k.
    """
    shares = [len(set(a) & set(e)) / len(e) for a, e in zip(approximate, exact, strict=True) if e]
    return float(np.mean(shares)) if shares else 1.0
