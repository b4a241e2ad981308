"""What only the embedded store promises: crash safety, one writer, many readers, compaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from features.base import ModelInfo
from indexing.stores import Document, StoreError
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.urls import open_store
from tests.conftest import REPO

DIM = 64
BATCH = 2_000
BATCHES = 8
MODEL = ModelInfo("cnn", DIM, "crash-test")

# A writer that upserts BATCHES batches, one commit each, saying so after each commit.
# With a hold batch, it stops inside that upsert once the vectors are on disk but before the
# catalog commit, says "holding", and waits to be killed.
WRITER = """
import sys
import numpy as np
from features.base import ModelInfo
from indexing.stores import Document
from indexing.stores import embedded, embedded_writes
from tests.test_embedded_store import BATCH, BATCHES, MODEL, batch

path, hold = sys.argv[1], int(sys.argv[2])
written = embedded_writes.append_rows
current = [0]

def append_then_hold(*args):
    written(*args)
    if current[0] == hold:
        print("holding", flush=True)
        sys.stdin.read()

embedded_writes.append_rows = append_then_hold
store = embedded.EmbeddedStore(path)
store.create({"cnn": MODEL})
for b in range(BATCHES):
    current[0] = b
    store.upsert(batch(b))
    print("committed", b, flush=True)
"""


def batch_vectors(b: int) -> np.ndarray:
    return np.random.default_rng(b).standard_normal((BATCH, DIM)).astype(np.float32)


def batch(b: int) -> list[Document]:
    vectors = batch_vectors(b)
    return [
        Document(f"train/x/{b * BATCH + i:06d}", f"{b}/{i}.png", "x", "train", {"cnn": v})
        for i, v in enumerate(vectors)
    ]


def start_writer(path, hold: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(hold)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def wait_for(process: subprocess.Popen, line: str) -> None:
    for got in process.stdout:
        if got.strip() == line:
            return
    raise AssertionError(f"writer ended before printing {line!r} (status {process.wait()})")


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def assert_committed_prefix(path, batches: int) -> None:
    """The store holds exactly batches 0..batches-1, with their vectors, nothing else."""
    with EmbeddedStore(path) as store:
        assert store.count() == batches * BATCH
        expected = {d.doc_id for b in range(batches) for d in batch(b)}
        assert store.ids_with("cnn") == expected
        last = batch(batches - 1)
        got = store.get([last[0].doc_id, last[-1].doc_id])
        for doc in (last[0], last[-1]):
            v = doc.vectors["cnn"]
            np.testing.assert_allclose(
                got[doc.doc_id].vectors["cnn"], v / np.linalg.norm(v), atol=1e-6
            )
        query = batch_vectors(batches - 1)[7]
        (hits,) = store.search("cnn", query, 1)
        assert hits[0].doc_id == last[7].doc_id and hits[0].score == pytest.approx(1.0, abs=1e-5)


def resume_and_check(path) -> None:
    """Resuming (writing what `ids_with` lacks) completes the store; rewriting adds no duplicates."""
    with EmbeddedStore(path) as store:
        done = store.ids_with("cnn")
        for b in range(BATCHES):
            store.upsert(d for d in batch(b) if d.doc_id not in done)
        assert store.count() == BATCHES * BATCH
        store.upsert(batch(0))
        assert store.count() == BATCHES * BATCH
        assert len(store.ids_with("cnn")) == BATCHES * BATCH
        (hits,) = store.search("cnn", batch_vectors(BATCHES - 1)[5], 2)
        assert hits[0].doc_id == batch(BATCHES - 1)[5].doc_id
    assert [f.name for f in (path / "vectors").iterdir()] == ["cnn.0.f32"]


def test_sigkill_between_vector_write_and_commit_leaves_the_last_commit(tmp_path):
    path = tmp_path / "index"
    writer = start_writer(path, hold=3)
    wait_for(writer, "holding")  # batch 3's vectors are in the file, its commit is not
    kill(writer)
    size = (path / "vectors" / "cnn.0.f32").stat().st_size
    assert size == 4 * BATCH * DIM * 4  # the uncommitted batch is on disk...
    assert_committed_prefix(path, 3)  # ...and invisible
    resume_and_check(path)
    # The crashed tail was overwritten, not kept: all 8 batches plus the rewritten batch 0.
    assert (path / "vectors" / "cnn.0.f32").stat().st_size == (BATCHES + 1) * BATCH * DIM * 4


def test_sigkill_at_an_arbitrary_moment_of_a_stream_of_upserts(tmp_path):
    path = tmp_path / "index"
    writer = start_writer(path, hold=-1)
    wait_for(writer, "committed 2")
    kill(writer)  # most likely inside batch 3's upsert
    with EmbeddedStore(path) as store:
        committed = store.count() // BATCH
        assert store.count() % BATCH == 0 and committed >= 3
    assert_committed_prefix(path, committed)
    resume_and_check(path)


def test_one_writer_at_a_time_readers_meanwhile(tmp_path):
    url = f"local:{tmp_path / 'index'}"
    first, second = open_store(url), open_store(url)
    first.create({"cnn": MODEL})
    first.upsert(batch(0)[:10])
    with pytest.raises(
        StoreError, match=rf"being written by another process \(pid {os.getpid()}\)"
    ):
        second.upsert(batch(0)[10:20])
    assert second.count() == 10  # reading needs no lock
    first.upsert(batch(0)[10:20])
    assert second.count() == 20  # and sees each new commit
    first.close()
    second.upsert(batch(0)[20:30])  # the lock is free again
    assert second.count() == 30
    second.close()


def test_threads_search_while_another_thread_writes(tmp_path):
    store = EmbeddedStore(tmp_path / "index")
    store.create({"cnn": MODEL})
    store.upsert(batch(0)[:500])
    queries = batch_vectors(0)[:20]
    errors = []

    def search():
        try:
            for _ in range(15):
                for hits in store.search("cnn", queries, 5):
                    assert len(hits) == 5
                    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        except Exception as exc:  # collected and reported by the main thread
            errors.append(exc)

    readers = [threading.Thread(target=search) for _ in range(6)]
    for reader in readers:
        reader.start()
    for start in range(500, 2000, 250):
        store.upsert(batch(0)[start : start + 250])
    for reader in readers:
        reader.join()
    assert errors == []
    (hits,) = store.search("cnn", queries[3], 1)
    assert hits[0].doc_id == batch(0)[3].doc_id
    store.close()


def test_rewrites_are_compacted_and_open_readers_keep_working(tmp_path, monkeypatch):
    monkeypatch.setattr("indexing.stores.embedded_writes.MIN_STALE_ROWS", 10)
    path = tmp_path / "index"
    writer, reader = EmbeddedStore(path), EmbeddedStore(path)
    writer.create({"cnn": MODEL})
    docs = batch(0)[:100]
    writer.upsert(docs)
    old = reader.current()
    for _ in range(3):  # every rewrite of the same documents leaves 100 stale rows
        writer.upsert(docs)
    files = list((path / "vectors").iterdir())
    assert [f.name for f in files] != ["cnn.0.f32"]  # compacted into a new file
    assert sum(f.stat().st_size for f in files) <= 2 * 100 * DIM * 4
    query = docs[42].vectors["cnn"]
    # A snapshot taken before compaction still reads its (now deleted) file.
    assert old.fields["cnn"].matrix.shape[0] == 100
    (hits,) = reader.search("cnn", query, 3)
    assert hits[0].doc_id == docs[42].doc_id
    assert reader.count() == 100
    writer.close()
    reader.close()


def test_refuses_a_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"not yours")
    store = open_store(f"local:{tmp_path / 'photos'}")
    with pytest.raises(StoreError, match="holds no cbir store"):
        store.create({"cnn": MODEL})
    with pytest.raises(StoreError, match="no index at"):
        store.count()
    assert (tmp_path / "photos" / "cat.jpg").exists()


def test_drop_removes_only_the_store(tmp_path):
    store = EmbeddedStore(tmp_path / "index")
    store.create({"cnn": MODEL})
    store.upsert(batch(0)[:5])
    store.drop()
    assert not (tmp_path / "index").exists()
    assert not store.exists()
    store.create({"cnn": MODEL})  # usable again afterwards
    assert store.count() == 0
    store.close()


def test_a_reader_notices_the_store_was_dropped_and_built_again(tmp_path):
    url = f"local:{tmp_path / 'index'}"
    reader, writer = open_store(url), open_store(url)
    writer.create({"cnn": MODEL})
    writer.upsert(batch(0)[:10])
    assert reader.count() == 10 and set(reader.fields) == {"cnn"}
    writer.drop()
    writer.create({"other": ModelInfo("other", DIM, "rebuilt")})
    writer.upsert(
        Document(d.doc_id, d.path, d.label, d.split, {"other": d.vectors["cnn"]})
        for d in batch(1)[:3]
    )
    # Same generation number as before, but another catalog: the reader reads the new one.
    assert reader.count() == 3 and set(reader.fields) == {"other"}
    reader.close()
    writer.close()


def test_vectors_are_memory_mapped_read_only(tmp_path):
    store = EmbeddedStore(tmp_path / "index")
    store.create({"cnn": MODEL})
    store.upsert(batch(0)[:50])
    store.close()
    with EmbeddedStore(tmp_path / "index") as opened:
        matrix = opened.current().fields["cnn"].matrix
        assert isinstance(matrix, np.memmap) and matrix.mode == "r"
        assert matrix.shape == (50, DIM) and not matrix.flags.writeable


def test_large_searches_leave_the_garbage_collector_as_they_found_it(tmp_path):
    import gc

    store = EmbeddedStore(tmp_path / "index")
    store.create({"cnn": MODEL})
    store.upsert(batch(0))
    queries = batch_vectors(1)[:200]
    assert gc.isenabled()
    results = store.search("cnn", queries, 100)  # 20,000 hits: built with the collector paused
    assert gc.isenabled() and sum(map(len, results)) == 20_000
    gc.disable()
    try:
        store.search("cnn", queries, 100)
        assert not gc.isenabled()
    finally:
        gc.enable()
    store.close()
