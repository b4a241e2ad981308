"""The embedded store's columns file: opened instead of the catalog, ignored when not valid."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document
from indexing.stores import embedded_snapshot as snapshot_module
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.embedded_columns import COLUMNS
from tests.conftest import REPO
from tests.test_embedded_store import kill, wait_for

DIM = 16
MODEL = ModelInfo("cnn", DIM, "columns-test")
# Byte order of UTF-8 (SQLite's) is code point order; these ids test the binary search.
IDS = ["Zeta", "alpha", "alpha/2", "é", "z", "日本", "😀", "train/%2F", "a%20b"]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def documents(ids: list[str], seed: int = 0) -> list[Document]:
    rows = vectors(len(ids), seed)
    rows[1:2] = 0  # one zero vector: stored, never returned
    return [
        Document(doc_id, f"img/{i}.png", None if i == 2 else f"l{i % 3}", "train", {"cnn": v})
        for i, (doc_id, v) in enumerate(zip(ids, rows, strict=True))
    ]


def build(path, ids: list[str] = IDS) -> None:
    with EmbeddedStore(path) as store:
        store.create({"cnn": MODEL})
        store.upsert(documents(ids))
        store.delete([ids[-1]])


def everything(store: EmbeddedStore) -> tuple:
    """What a reader can see: counts, every document, searches with and without filters."""
    got = store.get(IDS)
    queries = vectors(4, seed=1)
    return (
        store.count(),
        sorted(store.ids_with("cnn")),
        {k: (d.path, d.label, d.split, d.vectors["cnn"].tolist()) for k, d in got.items()},
        store.search("cnn", queries, 5),
        store.search("cnn", queries, 5, {"label": ["l0", "l2"]}),
    )


def from_catalog(path) -> tuple:
    """The same reads with the columns file out of the way (loaded from SQLite)."""
    folder = path / COLUMNS
    hidden = path.parent / "hidden-columns"
    folder.rename(hidden)
    try:
        with EmbeddedStore(path) as store:
            store.current()
            return everything(store)
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
        hidden.rename(folder)


def forbid_catalog_load(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the catalog's documents were read")

    monkeypatch.setattr(snapshot_module, "_table_from_catalog", refuse)


def test_a_closed_writer_leaves_a_columns_file_readers_open_instead_of_the_catalog(
    tmp_path, monkeypatch
):
    path = tmp_path / "i"
    build(path)
    (written,) = (path / COLUMNS).iterdir()
    generation = (
        sqlite3.connect(path / "catalog.sqlite")
        .execute("SELECT value FROM info WHERE key = 'generation'")
        .fetchone()[0]
    )
    assert written.name.endswith(f".{generation}.arrow")
    expected = from_catalog(path)
    forbid_catalog_load(monkeypatch)
    with EmbeddedStore(path) as store:
        seen = everything(store)
        assert store.get(["nope", "Zeta0", ""]) == {}
    assert seen == expected
    assert seen[0] == len(IDS) - 1 and set(seen[2]) == set(IDS[:-1])
    assert all(h.doc_id != IDS[1] for hits in seen[3] for h in hits)  # the zero vector


def test_a_torn_or_foreign_columns_file_is_ignored_and_written_again(tmp_path):
    path = tmp_path / "i"
    build(path)
    (written,) = (path / COLUMNS).iterdir()
    expected = from_catalog(path)
    good = written.read_bytes()
    for damage in (good[: len(good) // 2], b"\0" * len(good), b""):
        written.write_bytes(damage)
        with EmbeddedStore(path) as store:
            assert everything(store) == expected
        assert written.read_bytes() == good
    # Another store's file under this store's name (same generation): its counts differ.
    other = tmp_path / "other"
    build(other, IDS[:4])
    (foreign,) = (other / COLUMNS).iterdir()
    written.write_bytes(foreign.read_bytes())
    with EmbeddedStore(path) as store:
        assert everything(store) == expected
    assert written.read_bytes() == good


def test_each_commit_gets_its_own_file_and_older_ones_go(tmp_path, monkeypatch):
    path = tmp_path / "i"
    build(path)
    (first,) = (path / COLUMNS).iterdir()
    with EmbeddedStore(path) as store:
        old = store.current()
        store.upsert(documents(["new"], seed=5))
        assert store.count() == len(IDS)  # a reader of the new generation wrote its file
        assert old.value("doc_id", 0) == "Zeta"  # the old mapping still reads after the unlink
    (second,) = (path / COLUMNS).iterdir()
    assert second != first
    forbid_catalog_load(monkeypatch)
    with EmbeddedStore(path) as store:
        assert store.get(["new"])["new"].path == "img/0.png"


def test_a_store_without_an_id_reads_the_catalog_until_a_writer_gives_it_one(tmp_path):
    path = tmp_path / "i"
    build(path)
    conn = sqlite3.connect(path / "catalog.sqlite")
    conn.execute("DELETE FROM info WHERE key = 'store_id'")  # as written by an older cbir
    conn.commit()
    for leftover in (path / COLUMNS).iterdir():
        leftover.unlink()
    with EmbeddedStore(path) as store:
        assert store.count() == len(IDS) - 1
    assert not any((path / COLUMNS).iterdir())
    with EmbeddedStore(path) as store:
        store.upsert(documents(["new"], seed=5))
    assert len(list((path / COLUMNS).iterdir())) == 1


# Writes a store, then holds inside the rename of a columns file, to be killed there.
HOLDING = """
import sys
from indexing.stores import embedded_columns
from indexing.stores.embedded import EmbeddedStore
from tests.test_embedded_columns import IDS, MODEL, documents

replace = embedded_columns.os.replace

def replace_then_hold(source, target):
    if not str(target).endswith(".arrow"):  # os is shared: other files are renamed as usual
        return replace(source, target)
    print("holding", flush=True)
    sys.stdin.read()

embedded_columns.os.replace = replace_then_hold
store = EmbeddedStore(sys.argv[1])
store.create({"cnn": MODEL})
store.upsert(documents(IDS))
store.close()
"""


def test_sigkill_while_writing_the_columns_file_leaves_a_usable_store(tmp_path):
    path = tmp_path / "i"
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDING, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    wait_for(writer, "holding")  # committed; the columns file is only a temp file
    kill(writer)
    (temporary,) = (path / COLUMNS).iterdir()
    assert temporary.name.startswith(".") and temporary.name.endswith(".tmp")
    with EmbeddedStore(path) as store:
        assert store.count() == len(IDS)
        (hits,) = store.search("cnn", documents(IDS)[5].vectors["cnn"], 1)
        assert hits[0].doc_id == IDS[5] and hits[0].score == pytest.approx(1.0, abs=1e-6)
        store.delete(["z"])  # a writer clears the crashed temp file
    (written,) = (path / COLUMNS).iterdir()
    assert written.suffix == ".arrow"
