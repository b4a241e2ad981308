"""The embedded store (default): a directory, no server, exact cosine top-k.

Readers (any number of threads and processes) search the last committed state through
memory maps and pick up new commits on their next call. One process writes at a time
(`writer.lock`); each `upsert` / `delete` is one durable commit, so a crash, even
`kill -9` in the middle of a write, leaves the previous commit readable, and re-running
the same writes resumes without duplicates. Stale rows (replaced or deleted vectors) are
masked out and compacted away once they outnumber the live ones.

`local:PATH?index=hnsw` adds an approximate index (`embedded_ann`): searches then use it
unless called with `exact=True`; the index is derived data, so it needs no commit of its own.
So is the columns file (`embedded_columns`) from which readers map the documents at open.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import embedded_ann as ann
from indexing.stores import embedded_catalog as catalog
from indexing.stores import embedded_columns as columns
from indexing.stores import embedded_writes as writes
from indexing.stores.base import (
    Document,
    Filters,
    Hit,
    StoreError,
    VectorStore,
    check_model,
)
from indexing.stores.embedded_snapshot import FieldView, Snapshot, load_snapshot, ranked_hits
from indexing.stores.hits import RankedHits
from indexing.stores.prepare import check_k, parse_filters, prepare_queries
from indexing.stores.topk import exact_top_k


class EmbeddedStore(VectorStore):
    """A store in a local directory (`local:PATH`)."""

    def __init__(self, directory: Path | str, options: ann.AnnOptions | None = None):
        self.directory = Path(directory).expanduser()
        self.options = options or ann.AnnOptions()
        self.url = f"local:{self.directory}{self.options.query()}"
        self._graph_lock = threading.Lock()
        self._graphs: dict[str, tuple[Any, Any]] = {}  # field -> ((catalog, file), faiss graph)
        self._read_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._reader: Any = None
        self._writer: Any = None
        self._lock: catalog.WriterLock | None = None
        self._snapshot: Snapshot | None = None
        self._reader_identity: tuple[int, int] | None = None  # the catalog file _reader opened

    @classmethod
    def open(cls, url: str) -> EmbeddedStore:
        """`local:PATH`, or `local:PATH?index=hnsw&m=32&ef_construction=80&ef_search=128`."""
        path, _, query = url.removeprefix("local:").partition("?")
        if not path:
            raise StoreError("store URL 'local:' names no directory; use local:PATH")
        return cls(path, ann.parse_options(query, url))

    # -- reading ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.directory / catalog.CATALOG).is_file()

    def current(self) -> Snapshot:
        """The last committed state (reloaded when another commit happened since)."""
        if not self.exists():
            raise StoreError(
                f"no index at {self.directory}; build one with `cbir index` (or check CBIR_STORE)"
            )
        with self._read_lock:
            identity = self._catalog_identity()
            if self._reader is not None and identity != self._reader_identity:
                # Dropped and built again by another store object or process: our connection
                # still reads the deleted catalog, so open the new one.
                self._reader.close()
                self._reader, self._snapshot = None, None
            if self._reader is None:
                self._reader = catalog.connect(self.directory, writer=False)
                self._reader_identity = identity
            latest = catalog.generation(self._reader)
            if self._snapshot is None or self._snapshot.generation != latest:
                self._snapshot = self._load()
            return self._snapshot

    def _catalog_identity(self) -> tuple[int, int]:
        try:
            status = (self.directory / catalog.CATALOG).stat()
        except FileNotFoundError:
            raise StoreError(f"the index at {self.directory} was deleted meanwhile") from None
        return status.st_dev, status.st_ino

    def _load(self) -> Snapshot:
        for _ in range(4):
            try:
                return load_snapshot(self._reader, self.directory)
            except FileNotFoundError:
                continue  # a compaction replaced a vector file between catalog read and map
        return load_snapshot(self._reader, self.directory)

    @property
    def fields(self) -> dict[str, ModelInfo]:
        if not self.exists():
            return {}
        return {name: view.model for name, view in self.current().fields.items()}

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.current().meta) if self.exists() else {}

    def count(self) -> int:
        return len(self.current())

    def get(self, ids: Iterable[str]) -> dict[str, Document]:
        snapshot = self.current()
        found = {}
        for doc_id in ids:
            position = snapshot.position_of(doc_id)
            if position is None:
                continue
            vectors = {
                name: np.array(view.matrix[view.doc_row[position]])
                for name, view in snapshot.fields.items()
                if view.doc_row[position] >= 0
            }
            found[doc_id] = Document(
                doc_id,
                snapshot.value("path", position),
                snapshot.value("label", position),
                snapshot.value("split", position),
                vectors,
            )
        return found

    def ids_with(self, field: str) -> set[str]:
        snapshot = self.current()
        view = self._field(snapshot, field)
        return set(snapshot.values("doc_id", np.flatnonzero(view.doc_row >= 0)))

    def search(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        model: ModelInfo | None = None,
        exact: bool | None = None,
        num_candidates: int | None = None,
    ) -> list[list[Hit]]:
        """Cosine top-k: exact, or from the approximate index the URL chose unless `exact`.

        `num_candidates` is the graph's ef_search for this call (default: the URL's).
        Scores are exact cosines either way. The hits of `search_ranked`'s arrays.
        """
        return self.search_ranked(
            field, vectors, k, filters, model=model, exact=exact, num_candidates=num_candidates
        ).hit_lists()

    def search_ranked(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        model: ModelInfo | None = None,
        exact: bool | None = None,
        num_candidates: int | None = None,
    ) -> RankedHits:
        """`search` as arrays: doc ids and scores straight from the top-k, no `Hit` objects."""
        k = check_k(k)
        conditions = parse_filters(filters)
        snapshot = self.current()
        view = self._field(snapshot, field)
        if model is not None:
            check_model(field, view.model, model, self.url)
        queries, zero = prepare_queries(vectors, field, view.model.dim)
        allowed = view.searchable
        passing = snapshot.passing(conditions)
        if passing is not None:
            rows = np.flatnonzero(allowed)
            allowed = allowed.copy()
            allowed[rows] = passing[view.row_position[rows]]
        if self.options.approximate and not exact:
            scores, rows = ann.approximate_top_k(
                self._graph(field, view),
                queries,
                view.matrix,
                k,
                view.row_position,
                allowed,
                num_candidates or self.options.ef_search,
            )
        else:
            scores, rows = exact_top_k(queries, view.matrix, k, view.row_position, allowed)
        return ranked_hits(snapshot, view, scores, rows, zero, k)

    @property
    def approximate(self) -> bool:
        """Whether searches use an approximate index unless asked for `exact=True`."""
        return self.options.approximate

    def recall_at_k(
        self,
        field: str,
        vectors: np.ndarray,
        hits: list[list[Hit]] | RankedHits,
        k: int,
        model: ModelInfo | None = None,
        filters: Filters | None = None,
    ) -> float:
        """Recall@k of `hits` (searched approximately for `vectors`) against exact search."""
        exact = self.search_ranked(field, vectors, k, filters, model=model, exact=True)
        if isinstance(hits, RankedHits):
            found = [ids[:k] for ids in hits.id_lists()]
        else:
            found = [[h.doc_id for h in row[:k]] for row in hits]
        return ann.recall_at_k(found, exact.id_lists())

    def _graph(self, field: str, view: FieldView) -> Any:
        """The field's approximate index, read (memory-mapped), grown or built as needed.

        A graph that lags far behind the committed rows is grown in memory and saved when
        this process writes the store, or can take its writer lock for a moment.
        """
        rows = len(view.matrix)
        key = (self._reader_identity, view.file)
        with self._graph_lock:
            cached, graph = self._graphs.get(field, (None, None))
            if cached == key and not ann.needs_extending(graph.ntotal, rows):
                return graph
            usable = [
                f for f in ann.graph_files(self.directory, view.file, self.options) if f[0] <= rows
            ]
            graph = None
            for _, path in usable:
                with contextlib.suppress(RuntimeError):  # a writer replaced it meanwhile
                    graph = ann.read_graph(path, writable=False)
                    break
            if graph is None or ann.needs_extending(graph.ntotal, rows):
                graph = self._grow(view, usable)
            self._graphs[field] = (key, graph)
            return graph

    def _grow(self, view: FieldView, usable: list[tuple[int, Path]]) -> Any:
        """A writable graph of all the view's rows, saved if the writer lock is ours or free."""
        graph = None
        for _, path in usable:
            with contextlib.suppress(RuntimeError):
                graph = ann.read_graph(path, writable=True)
                break
        if graph is None:
            graph = ann.new_graph(view.model.dim, self.options)
        ann.extend(graph, view.matrix, len(view.matrix))
        try:
            lock = None if self._lock is not None else catalog.WriterLock(self.directory)
        except StoreError:
            return graph  # another process writes: it saves its own graph
        try:
            ann.save_graph(graph, self.directory, view.file, self.options)
        finally:
            if lock is not None:
                lock.release()
        return graph

    def _save_graphs(self) -> None:
        """On `close` of a writer: graphs of all committed rows, saved (none while writing).

        Growing and saving after every commit would rewrite the graph file many times over
        during a bulk load; meanwhile searches scan the tail exactly or grow it in memory.
        """
        if not self.options.approximate or self._lock is None or not self.exists():
            return
        snapshot = self.current()
        for name, view in snapshot.fields.items():
            graph = self._graph(name, view)
            if graph.ntotal < len(view.matrix):
                with self._graph_lock:
                    usable = ann.graph_files(self.directory, view.file, self.options)
                    self._graphs[name] = (
                        (self._reader_identity, view.file),
                        self._grow(view, usable),
                    )

    def _field(self, snapshot: Snapshot, field: str) -> FieldView:
        try:
            return snapshot.fields[field]
        except KeyError:
            known = ", ".join(sorted(snapshot.fields)) or "none"
            raise StoreError(
                f"{self.url} has no field {field!r} (fields: {known}); index it first"
            ) from None

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """Hold the thread lock and, from the first write on, the process-wide writer lock."""
        with self._write_lock:
            if self._lock is None:
                if self.directory.exists() and not self.directory.is_dir():
                    raise StoreError(f"{self.directory} is not a directory; choose another path")
                if (
                    self.directory.is_dir()
                    and not self.exists()
                    and any(
                        p.name not in (catalog.LOCK, catalog.VECTORS, ann.ANN, columns.COLUMNS)
                        for p in self.directory.iterdir()
                    )
                ):
                    raise StoreError(
                        f"{self.directory} is not empty and holds no cbir store; choose another path"
                    )
                (self.directory / catalog.VECTORS).mkdir(parents=True, exist_ok=True)
                self._lock = catalog.WriterLock(self.directory)
                self._writer = catalog.connect(self.directory, writer=True)
                writes.recover(self._writer, self.directory)
            yield self._writer

    def create(
        self, fields: Mapping[str, ModelInfo], meta: Mapping[str, Any] | None = None
    ) -> None:
        with self._writing() as conn:
            writes.add_fields(conn, self.directory, fields, meta, self.url)

    def upsert(self, documents: Iterable[Document]) -> int:
        with self._writing() as conn:
            written, fields = writes.write_documents(conn, self.directory, documents, self.url)
            for name in writes.stale_fields(conn, fields):
                writes.compact_field(conn, self.directory, name)
            return written

    def delete(self, ids: Iterable[str]) -> int:
        with self._writing() as conn:
            deleted = writes.delete_documents(conn, ids)
            if deleted:
                for name in writes.stale_fields(conn, catalog.read_fields(conn)):
                    writes.compact_field(conn, self.directory, name)
            return deleted

    def compact(self, field: str) -> None:
        """Rewrite a field's vectors without its stale rows (done by itself when they pile up)."""
        with self._writing() as conn:
            self._field(self.current(), field)
            writes.compact_field(conn, self.directory, field)

    def drop(self) -> None:
        """Delete the store's files (only those a store has) and its directory if left empty."""
        if not self.exists():
            return
        with self._writing():
            self._close_connections()
            writes.remove_store_files(self.directory)
            self._release_lock()

    def close(self) -> None:
        with self._write_lock:
            self._save_graphs()
            if self._lock is not None and self.exists():
                with contextlib.suppress(StoreError):  # damaged: the next reader says so
                    self.current()  # loads the catalog once and writes the columns file
            self._close_connections()
            self._release_lock()

    def _close_connections(self) -> None:
        with self._read_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()
            self._reader = self._writer = None
            self._snapshot = None
        with self._graph_lock:
            self._graphs.clear()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
