"""SIFT descriptors for bag-of-visual-words: a dense grid or the detector, on upscaled gray images.

OpenCV does the SIFT work (`cv2.SIFT_create().compute` on fixed upright keypoints, or
`detectAndCompute`); this module only chooses where to sample, converts to RootSIFT and
builds the horizontally mirrored view that the encoder pools alongside the image.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property

import numpy as np

DESCRIPTOR_DIM = 128


class Sampling(enum.StrEnum):
    """Where descriptors are computed: a dense grid, the SIFT detector's keypoints, or both."""

    DENSE = "dense"
    DETECTOR = "detector"
    BOTH = "both"


def mirror_permutation() -> np.ndarray:
    """int64 (128,): bin order of an upright SIFT descriptor of the horizontally mirrored patch.

    OpenCV lays a descriptor out as 4x4 spatial cells (row, column) of 8 orientation bins;
    a mirror swaps columns c -> 3 - c and angles a -> pi - a, i.e. bins o -> (4 - o) mod 8.
    Checked against OpenCV on flipped images in tests/test_bovw_sift.py.
    """
    perm = np.zeros(DESCRIPTOR_DIM, dtype=np.int64)
    for r in range(4):
        for c in range(4):
            for o in range(8):
                perm[(r * 4 + c) * 8 + o] = (r * 4 + (3 - c)) * 8 + (4 - o) % 8
    return perm


def root_sift(descriptors: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman 2012): L1-normalise, then square root; float32 (m, 128)."""
    d = np.asarray(descriptors, dtype=np.float32)
    d = d / (d.sum(axis=-1, keepdims=True) + eps)
    return np.sqrt(d)


@dataclass(frozen=True)
class ImageDescriptors:
    """The descriptors of one image and of its mirror, with positions in [0, 1) (x, y).

    `descriptors` and `mirrored` are uint8 (m, 128) raw SIFT; positions float32 (m, 2).
    Descriptors of flat patches (all bins zero) are dropped: they describe nothing.
    """

    descriptors: np.ndarray
    positions: np.ndarray
    mirrored: np.ndarray
    mirrored_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.descriptors)


class SiftSampler:
    """Computes SIFT descriptors of gray images of side `upscale` (already resized by the caller)."""

    def __init__(
        self,
        sampling: Sampling | str = Sampling.DENSE,
        upscale: int = 64,
        grid_step: int = 4,
        grid_margin: int = 8,
        keypoint_size: float = 4.0,
        mirror: bool = True,
    ):
        self.sampling = Sampling(sampling)
        self.upscale = upscale
        self.grid_step = grid_step
        self.grid_margin = grid_margin
        self.keypoint_size = keypoint_size
        self.mirror = mirror
        self._perm = mirror_permutation()
        self._sift = None

    @property
    def sift(self):
        if self._sift is None:  # OpenCV objects do not pickle: build lazily in each process
            import cv2

            self._sift = cv2.SIFT_create()
        return self._sift

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_sift"] = None
        state.pop("grid", None)
        return state

    @cached_property
    def grid(self) -> tuple[list, np.ndarray]:
        """Dense upright keypoints and their positions, float32 (m, 2) in [0, 1)."""
        import cv2

        coords = np.arange(self.grid_margin, self.upscale - self.grid_margin + 1, self.grid_step)
        if len(coords) == 0:
            raise ValueError(
                f"grid_margin {self.grid_margin} leaves no room on a {self.upscale}px image"
            )
        points = [(float(x), float(y)) for y in coords for x in coords]
        keypoints = [cv2.KeyPoint(x, y, float(self.keypoint_size), 0) for x, y in points]
        return keypoints, np.asarray(points, dtype=np.float32) / self.upscale

    def describe(self, gray: np.ndarray) -> ImageDescriptors:
        """Descriptors of one uint8 gray image of shape (upscale, upscale)."""
        parts = []
        if self.sampling in (Sampling.DENSE, Sampling.BOTH):
            parts.append(self._dense(gray))
        if self.sampling in (Sampling.DETECTOR, Sampling.BOTH):
            parts.append(self._detector(gray))
        descriptors = np.concatenate([p[0] for p in parts])
        positions = np.concatenate([p[1] for p in parts])
        mirrored = np.concatenate([p[2] for p in parts])
        mirrored_positions = np.concatenate([p[3] for p in parts])
        keep = descriptors.any(axis=1)
        keep_m = mirrored.any(axis=1)
        return ImageDescriptors(
            descriptors[keep], positions[keep], mirrored[keep_m], mirrored_positions[keep_m]
        )

    def _dense(self, gray: np.ndarray):
        keypoints, positions = self.grid
        kept, raw = self.sift.compute(gray, keypoints)
        if len(kept) != len(keypoints):  # OpenCV drops keypoints too close to the border
            positions = np.asarray([k.pt for k in kept], dtype=np.float32) / self.upscale
        d = _to_uint8(raw, len(kept))
        if not self.mirror:
            return d, positions, d[:0], positions[:0]
        mirrored_positions = positions.copy()
        # Just below 1 - x, so a keypoint on a cell border lands in the mirrored cell.
        mirrored_positions[:, 0] = np.maximum(1.0 - positions[:, 0] - 1e-6, 0.0)
        return d, positions, d[:, self._perm], mirrored_positions

    def _detector(self, gray: np.ndarray):
        d, positions = self._detect(gray)
        if not self.mirror:
            return d, positions, d[:0], positions[:0]
        # Detector keypoints carry an orientation, so the mirror is computed on the flipped image.
        md, mpos = self._detect(np.ascontiguousarray(gray[:, ::-1]))
        return d, positions, md, mpos

    def _detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keypoints, raw = self.sift.detectAndCompute(gray, None)
        if not keypoints:
            return np.zeros((0, DESCRIPTOR_DIM), np.uint8), np.zeros((0, 2), np.float32)
        positions = np.asarray([k.pt for k in keypoints], dtype=np.float32) / self.upscale
        return _to_uint8(raw, len(keypoints)), np.clip(positions, 0.0, 1.0 - 1e-6)


def _to_uint8(raw: np.ndarray | None, n: int) -> np.ndarray:
    if raw is None:
        return np.zeros((0, DESCRIPTOR_DIM), np.uint8)
    return np.clip(np.rint(raw), 0, 255).astype(np.uint8).reshape(n, DESCRIPTOR_DIM)
