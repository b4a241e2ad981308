"""The embedded store's commits: fields, documents, deletions, compaction, crash recovery.

Every function runs with the writer lock held (`EmbeddedStore._writing`). A commit writes
vectors past the committed rows of their file and fsyncs them before the one SQLite
transaction that makes them part of the store; see `embedded_catalog` for the layout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import embedded_ann as ann
from indexing.stores import embedded_catalog as catalog
from indexing.stores import embedded_columns as columns
from indexing.stores.base import (
    MAX_DIM,
    Document,
    ModelMismatchError,
    StoreError,
    check_field_name,
    describe_model,
)
from indexing.stores.prepare import prepare_documents

# Compact a field once it has more stale rows than this and than live ones.
MIN_STALE_ROWS = 1024
COPY_ROWS = 8192


def recover(conn: sqlite3.Connection, directory: Path) -> None:
    """Cut what a crashed writer left past the committed rows, and remove unreferenced files."""
    fields = catalog.read_fields(conn)
    committed = {file: info.dim * rows * 4 for info, rows, file in fields.values()}
    ann.remove_unused(directory, set(committed))
    columns.remove_temporary(directory)
    for path in (directory / catalog.VECTORS).iterdir():
        if path.name not in committed:
            path.unlink()
        elif path.stat().st_size > committed[path.name]:
            os.truncate(path, committed[path.name])


def add_fields(
    conn: sqlite3.Connection,
    directory: Path,
    fields: Mapping[str, ModelInfo],
    meta: Mapping[str, Any] | None,
    where: str,
) -> None:
    """Add the fields the index lacks (refusing a field built by another model), set meta."""
    existing = catalog.read_fields(conn)
    added = []
    for name, info in fields.items():
        check_field_name(name)
        if not isinstance(info, ModelInfo) or not 1 <= info.dim <= MAX_DIM:
            raise StoreError(
                f"field {name!r} needs a ModelInfo with 1 <= dim <= {MAX_DIM}, got {info!r}"
            )
        if name not in existing:
            added.append((name, info))
        elif existing[name][0] != info:
            raise ModelMismatchError(
                f"field {name!r} of {where} was built by {describe_model(existing[name][0])}, "
                f"not {describe_model(info)}: index into a new store (--store) or drop this one first"
            )
    with catalog.Transaction(conn):
        for name, info in added:
            file = f"{name}.0.f32"
            (directory / catalog.VECTORS / file).touch()
            conn.execute(
                "INSERT INTO fields VALUES (?, ?, 0, ?)", (name, json.dumps(info.to_json()), file)
            )
        if meta is not None:
            catalog.write_meta(conn, dict(meta))
        catalog.bump_generation(conn)
    catalog.fsync_directory(directory / catalog.VECTORS)
    catalog.fsync_directory(directory)


def write_documents(
    conn: sqlite3.Connection, directory: Path, documents: Iterable[Document], where: str
) -> tuple[int, list[str]]:
    """Upsert documents in one commit; returns (documents written, fields written)."""
    fields = catalog.read_fields(conn)
    prepared = prepare_documents(documents, {n: f[0] for n, f in fields.items()}, where)
    docs = prepared.documents
    if not docs:
        return 0, []
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
            append_rows(directory / catalog.VECTORS / file, rows, batch.matrix)
            # A document written twice in one batch: its later row wins (rows only grow).
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
                "UPDATE fields SET rows = ? WHERE name = ?", (rows + len(batch.matrix), name)
            )
        catalog.bump_generation(conn)
    return len(docs), list(prepared.fields)


def append_rows(path: Path, committed_rows: int, matrix: np.ndarray) -> None:
    """Write float32 rows right after the committed ones (over any crashed tail) and fsync."""
    offset = committed_rows * matrix.shape[1] * 4
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(np.ascontiguousarray(matrix, np.float32).data)
        file.truncate(offset + matrix.nbytes)
        file.flush()
        os.fsync(file.fileno())


def delete_documents(conn: sqlite3.Connection, ids: Iterable[str]) -> int:
    """Remove documents and their vectors' catalog entries in one commit; returns how many."""
    with catalog.Transaction(conn):
        ords = list(catalog.ords_of(conn, ids).values())
        for chunk in catalog.chunks(ords):
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM vectors WHERE ord IN ({marks})", chunk)
            conn.execute(f"DELETE FROM docs WHERE ord IN ({marks})", chunk)
        if ords:
            catalog.bump_generation(conn)
    return len(ords)


def stale_fields(conn: sqlite3.Connection, names: Iterable[str]) -> list[str]:
    """The fields whose stale rows (replaced or deleted vectors) outnumber their live ones."""
    fields = catalog.read_fields(conn)
    stale = []
    for name in names:
        (live,) = conn.execute("SELECT COUNT(*) FROM vectors WHERE field = ?", (name,)).fetchone()
        if fields[name][1] - live > max(live, MIN_STALE_ROWS):
            stale.append(name)
    return stale


def compact_field(conn: sqlite3.Connection, directory: Path, field: str) -> None:
    """Copy a field's live rows into a new file and switch to it in one commit.

    Readers that mapped the old file keep reading it until they pick up the new commit;
    it is unlinked only after the commit, and a crash before leaves an orphan `recover` removes.
    """
    info, rows, old = catalog.read_fields(conn)[field]
    stem, number, suffix = old.rsplit(".", 2)
    new = f"{stem}.{int(number) + 1}.{suffix}"
    vectors = directory / catalog.VECTORS
    source = (
        np.memmap(vectors / old, np.float32, "r", shape=(rows, info.dim))
        if rows
        else np.zeros((0, info.dim), np.float32)
    )
    with catalog.Transaction(conn):
        entries = conn.execute(
            "SELECT ord, row FROM vectors WHERE field = ? ORDER BY row", (field,)
        ).fetchall()
        kept = np.array([row for _, row in entries], np.int64)
        with open(vectors / new, "wb") as out:
            for start in range(0, len(kept), COPY_ROWS):
                out.write(np.ascontiguousarray(source[kept[start : start + COPY_ROWS]]).data)
            out.flush()
            os.fsync(out.fileno())
        catalog.fsync_directory(vectors)
        conn.executemany(
            "UPDATE vectors SET row = ? WHERE field = ? AND ord = ?",
            [(i, field, ord_) for i, (ord_, _) in enumerate(entries)],
        )
        conn.execute("UPDATE fields SET rows = ?, file = ? WHERE name = ?", (len(kept), new, field))
        catalog.bump_generation(conn)
    del source
    (vectors / old).unlink()
    ann.remove_unused(directory, {file for _, _, file in catalog.read_fields(conn).values()})


def remove_store_files(directory: Path) -> None:
    """Delete the files a store has (nothing else), and the directory if that leaves it empty."""
    for folder in (directory / catalog.VECTORS, directory / ann.ANN, directory / columns.COLUMNS):
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    for name in (catalog.CATALOG, f"{catalog.CATALOG}-wal", f"{catalog.CATALOG}-shm", catalog.LOCK):
        (directory / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other files are left: they are not ours to delete
        directory.rmdir()
