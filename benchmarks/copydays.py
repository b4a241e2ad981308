"""Copy-detection dev sets from bundled photographs: copies hidden among distractors.

Layout written by `write_copy_folder` (a folder dataset, indexing/datasets.py):
`train/<scene>/original.jpg` for each original photo, `train/distractor-<i>/d.jpg` for each
distractor, and `test/<scene>/<transform>.jpg` for each transformed copy (the queries; their
label is the original's, so top-1 correct = the original's label first).

Two splits that share no original (`SPLITS`): `test` (the 8 scikit-image photos of the first
dev set, plus scikit-learn's china and flower and matplotlib's grace_hopper) reports figures;
`validation` (8 other scikit-image photos) is where verification parameters are chosen. All
photographs ship inside installed packages (no download). Distractors are crops of photos
that are not originals of the split, generated scenes (`benchmarks/scenes.py`) and, when a
CIFAR-10 JPEG archive is given, CIFAR-10 images enlarged 4x (test split: CIFAR's test
images; validation: its train images). No image of the sets reserved for independent
evaluation is used (docs/verification.md names them).
"""

from __future__ import annotations

import argparse
import enum
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.scenes import scene_image

TRANSFORMS = (
    "crop", "rot90", "rot180", "rot270", "mirror", "gray", "jpeg", "thumb64", "text",
)  # fmt: skip
# Photos bundled with scikit-learn and matplotlib (the rest are scikit-image's `data` names).
PACKAGE_PHOTOS = {
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}


class Split(enum.StrEnum):
    """Which dev set: parameters are chosen on `validation`, figures reported on `test`."""

    TEST = "test"
    VALIDATION = "validation"


@dataclass(frozen=True)
class SplitSources:
    """The originals of a split, the photos its distractors are cropped from, its CIFAR part."""

    originals: tuple[str, ...]
    distractor_photos: tuple[str, ...]
    cifar_part: str  # which half of the CIFAR-10 archive gives distractors ("test" / "train")


SPLITS = {
    Split.TEST: SplitSources(
        originals=("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "clock",
                   "immunohistochemistry", "china", "flower", "grace_hopper"),
        distractor_photos=("hubble_deep_field", "moon", "page", "text", "cell", "brick", "grass",
                           "gravel", "colorwheel", "retina"),
        cifar_part="test",
    ),
    Split.VALIDATION: SplitSources(
        originals=("motorcycle_left", "retina", "hubble_deep_field", "moon", "page", "text",
                   "cell", "logo"),
        distractor_photos=("brick", "grass", "gravel", "colorwheel", "horse", "microaneurysms"),
        cifar_part="train",
    ),
}  # fmt: skip
# The first dev set's originals and distractor photos (kept for the tests and old figures).
ORIGINALS = SPLITS[Split.TEST].originals[:8]
DISTRACTOR_SOURCES = SPLITS[Split.TEST].distractor_photos


def photo(name: str) -> np.ndarray:
    """A bundled photograph as uint8 RGB (h, w, 3): a scikit-image `data` name or PACKAGE_PHOTOS."""
    if name in PACKAGE_PHOTOS:
        import importlib

        package, relative = PACKAGE_PHOTOS[name]
        root = Path(importlib.import_module(package).__file__).parent
        bgr = cv2.imread(str(root / relative), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{root / relative} (bundled with {package}) is missing")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    from skimage import data

    # the left view of scikit-image's stereo pair (the right view is never used: a near copy)
    image = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
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
    """A generated distractor: a generated scene (kept under its first name for callers)."""
    return scene_image(rng, side)


def photo_crop(sources: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A crop (20-60 % of each side) of one of the source photos, enlarged 2x when small."""
    source = sources[int(rng.integers(len(sources)))]
    h, w = source.shape[:2]
    fy, fx = rng.uniform(0.2, 0.6, size=2)
    ch, cw = max(32, int(h * fy)), max(32, int(w * fx))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = source[top : top + ch, left : left + cw]
    return cv2.resize(crop, (cw * 2, ch * 2)) if max(ch, cw) < 160 else crop.copy()


def distractor(sources: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A generated scene (1 in 4) or a crop of a source photo."""
    if rng.random() < 0.25:
        return shapes_image(rng)
    return photo_crop(sources, rng)


def cifar_images(archive: Path, part: str, n: int) -> list[np.ndarray]:
    """n images of CIFAR-10's `part` ("train" or "test") from a JPEG archive laid out
    `<part>/<class>/<nnnn>.jpg`, taken round-robin over the classes, as uint8 RGB (32, 32, 3)."""
    encoded: dict[str, list[bytes]] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != part or not parts[2].endswith(".jpg"):
                continue
            bucket = encoded.setdefault(parts[1], [])
            raw = tar.extractfile(member) if len(bucket) < n else None
            if raw is not None:
                bucket.append(raw.read())
    longest = max((len(b) for b in encoded.values()), default=0)
    chosen = [b[i] for i in range(longest) for b in encoded.values() if i < len(b)][:n]
    if len(chosen) < n:
        raise ValueError(f"{archive} has only {len(chosen)} {part} images; {n} were asked")
    return [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
            for b in chosen]  # fmt: skip


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
    distractor_photos: Sequence[str] = DISTRACTOR_SOURCES,
    cifar: Path | None = None,
    cifar_part: str = "test",
) -> Path:
    """Write a dev set under `root` (see the module docstring); returns `root`.

    With `cifar` (the CIFAR-10 JPEG archive) 40 % of the distractors are CIFAR images of
    `cifar_part` enlarged 4x, 35 % photo crops and 25 % generated scenes; without, 75 % / 25 %.
    """
    overlap = set(originals) & set(distractor_photos)
    if overlap:
        raise ValueError(f"{sorted(overlap)} are both originals and distractor photos")
    rng = np.random.default_rng(seed)
    write = writer or _write_jpeg
    for name in originals:
        image = photo(name)
        write(root / "train" / name / "original.jpg", image)
        for transform in transforms:
            write(root / "test" / name / f"{transform}.jpg", transformed(image, transform, rng))
    sources = [photo(n) for n in distractor_photos]
    n_cifar = int(0.4 * distractors) if cifar is not None else 0
    small = cifar_images(cifar, cifar_part, n_cifar) if cifar is not None and n_cifar else []
    kinds = np.array([0] * n_cifar + [1] * (distractors - n_cifar))
    rng.shuffle(kinds)
    taken = 0
    for i, kind in enumerate(kinds):
        if kind == 0:
            image = cv2.resize(small[taken], (128, 128), interpolation=cv2.INTER_CUBIC)
            taken += 1
        elif cifar is not None and rng.random() < 0.25 / 0.6:
            image = shapes_image(rng)
        elif cifar is not None:
            image = photo_crop(sources, rng)
        else:
            image = distractor(sources, rng)
        write(root / "train" / f"distractor-{i:05d}" / "d.jpg", image)
    return root


# The transform seed of each split when none is given: the one every recorded figure used.
SEEDS = {Split.TEST: 0, Split.VALIDATION: 1}


def write_split(
    root: Path,
    split: Split,
    distractors: int,
    *,
    seed: int | None = None,
    cifar: Path | None = None,
) -> Path:
    """`write_copy_folder` with the originals and distractor sources of `split` (SPLITS),
    transformed with `seed` (default: the split's, SEEDS)."""
    sources = SPLITS[split]
    return write_copy_folder(
        root,
        originals=sources.originals,
        distractors=distractors,
        seed=SEEDS[split] if seed is None else seed,
        distractor_photos=sources.distractor_photos,
        cifar=cifar,
        cifar_part=sources.cifar_part,
    )


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # quality 95: the copies' own degradations are the transforms, not this write
    cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])


def add_dev_set_arguments(parser: argparse.ArgumentParser, split: Split | None) -> None:
    """The dev-set options the copy benchmarks share: --root, --distractors, --seed, --cifar,
    and --split defaulting to `split` (None: the benchmark has a fixed split, no option)."""
    parser.add_argument("--root", type=Path, required=True)
    if split is not None:
        parser.add_argument("--split", type=Split, choices=list(Split), default=split)
    parser.add_argument("--distractors", type=int, default=3000)
    parser.add_argument("--seed", type=int, help="transform seed (default: the split's, SEEDS)")
    parser.add_argument("--cifar", type=Path, help="CIFAR-10 JPEG archive: CIFAR distractors")
