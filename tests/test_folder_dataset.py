"""Folder datasets: labels from sub-folders, safe walking, skipped files reported, stable ids."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks.synthetic import bomb_png, png_bytes, truncated_jpeg, write_image_folder
from cbir.core.errors import DatasetError
from cbir.stages.dataset import summarize_dataset
from indexing.dataset_kinds import open_dataset
from indexing.datasets import FolderDataset, folder_doc_id
from indexing.skipped import SkipReport
from indexing.walk import walk_images


def make_flat(root):
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.png").write_bytes(png_bytes(i))
    (root / "top.png").write_bytes(png_bytes(9))
    return root


def test_labels_come_from_the_first_sub_folder(tmp_path):
    ds = FolderDataset(make_flat(tmp_path / "d"))
    records = ds.records()
    assert [r.doc_id for r in records] == ["top.png"] + [
        f"{c}/{i}.png" for c in ("cats", "dogs") for i in range(3)
    ]
    assert {r.label for r in records} == {None, "cats", "dogs"}
    assert all(r.split is None for r in records)
    assert ds.labels == ["cats", "dogs"]


def test_train_and_test_folders_give_the_split(tmp_path):
    write_image_folder(tmp_path / "d", per_class=2)
    (tmp_path / "d" / "README.png").write_bytes(png_bytes(1))  # outside the split folders: ignored
    ds = FolderDataset(tmp_path / "d")
    assert {r.split for r in ds.records()} == {"train", "test"}
    train = ds.records("train")
    assert len(train) == 6 and train[0].doc_id == "train/airplane/0000.png"
    assert train[0].label == "airplane"


def test_doc_ids_are_stable_and_escape_whitespace(tmp_path):
    root = tmp_path / "d"
    (root / "my cats").mkdir(parents=True)
    (root / "my cats" / "a b.png").write_bytes(png_bytes(0))
    first = [r.doc_id for r in FolderDataset(root).records()]
    assert first == ["my%20cats/a%20b.png"] == [r.doc_id for r in FolderDataset(root).records()]
    assert folder_doc_id("x/y.jpg") == "x/y.jpg"


def test_symlinks_out_of_the_root_and_cycles_and_fifos(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes(0))
    root = make_flat(tmp_path / "d")
    (root / "cats" / "escape.png").symlink_to(outside)
    (root / "cats" / "loop").symlink_to(root / "cats")  # a cycle
    (root / "dogs" / "inside.png").symlink_to(root / "cats" / "0.png")
    os.mkfifo(root / "dogs" / "pipe.png")
    (root / "notes.txt").write_text("hello")
    (root / ".hidden.png").write_bytes(png_bytes(1))
    report = SkipReport()
    found = [f.relpath for f in walk_images(root, report)]
    assert "cats/escape.png" not in found
    assert "dogs/inside.png" in found
    assert not any(p.startswith("cats/loop") for p in found)
    assert ".hidden.png" not in found
    reasons = {s.path: s.reason for s in report.items}
    assert "outside the dataset root" in reasons["cats/escape.png"]
    assert "FIFO" in reasons["dogs/pipe.png"]
    assert "suffix" in reasons["notes.txt"]


def test_corrupt_files_are_skipped_and_reported(tmp_path, settings):
    root = make_flat(tmp_path / "d")
    (root / "cats" / "empty.png").write_bytes(b"")
    (root / "cats" / "trunc.jpg").write_bytes(truncated_jpeg())
    (root / "dogs" / "text.jpg").write_text("not an image")
    (root / "dogs" / "bomb.png").write_bytes(bomb_png())
    result = summarize_dataset(settings, "folder", str(root))
    data = json.loads(result.report_path.read_text())
    reasons = {item["path"]: item["reason"] for item in data["skipped"]}
    assert data["count"] == 4
    assert "empty" in reasons["cats/empty.png"]
    assert "truncated" in reasons["cats/trunc.jpg"]
    assert "not an image" in reasons["dogs/text.jpg"]
    assert "bomb" in reasons["dogs/bomb.png"]
    assert result.summary.total == 7  # the good ones are all counted
    assert result.summary.counts["all"] == {"cats": 3, "dogs": 3, "(none)": 1}


def test_batches_stream_every_readable_record(tmp_path):
    ds = FolderDataset(make_flat(tmp_path / "d"))
    batches = list(ds.iter_batches(batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [r for b in batches for r in b.records] == ds.records()
    assert isinstance(batches[0].payloads[0], bytes)


def test_missing_folder_is_a_clear_error(tmp_path, settings):
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset("folder", settings, str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="needs --data"):
        open_dataset("folder", settings, None)
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        open_dataset("imagenet", settings, None)


def test_cli_dataset_folder_writes_the_report(tmp_path, cli, home):
    root = make_flat(tmp_path / "d")
    (root / "cats" / "bad.jpg").write_bytes(b"junk")
    code, out, _ = cli("dataset", "--dataset", "folder", "--data", root)
    assert code == 0
    assert "dataset folder: 7 images" in out
    assert "skipped files: 1" in out
    report = json.loads((home / "reports" / "skipped-folder.json").read_text())
    assert report["skipped"][0]["path"] == "cats/bad.jpg"


def test_cli_missing_dataset_exits_2_with_one_line(cli, tmp_path):
    code, _out, err = cli("dataset", "--dataset", "folder", "--data", tmp_path / "missing")
    assert code == 2
    assert err.count("\n") == 1 and "does not exist" in err
