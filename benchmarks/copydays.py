"""A copy-detection dev set from scikit-image's bundled photographs: copies hidden among distractors.

Layout written by `write_copy_folder` (a folder dataset, indexing/datasets.py):
`train/<scene>/original.jpg` for each original photo, `train/distractor-<i>/d.jpg` for each
distractor, and `test/<scene>/<transform>.jpg` for each transformed copy (the queries; their
label is the original's, so top-1 correct = the original's label first). Distractors are
crops of other bundled photographs (never of an original) and generated images of shapes.
The clothing-dataset and COIL-100 images are not used (reserved for independent evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

# Bundled with scikit-image (no download). Originals give the queries; sources give distractors.
ORIGINALS = (
    "astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "clock", "immunohistochemistry",
)  # fmt: skip
DISTRACTOR_SOURCES = ("hubble_deep_field", "moon", "page", "text", "cell", "brick", "grass",
                      "gravel", "colorwheel", "retina")  # fmt: skip
TRANSFORMS = (
    "crop", "rot90", "rot180", "rot270", "mirror", "gray", "jpeg", "thumb64", "text",
)  # fmt: skip


def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as uint8 RGB (h, w, 3)."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)


def transformed(image: np.ndarray, transform: str, rng: np.random.Generator) -> np.ndarray:
    """`image` (uint8 RGB) under one named transform of TRANSFORMS; ValueError for others."""
    h, w = image.shape[:2]
    if transform == "crop":  # keeps 50-64 % of the area, anywhere in the image
        fy, fx = rng.uniform(0.71, 0.8, size=2)
        ch, cw = int(h * fy), int(w * fx)
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        return image[top : top + ch, left : left + cw].copy()
    if transform.startswith("rot"):
        return np.rot90(image, -int(transform[3:]) // 90).copy()  # clockwise turns
    if transform == "mirror":
        return image[:, ::-1].copy()
    if transform == "gray":
        return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    if transform == "jpeg":
        quality = int(rng.integers(15, 31))
        _ok, buffer = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(buffer, cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    if transform == "thumb64":
        scale = 64 / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if transform == "text":
        out = image[:, :, ::-1].copy()
        size = max(h, w) / 400
        for line in range(3):
            y = int(h * (0.3 + 0.25 * line))
            cv2.putText(out, "(c) cbir copy test", (int(w * 0.05), y), cv2.FONT_HERSHEY_SIMPLEX,
                        size, (255, 255, 255), max(1, int(3 * size)), cv2.LINE_AA)  # fmt: skip
        return out[:, :, ::-1].copy()
    raise ValueError(f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")


def shapes_image(rng: np.random.Generator, side: int = 320) -> np.ndarray:
    """A generated distractor: random filled rectangles and ellipses on a random background."""
    image = np.empty((side, int(side * rng.uniform(0.75, 1.33)), 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    for _ in range(int(rng.integers(6, 16))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, image.shape[1])), int(rng.integers(0, side))
        a, b = int(rng.integers(8, side // 3)), int(rng.integers(8, side // 3))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + a, y + b), colour, -1)
        else:
            cv2.ellipse(image, (x, y), (a, b), float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return image


def distractor(sources: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A crop (10-40 % of each side... up to the whole photo) of a source photo, or shapes."""
    if rng.random() < 0.25:
        return shapes_image(rng)
    source = sources[int(rng.integers(len(sources)))]
    h, w = source.shape[:2]
    fy, fx = rng.uniform(0.2, 0.6, size=2)
    ch, cw = max(32, int(h * fy)), max(32, int(w * fx))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = source[top : top + ch, left : left + cw]
    return cv2.resize(crop, (cw * 2, ch * 2)) if max(ch, cw) < 160 else crop.copy()


def copy_images(
    *,
    originals: Sequence[str] = ORIGINALS,
    transforms: Sequence[str] = TRANSFORMS,
    distractors: int = 200,
    seed: int = 0,
    sources: Sequence[str] = DISTRACTOR_SOURCES,
) -> Iterator[tuple[str, np.ndarray]]:
    """(relative path, uint8 RGB image) of the dev set, in the layout of the module docstring."""
    rng = np.random.default_rng(seed)
    for name in originals:
        image = photo(name)
        yield f"train/{name}/original.jpg", image
        for transform in transforms:
            yield f"test/{name}/{transform}.jpg", transformed(image, transform, rng)
    pictures = [photo(n) for n in sources]
    for i in range(distractors):
        yield f"train/distractor-{i:05d}/d.jpg", distractor(pictures, rng)


def write_copy_folder(
    root: Path,
    *,
    originals: Sequence[str] = ORIGINALS,
    transforms: Sequence[str] = TRANSFORMS,
    distractors: int = 200,
    seed: int = 0,
    writer: Callable[[Path, np.ndarray], None] | None = None,
    sources: Sequence[str] = DISTRACTOR_SOURCES,
) -> Path:
    """Write the dev set under `root` (see the module docstring); returns `root`."""
    write = writer or _write_jpeg
    for relpath, image in copy_images(
        originals=originals, transforms=transforms, distractors=distractors, seed=seed,
        sources=sources,
    ):  # fmt: skip
        write(root / relpath, image)
    return root


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # quality 95: the copies' own degradations are the transforms, not this write
    cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
