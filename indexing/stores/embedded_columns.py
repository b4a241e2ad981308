"""A columnar copy of one committed generation of the catalog, memory-mapped to open fast.

Reading a million documents and row maps out of SQLite takes seconds; the same columns in an
Arrow IPC file map in milliseconds. The file `columns/STORE_ID.GENERATION.arrow` holds, in
doc-id byte order, the columns doc_id, path, label, split and, per field, `row:FIELD` (the
row of each document's vector, -1 if none) and `empty:FIELD` (1 if that vector is zero).

It is derived data, never part of a commit: a generation's content never changes, so a file
named after the catalog's store id and current generation, whose recorded fields and document
count match the catalog, is valid whatever crashed when. Anything else (missing, torn, from
another generation) is ignored: the reader loads the catalog and writes the file again
(temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from indexing.stores import embedded_catalog as catalog

COLUMNS = "columns"
DOCUMENT_COLUMNS = ("doc_id", "path", "label", "split")
FORMAT = "1"


def _arrow() -> Any:
    import pyarrow  # imported on use: the CLI starts without it

    return pyarrow


def file_for(directory: Path, store_id: str, generation: int) -> Path:
    return directory / COLUMNS / f"{store_id}.{generation}.arrow"


def signature(fields: dict[str, tuple[Any, int, str]], documents: int) -> str:
    """What the file must match in the catalog: each field's rows and vector file, the count."""
    described = {name: [rows, file] for name, (_, rows, file) in sorted(fields.items())}
    return json.dumps({"fields": described, "documents": documents}, sort_keys=True)


def read_columns(
    directory: Path, store_id: str | None, generation: int, expected: str
) -> Any | None:
    """The generation's columns as a memory-mapped `pyarrow.Table`, or None if not usable."""
    if store_id is None:
        return None
    pa = _arrow()
    path = file_for(directory, store_id, generation)
    try:
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):  # missing, torn or not Arrow: load the catalog
        return None
    metadata = table.schema.metadata or {}
    if (
        metadata.get(b"format") != FORMAT.encode()
        or metadata.get(b"signature") != expected.encode()
    ):
        return None
    return table.combine_chunks()


def build_table(
    docs: list[tuple[str, str | None, str | None, str | None]],
    fields: dict[str, tuple[np.ndarray, np.ndarray]],
    expected: str,
) -> Any:
    """Columns from catalog rows: docs as (doc_id, path, label, split) in doc-id order, and
    per field (doc_row int64 (documents,), empty int8 (documents,))."""
    pa = _arrow()
    arrays = {
        name: pa.array([d[i] for d in docs], pa.string()) for i, name in enumerate(DOCUMENT_COLUMNS)
    }
    for name, (doc_row, empty) in fields.items():
        arrays[f"row:{name}"] = pa.array(doc_row, pa.int64())
        arrays[f"empty:{name}"] = pa.array(empty, pa.int8())
    return pa.table(arrays, metadata={"format": FORMAT, "signature": expected})


def write_columns(directory: Path, store_id: str, generation: int, table: Any) -> None:
    """Write the file atomically, then remove older generations' files; skip a read-only store."""
    pa = _arrow()
    folder = directory / COLUMNS
    target = file_for(directory, store_id, generation)
    temporary = folder / f".{target.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(exist_ok=True)
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table)
        fd = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
        catalog.fsync_directory(folder)
    except OSError:  # read-only directory, disk full: readers keep loading the catalog
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        return
    for path in folder.iterdir():
        stem = path.name.removesuffix(".arrow")
        owner, _, number = stem.rpartition(".")
        if path.suffix == ".arrow" and (
            owner != store_id or not number.isdigit() or int(number) < generation
        ):
            path.unlink(missing_ok=True)  # readers that mapped it keep their mapping


def remove_temporary(directory: Path) -> None:
    """Delete temp files of crashed column writers (called by the writer on recovery)."""
    folder = directory / COLUMNS
    if folder.is_dir():
        for path in folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)
