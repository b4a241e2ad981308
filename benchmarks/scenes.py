"""Generated distractor scenes: shapes, gradients, textures, lines and text, drawn with OpenCV.

Varied enough that a global embedding sees many unlike images, and textured enough that SIFT
finds keypoints on them (so verification meets real false candidates, not empty ones).
"""

from __future__ import annotations

import cv2
import numpy as np

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)  # fmt: skip
WORDS = ("sale", "open", "cbir", "photo", "2024", "north", "river", "cafe", "exit", "zone")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A flat colour, a linear gradient between two colours, or smoothed noise."""
    kind = int(rng.integers(3))
    if kind == 0:
        image = np.empty((height, width, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
        return image
    if kind == 1:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        return (a + (b - a) * t[:, :, None]).astype(np.uint8)
    noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def scene_image(rng: np.random.Generator, side: int = 320) -> np.ndarray:
    """One generated scene, uint8 RGB (side, ~0.75-1.33 x side, 3)."""
    height, width = side, int(side * rng.uniform(0.75, 1.33))
    image = np.ascontiguousarray(_background(rng, height, width))
    for _ in range(int(rng.integers(6, 20))):
        colour, kind = _colour(rng), int(rng.integers(5))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        a, b = int(rng.integers(8, side // 3)), int(rng.integers(8, side // 3))
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + a, y + b), colour, -1)
        elif kind == 1:
            cv2.ellipse(image, (x, y), (a, b), float(rng.uniform(0, 180)), 0, 360, colour, -1)
        elif kind == 2:
            points = rng.integers(0, [width, height], size=(int(rng.integers(3, 7)), 2))
            cv2.fillPoly(image, [points.astype(np.int32)], colour)
        elif kind == 3:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(image, (x, y), end, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            word = WORDS[int(rng.integers(len(WORDS)))]
            font = FONTS[int(rng.integers(len(FONTS)))]
            cv2.putText(image, word, (x, y), font, float(rng.uniform(0.6, 2.5)), colour,
                        int(rng.integers(1, 4)), cv2.LINE_AA)  # fmt: skip
    return image
