"""HOG (scikit-image) of a small gray image, optionally plus that of its mirror, as an extra BoVW channel."""

from __future__ import annotations

import numpy as np


def hog_dim(side: int, cell: int = 8, block: int = 2, orientations: int = 9) -> int:
    """Length of `hog_vector` for a side x side image."""
    blocks = max(0, side // cell - block + 1)
    return blocks * blocks * block * block * orientations


def hog_vector(
    gray: np.ndarray, cell: int = 8, block: int = 2, orientations: int = 9, mirror: bool = True
) -> np.ndarray:
    """float32 (hog_dim,) L2-Hys HOG of a uint8 (side, side) image; with `mirror`, HOG(image) + HOG(flipped)."""
    from skimage.feature import hog

    def one(image: np.ndarray) -> np.ndarray:
        return hog(
            image,
            orientations=orientations,
            pixels_per_cell=(cell, cell),
            cells_per_block=(block, block),
            block_norm="L2-Hys",
        )

    vector = one(gray)
    if mirror:
        vector = vector + one(np.ascontiguousarray(gray[:, ::-1]))
    return vector.astype(np.float32)
