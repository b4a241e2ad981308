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

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from cbir.core.config import DEFAULT_MAX_PIXELS, Settings
from cbir.core.errors import DatasetError
from cbir.core.progress import progress
from indexing.cifar10_sources import (
    OFFICIAL_ARCHIVE_NAME,
    SIDE,
    SourceKind,
    archive_errors,
    detect_source,
    iter_items,
    md5_of,
)
from indexing.datasets import Dataset, DatasetKind, ImageRecord, Split
from indexing.skipped import SkipReport

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
PACK_VERSION = 1


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
    digest = md5_of(part)
    if digest != md5:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download from {url} has md5 {digest}, expected {md5}; try again")
    part.replace(dest)
    return dest


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
        digest = md5_of(path)
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
    items = iter_items(kind, path, max_pixels)
    with (tmp / "unsorted.u8").open("wb") as raw, archive_errors(path):
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


__all__ = [
    "OFFICIAL_MD5",
    "OFFICIAL_URL",
    "Cifar10Dataset",
    "SourceKind",
    "detect_source",
    "download_cifar10",
    "locate_cifar10",
]
