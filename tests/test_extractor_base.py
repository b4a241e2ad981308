"""The extractor base: fingerprints, save/load, the registry, and the shared batch path (in-process and Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.synthetic import png_bytes, rgb_array
from benchmarks.toy_extractors import ColourMomentsExtractor
from features.base import ModelError
from features.registry import extractor_class, load_extractor
from indexing.datasets import FolderDataset
from indexing.encoding import RayOptions, encode_batches


def fitted(scale: float = 1.0) -> ColourMomentsExtractor:
    return ColourMomentsExtractor(scale).fit([rgb_array(i) for i in range(5)])


def test_save_load_round_trip_keeps_the_fingerprint(tmp_path):
    model = fitted()
    model.save(tmp_path / "m")
    again = load_extractor(tmp_path / "m")
    assert isinstance(again, ColourMomentsExtractor)
    assert again.fingerprint == model.fingerprint
    images = [rgb_array(10), rgb_array(11)]
    np.testing.assert_array_equal(again.encode(images), model.encode(images))
    manifest = json.loads((tmp_path / "m" / "extractor.json").read_text())
    assert manifest["dim"] == 6 and manifest["name"] == "colour-moments"


def test_fingerprint_changes_with_params_and_state():
    assert fitted(1.0).fingerprint != fitted(2.0).fingerprint
    other = ColourMomentsExtractor().fit([rgb_array(i) for i in range(5, 9)])
    assert other.fingerprint != fitted().fingerprint
    with pytest.raises(ModelError, match="not fitted"):
        _ = ColourMomentsExtractor().fingerprint


def test_tampered_state_is_refused(tmp_path):
    fitted().save(tmp_path / "m")
    np.save(tmp_path / "m" / "centre.npy", np.zeros(6))
    with pytest.raises(ModelError, match="fingerprint"):
        load_extractor(tmp_path / "m")


def test_missing_model_and_unknown_method():
    with pytest.raises(ModelError, match="cbir train"):
        load_extractor("/nonexistent/model")
    with pytest.raises(ModelError, match="unknown method 'sift3d'"):
        extractor_class("sift3d")


def test_vectors_are_unit_length_float32():
    vectors = fitted().encode([rgb_array(20), rgb_array(21)])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)


@pytest.fixture
def small_folder(tmp_path):
    root = tmp_path / "imgs"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(12):
            (root / label / f"{i:02d}.png").write_bytes(png_bytes(i + (100 if label == "b" else 0)))
    (root / "a" / "broken.png").write_bytes(b"garbage")
    return root


def collect(results):
    vectors, skipped = {}, []
    for result in results:
        for record, row in zip(result.records, result.vectors["colour"], strict=True):
            vectors[record.doc_id] = row
        skipped += [s.path for s in result.skipped]
    return vectors, skipped


def test_in_process_batch_path_skips_undecodable_images(small_folder, tmp_path):
    fitted().save(tmp_path / "m")
    ds = FolderDataset(small_folder)
    vectors, skipped = collect(
        encode_batches(
            ds.iter_batches(batch_size=5), {"colour": tmp_path / "m"}, ray=None, show_progress=False
        )
    )
    assert skipped == ["a/broken.png"]
    assert len(vectors) == 24


@pytest.mark.slow
def test_ray_batch_path_equals_in_process(small_folder, tmp_path):
    fitted().save(tmp_path / "m")
    ds = FolderDataset(small_folder)
    local, _ = collect(
        encode_batches(
            ds.iter_batches(batch_size=5), {"colour": tmp_path / "m"}, ray=None, show_progress=False
        )
    )
    on_ray, skipped = collect(
        encode_batches(
            ds.iter_batches(batch_size=5),
            {"colour": tmp_path / "m"},
            ray=RayOptions(workers=2),
            show_progress=False,
        )
    )
    assert skipped == ["a/broken.png"]
    assert on_ray.keys() == local.keys()
    for doc_id, row in local.items():
        np.testing.assert_array_equal(on_ray[doc_id], row)
