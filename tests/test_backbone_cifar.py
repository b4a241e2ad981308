"""The CIFAR-10 route of a pretrained backbone: `cbir train cnn --arch NAME --dataset cifar10`
fine-tunes it on upscaled 32-px thumbnails (real EfficientNet-Lite0 weights, a generated
CIFAR-shaped ImageFolder), and the saved model encodes deterministically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic import class_images, write_labelled_folder
from cbir.stages.train_cnn import CARD_JSON, VALIDATION_IDS
from features.backbone_extractor import BackboneExtractor, resize_centre_crop
from features.backbones import preprocessing
from features.base import read_manifest
from features.registry import load_extractor
from indexing.models import is_cifar_network


def test_full_frame_keeps_the_whole_thumbnail():
    cropped, whole = (
        preprocessing("efficientnet_lite0", 64),
        preprocessing("efficientnet_lite0", 64, full_frame=True),
    )
    assert (cropped.resize, cropped.crop) == (73, 64)  # ImageNet's crop_pct cuts the border
    assert (whole.resize, whole.crop) == (64, 64)
    thumbnail = np.zeros((32, 32, 3), np.uint8)
    thumbnail[:, :1] = 255  # a white left column survives only without the crop
    assert resize_centre_crop(thumbnail, whole)[:, 0].min() > 200
    assert resize_centre_crop(thumbnail, cropped)[:, :2].max() < 100


def test_models_without_full_frame_keep_their_parameters():
    # Saved models from before the option must keep their fingerprints.
    assert "full_frame" not in BackboneExtractor("efficientnet_lite0").params
    assert BackboneExtractor("efficientnet_lite0", full_frame=True).params["full_frame"] is True


@pytest.mark.slow
def test_cifar_route_trains_every_stage_and_keeps_the_better_network(cli, home, tmp_path):
    # A CIFAR-shaped ImageFolder (train/<class>/*.png, 32x32): colour shifts make the classes
    # overlap in colour, so their stripes are what tells them apart.
    data = write_labelled_folder(
        tmp_path / "cifar", labels=("a", "b", "c", "d"), train=20, test=1, spread=120, noise=60
    )
    code, out, err = cli(
        "train",
        "cnn",
        "--arch",
        "efficientnet_lite0",
        "--dataset",
        "cifar10",
        "--data",
        data,
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--val-fraction",
        "0.25",
    )
    assert code == 0, err
    model_dir = home / "models" / "cnn"
    card = json.loads((model_dir / CARD_JSON).read_text())
    measure = card["validation_measure"]
    losses = [epoch["loss"] for epoch in card["epochs"]]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # every stage trains: the loss falls
    # On 60 thumbnails and a handful of steps the CIFAR recipe (all stages at 1e-3) need not
    # beat the pretrained backbone (docs/backbones.md); the kept network is the better one.
    gain = card["validation_retrieval"][measure] - card["validation_pretrained"][measure]
    assert card["trained"] == (card["best_epoch"] >= 1) == (gain > 0)
    assert card["dataset"] == "cifar10" and card["image_size"] == 64 and card["resize"] == 64
    assert (
        card["finetune_config"]["train_batchnorm"] and card["finetune_config"]["batch_size"] == 16
    )
    assert card["train_images"] == 60 and card["validation_images"] == 20
    assert f"validation {measure}" in out
    assert len(json.loads((model_dir / VALIDATION_IDS).read_text())["doc_ids"]) == 20
    assert is_cifar_network(model_dir)  # folders get the ImageNet default instead
    params = read_manifest(model_dir)["params"]
    assert params["full_frame"] is True and params["image_size"] == 64

    # Encoding is deterministic: the same vectors from two loads, one image or a batch.
    thumbnails = class_images(2, 5, seed=99, spread=120, noise=60)
    first, second = load_extractor(model_dir), load_extractor(model_dir)
    batch = first.encode(thumbnails)
    assert batch.shape == (5, 1280)
    np.testing.assert_array_equal(batch, second.encode(thumbnails))
    one_by_one = np.concatenate([second.encode([t]) for t in thumbnails])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-6)
    pretrained = BackboneExtractor.pretrained("efficientnet_lite0", image_size=64, full_frame=True)
    untouched = np.allclose(batch, pretrained.encode(thumbnails), atol=1e-6)
    assert untouched != card["trained"]


def test_folders_pass_over_a_backbone_tuned_on_cifar(tmp_path):
    for full_frame, dataset, expected in ((True, "cifar10", True), (False, "folder", False)):
        model = BackboneExtractor.pretrained(
            "efficientnet_lite0", image_size=32, full_frame=full_frame
        )
        directory = model.save(tmp_path / f"{dataset}-{full_frame}")
        (directory / CARD_JSON).write_text(json.dumps({"dataset": dataset}))
        assert is_cifar_network(directory) is expected
