"""Checks and normalisation shared by the stores: documents to write, queries, filters, hit order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from features.base import ModelInfo
from indexing.stores.base import FILTER_KEYS, Document, Filters, Hit, StoreError

# Below this norm a vector counts as zero (the same epsilon as features.base.l2_normalise).
ZERO_NORM = 1e-12
# Elasticsearch refuses longer _id values; one index must work in both stores.
MAX_ID_BYTES = 512


@dataclass
class FieldRows:
    """The vectors one upsert writes into one field."""

    positions: list[int]  # index into PreparedDocuments.documents, one per row
    matrix: np.ndarray  # float32 (rows, dim), L2-normalised; zero rows where `empty`
    empty: np.ndarray  # bool (rows,)


@dataclass
class PreparedDocuments:
    documents: list[Document]
    fields: dict[str, FieldRows]


def prepare_documents(
    documents: Iterable[Document], fields: Mapping[str, ModelInfo], where: str
) -> PreparedDocuments:
    """Check documents against the index's fields and normalise their vectors.

    Raises StoreError naming the document for a bad id, an unknown field, a wrong
    dimension or a non-finite value; nothing is written then.
    """
    docs = list(documents)
    rows: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    for position, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise StoreError(f"upsert takes Document objects, got {type(doc).__name__}")
        check_doc_id(doc.doc_id)
        for key in ("path", "label", "split"):
            value = getattr(doc, key)
            if value is not None and not isinstance(value, str):
                raise StoreError(f"document {doc.doc_id!r}: {key} must be a string or None")
        for name, vector in doc.vectors.items():
            if name not in fields:
                known = ", ".join(sorted(fields)) or "none yet"
                raise StoreError(
                    f"document {doc.doc_id!r} has field {name!r}, which {where} does not have "
                    f"(fields: {known}); add it with create() first"
                )
            array = np.asarray(vector, dtype=np.float32)
            if array.shape != (fields[name].dim,):
                raise StoreError(
                    f"document {doc.doc_id!r}: field {name!r} takes vectors of shape "
                    f"({fields[name].dim},), got {array.shape}"
                )
            if not np.isfinite(array).all():
                raise StoreError(f"document {doc.doc_id!r}: field {name!r} has NaN or infinity")
            entry = rows.setdefault(name, ([], []))
            entry[0].append(position)
            entry[1].append(array)
    prepared = {}
    for name, (positions, arrays) in rows.items():
        matrix, empty = normalise_rows(np.stack(arrays))
        prepared[name] = FieldRows(positions, matrix, empty)
    return PreparedDocuments(docs, prepared)


def check_doc_id(doc_id: object) -> str:
    if not isinstance(doc_id, str) or not doc_id:
        raise StoreError(f"a document id must be a non-empty string, got {doc_id!r}")
    if any(c.isspace() for c in doc_id) or not doc_id.isprintable():
        raise StoreError(
            f"document id {doc_id!r} contains whitespace or control characters, which TREC "
            "run files cannot hold; %-escape them (indexing.datasets does)"
        )
    if len(doc_id.encode()) > MAX_ID_BYTES:
        raise StoreError(f"document id {doc_id[:40]!r}... is longer than {MAX_ID_BYTES} bytes")
    return doc_id


def normalise_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows (float32 (n, dim)) and which rows are zero (bool (n,)); zero rows stay zero."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    empty = norms < ZERO_NORM
    scale = np.where(empty, 0.0, 1.0 / np.maximum(norms, ZERO_NORM))
    return (matrix * scale[:, None]).astype(np.float32), empty


def prepare_queries(vectors: np.ndarray, field: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit query rows (float32 (q, dim)) and which are zero (bool (q,)); (dim,) is one query."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim:
        raise StoreError(
            f"field {field!r} takes query vectors of shape (q, {dim}), got {np.shape(vectors)}"
        )
    if not np.isfinite(array).all():
        raise StoreError(f"query vectors for field {field!r} contain NaN or infinity")
    return normalise_rows(array)


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise StoreError(f"k must be a positive integer, got {k!r}")
    return int(k)


def parse_filters(filters: Filters | None) -> dict[str, tuple[str, ...]]:
    """`{"split": "train"}` or `{"label": ["cat", "dog"]}` as {key: sorted values}."""
    if not filters:
        return {}
    parsed = {}
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise StoreError(f"cannot filter on {key!r}; filters take {' and '.join(FILTER_KEYS)}")
        values = (value,) if isinstance(value, str) else tuple(value)
        if not values or not all(isinstance(v, str) for v in values):
            raise StoreError(f"filter {key!r} takes a string or a list of strings, got {value!r}")
        parsed[key] = tuple(sorted(set(values)))
    return parsed


def order_hits(hits: Iterable[Hit]) -> list[Hit]:
    """Best first: score descending, ties by doc id descending (byte order, as trec_eval)."""
    # Python compares str by code point, which is UTF-8 byte order.
    return sorted(hits, key=lambda hit: (hit.score, hit.doc_id), reverse=True)
