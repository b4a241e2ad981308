"""CIFAR-10 from any of its common forms, packed once into a memory-mapped cache.

Sources: the official `cifar-10-python.tar.gz` (md5-verified), its extracted
`cifar-10-batches-py/` folder, or an ImageFolder tree (`train/<class>/*`,
`test/<class>/*`) as a folder or a `.tar.gz`. Whatever the source, the first use decodes
every image once into `<cache>/cifar10-<key>/images.u8` (uint8, (n, 32, 32, 3), rows
sorted by split, label, doc id) so later runs stream batches from a memory map: 60,000
images cost about 184 MB of disk and almost no RAM.

Doc ids are `<split>/<label>/<name>`: the file stem for ImageFolder trees, and a
per-class counter in the official batch order (`train/cat/0000`, ...) for the pickles.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from cbir.config import DEFAULT_MAX_PIXELS, Settings
from cbir.errors import DatasetError
from cbir.progress import progress
from features.imaging import IMAGE_SUFFIXES, ImageDecodeError, decode_image
from indexing.datasets import Dataset, DatasetKind, ImageRecord, Split
from indexing.skipped import SkippedFile, SkipReport
from indexing.walk import walk_images

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
SIDE = 32
PACK_VERSION = 1


class SourceKind(enum.StrEnum):
    OFFICIAL_ARCHIVE = "official-archive"
    OFFICIAL_FOLDER = "official-folder"
    IMAGEFOLDER = "imagefolder"
    IMAGEFOLDER_ARCHIVE = "imagefolder-archive"


@dataclass(frozen=True)
class _Item:
    """One image as a source yields it, before packing."""

    split: str
    label: str
    name: str  # stem for files, per-class counter for pickles
    path: str
    pixels: np.ndarray | None  # uint8 (32, 32, 3); None when the item was skipped
    reason: str = ""


def locate_cifar10(settings: Settings, data: str | None = None) -> Path:
    """Find CIFAR-10: --data, then CBIR_CIFAR10, then `<home>/datasets/`, else download it."""
    explicit = data or settings.cifar10
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            origin = "--data" if data else "CBIR_CIFAR10"
            raise DatasetError(
                f"{origin}={explicit} does not exist; point it at cifar-10-python.tar.gz, "
                "its extracted cifar-10-batches-py/ folder, or an ImageFolder tree (folder or .tar.gz)"
            )
        return path
    cached = settings.home / "datasets" / OFFICIAL_ARCHIVE_NAME
    if cached.exists():
        return cached
    return download_cifar10(cached)


def download_cifar10(
    dest: Path, url: str = OFFICIAL_URL, md5: str = OFFICIAL_MD5, timeout: float = 30.0
) -> Path:
    """Download the official archive to `dest` with a progress bar and verify its md5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress(desc=f"download {dest.name}", unit="B", total=total) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"could not download CIFAR-10 from {url} ({reason}); if this machine is offline, "
            "set CBIR_CIFAR10 (or --data) to a local copy: cifar-10-python.tar.gz, "
            "cifar-10-batches-py/, or an ImageFolder tree or .tar.gz"
        ) from None
    digest = _md5(part)
    if digest != md5:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download from {url} has md5 {digest}, expected {md5}; try again")
    part.replace(dest)
    return dest


def detect_source(path: Path) -> tuple[SourceKind, Path]:
    """Say which CIFAR-10 form `path` is; for folders, return the folder that holds the data."""
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise DatasetError(
                f"{path} is not a tar archive; expected {OFFICIAL_ARCHIVE_NAME} or an ImageFolder .tar.gz"
            )
        with _open_tar(path) as tar:
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


class Cifar10Dataset(Dataset):
    """CIFAR-10 (or any 32x32 ImageFolder tree), read through the packed cache."""

    name = DatasetKind.CIFAR10.value

    def __init__(
        self,
        source: Path | str,
        cache_dir: Path | str,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        md5: str = OFFICIAL_MD5,
        show_progress: bool = True,
    ):
        super().__init__()
        self.source = str(source)
        self.kind, self._data_path = detect_source(Path(source))
        key = _source_key(self.kind, self._data_path)
        self.pack_dir = Path(cache_dir) / f"cifar10-{key}"
        if not (self.pack_dir / "meta.json").is_file():
            _build_pack(self.kind, self._data_path, self.pack_dir, max_pixels, md5, show_progress)
        meta = json.loads((self.pack_dir / "meta.json").read_text())
        self._meta = meta
        self._records = [
            ImageRecord(*row) for row in json.loads((self.pack_dir / "records.json").read_text())
        ]
        self._rows = {r.doc_id: i for i, r in enumerate(self._records)}
        self.images = np.memmap(
            self.pack_dir / "images.u8",
            dtype=np.uint8,
            mode="r",
            shape=(len(self._records), SIDE, SIDE, 3),
        )
        self.skipped.extend(SkipReport.read(self.pack_dir / "skipped.json").items)

    def records(self, split: Split | str | None = None) -> list[ImageRecord]:
        if split is None:
            return list(self._records)
        wanted = Split(split).value
        return [r for r in self._records if r.split == wanted]

    def payload(self, record: ImageRecord) -> np.ndarray:
        return self.images[self._rows[record.doc_id]]

    def split_array(self, split: Split | str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """All images of `split` as a read-only memmap (n, 32, 32, 3), label indices, class names."""
        wanted = Split(split).value
        rows = [i for i, r in enumerate(self._records) if r.split == wanted]
        classes = self.labels
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[self._records[i].label] for i in rows], dtype=np.int64)
        if not rows:
            return self.images[0:0], labels, classes
        start, stop = rows[0], rows[-1] + 1  # rows of a split are contiguous by construction
        return self.images[start:stop], labels, classes

    @property
    def fingerprint(self) -> str:
        return self._meta["content_sha256"][:16]


def _source_key(kind: SourceKind, path: Path) -> str:
    digest = hashlib.sha256(f"v{PACK_VERSION}|{kind.value}|{path.resolve()}".encode())
    if path.is_file():
        st = path.stat()
        digest.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            st = f.stat()
            digest.update(f"|{f.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _build_pack(
    kind: SourceKind, path: Path, pack_dir: Path, max_pixels: int, md5: str, show_progress: bool
) -> None:
    """Decode every image of the source once, in sorted order, into `pack_dir` (atomically)."""
    if kind is SourceKind.OFFICIAL_ARCHIVE:
        digest = _md5(path)
        if digest != md5:
            raise DatasetError(
                f"{path} has md5 {digest}, expected {md5} for the official CIFAR-10 archive; "
                "it is damaged or not the official file: download it again"
            )
    tmp = pack_dir.with_name(pack_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    report = SkipReport()
    kept: list[tuple[tuple, ImageRecord, int]] = []
    seen: set[str] = set()
    items = _iter_items(kind, path, max_pixels)
    with (tmp / "unsorted.u8").open("wb") as raw, _archive_errors(path):
        for item in progress(items, desc="decode CIFAR-10", disable=not show_progress):
            if item.pixels is None:
                report.add(item.path, item.reason)
                continue
            doc_id = f"{item.split}/{item.label}/{item.name}"
            if doc_id in seen:
                report.add(item.path, f"duplicate doc id {doc_id} (same name, another suffix)")
                continue
            seen.add(doc_id)
            key = (0 if item.split == Split.TRAIN.value else 1, item.label, doc_id)
            kept.append((key, ImageRecord(doc_id, item.label, item.split, item.path), len(kept)))
            raw.write(np.ascontiguousarray(item.pixels, dtype=np.uint8).tobytes())
    if not kept:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{path}: no readable 32x32 images found ({len(report)} files skipped)")
    kept.sort(key=lambda entry: entry[0])
    unsorted = np.memmap(
        tmp / "unsorted.u8", dtype=np.uint8, mode="r", shape=(len(kept), SIDE, SIDE, 3)
    )
    content = hashlib.sha256()
    with (tmp / "images.u8").open("wb") as out:
        for _, record, row in kept:
            block = unsorted[row].tobytes()
            out.write(block)
            content.update(record.doc_id.encode() + b"\0" + (record.label or "").encode() + b"\0")
            content.update(block)
    del unsorted
    (tmp / "unsorted.u8").unlink()
    records = [[r.doc_id, r.label, r.split, r.path] for _, r, _ in kept]
    (tmp / "records.json").write_text(json.dumps(records))
    report.write(tmp / "skipped.json")
    meta = {
        "version": PACK_VERSION,
        "source": str(path),
        "kind": kind.value,
        "count": len(kept),
        "skipped": len(report),
        "content_sha256": content.hexdigest(),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(pack_dir, ignore_errors=True)
    os.replace(tmp, pack_dir)


@contextlib.contextmanager
def _archive_errors(path: Path) -> Iterator[None]:
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


def _iter_items(kind: SourceKind, path: Path, max_pixels: int) -> Iterator[_Item]:
    if kind is SourceKind.OFFICIAL_ARCHIVE:
        with _open_tar(path) as tar:
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
                yield _Item("", "", "", found.relpath, None, f"cannot read file ({exc.strerror})")
                continue
            yield _file_item(found.relpath, data, max_pixels)
        for skipped in report.items:
            yield _Item("", "", "", skipped.path, None, skipped.reason)
    else:
        with _open_tar(path) as tar:
            for member in tar:
                yield from _archive_member(tar, member, max_pixels)


def _archive_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, max_pixels: int
) -> Iterator[_Item]:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        yield _Item("", "", "", member.name, None, "unsafe path in archive")
        return
    if member.isdir() or any(part.startswith(".") for part in name.parts):
        return
    if not member.isfile():
        yield _Item("", "", "", member.name, None, "not a regular file in the archive")
        return
    relpath = _strip_to_split(name)
    if relpath is None:
        return
    if name.suffix.lower() not in IMAGE_SUFFIXES:
        yield _Item(
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


def _file_item(relpath: str, data: bytes, max_pixels: int) -> _Item:
    parts = PurePosixPath(relpath).parts
    if len(parts) != 3 or parts[0] not in (Split.TRAIN.value, Split.TEST.value):
        return _Item("", "", "", relpath, None, "not in a <split>/<class>/ folder")
    split, label, filename = parts
    stem = PurePosixPath(filename).stem
    try:
        pixels = decode_image(data, name=relpath, max_pixels=max_pixels)
    except ImageDecodeError as exc:
        return _Item(split, label, stem, relpath, None, exc.reason)
    if pixels.shape[:2] != (SIDE, SIDE):
        h, w = pixels.shape[:2]
        return _Item(
            split, label, stem, relpath, None, f"expected a {SIDE}x{SIDE} CIFAR image, got {w}x{h}"
        )
    return _Item(split, label, stem, relpath, pixels)


def _pickled_items(read, source: Path) -> Iterator[_Item]:
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
                yield _Item(split, label, f"{counters[label]:04d}", f"{batch}:{i}", image)
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


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DatasetError(f"cannot read archive {path} ({exc}); is it complete?") from None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "OFFICIAL_MD5",
    "OFFICIAL_URL",
    "Cifar10Dataset",
    "SkippedFile",
    "SourceKind",
    "detect_source",
    "download_cifar10",
    "locate_cifar10",
]
