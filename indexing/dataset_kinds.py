"""Which dataset a `--dataset` name means, and how each kind is opened."""

from __future__ import annotations

from cbir.core.config import Settings
from cbir.core.errors import DatasetError
from indexing.cifar10 import Cifar10Dataset, locate_cifar10
from indexing.datasets import Dataset, DatasetKind, FolderDataset


def open_dataset(kind: DatasetKind | str, settings: Settings, data: str | None = None) -> Dataset:
    """Open a dataset by kind: `cifar10` (located via --data, CBIR_CIFAR10, or downloaded) or `folder`."""
    try:
        kind = DatasetKind(kind)
    except ValueError:
        choices = ", ".join(k.value for k in DatasetKind)
        raise DatasetError(f"unknown dataset {kind!r}; choose one of: {choices}") from None
    if kind is DatasetKind.FOLDER:
        if not data:
            raise DatasetError("--dataset folder needs --data PATH (a folder of images)")
        return FolderDataset(data)
    source = locate_cifar10(settings, data)
    return Cifar10Dataset(source, cache_dir=settings.cache_dir, max_pixels=settings.max_pixels)
