"""The sync manifest: per index, what content each document's vectors were computed from.

One SQLite file per store URL under `$CBIR_HOME/sync/`, holding doc id -> (size, mtime in
ns, sha256 of the file, skip reason). An entry is written only after the store has committed
the vectors it describes, in one transaction per batch, so a crash leaves entries that are
true or missing, never ahead of the store (see docs/sync.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cbir.core.errors import CbirError

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    doc_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    skipped TEXT
);
CREATE INDEX IF NOT EXISTS files_by_sha ON files (sha256);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Entry:
    """What a document's vectors were computed from; `skipped` is set for unreadable files."""

    doc_id: str
    size: int
    mtime_ns: int
    sha256: str
    skipped: str | None = None


def manifest_path(home: Path, store_url: str) -> Path:
    """Where the manifest of `store_url` lives: one file per store, under `home`/sync."""
    key = hashlib.sha256(store_url.encode()).hexdigest()[:16]
    return home / "sync" / f"{key}.sqlite"


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Manifest:
    """A durable doc id -> Entry map with a token tying it to one store's life."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CbirError(
                f"the sync manifest {path} cannot be opened ({exc}); delete it and run "
                "`cbir index` again (every file is then hashed once more)"
            ) from None

    @property
    def token(self) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = 'token'").fetchone()
        return row[0] if row else None

    def reset(self, token: str) -> None:
        """Forget every entry and start a new life under `token`."""
        with self._transaction():
            self._db.execute("DELETE FROM files")
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('token', ?)", (token,))

    def entries(self) -> dict[str, Entry]:
        rows = self._db.execute("SELECT doc_id, size, mtime_ns, sha256, skipped FROM files")
        return {row[0]: Entry(*row) for row in rows}

    def put(self, entries: Iterable[Entry]) -> None:
        """Insert or replace `entries` in one transaction."""
        rows = [(e.doc_id, e.size, e.mtime_ns, e.sha256, e.skipped) for e in entries]
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", rows)

    def remove(self, doc_ids: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM files WHERE doc_id = ?", [(d,) for d in doc_ids])

    def replace(self, old: Iterable[str], new: Iterable[Entry]) -> None:
        """Remove `old` and insert `new` in one transaction (a rename)."""
        rows = [(e.doc_id, e.size, e.mtime_ns, e.sha256, e.skipped) for e in new]
        with self._transaction():
            self._db.executemany("DELETE FROM files WHERE doc_id = ?", [(d,) for d in old])
            self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", rows)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on an exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
