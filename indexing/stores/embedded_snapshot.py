"""A committed state of an embedded store, as readers see it: immutable, shared by threads.

Documents are held in doc-id byte order, so a document's position doubles as its tie-break
key (larger doc id first). Each field's vectors stay in a read-only memory map of the
committed rows, and the documents and row maps in a memory-mapped columns file
(`embedded_columns`): opening reads neither the vectors nor the catalog's document rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.base import ModelInfo
from indexing.stores import embedded_catalog as catalog
from indexing.stores import embedded_columns as columns
from indexing.stores.base import StoreError
from indexing.stores.hits import MANY_HITS, METADATA_COLUMNS, RankedHits


@dataclass(frozen=True)
class FieldView:
    model: ModelInfo
    matrix: np.ndarray  # float32 (rows, dim), memory-mapped committed rows
    row_position: np.ndarray  # int64 (rows,): position of the document owning each row, -1 if stale
    searchable: np.ndarray  # bool (rows,): current and non-zero rows
    doc_row: np.ndarray  # int64 (documents,): row of each document's vector, -1 if it has none
    file: str = ""  # the vector file's name under vectors/


class Snapshot:
    """Documents and fields of one committed generation.

    The document columns are Arrow arrays (memory-mapped from the columns file when it was
    valid), so nothing proportional to the collection is built in Python at open.
    """

    def __init__(
        self, generation: int, meta: dict[str, Any], documents: Any, fields: dict[str, FieldView]
    ):
        self.generation = generation
        self.meta = meta
        self.documents = documents  # pyarrow.Table: doc_id, path, label, split (+ row maps)
        self.fields = fields
        self._category_codes: dict[str, tuple[np.ndarray, dict[str | None, int]]] = {}
        self._arrays: dict[str, Any] = {}
        self._objects: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.documents.num_rows

    def array(self, column: str) -> Any:
        """One column as a single `pyarrow.Array` (zero-copy from the mapped file)."""
        if column not in self._arrays:  # two threads may both combine: same result
            self._arrays[column] = self.documents.column(column).combine_chunks()
        return self._arrays[column]

    def values(self, column: str, positions: np.ndarray | list[int]) -> list[str | None]:
        """The `column` (doc_id, path, label or split) of the documents at `positions`."""
        return self.array(column).take(np.asarray(positions, np.int64)).to_pylist()

    def value(self, column: str, position: int) -> str | None:
        return self.array(column)[position].as_py()

    def objects(self, column: str) -> np.ndarray:
        """One column of every document as an object array (documents,), built once."""
        if column not in self._objects:  # two threads may both build it: same result
            self._objects[column] = np.array(self.array(column).to_pylist(), dtype=object)
        return self._objects[column]

    def take(self, column: str, positions: np.ndarray, many: int) -> np.ndarray:
        """The `column` of the documents at int64 `positions`, as an object array of that shape.

        Up to `many` values come from the mapped Arrow column; more at once from an object
        array of every document, built once per snapshot (0.1 s a column at a million).
        """
        if positions.size > many:
            return self.objects(column)[positions]
        out = np.empty(positions.shape, dtype=object)
        out.ravel()[:] = self.values(column, positions.ravel())
        return out

    def position_of(self, doc_id: str) -> int | None:
        """The position of `doc_id` (binary search: documents are in doc-id byte order)."""
        ids = self.array("doc_id")
        low, high = 0, len(ids)
        while low < high:  # UTF-8 byte order is code point order, i.e. Python's str order
            middle = (low + high) // 2
            if ids[middle].as_py() < doc_id:
                low = middle + 1
            else:
                high = middle
        return low if low < len(ids) and ids[low].as_py() == doc_id else None

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
        """Integer codes (int32 (documents,)) of a label or split column, and their vocabulary."""
        if key not in self._category_codes:  # two threads may both compute it: same result
            column = self.array("label" if key == "label" else "split")
            encoded = column.dictionary_encode(null_encoding="encode")
            vocabulary = {v: i for i, v in enumerate(encoded.dictionary.to_pylist())}
            codes = numbers(encoded.indices, np.int32)
            self._category_codes[key] = (codes, vocabulary)
        return self._category_codes[key]


def load_snapshot(conn: sqlite3.Connection, directory: Path) -> Snapshot:
    """Read the committed state in one read transaction, then map the vector files.

    The documents and row maps come from the generation's columns file when it is valid,
    else from the catalog, which then writes that file for the next reader.
    """
    with catalog.Transaction(conn, "DEFERRED"):
        generation = catalog.generation(conn)
        meta = catalog.read_meta(conn)
        fields = catalog.read_fields(conn)
        store_id = catalog.store_id(conn)
        (count,) = conn.execute("SELECT COUNT(*) FROM docs").fetchone()
        expected = columns.signature(fields, count)
        table = columns.read_columns(directory, store_id, generation, expected)
        loaded = table is None
        if loaded:
            table = _table_from_catalog(conn, directory, fields, expected)
    if loaded and store_id is not None:  # outside the read transaction: it fsyncs
        columns.write_columns(directory, store_id, generation, table)
    views = {}
    for name, (model, rows, file) in fields.items():
        doc_row = numbers(table.column(f"row:{name}").combine_chunks(), np.int64)
        empty = numbers(table.column(f"empty:{name}").combine_chunks(), np.int8)
        has = np.flatnonzero(doc_row >= 0)
        if (doc_row[has] >= rows).any():
            raise StoreError(
                f"{directory}: catalog of field {name!r} is inconsistent; rebuild the index"
            )
        row_position = np.full(rows, -1, np.int64)
        row_position[doc_row[has]] = has
        searchable = row_position >= 0
        searchable[doc_row[has[empty[has] == 1]]] = False
        views[name] = FieldView(
            model,
            map_vectors(directory, file, rows, model.dim),
            row_position,
            searchable,
            doc_row,
            file,
        )
    return Snapshot(generation, meta, table, views)


def _table_from_catalog(
    conn: sqlite3.Connection, directory: Path, fields: dict[str, Any], expected: str
) -> Any:
    """The documents and each field's row map read from SQLite, as a columns table."""
    docs = conn.execute(
        "SELECT ord, doc_id, path, label, split FROM docs ORDER BY doc_id"
    ).fetchall()
    ords = np.fromiter((d[0] for d in docs), np.int64, len(docs))
    position_of_ord = np.full(int(ords.max(initial=-1)) + 1, -1, np.int64)
    position_of_ord[ords] = np.arange(len(docs))
    maps = {}
    for name in fields:
        entries = np.array(
            conn.execute("SELECT ord, row, empty FROM vectors WHERE field = ?", (name,)).fetchall(),
            np.int64,
        ).reshape(-1, 3)
        positions = position_of_ord[entries[:, 0]] if len(entries) else entries[:, 0]
        if (positions < 0).any():
            raise StoreError(
                f"{directory}: catalog of field {name!r} is inconsistent; rebuild the index"
            )
        doc_row = np.full(len(docs), -1, np.int64)
        doc_row[positions] = entries[:, 1]
        empty = np.zeros(len(docs), np.int8)
        empty[positions] = entries[:, 2]
        maps[name] = (doc_row, empty)
    return columns.build_table([d[1:] for d in docs], maps, expected)


def ranked_hits(
    snapshot: Snapshot,
    view: FieldView,
    scores: np.ndarray,
    rows: np.ndarray,
    zero: np.ndarray,
    k: int,
) -> RankedHits:
    """The top-k's rows (int64 (q, w), -1: none found) and scores as `RankedHits` of width k.

    A zero query vector has no cosine with anything: its row holds no hits.
    """
    q, width = rows.shape
    found = np.where(zero, 0, (rows >= 0).sum(axis=1))  # fewer: the graph found no more
    valid = np.arange(width) < found[:, None]
    positions = np.zeros((q, k), np.int64)  # document of each slot; 0 where there is none
    positions[:, :width] = np.where(valid, view.row_position[np.maximum(rows, 0)], 0)
    doc_ids = np.full((q, k), None, object)
    out_scores = np.full((q, k), -np.inf, np.float32)
    used = int(found.max(initial=0))  # columns that hold any hit
    if used:
        doc_ids[:, :used] = snapshot.take("doc_id", positions[:, :used], MANY_HITS)
        out_scores[:, :used] = scores[:, :used]
        if not valid[:, :used].all():
            doc_ids[:, :used][~valid[:, :used]] = None
            out_scores[:, :used][~valid[:, :used]] = -np.inf

    def metadata(selected: np.ndarray) -> list[np.ndarray]:
        chosen = positions[selected]
        return [snapshot.take(name, chosen, MANY_HITS) for name in METADATA_COLUMNS]

    return RankedHits(doc_ids, out_scores, found.astype(np.int64), metadata)


def numbers(array: Any, dtype: type) -> np.ndarray:
    """A null-free Arrow array of `dtype` as a read-only numpy view of its buffer (no copy).

    `pyarrow.Array.to_numpy` would import pandas (0.3 s), more than the rest of opening.
    """
    if len(array) == 0:
        return np.zeros(0, dtype)
    size = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * size)


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
