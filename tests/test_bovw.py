"""BoVW extractor: known answers on generated images, save/load, diagnostics, Ray parity."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.synthetic import rgb_array
from features.base import ModelError
from features.bovw import BovwExtractor
from features.registry import extractor_class, load_extractor
from features.sift import SiftSampler, mirror_permutation

# Small and fast: a 16-word vocabulary, no PCA unless a test asks for it.
SMALL = {"vocabulary_size": 16, "pca_dim": 0, "colour": False, "hog": False, "kmeans_init": 1}


def stripes(vertical: bool, seed: int, period: int = 4, size: int = 32) -> np.ndarray:
    """Black/white stripes with a little noise: a texture with one dominant gradient direction."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    wave = ((xx if vertical else yy) + rng.integers(0, period)) // (period // 2) % 2
    image = 40 + 170 * wave[..., None] + rng.normal(0, 6, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def flat(value: int = 128, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def textures(n: int = 8) -> list[np.ndarray]:
    return [stripes(True, i) for i in range(n)] + [stripes(False, 100 + i) for i in range(n)]


def test_registry_finds_bovw():
    assert extractor_class("bovw") is BovwExtractor


def test_two_textures_fall_on_different_words():
    model = BovwExtractor(**SMALL, knn=1, mirror=False).fit(textures())
    vertical = model.word_cells(model.describe([stripes(True, 50)])).sum(axis=(0, 1))
    horizontal = model.word_cells(model.describe([stripes(False, 150)])).sum(axis=(0, 1))
    p, q = vertical / vertical.sum(), horizontal / horizontal.sum()
    assert np.minimum(p, q).sum() < 0.1  # the two word histograms barely overlap
    v = model.encode([stripes(True, 51), stripes(True, 52), stripes(False, 151)])
    assert v[0] @ v[1] > 0.8 > v[0] @ v[2]


def test_identical_images_give_identical_vectors():
    model = BovwExtractor(**SMALL).fit(textures(4))
    image = stripes(True, 7)
    vectors = model.encode([image, stripes(False, 8), image.copy()])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_allclose(model.encode_one(image), vectors[0], atol=1e-6)
    assert vectors.dtype == np.float32 and vectors.shape == (3, model.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_flat_image_gets_a_zero_vector_and_is_listed():
    images = [*textures(4), flat(90)]
    model = BovwExtractor(**{**SMALL, "pca_dim": 4}).fit(images)
    assert model.report.images_without_descriptors == [len(images) - 1]
    assert model.report.words_used + model.report.empty_words == 16
    assert model.report.mean_descriptors == pytest.approx(169 * 8 / 9)
    vectors = model.encode([flat(200), stripes(True, 3), flat(0)])
    assert not vectors[0].any() and not vectors[2].any()
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0, rel=1e-5)
    assert any("with no descriptors" in line and "1" in line for line in model.report.lines())


def test_colour_describes_a_flat_image_when_switched_on():
    model = BovwExtractor(**{**SMALL, "colour": True, "colour_words": 4}).fit(
        [*textures(3), flat(30), flat(220)]
    )
    dark, light = model.encode([flat(30), flat(220)])
    assert np.linalg.norm(dark) == pytest.approx(1.0, rel=1e-5)
    assert dark @ light < 0.9  # different colours, different vectors


def test_images_of_any_size_are_accepted():
    model = BovwExtractor(**{**SMALL, "hog": True}).fit(textures(3))
    big, small = model.encode([rgb_array(1, size=97), rgb_array(2, size=12)])
    assert np.linalg.norm(big) == pytest.approx(1.0, rel=1e-5)
    assert np.linalg.norm(small) == pytest.approx(1.0, rel=1e-5)


def test_save_load_round_trip_keeps_fingerprint_and_vectors(tmp_path):
    params = {**SMALL, "colour": True, "colour_words": 4, "hog": True, "pca_dim": 8}
    model = BovwExtractor(**params).fit(textures(5))
    model.save(tmp_path / "m")
    again = load_extractor(tmp_path / "m")
    assert isinstance(again, BovwExtractor)
    assert again.fingerprint == model.fingerprint and again.dim == 8
    images = [stripes(True, 40), rgb_array(3)]
    np.testing.assert_array_equal(again.encode(images), model.encode(images))
    other = BovwExtractor(**{**params, "sigma": 0.2})
    other.load_state(tmp_path / "m")
    assert other.fingerprint != model.fingerprint  # parameters are part of the fingerprint


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ModelError, match="4,096"):
        BovwExtractor(pca_dim=0)  # 6,116 raw dimensions: too many for a dense_vector field
    with pytest.raises(ModelError, match="sampling"):
        BovwExtractor(sampling="everywhere")
    with pytest.raises(ModelError, match="divide"):
        BovwExtractor(**{**SMALL, "pyramid": [[1, 1.0], [3, 1.0], [2, 1.0]]})
    with pytest.raises(ModelError, match="at least that many"):
        BovwExtractor(**{**SMALL, "pca_dim": 50}).fit(textures(3))
    with pytest.raises(ModelError, match="not fitted"):
        BovwExtractor(**SMALL).encode([flat()])


def test_detector_sampling_runs_and_finds_fewer_keypoints():
    model = BovwExtractor(**{**SMALL, "sampling": "detector", "vocabulary_size": 4}).fit(
        [rgb_array(i) for i in range(6)]
    )
    assert 0 < model.report.mean_descriptors < 169
    assert np.linalg.norm(model.encode_one(rgb_array(9))) == pytest.approx(1.0, rel=1e-5)


def test_mirror_permutation_matches_opencv_on_a_flipped_image():
    import cv2

    sampler = SiftSampler(mirror=False)
    keypoints, _ = sampler.grid
    gray = cv2.resize(cv2.cvtColor(rgb_array(5), cv2.COLOR_RGB2GRAY), (64, 64))
    gray = cv2.GaussianBlur(gray, (3, 3), 1.0)
    _, d = sampler.sift.compute(gray, keypoints)
    flipped = [cv2.KeyPoint(63 - k.pt[0], k.pt[1], k.size, 0) for k in keypoints]
    _, dm = sampler.sift.compute(np.ascontiguousarray(gray[:, ::-1]), flipped)
    err = np.abs(d[:, mirror_permutation()] - dm).mean() / d.mean()
    naive = np.abs(d - dm).mean() / d.mean()
    assert err < 0.25 * naive
