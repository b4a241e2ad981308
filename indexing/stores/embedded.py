"""The embedded store (default): a directory, no server, exact cosine top-k.

Readers (any number of threads and processes) search the last committed state through
memory maps and pick up new commits on their next call. One process writes at a time
(`writer.lock`); each `upsert` / `delete` is one durable commit, so a crash, even
`kill -9` in the middle of a write, leaves the previous commit readable, and re-running
the same writes resumes without duplicates. Stale rows (replaced or deleted vectors) are
masked out and compacted away once they outnumber the live ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import embedded_catalog as catalog
from indexing.stores.base import (
    MAX_DIM,
    Document,
    Filters,
    Hit,
    ModelMismatchError,
    StoreError,
    VectorStore,
    check_field_name,
    check_model,
    describe_model,
)
from indexing.stores.embedded_snapshot import Snapshot, load_snapshot
from indexing.stores.prepare import check_k, parse_filters, prepare_documents, prepare_queries
from indexing.stores.topk import exact_top_k

# Compact a field once it has more stale rows than this and than live ones.
MIN_STALE_ROWS = 1024
COPY_ROWS = 8192


class EmbeddedStore(VectorStore):
    """A store in a local directory (`local:PATH`)."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory).expanduser()
        self.url = f"local:{self.directory}"
        self._read_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._reader: Any = None
        self._writer: Any = None
        self._lock: catalog.WriterLock | None = None
        self._snapshot: Snapshot | None = None

    @classmethod
    def open(cls, url: str) -> EmbeddedStore:
        path = url.removeprefix("local:")
        if not path:
            raise StoreError("store URL 'local:' names no directory; use local:PATH")
        return cls(path)

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
            if self._reader is None:
                self._reader = catalog.connect(self.directory, writer=False)
            latest = catalog.generation(self._reader)
            if self._snapshot is None or self._snapshot.generation != latest:
                self._snapshot = self._load()
            return self._snapshot

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
            position = snapshot.position.get(doc_id)
            if position is None:
                continue
            vectors = {
                name: np.array(view.matrix[view.doc_row[position]])
                for name, view in snapshot.fields.items()
                if view.doc_row[position] >= 0
            }
            found[doc_id] = Document(
                doc_id,
                snapshot.paths[position],
                snapshot.labels[position],
                snapshot.splits[position],
                vectors,
            )
        return found

    def ids_with(self, field: str) -> set[str]:
        snapshot = self.current()
        view = self._field(snapshot, field)
        return {snapshot.doc_ids[p] for p in np.flatnonzero(view.doc_row >= 0)}

    def search(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        model: ModelInfo | None = None,
        exact: bool = True,
        num_candidates: int | None = None,
    ) -> list[list[Hit]]:
        """Exact cosine top-k; `exact` and `num_candidates` are accepted and change nothing."""
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
        scores, rows = exact_top_k(queries, view.matrix, k, view.row_position, allowed)
        results = []
        for q in range(len(queries)):
            if zero[q]:
                results.append([])  # a zero vector has no cosine with anything
                continue
            positions = view.row_position[rows[q]]
            results.append(
                [
                    Hit(
                        snapshot.doc_ids[p],
                        float(s),
                        snapshot.labels[p],
                        snapshot.paths[p],
                        snapshot.splits[p],
                    )
                    for p, s in zip(positions.tolist(), scores[q].tolist(), strict=True)
                ]
            )
        return results

    def _field(self, snapshot: Snapshot, field: str):
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
                        p.name not in (catalog.LOCK, catalog.VECTORS)
                        for p in self.directory.iterdir()
                    )
                ):
                    raise StoreError(
                        f"{self.directory} is not empty and holds no cbir store; choose another path"
                    )
                (self.directory / catalog.VECTORS).mkdir(parents=True, exist_ok=True)
                self._lock = catalog.WriterLock(self.directory)
                self._writer = catalog.connect(self.directory, writer=True)
                self._recover()
            yield self._writer

    def _recover(self) -> None:
        """Cut what a crashed writer left past the committed rows, and unreferenced files."""
        fields = catalog.read_fields(self._writer)
        wanted = {file: (info.dim, rows) for info, rows, file in fields.values()}
        for path in (self.directory / catalog.VECTORS).iterdir():
            if path.name not in wanted:
                path.unlink()
            elif path.stat().st_size > (size := wanted[path.name][0] * wanted[path.name][1] * 4):
                os.truncate(path, size)

    def create(
        self, fields: Mapping[str, ModelInfo], meta: Mapping[str, Any] | None = None
    ) -> None:
        with self._writing() as conn:
            existing = catalog.read_fields(conn)
            added = []
            for name, info in fields.items():
                check_field_name(name)
                if not isinstance(info, ModelInfo) or not 1 <= info.dim <= MAX_DIM:
                    raise StoreError(
                        f"field {name!r} needs a ModelInfo with 1 <= dim <= {MAX_DIM}, got {info!r}"
                    )
                if name in existing:
                    if existing[name][0] != info:
                        raise ModelMismatchError(
                            f"field {name!r} of {self.url} was built by "
                            f"{describe_model(existing[name][0])}, not {describe_model(info)}: "
                            "index into a new store (--store) or drop this one first"
                        )
                    continue
                added.append((name, info))
            with catalog.Transaction(conn):
                for name, info in added:
                    file = f"{name}.0.f32"
                    (self.directory / catalog.VECTORS / file).touch()
                    conn.execute(
                        "INSERT INTO fields VALUES (?, ?, 0, ?)",
                        (name, json.dumps(info.to_json()), file),
                    )
                if meta is not None:
                    catalog.write_meta(conn, dict(meta))
                catalog.bump_generation(conn)
            catalog.fsync_directory(self.directory / catalog.VECTORS)
            catalog.fsync_directory(self.directory)

    def upsert(self, documents: Iterable[Document]) -> int:
        with self._writing() as conn:
            fields = catalog.read_fields(conn)
            prepared = prepare_documents(documents, {n: f[0] for n, f in fields.items()}, self.url)
            docs = prepared.documents
            if not docs:
                return 0
            with catalog.Transaction(conn):
                conn.executemany(
                    "INSERT INTO docs (doc_id, path, label, split) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (doc_id) DO UPDATE SET "
                    "path = excluded.path, label = excluded.label, split = excluded.split",
                    [(d.doc_id, d.path, d.label, d.split) for d in docs],
                )
                ords = catalog.ords_of(conn, (d.doc_id for d in docs))
                for name, batch in prepared.fields.items():
                    _, rows, file = fields[name]
                    append_rows(self.directory / catalog.VECTORS / file, rows, batch.matrix)
                    conn.executemany(
                        "INSERT INTO vectors VALUES (?, ?, ?, ?) ON CONFLICT (field, ord) "
                        "DO UPDATE SET row = excluded.row, empty = excluded.empty",
                        [
                            (name, ords[docs[p].doc_id], rows + i, int(e))
                            for i, (p, e) in enumerate(
                                zip(batch.positions, batch.empty.tolist(), strict=True)
                            )
                        ],
                    )
                    conn.execute(
                        "UPDATE fields SET rows = ? WHERE name = ?",
                        (rows + len(batch.matrix), name),
                    )
                catalog.bump_generation(conn)
            self._compact_stale(prepared.fields)
            return len(docs)

    def delete(self, ids: Iterable[str]) -> int:
        with self._writing() as conn:
            with catalog.Transaction(conn):
                ords = list(catalog.ords_of(conn, ids).values())
                for chunk in catalog.chunks(ords):
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"DELETE FROM vectors WHERE ord IN ({marks})", chunk)
                    conn.execute(f"DELETE FROM docs WHERE ord IN ({marks})", chunk)
                if ords:
                    catalog.bump_generation(conn)
            if ords:
                self._compact_stale(catalog.read_fields(conn))
            return len(ords)

    def _compact_stale(self, names: Iterable[str]) -> None:
        fields = catalog.read_fields(self._writer)
        for name in names:
            (live,) = self._writer.execute(
                "SELECT COUNT(*) FROM vectors WHERE field = ?", (name,)
            ).fetchone()
            stale = fields[name][1] - live
            if stale > max(live, MIN_STALE_ROWS):
                self.compact(name)

    def compact(self, field: str) -> None:
        """Rewrite a field's vector file with only its live rows (a new file, one commit)."""
        with self._writing() as conn:
            fields = catalog.read_fields(conn)
            info, rows, old = fields[field]
            stem, number = old.rsplit(".", 2)[0], int(old.rsplit(".", 2)[1])
            new = f"{stem}.{number + 1}.f32"
            source = (
                np.memmap(
                    self.directory / catalog.VECTORS / old, np.float32, "r", shape=(rows, info.dim)
                )
                if rows
                else np.zeros((0, info.dim), np.float32)
            )
            with catalog.Transaction(conn):
                entries = conn.execute(
                    "SELECT ord, row FROM vectors WHERE field = ? ORDER BY row", (field,)
                ).fetchall()
                kept = np.array([row for _, row in entries], np.int64)
                path = self.directory / catalog.VECTORS / new
                with open(path, "wb") as out:
                    for start in range(0, len(kept), COPY_ROWS):
                        out.write(
                            np.ascontiguousarray(source[kept[start : start + COPY_ROWS]]).data
                        )
                    out.flush()
                    os.fsync(out.fileno())
                catalog.fsync_directory(self.directory / catalog.VECTORS)
                conn.executemany(
                    "UPDATE vectors SET row = ? WHERE field = ? AND ord = ?",
                    [(i, field, ord_) for i, (ord_, _) in enumerate(entries)],
                )
                conn.execute(
                    "UPDATE fields SET rows = ?, file = ? WHERE name = ?", (len(kept), new, field)
                )
                catalog.bump_generation(conn)
            del source
            (self.directory / catalog.VECTORS / old).unlink()

    def drop(self) -> None:
        """Delete the store's files (only those a store has) and its directory if left empty."""
        if not self.exists():
            return
        with self._writing():
            self._close_connections()
            for path in (self.directory / catalog.VECTORS).iterdir():
                path.unlink()
            (self.directory / catalog.VECTORS).rmdir()
            for name in (catalog.CATALOG, f"{catalog.CATALOG}-wal", f"{catalog.CATALOG}-shm"):
                (self.directory / name).unlink(missing_ok=True)
            (self.directory / catalog.LOCK).unlink(missing_ok=True)
            self._release_lock()
            with contextlib.suppress(OSError):
                self.directory.rmdir()

    def close(self) -> None:
        with self._write_lock:
            self._close_connections()
            self._release_lock()

    def _close_connections(self) -> None:
        with self._read_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()
            self._reader = self._writer = None
            self._snapshot = None

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def append_rows(path: Path, committed_rows: int, matrix: np.ndarray) -> None:
    """Write float32 rows right after the committed ones (over any crashed tail) and fsync."""
    offset = committed_rows * matrix.shape[1] * 4
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(np.ascontiguousarray(matrix, np.float32).data)
        file.truncate(offset + matrix.nbytes)
        file.flush()
        os.fsync(file.fileno())
