"""BoVW photo recipe: rotated and cropped copies, determinism, options; the CIFAR recipe unchanged."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmarks.copydays import DISTRACTOR_SOURCES, distractor, photo
from benchmarks.synthetic import rgb_array
from features.base import ModelError
from features.bovw import BovwExtractor
from features.bovw_config import BovwConfig
from features.bovw_defaults import recipe_params
from features.bovw_photo import oriented_mirror_permutation
from features.registry import load_extractor
from tests.test_bovw import stripes

SMALL = {"vocabulary_size": 32, "pca_dim": 0, "colour": False, "hog": False, "kmeans_init": 1}


def cifar_model_with_fixed_state() -> BovwExtractor:
    """The full CIFAR recipe (colour, HOG, pyramid, mirror, PCA) with seeded state, no fit."""
    model = BovwExtractor(vocabulary_size=32, pca_dim=16, colour_words=8)
    rng = np.random.default_rng(2024)
    model.vocabulary = np.sqrt(rng.dirichlet(np.ones(128) * 0.3, 32)).astype(np.float32)
    model.idf = rng.uniform(0.5, 2.0, 32).astype(np.float32)
    model.colour_vocabulary = rng.uniform([0, -60, -60], [100, 60, 60], (8, 3)).astype(np.float32)
    model.colour_sigma = np.array([12.0], np.float32)
    model.mean = rng.normal(0, 0.01, model.config.raw_dim).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(model.config.raw_dim, 16)))
    model.components = q.astype(np.float32)
    return model


def test_cifar_recipe_vectors_and_parameters_are_byte_identical_to_before_the_photo_recipe():
    model = cifar_model_with_fixed_state()
    images = [stripes(True, 99), rgb_array(77, 97), rgb_array(78, 20), stripes(False, 5)]
    vectors = model.encode(images)
    # Both values computed with the code of c1aa788, before the photo recipe existed: the
    # fingerprint hashes the parameters as saved in extractor.json, so saved models still load.
    assert model.fingerprint == "75dbfe8a6e299c12"
    expected = "87b3a0e9ada3ee7e2ea058b7a11a39ccd2e9656ac4a7d78f21505c5f650ad361"
    assert hashlib.sha256(vectors.tobytes()).hexdigest() == expected
    params = model.params
    assert not {"recipe", "working_side", "min_working_side", "max_keypoints"} & set(params)
    assert BovwConfig(**params) == model.config and model.input_side == 32


def test_oriented_mirror_permutation_matches_opencv_on_a_flipped_photo():
    import cv2

    gray = cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2GRAY)
    sift = cv2.SIFT_create(nfeatures=500)
    k1, d1 = sift.detectAndCompute(gray, None)
    k2, d2 = sift.detectAndCompute(np.ascontiguousarray(gray[:, ::-1]), None)
    p1 = np.array([(k.pt[0], k.pt[1], k.size) for k in k1])
    p2 = np.array([(gray.shape[1] - 1 - k.pt[0], k.pt[1], k.size) for k in k2])
    pairs = []
    for i, p in enumerate(p1):  # the same keypoint, found again in the flipped image
        gap = np.hypot(*(p2[:, :2] - p[:2]).T) + np.abs(p2[:, 2] - p[2])
        if gap.min() < 0.5:
            pairs.append((i, int(gap.argmin())))
    i, j = np.array(pairs).T
    assert len(i) > 50
    permuted = np.abs(d1[i][:, oriented_mirror_permutation()] - d2[j]).mean()
    unpermuted = np.abs(d1[i] - d2[j]).mean()
    assert permuted < 0.4 * unpermuted


@pytest.fixture(scope="module")
def train_photos() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    sources = [photo(n) for n in DISTRACTOR_SOURCES[:5]]
    return [photo("astronaut"), photo("coffee")] + [distractor(sources, rng) for _ in range(10)]


def copies(image: np.ndarray) -> list[np.ndarray]:
    """rot90, rot180, a crop keeping 56 % of the area, the mirror."""
    return [
        np.rot90(image).copy(),
        np.rot90(image, 2).copy(),
        image[60:444, 40:424].copy(),
        image[:, ::-1].copy(),
    ]


def test_a_rotated_copy_keeps_its_vector_under_the_photo_recipe_not_the_cifar_one(train_photos):
    astronaut = photo("astronaut")
    params = {**SMALL, "vocabulary_size": 128}  # 32 words leave unrelated photos alike
    photo_model = BovwExtractor(**recipe_params("photo", params)).fit(train_photos)
    cifar_model = BovwExtractor(**recipe_params("cifar", params)).fit(train_photos)
    new = photo_model.encode([astronaut, *copies(astronaut), photo("coffee")])
    old = cifar_model.encode([astronaut, *copies(astronaut)])
    new_cos, old_cos = new[1:] @ new[0], old[1:] @ old[0]
    assert (new_cos[:4] > 0.95).all(), new_cos  # rotations, crop, mirror
    assert new_cos[4] < new_cos[:4].min() - 0.05, new_cos  # an unrelated photo stays apart
    assert old_cos[0] < 0.9 and old_cos[1] < 0.9, old_cos  # the 32-px thumbnail turned
    assert (new_cos[:2] > old_cos[:2] + 0.2).all()


def test_photo_recipe_is_deterministic_in_any_batch(train_photos):
    model = BovwExtractor(**recipe_params("photo", SMALL)).fit(train_photos)
    again = BovwExtractor(**recipe_params("photo", SMALL)).fit(train_photos)
    assert again.fingerprint == model.fingerprint
    images = [photo("astronaut"), rgb_array(3, 200), photo("coffee")]
    batch = model.encode(images)
    np.testing.assert_array_equal(batch[2], model.encode(images[2:])[0])
    np.testing.assert_array_equal(batch, again.encode(images))
    assert model.input_side == 640 and model.dim == 32


def test_photo_recipe_saves_its_recipe_and_loads(train_photos, tmp_path):
    model = BovwExtractor(**recipe_params("photo", {**SMALL, "max_keypoints": 300}))
    model.fit(train_photos[:6]).save(tmp_path / "m")
    again = load_extractor(tmp_path / "m")
    assert again.config.recipe == "photo" and again.params["max_keypoints"] == 300
    assert again.params["pyramid"] == [[1, 1.0]] and again.config.hog is False
    image = photo("coffee")
    np.testing.assert_array_equal(again.encode_one(image), model.encode_one(image))


def test_dense_sampling_on_photos_is_an_option(train_photos):
    params = recipe_params("photo", {**SMALL, "sampling": "dense"})
    model = BovwExtractor(**params).fit(train_photos[:6])
    assert model.report.mean_descriptors > 100  # a 24-px grid on the working image
    flat = np.full((50, 70, 3), 128, np.uint8)  # nothing to describe: zero, not an error
    assert not model.encode_one(flat).any()


def test_recipe_options_are_checked():
    with pytest.raises(ModelError, match="recipe must be one of"):
        BovwConfig(recipe="film")
    with pytest.raises(ModelError, match="photo recipe only"):
        BovwConfig(working_side=800)
    with pytest.raises(ModelError, match="min_working_side"):
        BovwConfig(**recipe_params("photo", {"working_side": 200}))
    with pytest.raises(ModelError, match="RootSIFT"):
        BovwConfig(**recipe_params("photo", {"root_sift": False}))
