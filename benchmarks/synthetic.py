"""Images and datasets the tests make themselves: good, odd and broken files."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird")


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def rgb_array(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def png_bytes(seed: int = 0, size: int = 32) -> bytes:
    return encode(Image.fromarray(rgb_array(seed, size)))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid 1x1 PNG whose header claims `width` x `height` pixels (CRC fixed up)."""
    data = bytearray(encode(Image.new("RGB", (1, 1))))
    ihdr = 8 + 4  # signature, then the IHDR chunk length
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13]))
    data[ihdr + 4 + 13 : ihdr + 4 + 17] = struct.pack(">I", crc)
    return bytes(data)


def truncated_jpeg() -> bytes:
    full = encode(Image.fromarray(rgb_array(1, 64)), "JPEG", quality=90)
    return full[: len(full) // 2]


def write_image_folder(
    root: Path, per_class: int = 4, splits=("train", "test"), fmt: str = "PNG"
) -> dict:
    """An ImageFolder tree of 32x32 images; returns {(split, class, stem): pixels}."""
    pixels = {}
    seed = 0
    for split in splits:
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                array = rgb_array(seed)
                seed += 1
                (folder / f"{i:04d}.{fmt.lower()}").write_bytes(encode(Image.fromarray(array), fmt))
                pixels[(split, label, f"{i:04d}")] = array
    return pixels


def tar_gz(source: Path, archive: Path, arcname: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(Path(arcname) / path.relative_to(source)), recursive=False)
    return archive


def write_cifar_batches(folder: Path, per_batch: int = 6, train_batches: int = 5) -> dict:
    """The official cifar-10-batches-py layout (Python pickles of numpy arrays), tiny.

    Returns {(split, class, counter): pixels} using the official per-class counter ids.
    """
    folder.mkdir(parents=True, exist_ok=True)
    names = [*CLASSES, "cat", "deer", "dog", "frog", "horse", "ship", "truck"][:10]
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2)
    )
    expected = {}
    rng = np.random.default_rng(7)
    batches = [(f"data_batch_{i}", "train") for i in range(1, train_batches + 1)] + [
        ("test_batch", "test")
    ]
    counters: dict[tuple[str, str], int] = {}
    for name, split in batches:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 3, per_batch)]
        payload = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"f{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
        for row, label in zip(data, labels, strict=True):
            key = (split, names[label])
            n = counters.get(key, 0)
            counters[key] = n + 1
            expected[(split, names[label], f"{n:04d}")] = row.reshape(3, 32, 32).transpose(1, 2, 0)
    return expected


def class_images(
    label_index: int, n: int, seed: int, size: int = 32, noise: float = 25, spread: float = 0.0
) -> list[np.ndarray]:
    """`n` images of one synthetic class: a class colour, a class stripe orientation, and noise.

    `spread` shifts each image's colour at random: large values make the classes overlap.
    """
    rng = np.random.default_rng(seed)
    base = np.array(
        [(label_index * 97) % 256, (label_index * 53 + 80) % 256, (label_index * 29 + 160) % 256]
    )
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = ((xx if label_index % 2 else yy) // (2 + label_index % 3)) % 2
    images = []
    for _ in range(n):
        shift = rng.normal(0, spread, 3) if spread else 0.0
        image = base + 60 * stripes[..., None] + rng.normal(0, noise, (size, size, 3)) + shift
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images


def write_labelled_folder(
    root: Path,
    labels=("red", "green", "blue"),
    train: int = 12,
    test: int = 4,
    noise: float = 25,
    spread: float = 0.0,
) -> Path:
    """A folder dataset with train/ and test/ splits of synthetic classes, as PNG files."""
    for split, n in (("train", train), ("test", test)):
        for i, label in enumerate(labels):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            seed = 1000 * i + (0 if split == "train" else 500)
            for j, image in enumerate(class_images(i, n, seed, noise=noise, spread=spread)):
                (folder / f"{j:03d}.png").write_bytes(encode(Image.fromarray(image)))
    return root
