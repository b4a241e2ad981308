"""`cbir index --dataset folder` keeps the index in sync: adds, changes, removals, renames.

Each run is checked against the folder itself: one document per decodable file, each with the
vector of the file's current bytes (tests/sync_folder.py). The embedded store always;
Elasticsearch too when CBIR_ES_URL is set.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from indexing.manifest import Manifest, manifest_path
from indexing.stores.urls import open_store
from tests.sync_folder import assert_index_equals_folder, fit_model, picture, sync, write_folder
from tests.test_store_contract import STORES

ES_URL = os.environ.get("CBIR_ES_URL")


@pytest.fixture(params=STORES)
def settings(request, home: Path):
    if request.param == "embedded":
        yield Settings.resolve(env={}, home=home)
        return
    url = f"{ES_URL.rstrip('/')}/cbir-sync-{uuid.uuid4().hex[:12]}"
    yield Settings.resolve(env={}, home=home, store=url)
    with open_store(url, env=os.environ) as store:
        store.drop()


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "photos", 12)


@pytest.fixture
def model(tmp_path, folder):
    return fit_model(folder, tmp_path / "model")


def counts(report) -> dict[str, int]:
    return report.sync


def test_first_run_adds_everything_and_a_rerun_does_nothing(settings, folder, model):
    first = sync(settings, folder, model)
    assert counts(first) == dict(added=12, changed=0, removed=0, renamed=0, unchanged=0, skipped=0)
    assert first.encoded == 12 and assert_index_equals_folder(settings, folder, model) == 12
    again = sync(settings, folder, model)
    assert again.encoded == 0 and counts(again)["unchanged"] == 12
    assert "added 0, changed 0, removed 0, renamed 0, unchanged 12, skipped 0" in again.summary
    saved = json.loads(Path(again.report_path).read_text())
    assert saved["sync"] == counts(again)


def test_add_change_delete_and_rename_are_each_visible_after_the_next_run(
    settings, folder, model, monkeypatch
):
    sync(settings, folder, model)
    write_folder(folder, 2, start=100)  # added
    (folder / "dogs" / "00000.png").write_bytes(picture(500))  # changed
    (folder / "cats" / "00001.png").unlink()  # removed
    (folder / "birds").mkdir()
    (folder / "dogs" / "00002.png").rename(folder / "birds" / "moved.png")  # renamed, new label
    report = sync(settings, folder, model)
    assert counts(report) == dict(added=2, changed=1, removed=1, renamed=1, unchanged=9, skipped=0)
    assert report.encoded == 3  # the rename is re-keyed, not re-encoded
    assert assert_index_equals_folder(settings, folder, model) == 13
    with open_store(settings.store, settings) as store:
        doc = store.get(["birds/moved.png"])["birds/moved.png"]
        assert doc.label == "birds" and doc.path == "birds/moved.png"


def test_a_rename_copies_the_stored_vectors_without_encoding(settings, folder, model, monkeypatch):
    sync(settings, folder, model)
    shutil.move(folder / "cats", folder / "kittens")  # six files move at once
    import indexing.encoding

    def no_encoding(*args, **kwargs):
        raise AssertionError("a rename must not encode")

    monkeypatch.setattr(indexing.encoding.BatchEncoder, "encode", no_encoding)
    report = sync(settings, folder, model)
    assert counts(report)["renamed"] == 6 and report.encoded == 0
    monkeypatch.undo()
    assert_index_equals_folder(settings, folder, model)


def test_same_content_with_a_new_mtime_is_unchanged_and_hashed_once(
    settings, folder, model, monkeypatch
):
    sync(settings, folder, model)
    target = folder / "dogs" / "00004.png"
    os.utime(target, ns=(1, 1))
    import indexing.sync

    hashed = []
    real = indexing.sync.file_sha256
    monkeypatch.setattr(indexing.sync, "file_sha256", lambda p: hashed.append(p) or real(p))
    report = sync(settings, folder, model)
    assert report.encoded == 0 and counts(report)["unchanged"] == 12 and hashed == [target]
    again = sync(settings, folder, model)  # the new mtime was recorded
    assert again.encoded == 0 and hashed == [target]


def test_a_file_turned_broken_loses_its_vectors_and_is_not_retried(settings, folder, model):
    sync(settings, folder, model)
    (folder / "dogs" / "00006.png").write_bytes(b"\x89PNG broken")
    report = sync(settings, folder, model)
    assert counts(report)["skipped"] == 1 and counts(report)["changed"] == 1
    assert assert_index_equals_folder(settings, folder, model) == 11
    again = sync(settings, folder, model)
    assert again.encoded == 0 and counts(again)["skipped"] == 1
    assert again.skipped[0]["path"] == "dogs/00006.png"
    (folder / "dogs" / "00006.png").write_bytes(picture(6))  # repaired
    repaired = sync(settings, folder, model)
    assert repaired.encoded == 1 and assert_index_equals_folder(settings, folder, model) == 12


def test_a_store_of_another_folder_is_not_emptied(settings, folder, model, tmp_path):
    sync(settings, folder, model)
    other = write_folder(tmp_path / "other", 3)
    with pytest.raises(
        CbirError, match=r"holds the folder dataset at .*photos; .*would remove its 12 documents"
    ):
        sync(settings, other, model)
    assert assert_index_equals_folder(settings, folder, model) == 12


def test_a_lost_manifest_means_encoding_again_not_trusting_the_store(settings, folder, model):
    sync(settings, folder, model)
    (folder / "dogs" / "00000.png").write_bytes(picture(700))
    manifest_path(settings.home, settings.store).unlink()
    report = sync(settings, folder, model)
    assert report.encoded == 12
    assert assert_index_equals_folder(settings, folder, model) == 12


def test_a_store_from_before_sync_is_adopted_without_encoding(settings, folder, model):
    sync(settings, folder, model)
    with open_store(settings.store, settings) as store:  # as an older cbir left it
        meta = {k: v for k, v in store.meta.items() if k != "sync"}
        store.create({}, meta=meta)
    manifest_path(settings.home, settings.store).unlink()
    report = sync(settings, folder, model)
    assert report.encoded == 0 and counts(report)["unchanged"] == 12
    with Manifest(manifest_path(settings.home, settings.store)) as manifest:
        assert len(manifest.entries()) == 12
    (folder / "dogs" / "00000.png").write_bytes(picture(700))
    assert sync(settings, folder, model).encoded == 1
    assert_index_equals_folder(settings, folder, model)


def test_limit_does_not_remove_the_files_it_leaves_out(settings, folder, model):
    sync(settings, folder, model)
    report = sync(settings, folder, model, limit=2)
    assert counts(report)["removed"] == 0
    assert assert_index_equals_folder(settings, folder, model) == 12


def test_a_sync_of_named_paths_touches_only_them_and_keeps_label_counts(settings, folder, model):
    sync(settings, folder, model)
    (folder / "dogs" / "00000.png").write_bytes(picture(500))  # changed
    (folder / "cats" / "00001.png").unlink()  # removed
    (folder / "dogs" / "00002.png").rename(folder / "cats" / "was-a-dog.png")  # renamed
    (folder / "cats" / "new.png").write_bytes(picture(600))  # added
    (folder / "cats" / ".partial.png").write_bytes(b"half")  # hidden: ignored
    (folder / "dogs" / "00004.png").unlink()  # outside the named paths: left for a full sync
    named = ["dogs/00000.png", "cats/00001.png", "dogs/00002.png", "cats/was-a-dog.png",
             "cats/new.png", "cats/.partial.png"]  # fmt: skip
    report = sync(settings, folder, model, only=named)
    assert counts(report) == dict(added=1, changed=1, removed=1, renamed=1, unchanged=0, skipped=0)
    assert report.encoded == 2
    with open_store(settings.store, settings) as store:
        assert "dogs/00004.png" in store.ids_with("colour")
        scoped_counts = store.meta["label_counts"]
    full = sync(settings, folder, model)
    assert counts(full)["removed"] == 1 and full.encoded == 0
    assert assert_index_equals_folder(settings, folder, model) == 11
    with open_store(settings.store, settings) as store:
        assert store.meta["label_counts"] == {"cats": 7, "dogs": 4}
        assert scoped_counts == {"cats": 7, "dogs": 5}  # the full sync then saw 00004 gone


def test_a_named_folder_means_a_full_sync(settings, folder, model):
    sync(settings, folder, model)
    shutil.move(folder / "cats", folder / "kittens")
    report = sync(settings, folder, model, only=["cats", "kittens"])
    assert counts(report)["renamed"] == 6 and counts(report)["unchanged"] == 6
    assert assert_index_equals_folder(settings, folder, model) == 12
