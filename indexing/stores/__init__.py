"""Vector stores: the embedded default and Elasticsearch, behind one protocol (`base.VectorStore`)."""

from indexing.stores.base import (
    Document,
    Hit,
    ModelMismatchError,
    RankedHits,
    StoreError,
    VectorStore,
    documents_from,
)
from indexing.stores.urls import open_store

__all__ = [
    "Document",
    "Hit",
    "ModelMismatchError",
    "RankedHits",
    "StoreError",
    "VectorStore",
    "documents_from",
    "open_store",
]
