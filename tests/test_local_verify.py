"""Known answers for local features and geometric verification on scikit-image's photographs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from features.local import LocalFeatureError, extract_local, quantise_rootsift, working_scale
from features.verify import (
    TransformModel,
    Verification,
    VerifyParams,
    match,
    nearest_neighbours,
    rerank_order,
    verify,
    verify_many,
    verify_views,
)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def query(astronaut):
    return extract_local(astronaut, max_keypoints=300)


def _local(image: np.ndarray):
    return extract_local(np.ascontiguousarray(image), max_keypoints=300)


def test_extract_shapes_types_and_working_scale(astronaut):
    big = cv2.resize(astronaut, (1600, 1200))
    features = extract_local(big, max_side=800, max_keypoints=200)
    assert features.shape == (600, 800)
    assert features.scale == pytest.approx(0.5)
    assert 0 < len(features) <= 200
    assert features.points.dtype == np.float32 and features.points.shape[1] == 4
    assert features.descriptors.dtype == np.uint8 and features.descriptors.shape[1] == 128
    assert features.xy()[:, 0].max() < 800 and features.xy()[:, 1].max() < 600
    assert features.nbytes == len(features) * (16 + 128) + 12
    # a thumbnail is enlarged to the minimum working side
    assert working_scale((64, 32), 800, 320) == 5.0


def test_flat_image_gives_no_keypoints_and_bad_input_is_named():
    assert len(extract_local(np.full((100, 120, 3), 128, np.uint8))) == 0
    with pytest.raises(LocalFeatureError, match="uint8"):
        extract_local(np.zeros((10, 10, 3), np.float32))


def test_rootsift_quantisation_keeps_the_direction():
    sift = np.random.default_rng(0).random((5, 128)).astype(np.float32) * 100
    root = np.sqrt(sift / sift.sum(axis=1, keepdims=True))
    quantised = quantise_rootsift(sift).astype(np.float32)
    cosine = (quantised * root).sum(1) / np.linalg.norm(quantised, axis=1)
    assert np.all(cosine > 0.999)


@pytest.mark.parametrize("turns,angle", [(1, -90.0), (2, 180.0), (3, 90.0)])
def test_rotated_copy_verifies_with_its_rotation(astronaut, query, turns, angle):
    result = verify(query, _local(np.rot90(astronaut, turns)))
    assert result.inliers >= 100
    # np.rot90 turns counter-clockwise; with y pointing down that is -90 degrees per turn
    assert abs((result.angle - angle + 180) % 360 - 180) < 1.0
    assert result.scale == pytest.approx(1.0, abs=0.01)


def test_cropped_and_scaled_copy_maps_points_back(astronaut, query):
    top, left = 100, 80
    crop = astronaut[top : top + 360, left : left + 380]
    half = cv2.resize(crop, (190, 180), interpolation=cv2.INTER_AREA)
    result = verify(query, _local(half))
    assert result.inliers >= 30
    assert result.scale == pytest.approx(0.5, abs=0.02)
    assert abs(result.angle) < 1.0
    # the transform takes an astronaut pixel to the copy's pixel: (x - left) / 2
    mapped = result.transform @ np.array([300.0, 250.0, 1.0])
    assert mapped[:2] == pytest.approx([(300 - left) / 2, (250 - top) / 2], abs=2.0)
    # inlier pairs are in image pixels of each side and agree with the transform
    projected = result.query_xy @ result.transform[:2, :2].T + result.transform[:2, 2]
    assert np.median(np.linalg.norm(projected - result.candidate_xy, axis=1)) < 2.0


def test_homography_model_also_verifies_a_copy(astronaut, query):
    params = VerifyParams(model=TransformModel.HOMOGRAPHY)
    result = verify(query, _local(np.rot90(astronaut)), params)
    assert result.inliers >= 100


def test_mirrored_copy_needs_the_mirrored_view(astronaut, query):
    mirror = _local(astronaut[:, ::-1])
    plain = verify(query, mirror)
    views = [query, _local(astronaut[:, ::-1])]
    both = verify_views(views, mirror, VerifyParams())
    assert both.mirrored and both.inliers >= 100 > plain.inliers


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket", "camera", "coins"])
def test_unrelated_photos_get_no_inliers(query, name):
    other = getattr(data, name)()
    if other.ndim == 2:
        other = np.repeat(other[:, :, None], 3, axis=2)
    result = verify(query, _local(other))
    assert result.inliers == 0 and result.transform is None


def test_verify_many_in_threads_equals_one_by_one(astronaut, query):
    candidates = [_local(data.coffee()), None, _local(np.rot90(astronaut))]
    serial = verify_many([query], candidates, workers=1)
    threaded = verify_many([query], candidates, workers=2)
    assert [v.inliers for v in serial] == [v.inliers for v in threaded]
    assert serial[0].inliers == 0 and serial[1].inliers == 0 and serial[2].inliers >= 100


def test_rerank_puts_inliers_first_and_keeps_ties_in_order():
    results = [
        Verification(0, 0),
        Verification(7, 9),
        Verification(0, 3),
        Verification(7, 8),
        Verification(40, 50),
        Verification(3, 4),
    ]
    assert rerank_order(results) == [4, 1, 3, 5, 0, 2]
    assert rerank_order(results, min_inliers=5) == [4, 1, 3, 0, 2, 5]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="ratio"):
        VerifyParams(ratio=1.5)
    with pytest.raises(ValueError, match="keypoints"):
        VerifyParams(keypoints=1)
    with pytest.raises(ValueError, match="min_inlier_ratio"):
        VerifyParams(min_inlier_ratio=1.5)


def test_min_inlier_ratio_counts_a_fit_with_too_few_of_its_matches_as_none(astronaut, query):
    from features.verify import fit

    candidate = _local(np.rot90(astronaut))
    good = match(query, candidate, VerifyParams())
    rng = np.random.default_rng(0)  # as many wrong pairs again: about half are inliers
    wrong = np.stack(
        [rng.integers(0, len(query), len(good)), rng.integers(0, len(candidate), len(good))], 1
    )
    pairs = np.concatenate([good, wrong])
    true = fit(query, candidate, pairs, VerifyParams(min_inlier_ratio=0.0))
    assert true.inliers >= 100 and true.matches == len(pairs)
    share = true.inliers / true.matches
    assert 0.45 < share < 0.6
    kept = fit(query, candidate, pairs, VerifyParams(min_inlier_ratio=share - 0.01))
    assert kept.inliers == true.inliers
    dropped = fit(query, candidate, pairs, VerifyParams(min_inlier_ratio=share + 0.01))
    assert dropped.inliers == 0 and dropped.matches == len(pairs)


def _brute_force_matches(query, candidate, ratio: float, keypoints: int) -> set[tuple[int, int]]:
    """Mutual nearest neighbours passing Lowe's ratio, from full L2 distances (the definition)."""
    q, c = query.rootsift(keypoints), candidate.rootsift(keypoints)
    d = np.linalg.norm(q[:, None, :] - c[None, :, :], axis=2)
    found = set()
    for i, row in enumerate(d):
        first, second = np.argsort(row)[:2]
        if row[first] < ratio * row[second] and np.argmin(d[:, first]) == i:
            found.add((i, int(first)))
    return found


def test_matching_agrees_with_brute_force_l2_and_caps_keypoints(astronaut, query):
    copy = _local(np.rot90(astronaut[40:400, 60:480]))
    params = VerifyParams(ratio=0.8, keypoints=120)
    pairs = match(query, copy, params)
    assert {tuple(p) for p in pairs.tolist()} == _brute_force_matches(query, copy, 0.8, 120)
    assert pairs.max() < 120 and len(pairs) > 20
    # the ratios returned allow any stricter ratio to be had by filtering
    loose, ratios = nearest_neighbours(query, copy, keypoints=120, max_ratio=0.9)
    assert np.all(ratios < 0.9)
    assert {tuple(p) for p in loose[ratios < 0.8].tolist()} == {tuple(p) for p in pairs.tolist()}
    # fewer keypoints matched: still the copy, with its rotation
    result = verify(query, copy, params)
    assert result.inliers >= 15 and abs(result.angle) == pytest.approx(90, abs=2)


def test_params_to_json_names_the_model():
    assert VerifyParams(model=TransformModel.AFFINE).to_json()["model"] == "affine"
