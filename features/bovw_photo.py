"""SIFT for BoVW on photos: the whole image at a working resolution, not a 32-px thumbnail.

The detector's keypoints are features/local.py's (OpenCV SIFT, rotation- and scale-covariant,
RootSIFT quantised to uint8, strongest first), taken on the image resized so that its long side
lies in [min_side, max_side]. Dense sampling is an option: an upright grid on the same working
image (not rotation-invariant). Positions are returned in [0, 1) of the working image.
The mirrored view is a fixed permutation of each descriptor, so no second detection is needed.
"""

from __future__ import annotations

import numpy as np

from features.local import extract_local, quantise_rootsift, working_gray
from features.sift import DESCRIPTOR_DIM, ImageDescriptors, Sampling, mirror_permutation

_EDGE = 1.0 - 1e-6  # positions stay below 1 so that a keypoint on the border has a cell


def oriented_mirror_permutation() -> np.ndarray:
    """int64 (128,): bin order of an oriented SIFT descriptor of the horizontally mirrored image.

    A keypoint's frame is turned with its orientation; mirroring the image reverses the
    frame's handedness, which inside that frame flips the 4x4 cells' rows (r -> 3 - r) and the
    angles (bins o -> -o mod 8). Checked against OpenCV on a flipped photo in tests/test_bovw_photo.py.
    """
    perm = np.zeros(DESCRIPTOR_DIM, dtype=np.int64)
    for r in range(4):
        for c in range(4):
            for o in range(8):
                perm[(r * 4 + c) * 8 + o] = ((3 - r) * 4 + c) * 8 + (8 - o) % 8
    return perm


class PhotoSampler:
    """RootSIFT descriptors (uint8, quantised as features/local.py does) of whole RGB images."""

    def __init__(
        self,
        sampling: Sampling | str = Sampling.DETECTOR,
        max_side: int = 640,
        min_side: int = 320,
        max_keypoints: int = 500,
        grid_step: int = 24,
        grid_margin: int = 16,
        keypoint_size: float = 16.0,
        mirror: bool = True,
    ):
        self.sampling = Sampling(sampling)
        self.max_side, self.min_side, self.max_keypoints = max_side, min_side, max_keypoints
        self.grid_step, self.grid_margin, self.keypoint_size = grid_step, grid_margin, keypoint_size
        self.mirror = mirror
        self._oriented = oriented_mirror_permutation()
        self._upright = mirror_permutation()

    def describe(self, image: np.ndarray) -> ImageDescriptors:
        """Descriptors of one uint8 RGB (h, w, 3) image of any size, and of its mirror."""
        parts = []
        if self.sampling in (Sampling.DETECTOR, Sampling.BOTH):
            parts.append(self._detector(image))
        if self.sampling in (Sampling.DENSE, Sampling.BOTH):
            parts.append(self._dense(image))
        descriptors = np.concatenate([p[0] for p in parts])
        positions = np.concatenate([p[1] for p in parts])
        permuted = np.concatenate([p[2] for p in parts])
        keep = descriptors.any(axis=1)  # flat patches describe nothing
        descriptors, positions, permuted = descriptors[keep], positions[keep], permuted[keep]
        if not self.mirror:
            return ImageDescriptors(descriptors, positions, descriptors[:0], positions[:0])
        mirrored_positions = positions.copy()
        mirrored_positions[:, 0] = np.clip(1.0 - positions[:, 0] - 1e-6, 0.0, _EDGE)
        return ImageDescriptors(descriptors, positions, permuted, mirrored_positions)

    def _detector(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        local = extract_local(
            image, max_side=self.max_side, min_side=self.min_side, max_keypoints=self.max_keypoints
        )
        h, w = local.shape
        positions = local.xy() / np.array([max(w, 1), max(h, 1)], np.float32)
        positions = np.clip(positions, 0.0, _EDGE).astype(np.float32)
        return local.descriptors, positions, local.descriptors[:, self._oriented]

    def _dense(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        gray, _ = working_gray(image, self.max_side, self.min_side)
        h, w = gray.shape
        xs = _grid(w, self.grid_step, self.grid_margin)
        ys = _grid(h, self.grid_step, self.grid_margin)
        keypoints = [
            cv2.KeyPoint(float(x), float(y), float(self.keypoint_size), 0) for y in ys for x in xs
        ]
        kept, raw = cv2.SIFT_create().compute(gray, keypoints)
        if raw is None or not kept:
            empty = np.zeros((0, DESCRIPTOR_DIM), np.uint8)
            return empty, np.zeros((0, 2), np.float32), empty
        d = quantise_rootsift(raw)
        positions = np.asarray([k.pt for k in kept], np.float32) / np.array([w, h], np.float32)
        return d, np.clip(positions, 0.0, _EDGE).astype(np.float32), d[:, self._upright]


def _grid(length: int, step: int, margin: int) -> np.ndarray:
    """Grid coordinates along one side; the centre alone when the margins leave no room."""
    coords = np.arange(margin, length - margin + 1, step)
    return coords if len(coords) else np.array([length // 2])
