"""Fine-tuning a pretrained backbone on a labelled folder raises validation retrieval AP,
through `cbir train cnn --arch NAME --dataset folder` (the real EfficientNet-Lite0 weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic import write_labelled_folder
from cbir.stages.train_cnn import CARD_JSON, VALIDATION_IDS
from features.backbone_extractor import BackboneExtractor
from features.registry import load_extractor


@pytest.mark.slow
def test_cli_finetunes_on_a_labelled_folder_and_validation_ap_improves(cli, home, tmp_path):
    # Colour shifts make the classes overlap in colour: their stripes are what tells them apart.
    data = write_labelled_folder(
        tmp_path / "data", labels=("a", "b", "c", "d"), train=20, test=1, spread=120, noise=60
    )
    code, out, err = cli(
        "train",
        "cnn",
        "--arch",
        "efficientnet_lite0",
        "--dataset",
        "folder",
        "--data",
        data,
        "--image-size",
        "64",
        "--epochs",
        "3",
        "--val-fraction",
        "0.25",
    )
    assert code == 0, err
    model_dir = home / "models" / "cnn"
    card = json.loads((model_dir / CARD_JSON).read_text())
    measure = card["validation_measure"]
    assert measure.startswith("map_minRk")
    assert card["trained"] and card["best_epoch"] >= 1
    assert card["validation_retrieval"][measure] > card["validation_pretrained"][measure] + 0.03
    assert card["validation_gain"] == pytest.approx(
        card["validation_retrieval"][measure] - card["validation_pretrained"][measure]
    )
    assert card["train_images"] == 60 and card["validation_images"] == 20
    assert "+finetuned:" in card["weights"] and f"validation {measure}" in out
    val_ids = json.loads((model_dir / VALIDATION_IDS).read_text())["doc_ids"]
    assert len(val_ids) == 20 and all(i.startswith("train/") for i in val_ids)

    # The saved model is the fine-tuned one, and differs from the pretrained backbone.
    tuned = load_extractor(model_dir)
    assert tuned.fingerprint == card["fingerprint"] and tuned.num_classes == 4
    pretrained = BackboneExtractor.pretrained("efficientnet_lite0", image_size=64)
    image = [np.full((64, 64, 3), 128, np.uint8)]
    assert not np.allclose(tuned.encode(image), pretrained.encode(image))


def test_epochs_zero_saves_the_backbone_as_is(cli, home, tmp_path):
    data = write_labelled_folder(tmp_path / "data", labels=("a", "b"), train=4, test=1)
    code, _, err = cli(
        "train",
        "cnn",
        "--arch",
        "efficientnet_lite0",
        "--dataset",
        "folder",
        "--data",
        data,
        "--epochs",
        "0",
    )
    assert code == 0, err
    card = json.loads((home / "models" / "cnn" / CARD_JSON).read_text())
    assert card["trained"] is False and "finetuned" not in card["weights"]
    assert load_extractor(home / "models" / "cnn").fingerprint == (
        BackboneExtractor.pretrained("efficientnet_lite0").fingerprint
    )
