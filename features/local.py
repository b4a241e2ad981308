"""Local features of a whole image: RootSIFT keypoints at a working resolution chosen from it.

What geometric verification (features/verify.py) matches, and what the index keeps beside
its vectors. Keypoints are detected with OpenCV's SIFT (rotation- and scale-covariant) on the
image resized so that its long side lies in [min_side, max_side]; positions are kept in those
working pixels (thresholds then mean the same for every image) with `scale`, the working
pixels per pixel of the image given, to map them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cbir.core.errors import CbirError

DEFAULT_MAX_SIDE = 800  # long side cap: enough detail for copies, ~0.1 s per image on one core
DEFAULT_MIN_SIDE = 320  # thumbnails are enlarged so SIFT finds more than a handful of blobs
DEFAULT_MAX_KEYPOINTS = 500
DESCRIPTOR_DIM = 128
# RootSIFT components are sqrt of an L1-normalised SIFT (<= 1, in practice < 0.5): x 512 keeps
# two extra bits over x 255 and clips almost nothing.
_QUANT = 512.0


class LocalFeatureError(CbirError):
    """Local features could not be computed or read as asked."""


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one image, strongest first.

    `points` float32 (n, 4): x, y, size, angle (degrees) in working pixels; `descriptors`
    uint8 (n, 128) quantised RootSIFT; `shape` (height, width) of the working image; `scale`
    working pixels per pixel of the image the features were taken from.
    """

    points: np.ndarray
    descriptors: np.ndarray
    shape: tuple[int, int]
    scale: float

    def __len__(self) -> int:
        return len(self.points)

    @property
    def nbytes(self) -> int:
        """Bytes this image takes when stored (points, descriptors, shape and scale)."""
        return int(self.points.nbytes + self.descriptors.nbytes + 3 * 4)

    def rootsift(self, limit: int | None = None) -> np.ndarray:
        """float32 (n, 128) descriptors with unit L2 norm (for L2 matching); the first `limit`.

        Computed once per object (a query meets 100 candidates): do not write into the result.
        """
        return self._unit_descriptors[:limit]

    @cached_property
    def _unit_descriptors(self) -> np.ndarray:
        d = self.descriptors.astype(np.float32)
        norms = np.linalg.norm(d, axis=1, keepdims=True)
        return d / np.maximum(norms, 1e-6)

    def xy(self) -> np.ndarray:
        """float32 (n, 2) keypoint positions in working pixels."""
        return self.points[:, :2]

    @classmethod
    def empty(cls, shape: tuple[int, int] = (0, 0), scale: float = 1.0) -> LocalFeatures:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0, DESCRIPTOR_DIM), np.uint8), shape, scale
        )


def working_scale(shape: tuple[int, ...], max_side: int, min_side: int) -> float:
    """Factor that brings the long side of an image of `shape` into [min_side, max_side]."""
    long_side = max(shape[:2])
    if long_side <= 0:
        raise LocalFeatureError(f"image of shape {tuple(shape)} has no pixels")
    if long_side > max_side:
        return max_side / long_side
    if long_side < min_side:
        return min_side / long_side
    return 1.0


def working_gray(image: np.ndarray, max_side: int, min_side: int) -> tuple[np.ndarray, float]:
    """uint8 gray (h', w') of `image` at its working resolution, and the scale applied to it."""
    import cv2

    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise LocalFeatureError(
            f"image must be uint8 (h, w) or (h, w, 3), got {image.dtype} {image.shape}"
        )
    if min_side > max_side:
        raise LocalFeatureError(f"min_side {min_side} is larger than max_side {max_side}")
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = working_scale(gray.shape, max_side, min_side)
    if scale != 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        gray = cv2.resize(gray, size, interpolation=interpolation)
    return gray, scale


def extract_local(
    image: np.ndarray,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    min_side: int = DEFAULT_MIN_SIDE,
    max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
) -> LocalFeatures:
    """RootSIFT keypoints of `image` (uint8 RGB (h, w, 3) or gray (h, w)), at most `max_keypoints`.

    A flat image gives no keypoints (an empty LocalFeatures), never an error.
    """
    import cv2

    gray, scale = working_gray(image, max_side, min_side)
    shape = (int(gray.shape[0]), int(gray.shape[1]))
    sift = cv2.SIFT_create(nfeatures=max_keypoints)
    keypoints, descriptors = sift.detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return LocalFeatures.empty(shape, scale)
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:max_keypoints]
    points = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], dtype=np.float32)[
        order
    ]
    return LocalFeatures(points, quantise_rootsift(descriptors[order]), shape, scale)


def quantise_rootsift(sift: np.ndarray) -> np.ndarray:
    """uint8 (n, 128) RootSIFT (Arandjelovic & Zisserman 2012) of float SIFT descriptors (n, 128)."""
    d = np.asarray(sift, dtype=np.float32)
    d = d / np.maximum(d.sum(axis=1, keepdims=True), 1e-6)
    return np.clip(np.rint(np.sqrt(d) * _QUANT), 0, 255).astype(np.uint8)
