"""The forms CIFAR-10 comes in, and how to read each one image at a time.

The official `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/` (Python pickles,
read by an unpickler that admits numpy arrays only), and an ImageFolder tree (`train/<class>/*`,
`test/<class>/*`) as a folder or a `.tar.gz`. Every reader yields `Item`s; bad members become
items with a reason instead of pixels, so nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from cbir.core.errors import DatasetError
from features.imaging import IMAGE_SUFFIXES, ImageDecodeError, decode_image
from indexing.datasets import Split
from indexing.skipped import SkipReport
from indexing.walk import walk_images

OFFICIAL_ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
SIDE = 32


class SourceKind(enum.StrEnum):
    OFFICIAL_ARCHIVE = "official-archive"
    OFFICIAL_FOLDER = "official-folder"
    IMAGEFOLDER = "imagefolder"
    IMAGEFOLDER_ARCHIVE = "imagefolder-archive"


@dataclass(frozen=True)
class Item:
    """One image as a source yields it, before packing."""

    split: str
    label: str
    name: str  # stem for files, per-class counter for pickles
    path: str
    pixels: np.ndarray | None  # uint8 (32, 32, 3); None when the item was skipped
    reason: str = ""


def detect_source(path: Path) -> tuple[SourceKind, Path]:
    """Say which CIFAR-10 form `path` is; for folders, return the folder that holds the data."""
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise DatasetError(
                f"{path} is not a tar archive; expected {OFFICIAL_ARCHIVE_NAME} or an ImageFolder .tar.gz"
            )
        with open_tar(path) as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if BATCHES_DIR in parts:
                    return SourceKind.OFFICIAL_ARCHIVE, path
                if {"train", "test"} & set(parts):
                    return SourceKind.IMAGEFOLDER_ARCHIVE, path
        raise DatasetError(f"{path} holds neither {BATCHES_DIR}/ nor train/ and test/ folders")
    if path.is_dir():
        for candidate in (path, path / BATCHES_DIR):
            if (candidate / TRAIN_BATCHES[0]).is_file():
                return SourceKind.OFFICIAL_FOLDER, candidate
        if (path / "train").is_dir() or (path / "test").is_dir():
            return SourceKind.IMAGEFOLDER, path
        raise DatasetError(
            f"{path} holds neither {BATCHES_DIR}/ (data_batch_1 ...) nor train/ and test/ folders"
        )
    raise DatasetError(f"{path} is neither a file nor a folder")


@contextlib.contextmanager
def archive_errors(path: Path) -> Iterator[None]:
    """Turn a truncated or damaged archive, met half-way through, into a one-line DatasetError."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"cannot read {path} ({exc}); the archive is damaged or truncated"
        ) from None
    except OSError as exc:
        raise DatasetError(
            f"cannot read {path} or write the cache ({exc.strerror or exc})"
        ) from None


def iter_items(kind: SourceKind, path: Path, max_pixels: int) -> Iterator[Item]:
    if kind is SourceKind.OFFICIAL_ARCHIVE:
        with open_tar(path) as tar:
            members = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}

            def read(name: str) -> bytes:
                member = members.get(name)
                if member is None:
                    raise DatasetError(
                        f"{path} has no {BATCHES_DIR}/{name}; the archive is incomplete"
                    )
                handle = tar.extractfile(member)
                return handle.read() if handle is not None else b""

            yield from _pickled_items(read, path)
    elif kind is SourceKind.OFFICIAL_FOLDER:

        def read(name: str) -> bytes:
            target = path / name
            if not target.is_file():
                raise DatasetError(f"{path} has no {name}; the folder is incomplete")
            return target.read_bytes()

        yield from _pickled_items(read, path)
    elif kind is SourceKind.IMAGEFOLDER:
        report = SkipReport()
        for found in walk_images(path, report):
            try:
                data = found.abspath.read_bytes()
            except OSError as exc:
                yield Item("", "", "", found.relpath, None, f"cannot read file ({exc.strerror})")
                continue
            yield _file_item(found.relpath, data, max_pixels)
        for skipped in report.items:
            yield Item("", "", "", skipped.path, None, skipped.reason)
    else:
        with open_tar(path) as tar:
            for member in tar:
                yield from _archive_member(tar, member, max_pixels)


def _archive_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, max_pixels: int
) -> Iterator[Item]:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        yield Item("", "", "", member.name, None, "unsafe path in archive")
        return
    if member.isdir() or any(part.startswith(".") for part in name.parts):
        return
    if not member.isfile():
        yield Item("", "", "", member.name, None, "not a regular file in the archive")
        return
    relpath = _strip_to_split(name)
    if relpath is None:
        return
    if name.suffix.lower() not in IMAGE_SUFFIXES:
        yield Item(
            "", "", "", member.name, None, f"not an image file suffix ({name.suffix or 'none'})"
        )
        return

    handle = tar.extractfile(member)
    yield _file_item(str(relpath), handle.read() if handle is not None else b"", max_pixels)


def _strip_to_split(name: PurePosixPath) -> PurePosixPath | None:
    """`x/train/cat/1.jpg` -> `train/cat/1.jpg`; None when no split folder is in the path."""
    for i, part in enumerate(name.parts[:-1]):
        if part in (Split.TRAIN.value, Split.TEST.value):
            return PurePosixPath(*name.parts[i:])
    return None


def _file_item(relpath: str, data: bytes, max_pixels: int) -> Item:
    parts = PurePosixPath(relpath).parts
    if len(parts) != 3 or parts[0] not in (Split.TRAIN.value, Split.TEST.value):
        return Item("", "", "", relpath, None, "not in a <split>/<class>/ folder")
    split, label, filename = parts
    stem = PurePosixPath(filename).stem
    try:
        pixels = decode_image(data, name=relpath, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        return Item(split, label, stem, relpath, None, exc.reason)
    if pixels.shape[:2] != (SIDE, SIDE):
        h, w = pixels.shape[:2]
        return Item(
            split, label, stem, relpath, None, f"expected a {SIDE}x{SIDE} CIFAR image, got {w}x{h}"
        )
    return Item(split, label, stem, relpath, pixels)


def _pickled_items(read, source: Path) -> Iterator[Item]:
    meta = _unpickle(read("batches.meta"), f"{source}:batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in _get(meta, "label_names")]
    for split, batches in ((Split.TRAIN.value, TRAIN_BATCHES), (Split.TEST.value, TEST_BATCHES)):
        counters = dict.fromkeys(names, 0)
        for batch in batches:
            content = _unpickle(read(batch), f"{source}:{batch}")
            data = np.asarray(_get(content, "data"), dtype=np.uint8)
            labels = list(_get(content, "labels"))
            if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(labels) != len(data):
                raise DatasetError(f"{source}:{batch} does not hold CIFAR-10 rows of 3072 bytes")
            pixels = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
            for i, (image, label_index) in enumerate(zip(pixels, labels, strict=True)):
                label = names[int(label_index)]
                yield Item(split, label, f"{counters[label]:04d}", f"{batch}:{i}", image)
                counters[label] += 1


def _get(mapping: dict, key: str):
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    raise DatasetError(f"CIFAR-10 batch has no {key!r} entry")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches without letting the file run arbitrary code."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")


def _unpickle(data: bytes, label: str) -> dict:
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(f"{label} is not a readable CIFAR-10 batch ({exc})") from None


def open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"cannot read archive {path} ({exc}); is it complete?") from None


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
