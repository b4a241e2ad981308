"""The copy dev-set builder: each transform does what its name says; the folder's layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.copydays import (
    SPLITS,
    TRANSFORMS,
    Split,
    cifar_images,
    photo,
    transformed,
    write_copy_folder,
)
from benchmarks.scenes import scene_image
from features.local import extract_local
from indexing.datasets import FolderDataset


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return photo("coffee")  # 400 x 600


def test_transforms_known_answers(coffee):
    rng = np.random.default_rng(0)
    crop = transformed(coffee, "crop", rng)
    assert crop.size >= 0.5 * coffee.size
    assert np.array_equal(transformed(coffee, "rot90", rng), np.rot90(coffee, -1))
    assert transformed(coffee, "rot270", rng).shape == (600, 400, 3)
    assert np.array_equal(transformed(coffee, "mirror", rng), coffee[:, ::-1])
    gray = transformed(coffee, "gray", rng)
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert max(transformed(coffee, "thumb64", rng).shape[:2]) == 64
    assert not np.array_equal(transformed(coffee, "text", rng), coffee)
    with pytest.raises(ValueError, match="unknown transform"):
        transformed(coffee, "swirl", rng)


def test_folder_layout(tmp_path):
    root = write_copy_folder(tmp_path, originals=("coins",), distractors=3)
    ds = FolderDataset(root)
    assert [r.label for r in ds.records("train")].count("coins") == 1
    assert sorted(r.path.split("/")[-1] for r in ds.records("test")) == sorted(
        f"{t}.jpg" for t in TRANSFORMS
    )
    assert len({r.label for r in ds.records("train")}) == 4


def test_validation_and_test_splits_share_no_original():
    test, validation = SPLITS[Split.TEST], SPLITS[Split.VALIDATION]
    assert not set(test.originals) & set(validation.originals)
    # a split's distractors are never cut from its own originals
    for sources in (test, validation):
        assert not set(sources.originals) & set(sources.distractor_photos)
    assert test.cifar_part != validation.cifar_part
    for name in ("china", "grace_hopper", "motorcycle_left"):  # other packages' photos
        image = photo(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and min(image.shape[:2]) > 300
    with pytest.raises(ValueError, match="both originals and distractor"):
        write_copy_folder(Path("unused"), originals=("moon",), distractor_photos=("moon",))


def _cifar_archive(path: Path, per_class: int) -> Path:
    """A CIFAR-like JPEG archive: 3 classes, `per_class` images of each in train and test."""
    with tarfile.open(path, "w:gz") as tar:
        for part in ("train", "test"):
            for c, name in enumerate(("cat", "dog", "ship")):
                for i in range(per_class):
                    image = np.full((32, 32, 3), 40 * c + i, np.uint8)
                    data = cv2.imencode(".jpg", image)[1].tobytes()
                    info = tarfile.TarInfo(f"{part}/{name}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return path


def test_cifar_distractors_come_from_the_split_part_round_robin(tmp_path):
    archive = _cifar_archive(tmp_path / "cifar.tar.gz", per_class=4)
    images = cifar_images(archive, "test", 6)
    assert len(images) == 6 and images[0].shape == (32, 32, 3)
    # classes alternate: cat 0, dog 0, ship 0, cat 1, ... (grey levels 0, 40, 80, 1, ...)
    assert [round(float(i.mean())) for i in images[:4]] == [0, 40, 80, 1]
    with pytest.raises(ValueError, match="only 12 test images"):
        cifar_images(archive, "test", 20)
    root = write_copy_folder(
        tmp_path / "set", originals=("coins",), transforms=("gray",), distractors=10,
        distractor_photos=("moon",), cifar=archive,
    )  # fmt: skip
    ds = FolderDataset(root)
    sizes = [ds.image(r).shape[:2] for r in ds.records("train") if r.label != "coins"]
    assert len(sizes) == 10 and sizes.count((128, 128)) == 4  # 40 % CIFAR, enlarged 4x


def test_generated_scenes_vary_and_have_keypoints():
    rng = np.random.default_rng(3)
    scenes = [scene_image(rng) for _ in range(6)]
    assert all(s.dtype == np.uint8 and s.shape[0] == 320 for s in scenes)
    assert len({s.tobytes() for s in scenes}) == 6
    assert sum(len(extract_local(s, max_keypoints=100)) > 10 for s in scenes) >= 4
