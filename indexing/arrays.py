"""One split of a dataset as a dense uint8 array, for training (fit) stages.

CIFAR-10 hands out its packed memory map directly; any other dataset is decoded and
resized image by image (undecodable files are skipped and listed, never a crash).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cbir.core.errors import DatasetError
from cbir.core.progress import progress
from features.imaging import ImageDecodeError, resize_square
from indexing.datasets import Dataset, Split
from indexing.skipped import SkipReport


@dataclass
class SplitArrays:
    """`images` uint8 (n, side, side, 3) RGB; `labels` int64 (n,) indices into `classes`."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    doc_ids: list[str]
    skipped: SkipReport = field(default_factory=SkipReport)


def split_arrays(
    dataset: Dataset,
    split: Split | str = Split.TRAIN,
    side: int = 32,
    show_progress: bool = True,
    resize: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SplitArrays:
    """All labelled images of `split`, resized to `side` x `side` (a dataset without labels is an error).

    `resize` replaces the square resize (e.g. a backbone's aspect-keeping resize and crop).
    """
    split = Split(split)
    records = [r for r in dataset.records(split) if r.label is not None]
    if not records:
        raise DatasetError(
            f"{dataset.name} has no labelled {split.value} images; "
            f"a folder dataset needs {split.value}/<label>/<image> sub-folders"
        )
    if hasattr(dataset, "split_array") and side == 32 and resize is None:
        images, labels, classes = dataset.split_array(split)
        return SplitArrays(images, labels, classes, [r.doc_id for r in records], dataset.skipped)
    classes = sorted({r.label for r in records})
    index = {c: i for i, c in enumerate(classes)}
    skipped = SkipReport(dataset.skipped.items)
    images, labels, doc_ids = [], [], []
    for record in progress(records, desc=f"decode {split.value}", disable=not show_progress):
        try:
            image = dataset.image(record, min_side=side)  # photos decoded near `side`
        except ImageDecodeError as exc:
            skipped.add(record.path, str(exc))
            continue
        images.append(resize(image) if resize else resize_square(image, side))
        labels.append(index[record.label])
        doc_ids.append(record.doc_id)
    if not images:
        raise DatasetError(f"no decodable {split.value} images in {dataset.name}")
    return SplitArrays(
        np.stack(images), np.asarray(labels, dtype=np.int64), classes, doc_ids, skipped
    )
