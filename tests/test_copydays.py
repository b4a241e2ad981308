"""The copy dev-set builder: each transform does what its name says; the folder's layout."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.copydays import TRANSFORMS, photo, transformed, write_copy_folder
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
