"""A committed state of an embedded store, as readers see it: immutable, shared by threads.

Documents are held in doc-id byte order, so a document's position doubles as its tie-break
key (larger doc id first). Each field's vectors stay in a read-only memory map of the
committed rows; opening costs one catalog read, not a pass over the vectors.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import embedded_catalog as catalog
from indexing.stores.base import StoreError


@dataclass(frozen=True)
class FieldView:
    model: ModelInfo
    matrix: np.ndarray  # float32 (rows, dim), memory-mapped committed rows
    row_position: np.ndarray  # int64 (rows,): position of the document owning each row, -1 if stale
    searchable: np.ndarray  # bool (rows,): current and non-zero rows
    doc_row: np.ndarray  # int64 (documents,): row of each document's vector, -1 if it has none
    file: str = ""  # the vector file's name under vectors/


class Snapshot:
    """Documents and fields of one committed generation."""

    def __init__(
        self,
        generation: int,
        meta: dict[str, Any],
        docs: list[tuple[str, str | None, str | None, str | None]],
        fields: dict[str, FieldView],
    ):
        self.generation = generation
        self.meta = meta
        self.doc_ids = [d[0] for d in docs]
        self.paths = [d[1] for d in docs]
        self.labels = [d[2] for d in docs]
        self.splits = [d[3] for d in docs]
        self.fields = fields
        self._category_codes: dict[str, tuple[np.ndarray, dict[str | None, int]]] = {}

    def __len__(self) -> int:
        return len(self.doc_ids)

    @functools.cached_property
    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """doc_ids, labels, paths, splits as object arrays (documents,), for fancy indexing."""
        return tuple(
            np.array(values, dtype=object)
            for values in (self.doc_ids, self.labels, self.paths, self.splits)
        )

    @functools.cached_property
    def position(self) -> dict[str, int]:
        return {doc_id: i for i, doc_id in enumerate(self.doc_ids)}

    def passing(self, filters: dict[str, tuple[str, ...]]) -> np.ndarray | None:
        """bool (documents,) of the documents the filters keep; None when there are none."""
        if not filters:
            return None
        keep = np.ones(len(self), bool)
        for key, values in filters.items():
            codes, vocabulary = self._categories(key)
            wanted = [vocabulary[v] for v in values if v in vocabulary]
            keep &= np.isin(codes, wanted)
        return keep

    def _categories(self, key: str) -> tuple[np.ndarray, dict[str | None, int]]:
        """Integer codes (int64 (documents,)) of a label or split column, and their vocabulary."""
        if key not in self._category_codes:  # two threads may both compute it: same result
            values = self.labels if key == "label" else self.splits
            vocabulary: dict[str | None, int] = {}
            codes = np.fromiter(
                (vocabulary.setdefault(v, len(vocabulary)) for v in values), np.int64, len(values)
            )
            self._category_codes[key] = (codes, vocabulary)
        return self._category_codes[key]


def load_snapshot(conn: sqlite3.Connection, directory: Path) -> Snapshot:
    """Read the committed state in one read transaction, then map the vector files."""
    with catalog.Transaction(conn, "DEFERRED"):
        generation = catalog.generation(conn)
        meta = catalog.read_meta(conn)
        fields = catalog.read_fields(conn)
        docs = conn.execute(
            "SELECT ord, doc_id, path, label, split FROM docs ORDER BY doc_id"
        ).fetchall()
        vectors = {
            name: conn.execute(
                "SELECT ord, row, empty FROM vectors WHERE field = ?", (name,)
            ).fetchall()
            for name in fields
        }
    ords = np.fromiter((d[0] for d in docs), np.int64, len(docs))
    position_of_ord = np.full(int(ords.max(initial=-1)) + 1, -1, np.int64)
    position_of_ord[ords] = np.arange(len(docs))
    views = {}
    for name, (model, rows, file) in fields.items():
        entries = np.array(vectors[name], np.int64).reshape(-1, 3)
        positions = position_of_ord[entries[:, 0]] if len(entries) else entries[:, 0]
        if (positions < 0).any() or (entries[:, 1] >= rows).any():
            raise StoreError(
                f"{directory}: catalog of field {name!r} is inconsistent; rebuild the index"
            )
        row_position = np.full(rows, -1, np.int64)
        row_position[entries[:, 1]] = positions
        searchable = row_position >= 0
        searchable[entries[entries[:, 2] == 1, 1]] = False
        doc_row = np.full(len(docs), -1, np.int64)
        doc_row[positions] = entries[:, 1]
        views[name] = FieldView(
            model,
            map_vectors(directory, file, rows, model.dim),
            row_position,
            searchable,
            doc_row,
            file,
        )
    return Snapshot(generation, meta, [d[1:] for d in docs], views)


def map_vectors(directory: Path, file: str, rows: int, dim: int) -> np.ndarray:
    """The first `rows` rows of a vector file, memory-mapped read-only (float32 (rows, dim))."""
    if rows == 0:
        return np.zeros((0, dim), np.float32)
    path = directory / catalog.VECTORS / file
    needed = rows * dim * 4
    size = path.stat().st_size  # FileNotFoundError: compacted meanwhile, the caller retries
    if size < needed:
        raise StoreError(
            f"{path} holds {size} bytes, the catalog expects at least {needed}; the store is "
            "damaged (was the file copied partly?): rebuild the index"
        )
    return np.memmap(path, np.float32, "r", shape=(rows, dim))
