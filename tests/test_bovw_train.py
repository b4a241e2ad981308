"""`cbir train bovw` on a generated folder dataset, and BoVW on the shared batch path (in-process and Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic import encode, write_labelled_folder
from cbir.stages.train_bovw import train_bovw
from features.registry import load_extractor
from indexing.datasets import FolderDataset
from indexing.encoding import RayOptions, encode_batches

SMALL = ["--vocabulary-size", "16", "--pca-dim", "8", "--no-hog"]


@pytest.fixture
def folder(tmp_path):
    root = write_labelled_folder(tmp_path / "data", train=10, test=3)
    from PIL import Image

    (root / "train" / "red" / "flat.png").write_bytes(
        encode(Image.new("RGB", (32, 32), (90, 90, 90)))
    )
    (root / "train" / "red" / "broken.png").write_bytes(b"not an image")
    return root


def test_train_bovw_fits_lists_and_then_skips(cli, folder, home):
    args = ["train", "bovw", "--dataset", "folder", "--data", folder, *SMALL, "--images", "1000"]
    code, out, _ = cli(*args)
    assert code == 0, out
    model_dir = home / "models" / "bovw"
    assert "16 words" in out and "images with no descriptors (zero SIFT channel): 1" in out
    assert "train/red/flat.png" in out  # the flat image is named, and did not crash the fit
    assert "unreadable train images left out: 1" in out
    assert "train bovw: 31 images in" in out  # 30 generated + the flat one; never the test split
    report = json.loads((model_dir / "vocabulary_report.json").read_text())
    assert report["images"] == 31 and report["words"] == 16
    assert report["doc_ids_without_descriptors"] == ["train/red/flat.png"]
    fingerprint = load_extractor(model_dir).fingerprint
    assert "recipe: photo" in out  # a folder gets the photo recipe, stated in the model's files
    assert json.loads((model_dir / "extractor.json").read_text())["params"]["recipe"] == "photo"
    assert json.loads((model_dir / "training.json").read_text())["recipe"] == "photo"

    code, out, _ = cli(*args)
    assert code == 0 and "already in" in out and fingerprint in out
    assert load_extractor(model_dir).fingerprint == fingerprint

    code, out, _ = cli(*args, "--force")
    assert code == 0 and "saved to" in out
    code, out, _ = cli(*args, "--seed", "1")  # other parameters: fitted again
    assert code == 0 and "saved to" in out
    assert load_extractor(model_dir).fingerprint != fingerprint


def test_train_bovw_bad_input_is_one_line(cli, folder, tmp_path):
    code, _, err = cli("train", "bovw", "--dataset", "folder", "--data", tmp_path / "nope")
    assert code == 2 and "does not exist" in err
    # Explicit options that cannot go together are refused (defaults by size never override).
    args = ["--vocabulary-size", "1024", "--pca-dim", "0"]
    code, _, err = cli("train", "bovw", "--dataset", "folder", "--data", folder, *args, "--pyramid")
    assert code == 2 and "4,096" in err
    code, _, err = cli("train", "bovw", "--dataset", "folder", "--data", folder, "--recipe", "cifar",
                       *args)  # fmt: skip
    assert code == 2 and "4,096" in err
    code, _, err = cli("train", "bovw", "--dataset", "folder", "--data", folder, "--recipe", "cifar",
                       "--working-side", "800")  # fmt: skip
    assert code == 2 and "photo recipe only" in err


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["cifar", "photo"])
def test_ray_and_in_process_encoding_give_identical_vectors(folder, settings, tmp_path, recipe):
    result = train_bovw(
        settings,
        "folder",
        str(folder),
        params={"vocabulary_size": 16, "pca_dim": 8, "colour_words": 8},
        images=100,
        show_progress=False,
        recipe=recipe,
    )
    assert load_extractor(result.model_dir).config.recipe == recipe
    ds = FolderDataset(folder)
    models = {"bovw": result.model_dir}

    def collect(ray, batch_size):
        out = {}
        for batch in encode_batches(
            ds.iter_batches(batch_size=batch_size), models, ray=ray, show_progress=False
        ):
            out.update(zip((r.doc_id for r in batch.records), batch.vectors["bovw"], strict=True))
        return out

    local = collect(None, 7)
    on_ray = collect(RayOptions(workers=2), 5)  # other batches, other processes: same vectors
    assert on_ray.keys() == local.keys() and len(local) == 40
    for doc_id, row in local.items():
        np.testing.assert_array_equal(on_ray[doc_id], row, err_msg=doc_id)
    assert local["train/red/flat.png"].any()  # colour on: a flat image still has a vector
