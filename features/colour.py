"""The colour channel of BoVW: Lab pixels soft-assigned to a small colour vocabulary, pooled in cells."""

from __future__ import annotations

import numpy as np

from features.vocabulary import fit_kmeans, nearest_words, pool_cells, soft_assign

# Lab from OpenCV (float input in [0, 1]): L in [0, 100], a and b in about [-127, 127].
LAB_SCALE = np.array([100.0, 127.0, 127.0], dtype=np.float32)


def lab_pixels(image: np.ndarray) -> np.ndarray:
    """float32 (h, w, 3) Lab of an RGB uint8 image, each channel scaled to about [-1, 1]."""
    import cv2

    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) / LAB_SCALE


def fit_colour_vocabulary(
    labs: np.ndarray, words: int, seed: int, max_pixels: int = 300_000
) -> tuple[np.ndarray, float]:
    """Colour words float32 (words, 3) and the kernel width sigma, from Lab images float32 (n, h, w, 3).

    sigma is half the median distance from a pixel to its second-nearest word, so that a
    pixel between two words spreads its weight over both.
    """
    rng = np.random.default_rng(seed)
    pixels = labs.reshape(-1, 3)
    if len(pixels) > max_pixels:
        pixels = pixels[np.sort(rng.choice(len(pixels), max_pixels, replace=False))]
    centres = fit_kmeans(pixels, words, seed=seed, what="colour pixels")
    _, sq = nearest_words(pixels[:20_000], centres, 2)
    sigma = float(np.sqrt(np.median(sq[:, -1])) / 2.0)
    return centres, max(sigma, 1e-3)


def colour_cells(
    labs: np.ndarray, centres: np.ndarray, sigma: float, knn: int, grid: int, mirror: bool
) -> np.ndarray:
    """Soft colour-word counts per cell: float32 (n, grid*grid, words) from Lab float32 (n, h, w, 3).

    With `mirror`, each cell also counts its horizontal mirror cell (a mirror-invariant layout).
    """
    n, h, w, _ = labs.shape
    k = len(centres)
    yy, xx = np.mgrid[0:h, 0:w]
    cell = ((yy * grid // h) * grid + xx * grid // w).ravel()
    indices, weights = soft_assign(labs.reshape(-1, 3), centres, knn, sigma)
    owner = np.repeat(np.arange(n), h * w)
    counts = pool_cells(owner, np.tile(cell, n), indices, weights, n, grid * grid, k)
    if mirror:
        counts = counts + counts.reshape(n, grid, grid, k)[:, :, ::-1].reshape(n, grid * grid, k)
    return counts
