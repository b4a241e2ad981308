"""Thumbnails made once per image and size, cached on disk by content hash; image facts for the page.

A thumbnail is a JPEG whose long side is at most the asked size, EXIF orientation applied
(features.imaging.decode_image), stored as `<cache>/<size>/<sha[:2]>/<sha256 of the file>.jpg`
and written atomically: an edited photo gets a new hash, hence a new thumbnail, and two
files with the same bytes share one. Folder files are hashed once per (size, mtime).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from cbir.core.config import DEFAULT_MAX_PIXELS
from features.imaging import ImageDecodeError, decode_image
from indexing.datasets import Dataset, FolderDataset, ImageRecord

SIZES = (128, 256, 512, 1024)
JPEG_QUALITY = 85
MEMO_LIMIT = 200_000
EXIF_ORIENTATION = 0x0112
TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height


@dataclass(frozen=True)
class ImageFacts:
    """What the page shows beside a result: file name, folder, pixel size, file size."""

    name: str
    folder: str
    width: int | None
    height: int | None
    bytes: int | None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "folder": self.folder,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }


class ThumbnailCache:
    """Thumbnails of a dataset's images under `directory`; safe for many threads and processes."""

    def __init__(self, directory: Path, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.directory = Path(directory)
        self.max_pixels = max_pixels
        self.generated = 0  # thumbnails made (not found in the cache) by this instance
        self._memo: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def thumbnail(self, dataset: Dataset, record: ImageRecord, size: int) -> Path:
        """The cached thumbnail of `record` at `size` (one of SIZES), made on first use."""
        if size not in SIZES:
            raise ValueError(f"thumbnail size must be one of {SIZES}, got {size}")
        sha = self.content_hash(dataset, record)
        target = self.directory / str(size) / sha[:2] / f"{sha}.jpg"
        if target.exists():
            return target
        image = decode_image(dataset.payload(record), name=record.path, max_pixels=self.max_pixels)
        pil = Image.fromarray(image)
        pil.thumbnail((size, size), Image.Resampling.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{sha}.{os.getpid()}.{threading.get_ident()}.tmp")
        pil.save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        os.replace(tmp, target)
        with self._lock:
            self.generated += 1
        return target

    def content_hash(self, dataset: Dataset, record: ImageRecord) -> str:
        """sha256 of the image's bytes, remembered per file size and mtime (folders)."""
        key = self._key(dataset, record)
        with self._lock:
            known = self._memo.get(("sha", *key))
        if isinstance(known, str):
            return known
        payload = dataset.payload(record)
        data = payload if isinstance(payload, bytes) else np.ascontiguousarray(payload).tobytes()
        sha = hashlib.sha256(data).hexdigest()
        self._remember(("sha", *key), sha)
        return sha

    def facts(self, dataset: Dataset, record: ImageRecord) -> ImageFacts:
        """Name, folder, oriented pixel size (header only) and byte size of `record`."""
        key = self._key(dataset, record)
        with self._lock:
            known = self._memo.get(("facts", *key))
        if isinstance(known, ImageFacts):
            return known
        facts = _read_facts(dataset, record)
        self._remember(("facts", *key), facts)
        return facts

    def _key(self, dataset: Dataset, record: ImageRecord) -> tuple:
        if isinstance(dataset, FolderDataset):
            try:
                st = dataset.path_of(record).stat()
            except OSError as exc:
                raise ImageDecodeError(record.path, f"cannot read file ({exc.strerror})") from None
            return (dataset.source, record.path, st.st_size, st.st_mtime_ns)
        return (dataset.source, record.path)  # archives do not change under a running server

    def _remember(self, key: tuple, value: object) -> None:
        with self._lock:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = value


def _read_facts(dataset: Dataset, record: ImageRecord) -> ImageFacts:
    path = PurePosixPath(record.path)
    folder = str(path.parent) if str(path.parent) != "." else ""
    payload = dataset.payload(record)
    data = payload if isinstance(payload, bytes) else None
    width = height = None
    if data is not None:
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if img.getexif().get(EXIF_ORIENTATION) in TRANSPOSED:
                    width, height = height, width
        except (UnidentifiedImageError, OSError, ValueError):
            pass
    else:
        height, width = payload.shape[:2]
    return ImageFacts(path.name, folder, width, height, len(data) if data is not None else None)


def original_mimetype(data: bytes) -> str:
    """The MIME type of encoded image bytes (application/octet-stream when unknown)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return Image.MIME.get(img.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError, ValueError):
        return "application/octet-stream"
