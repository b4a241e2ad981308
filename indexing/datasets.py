"""Datasets: stable doc ids, labels and splits for every image, streamed in batches."""

from __future__ import annotations

import enum
import hashlib
import stat
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.core.errors import CbirError, DatasetError
from features.imaging import DEFAULT_MIN_SIDE, IMAGE_SUFFIXES, ImageDecodeError, decode_image
from indexing.docids import display_path, folder_doc_id, folder_relpath
from indexing.skipped import SkipReport
from indexing.walk import walk_images


class Split(enum.StrEnum):
    """The part of a dataset an image belongs to: the index side or the query side."""

    TRAIN = "train"
    TEST = "test"


class DatasetKind(enum.StrEnum):
    CIFAR10 = "cifar10"
    FOLDER = "folder"


@dataclass(frozen=True)
class ImageRecord:
    """One image: a stable doc id, its label and split (None when unknown), and its path.

    `path` is POSIX and relative to the dataset root (or the member name inside an archive).
    """

    doc_id: str
    label: str | None
    split: str | None
    path: str


# An image as a batch carries it: decoded RGB pixels (uint8, (h, w, 3)) or the encoded file bytes.
Payload = np.ndarray | bytes


@dataclass
class ImageBatch:
    records: list[ImageRecord]
    payloads: list[Payload]

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    source: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> n
    skipped: int = 0

    @property
    def total(self) -> int:
        return sum(sum(per_label.values()) for per_label in self.counts.values())

    def lines(self) -> list[str]:
        out = [f"dataset {self.name}: {self.total:,} images from {self.source}"]
        for split, per_label in self.counts.items():
            n = sum(per_label.values())
            out.append(f"  {split}: {n:,} images, {len(per_label)} labels")
            for label, count in sorted(per_label.items()):
                out.append(f"    {label:<16} {count:>7,}")
        seen = self.total + self.skipped
        out.append(f"  skipped files: {self.skipped} (listed with reasons in the report)")
        out.append(f"  files seen: {seen:,} = {self.total:,} images + {self.skipped:,} skipped")
        return out


class Dataset(ABC):
    """A labelled image collection. Subclasses list records and load one image's payload."""

    name: str
    source: str

    def __init__(self) -> None:
        self.skipped = SkipReport()
        self._by_id: dict[str, ImageRecord] | None = None

    @abstractmethod
    def records(self, split: Split | str | None = None) -> list[ImageRecord]:
        """All records of `split` (all splits when None), in a stable order."""

    @abstractmethod
    def payload(self, record: ImageRecord) -> Payload:
        """The image of `record`, as decoded pixels or encoded bytes."""

    def image(
        self,
        record: ImageRecord,
        max_pixels: int | None = None,
        min_side: int | None = DEFAULT_MIN_SIDE,
    ) -> np.ndarray:
        """The image of `record` decoded to RGB uint8 (h, w, 3), reduced to about `min_side`
        on its short side when larger (see decode_image); raises ImageDecodeError."""
        kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
        return decode_image(self.payload(record), name=record.path, min_side=min_side, **kwargs)

    def record(self, doc_id: str) -> ImageRecord:
        """The record with `doc_id`; KeyError when there is none."""
        if self._by_id is None:
            self._by_id = {r.doc_id: r for r in self.records()}
        return self._by_id[doc_id]

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.records() if r.label is not None})

    @property
    def fingerprint(self) -> str:
        """A hash that changes when the images or their records change."""
        raise NotImplementedError

    def iter_batches(
        self,
        split: Split | str | None = None,
        batch_size: int = 256,
        records: Sequence[ImageRecord] | None = None,
    ) -> Iterator[ImageBatch]:
        """Stream `records` (default: all of `split`) in batches of at most `batch_size`.

        A file that cannot be read is left out of its batch and added to `self.skipped`.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        chosen = self.records(split) if records is None else list(records)
        for start in range(0, len(chosen), batch_size):
            batch = ImageBatch([], [])
            for record in chosen[start : start + batch_size]:
                try:
                    payload = self.payload(record)
                except ImageDecodeError as exc:
                    self.skipped.add(record.path, exc.reason)
                    continue
                batch.records.append(record)
                batch.payloads.append(payload)
            if batch.records:
                yield batch

    def summary(self) -> DatasetSummary:
        """Counts per split and label of the images that were not skipped."""
        skipped = {s.path for s in self.skipped.items}
        counts: dict[str, Counter] = {}
        for r in self.records():
            if r.path in skipped:
                continue
            counts.setdefault(r.split or "all", Counter())[r.label or "(none)"] += 1
        return DatasetSummary(
            name=self.name,
            source=self.source,
            counts={k: dict(v) for k, v in counts.items()},
            skipped=len(self.skipped),
        )


class FolderDataset(Dataset):
    """Any folder of images, walked recursively.

    Labels come from the first sub-folder (`cats/x.jpg` -> `cats`; images at the top have
    none). When the root holds `train/` and/or `test/` folders, those give the split and
    the label comes from the next folder down; other top-level images are then skipped.
    Doc ids escape any file name reversibly (indexing.docids); record paths and labels are
    printable text, with bytes that are not UTF-8 shown as `\\xe9`.
    """

    name = DatasetKind.FOLDER.value

    def __init__(self, root: Path | str):
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(
                f"dataset folder {self.root} does not exist or is not a directory; "
                "pass an existing folder of images with --data"
            )
        self.source = str(self.root)
        self._records: list[ImageRecord] | None = None
        self._sizes: list[tuple[str, int, int]] = []
        self._stats: dict[str, tuple[int, int]] = {}

    def _scan(self) -> list[ImageRecord]:
        if self._records is None:
            found = list(walk_images(self.root, self.skipped))
            split_layout = any(f.relpath.split("/", 1)[0] in _SPLITS for f in found)
            records = []
            for f in found:
                parts = f.relpath.split("/")
                split = None
                if split_layout:
                    if parts[0] not in _SPLITS:
                        self.skipped.add(display_path(f.relpath), _OUTSIDE_SPLITS)
                        continue
                    split, parts = parts[0], parts[1:]
                label = display_path(parts[0]) if len(parts) > 1 else None
                doc_id = folder_doc_id(f.relpath)
                shown = display_path(f.relpath)
                records.append(ImageRecord(doc_id, label, split, shown))
                self._sizes.append((f.relpath, f.size, f.mtime_ns))
                self._stats[shown] = (f.size, f.mtime_ns)
            self._records = records
        return self._records

    def restrict(self, relpaths: Iterable[str]) -> bool:
        """Scan only `relpaths` (POSIX, relative to the root) instead of walking the tree.

        Only for a folder without train/test layout, and paths that are plain files or gone
        image files (hidden ones and other files are left out, as the walk leaves them out):
        returns False (and changes nothing) for anything else, e.g. a directory or a link,
        which needs the full walk to be seen as it would see it.
        """
        if any((self.root / s).exists() for s in _SPLITS):
            return False
        records, stats = [], {}
        for rel in sorted(set(relpaths)):
            parts = rel.split("/")
            if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
                return False
            if any(p.startswith(".") for p in parts):
                continue  # hidden: the walk never looks there either
            path = self.root / rel
            try:
                st = path.lstat()
            except FileNotFoundError:
                if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
                    return False  # perhaps a folder that held images
                continue  # gone: the sync removes its document
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode):
                return False
            if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
                continue  # not an image: nothing to index
            label = display_path(parts[0]) if len(parts) > 1 else None
            shown = display_path(rel)
            records.append(ImageRecord(folder_doc_id(rel), label, None, shown))
            stats[shown] = (st.st_size, st.st_mtime_ns)
        self._records, self._stats, self._by_id = records, stats, None
        self._sizes = [(folder_relpath(r.doc_id), *stats[r.path]) for r in records]
        return True

    def records(self, split: Split | str | None = None) -> list[ImageRecord]:
        records = self._scan()
        if split is None:
            return list(records)
        wanted = Split(split).value
        return [r for r in records if r.split == wanted]

    def file_stat(self, record: ImageRecord) -> tuple[int, int]:
        """(size in bytes, mtime in ns) of `record`'s file when the folder was scanned."""
        self._scan()
        return self._stats[record.path]

    def path_of(self, record: ImageRecord) -> Path:
        return self.root / folder_relpath(record.doc_id)

    def payload(self, record: ImageRecord) -> bytes:
        try:
            return (self.root / folder_relpath(record.doc_id)).read_bytes()
        except OSError as exc:
            raise ImageDecodeError(record.path, f"cannot read file ({exc.strerror})") from None

    @property
    def fingerprint(self) -> str:
        self._scan()
        digest = hashlib.sha256()
        for relpath, size, mtime in self._sizes:
            # surrogateescape: names that are not UTF-8 hash as their bytes; UTF-8 ones as before.
            digest.update(f"{relpath}\0{size}\0{mtime}\n".encode(errors="surrogateescape"))
        return digest.hexdigest()[:16]


_SPLITS = {Split.TRAIN.value, Split.TEST.value}
_OUTSIDE_SPLITS = "outside train/ and test/ (this folder is laid out by split)"


def index_side(dataset: Dataset) -> list[ImageRecord]:
    """The records that go into the index: the train split when the dataset has splits, else all."""
    train = dataset.records(Split.TRAIN)
    if train or dataset.name == DatasetKind.CIFAR10.value:
        return train
    return dataset.records()


def limit_per_label(records: Sequence[ImageRecord], limit: int | None) -> list[ImageRecord]:
    """The first `limit` records of each label, in order (None keeps all): small runs for CI."""
    if limit is None:
        return list(records)
    if limit <= 0:
        raise CbirError(f"--limit must be positive, got {limit}")
    taken: dict[str | None, int] = {}
    out = []
    for record in records:
        if taken.get(record.label, 0) < limit:
            taken[record.label] = taken.get(record.label, 0) + 1
            out.append(record)
    return out
