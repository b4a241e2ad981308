"""What an index holds, read together with the dataset it was built from."""

from __future__ import annotations

from collections.abc import Sequence

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from indexing.dataset_kinds import open_dataset
from indexing.datasets import Dataset
from indexing.stores.base import VectorStore


def dataset_of(store: VectorStore, settings: Settings) -> Dataset:
    """The dataset the index was built from (its labels are the judgments)."""
    info = store.meta.get("dataset")
    if not info:
        raise CbirError(f"the index at {store.url} does not record its dataset; index again")
    return open_dataset(info["name"], settings, info["source"])


def indexed_documents(
    store: VectorStore, ds: Dataset, methods: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The indexed documents (in any of the fields) with their labels, from the dataset records."""
    ids = set().union(*(store.ids_with(m) for m in methods))
    records = [r for r in ds.records() if r.doc_id in ids]
    if len(records) != len(ids):
        raise CbirError(
            f"{len(ids) - len(records)} indexed documents are not in dataset {ds.source}; "
            "evaluate with the dataset the index was built from"
        )
    return [r.doc_id for r in records], [r.label for r in records]
