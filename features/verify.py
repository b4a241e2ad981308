"""Geometric verification: do two images share a region seen under one geometric transform?

Query and candidate RootSIFT descriptors are matched (Lowe's ratio test, kept only when
mutual), then OpenCV's RANSAC fits a transform to the matched positions; the number of
matches it explains (inliers) says how much of the two images is the same scene or copy.
A mirrored copy is found by verifying the query's left-right flipped features as well
(`query_views`), since SIFT is not mirror-invariant.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from features.local import LocalFeatures


class TransformModel(enum.Enum):
    """What RANSAC fits: similarity (rotation, uniform scale, shift), affine, or homography."""

    SIMILARITY = "similarity"
    AFFINE = "affine"
    HOMOGRAPHY = "homography"


@dataclass(frozen=True)
class VerifyParams:
    """Matching and RANSAC settings; thresholds are in working pixels (features/local.py).

    The defaults were chosen on the validation copy set, never on the test one
    (benchmarks/copy_validation.py; the grid is in docs/runs/copy-validation-grid.json).
    """

    ratio: float = 0.85  # Lowe's ratio test on L2 distances of RootSIFT
    mutual: bool = True
    threshold: float = 4.0  # RANSAC reprojection error, working pixels
    max_iters: int = 500
    confidence: float = 0.995
    model: TransformModel = TransformModel.SIMILARITY
    min_inliers: int = 4  # fewer inliers count as none (chance fits of a few matches)
    min_inlier_ratio: float = 0.4  # fewer inliers than this share of the matches: none
    keypoints: int = 500  # strongest keypoints of each image that are matched (speed)

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.threshold <= 0 or self.min_inliers < 0 or self.max_iters < 1:
            raise ValueError("threshold and max_iters must be positive, min_inliers >= 0")
        if not 0 <= self.min_inlier_ratio <= 1:
            raise ValueError(f"min_inlier_ratio must be in [0, 1], got {self.min_inlier_ratio}")
        if self.keypoints < 2:
            raise ValueError(f"keypoints must be at least 2, got {self.keypoints}")

    def to_json(self) -> dict:
        return {**asdict(self), "model": self.model.value}


@dataclass(frozen=True)
class Verification:
    """The outcome for one pair; positions are in pixels of the images features were taken from.

    `transform` is 3x3 (float64) mapping query pixels to candidate pixels, None when no fit
    with at least `min_inliers` inliers was found (then `inliers` is 0). `mirrored`: the fit
    used the query flipped left-right, and `query_xy` are in the flipped query's pixels.
    """

    inliers: int
    matches: int
    transform: np.ndarray | None = None
    query_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    candidate_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    mirrored: bool = False

    @property
    def angle(self) -> float | None:
        """Rotation of the transform's linear part, degrees in (-180, 180]."""
        if self.transform is None:
            return None
        a, b = self.transform[0, 0], self.transform[1, 0]
        return math.degrees(math.atan2(b, a))

    @property
    def scale(self) -> float | None:
        """Mean linear scale (sqrt of |det| of the linear part): candidate px per query px."""
        if self.transform is None:
            return None
        return math.sqrt(abs(float(np.linalg.det(self.transform[:2, :2]))))

    def to_json(self) -> dict:
        return {
            "inliers": self.inliers,
            "matches": self.matches,
            "mirrored": self.mirrored,
            "angle": None if self.angle is None else round(self.angle, 2),
            "scale": None if self.scale is None else round(self.scale, 4),
            "transform": None if self.transform is None else np.round(self.transform, 5).tolist(),
        }


NO_MATCH = Verification(0, 0)


def nearest_neighbours(
    query: LocalFeatures,
    candidate: LocalFeatures,
    *,
    keypoints: int,
    max_ratio: float,
    mutual: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(int (m, 2) pairs (query row, candidate row), float32 (m,) Lowe ratios) of the first
    `keypoints` rows of each side: each query row's nearest candidate row when its ratio of
    distances (nearest / second nearest) is below `max_ratio` (and, if `mutual`, the query
    row is also that candidate row's nearest)."""
    if len(query) < 2 or len(candidate) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    import cv2

    q = query.rootsift(keypoints)
    c = candidate.rootsift(keypoints)
    # Unit vectors: squared L2 distance = 2 - 2 cos, so the nearest is the most similar.
    # OpenCV's product, not NumPy's: OpenBLAS threads spin on a busy machine.
    sim = cv2.gemm(q, c, 1.0, None, 0.0, flags=cv2.GEMM_2_T)
    rows = np.arange(len(q))
    best = np.argmax(sim, axis=1)
    nearest = sim[rows, best]
    sim[rows, best] = -np.inf
    runner_up = sim.max(axis=1)
    sim[rows, best] = nearest
    squared = np.maximum(1.0 - nearest, 0.0) / np.maximum(1.0 - runner_up, 1e-12)
    kept = rows[squared < max_ratio**2]
    if mutual and len(kept):
        # only for the survivors: the best query row of each of their candidate columns
        kept = kept[np.argmax(sim[:, best[kept]], axis=0) == kept]
    return np.stack([kept, best[kept]], axis=1), np.sqrt(squared[kept]).astype(np.float32)


def match(query: LocalFeatures, candidate: LocalFeatures, params: VerifyParams) -> np.ndarray:
    """int (m, 2) index pairs (query row, candidate row) passing the ratio test (and mutual).

    Only the first `params.keypoints` rows (the strongest) of each side take part.
    """
    pairs, _ = nearest_neighbours(
        query, candidate, keypoints=params.keypoints, max_ratio=params.ratio, mutual=params.mutual
    )
    return pairs


def verify(
    query: LocalFeatures,
    candidate: LocalFeatures,
    params: VerifyParams = VerifyParams(),
    *,
    mirrored: bool = False,
) -> Verification:
    """Match and fit one pair; NO_MATCH-like (0 inliers) when nothing consistent is found."""
    return fit(query, candidate, match(query, candidate, params), params, mirrored=mirrored)


def fit(
    query: LocalFeatures,
    candidate: LocalFeatures,
    pairs: np.ndarray,
    params: VerifyParams,
    *,
    mirrored: bool = False,
) -> Verification:
    """RANSAC over matched `pairs` (int (m, 2), from `match`): the transform and its inliers."""
    import cv2

    minimum = 4 if params.model is TransformModel.HOMOGRAPHY else 3
    if len(pairs) < max(minimum, params.min_inliers):
        return Verification(0, len(pairs), mirrored=mirrored)
    src = np.ascontiguousarray(query.xy()[pairs[:, 0]], dtype=np.float32)
    dst = np.ascontiguousarray(candidate.xy()[pairs[:, 1]], dtype=np.float32)
    if params.model is TransformModel.HOMOGRAPHY:
        matrix, mask = cv2.findHomography(
            src,
            dst,
            cv2.USAC_MAGSAC,
            params.threshold,
            maxIters=params.max_iters,
            confidence=params.confidence,
        )
    else:
        estimate = (
            cv2.estimateAffinePartial2D
            if params.model is TransformModel.SIMILARITY
            else cv2.estimateAffine2D
        )
        matrix, mask = estimate(
            src,
            dst,
            method=cv2.RANSAC,
            ransacReprojThreshold=params.threshold,
            maxIters=params.max_iters,
            confidence=params.confidence,
        )
        if matrix is not None:
            matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
    if matrix is None or mask is None:
        return Verification(0, len(pairs), mirrored=mirrored)
    inlier = mask.ravel().astype(bool)
    found = int(inlier.sum())
    if found < params.min_inliers or found < params.min_inlier_ratio * len(pairs):
        return Verification(0, len(pairs), mirrored=mirrored)
    to_query = np.diag([query.scale, query.scale, 1.0])
    from_candidate = np.diag([1.0 / candidate.scale, 1.0 / candidate.scale, 1.0])
    return Verification(
        inliers=int(inlier.sum()),
        matches=len(pairs),
        transform=from_candidate @ matrix @ to_query,
        query_xy=src[inlier] / query.scale,
        candidate_xy=dst[inlier] / candidate.scale,
        mirrored=mirrored,
    )


def verify_views(
    query_views: Sequence[LocalFeatures], candidate: LocalFeatures, params: VerifyParams
) -> Verification:
    """The best verification over the query's views (view 0 as given, view 1 mirrored)."""
    best = NO_MATCH
    for i, view in enumerate(query_views):
        result = verify(view, candidate, params, mirrored=i == 1)
        if result.inliers > best.inliers:
            best = result
    return best


def verify_many(
    query_views: Sequence[LocalFeatures],
    candidates: Sequence[LocalFeatures | None],
    params: VerifyParams = VerifyParams(),
    *,
    workers: int = 2,
) -> list[Verification]:
    """One verification per candidate (None -> NO_MATCH), on `workers` threads.

    NumPy's matrix product and OpenCV's RANSAC release the GIL, so threads run in parallel.
    """

    def one(candidate: LocalFeatures | None) -> Verification:
        return NO_MATCH if candidate is None else verify_views(query_views, candidate, params)

    if workers <= 1 or len(candidates) < 2:
        return [one(c) for c in candidates]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, candidates))


def rerank_order(verifications: Sequence[Verification], min_inliers: int = 0) -> list[int]:
    """Positions of the candidates best first: more inliers first, ties keep the given order.

    Candidates with fewer than `min_inliers` inliers count as 0 (they keep their place
    among the unverified, after every verified one).
    """
    keys = [v.inliers if v.inliers >= max(min_inliers, 1) else 0 for v in verifications]
    return sorted(range(len(keys)), key=lambda i: -keys[i])
