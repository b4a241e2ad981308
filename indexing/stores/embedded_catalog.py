"""The embedded store's catalog (SQLite, WAL mode) and its single-writer lock.

Layout of a store directory:

    catalog.sqlite    docs, fields (model, committed row count, vector file), vectors
                      (which row of a field's file holds a document's vector), info
    vectors/NAME.N.f32  float32 rows, one per written vector, append-only; N changes on compaction
    writer.lock       flock-ed by the one process that writes

A commit appends vectors to the files past their committed length, fsyncs them, then commits
one SQLite transaction that records the new rows: a crash before that commit leaves only an
unreferenced tail, which readers never map and the next writer truncates.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from features.base import ModelInfo
from indexing.stores.base import StoreError

CATALOG = "catalog.sqlite"
VECTORS = "vectors"
LOCK = "writer.lock"
FORMAT = 1
# SQLite's default limit on host parameters is 999 in old builds.
ID_CHUNK = 900

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fields (
    name TEXT PRIMARY KEY, model TEXT NOT NULL, rows INTEGER NOT NULL, file TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    ord INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL UNIQUE,
    path TEXT, label TEXT, split TEXT);
CREATE TABLE IF NOT EXISTS vectors (
    field TEXT NOT NULL, ord INTEGER NOT NULL, row INTEGER NOT NULL, empty INTEGER NOT NULL,
    PRIMARY KEY (field, ord)) WITHOUT ROWID;
"""


def connect(directory: Path, *, writer: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) usable from any thread."""
    conn = sqlite3.connect(
        directory / CATALOG, isolation_level=None, check_same_thread=False, timeout=30.0
    )
    if writer:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when COMMIT returns (WAL fsynced each time).
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO info VALUES ('format', ?), ('generation', '0'), ('meta', '{}')",
            (str(FORMAT),),
        )
        # Names this catalog's derived files (embedded_columns); older stores get one here.
        conn.execute("INSERT OR IGNORE INTO info VALUES ('store_id', ?)", (uuid.uuid4().hex,))
    check_format(conn, directory)
    return conn


def check_format(conn: sqlite3.Connection, directory: Path) -> None:
    try:
        row = conn.execute("SELECT value FROM info WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{directory / CATALOG} is not a cbir catalog ({exc})") from None
    if row is None or row[0] != str(FORMAT):
        raise StoreError(
            f"{directory} holds store format {row and row[0]!r}; this cbir reads format {FORMAT}"
        )


def generation(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM info WHERE key = 'generation'").fetchone()[0])


def store_id(conn: sqlite3.Connection) -> str | None:
    """The catalog's random id (None in a store no writer of this version has opened)."""
    row = conn.execute("SELECT value FROM info WHERE key = 'store_id'").fetchone()
    return row and row[0]


def bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE info SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    return json.loads(conn.execute("SELECT value FROM info WHERE key = 'meta'").fetchone()[0])


def write_meta(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    try:
        text = json.dumps(meta, sort_keys=True)
    except TypeError as exc:
        raise StoreError(f"index metadata must be JSON-serialisable ({exc})") from None
    conn.execute("UPDATE info SET value = ? WHERE key = 'meta'", (text,))


def read_fields(conn: sqlite3.Connection) -> dict[str, tuple[ModelInfo, int, str]]:
    """name -> (model, committed rows, vector file name)."""
    return {
        name: (ModelInfo.from_json(json.loads(model)), rows, file)
        for name, model, rows, file in conn.execute(
            "SELECT name, model, rows, file FROM fields ORDER BY name"
        )
    }


def ords_of(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, int]:
    """doc_id -> ord for the ids that exist."""
    ids = list(dict.fromkeys(ids))
    found: dict[str, int] = {}
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(conn.execute(f"SELECT doc_id, ord FROM docs WHERE doc_id IN ({marks})", chunk))
    return found


def chunks(items: list[Any], size: int = ID_CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Transaction:
    """`with Transaction(conn):` BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection, mode: str = "IMMEDIATE"):
        self.conn, self.mode = conn, mode

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(f"BEGIN {self.mode}")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class WriterLock:
    """An exclusive fcntl.flock on DIR/writer.lock, held until `release`; fails at once if taken."""

    def __init__(self, directory: Path):
        import fcntl

        self.path = directory / LOCK
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise StoreError(
                f"{directory} is being written by another process (pid {holder}); "
                "wait for it to finish or stop it, then run again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def fsync_directory(directory: Path) -> None:
    """Make created, renamed or removed entries of `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
