"""The vector-store protocol: one abstract base, two implementations, opened from a URL.

A store holds one document per image (doc id, path, label, split) and, per feature method,
one dense vector field whose model (name, dim, fingerprint) the store records. Vectors are
L2-normalised on write, so cosine similarity is an inner product; a zero vector means the
method had nothing to describe in that image: the document counts as encoded for the field
(`ids_with`) but is never a search hit on it, because a zero vector has no cosine.

Hits come best first: score (cosine) descending, ties by doc id descending in byte order,
which is the order trec_eval computes from a run file.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cbir.core.errors import CbirError
from features.base import ModelInfo
from indexing.stores.hits import Hit, RankedHits

if TYPE_CHECKING:
    from indexing.datasets import ImageRecord

# Keyword fields every document has; vector field names must differ from them.
METADATA_FIELDS = ("doc_id", "path", "label", "split")
RESERVED_NAMES = frozenset((*METADATA_FIELDS, "empty"))
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
FILTER_KEYS = ("label", "split")
# Elasticsearch's dense_vector limit; one index must work in both stores.
MAX_DIM = 4096


class StoreError(CbirError):
    """A store cannot be opened, read or written as asked; the message says what to do."""


class ModelMismatchError(StoreError):
    """A query or field comes from a different feature model than the one that built the index."""


@dataclass(frozen=True)
class Document:
    """One image in a store: metadata and one vector (float32, (dim,)) per field it has."""

    doc_id: str
    path: str | None = None
    label: str | None = None
    split: str | None = None
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)


def documents_from(
    records: Sequence[ImageRecord], vectors: Mapping[str, np.ndarray]
) -> list[Document]:
    """Documents for `records`, row i of each float32 (len(records), dim) array going to record i."""
    for name, matrix in vectors.items():
        if len(matrix) != len(records):
            raise StoreError(f"field {name!r} has {len(matrix)} vectors for {len(records)} records")
    return [
        Document(r.doc_id, r.path, r.label, r.split, {n: m[i] for n, m in vectors.items()})
        for i, r in enumerate(records)
    ]


Filters = Mapping[str, str | Sequence[str]]


class VectorStore(ABC):
    """Documents with named vector fields, searched by exact (or approximate) cosine kNN.

    Writes are idempotent by doc id and merge per field: `upsert` replaces the metadata and
    the vectors it is given, and keeps a document's other fields. A store may be used from
    many threads at once for reading; writes are serialised.
    """

    url: str

    @abstractmethod
    def exists(self) -> bool:
        """Whether the index has been created."""

    @abstractmethod
    def create(
        self, fields: Mapping[str, ModelInfo], meta: Mapping[str, Any] | None = None
    ) -> None:
        """Create the index, or add fields to an existing one.

        A field that exists already must have been built by the same model (name, dim,
        fingerprint), else ModelMismatchError: a retrained model needs a new index.
        `meta` (JSON-serialisable) replaces the index's free-form metadata when given.
        """

    @property
    @abstractmethod
    def fields(self) -> dict[str, ModelInfo]:
        """The vector fields and the model that built each."""

    @property
    @abstractmethod
    def meta(self) -> dict[str, Any]:
        """The free-form metadata given to `create`."""

    @abstractmethod
    def upsert(self, documents: Iterable[Document]) -> int:
        """Insert or update documents (one commit); returns how many were written."""

    @abstractmethod
    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents; unknown ids are ignored. Returns how many were removed."""

    @abstractmethod
    def count(self) -> int:
        """Number of documents."""

    @abstractmethod
    def get(self, ids: Iterable[str]) -> dict[str, Document]:
        """The stored documents among `ids` (unknown ids are left out), unit vectors included."""

    @abstractmethod
    def ids_with(self, field: str) -> set[str]:
        """Ids of documents that have field `field` (zero vectors included): what resume skips."""

    @abstractmethod
    def search(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        model: ModelInfo | None = None,
        exact: bool = True,
        num_candidates: int | None = None,
    ) -> list[list[Hit]]:
        """The k best hits for each query vector, best first.

        `vectors` is float32 (q, dim) or (dim,) for one query; one list of hits per query
        (an empty list for a zero query vector). `filters` keeps documents whose `label` /
        `split` equals the value (or one of a list of values). `model`, when given, must be
        the model that built the field, else ModelMismatchError. `exact=False` asks for
        approximate search where the store has one (Elasticsearch kNN with
        `num_candidates`); the embedded store is always exact.
        """

    def search_ranked(
        self,
        field: str,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        model: ModelInfo | None = None,
        exact: bool | None = None,
        num_candidates: int | None = None,
    ) -> RankedHits:
        """`search`'s answer as arrays (doc ids, scores, hits per row), for bulk callers.

        Same rows, order and scores as `search`; `Hit` objects only on request. This default
        converts `search`'s hits; a store that ranks in arrays returns them without hits.
        `exact=None` is the store's own default.
        """
        options: dict[str, Any] = {"model": model, "num_candidates": num_candidates}
        if exact is not None:
            options["exact"] = exact
        return RankedHits.from_hit_lists(self.search(field, vectors, k, filters, **options), k)

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole index and its data."""

    @abstractmethod
    def close(self) -> None:
        """Release files, locks and connections."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def check_field_name(name: str) -> str:
    """`name` if it can name a vector field in both stores, else StoreError."""
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise StoreError(
            f"{name!r} cannot name a vector field: use lower-case letters, digits and '_' "
            f"(starting with a letter), and none of {', '.join(sorted(RESERVED_NAMES))}"
        )
    return name


def check_model(field: str, recorded: ModelInfo, given: ModelInfo, where: str) -> None:
    """Refuse `given` unless it is the model that built `field` (same dim and fingerprint)."""
    if given.dim != recorded.dim or given.fingerprint != recorded.fingerprint:
        raise ModelMismatchError(
            f"field {field!r} of {where} was built by {describe_model(recorded)}; "
            f"the query comes from {describe_model(given)}: use the model that built the index, "
            "or index again with this one"
        )


def describe_model(info: ModelInfo) -> str:
    return f"{info.name} (dim {info.dim}, fingerprint {info.fingerprint})"


def search_leaving_out(
    store: VectorStore,
    field: str,
    vectors: np.ndarray,
    k: int,
    leave_out: Sequence[str | None],
    **options: Any,
) -> list[list[Hit]]:
    """`store.search`, each query's own doc id (None: nothing) left out of its top `k`.

    An indexed query comes back first with cosine 1, so one more hit is asked for whenever a
    query leaves itself out. `options` go to `store.search` (model, exact, num_candidates).
    """
    extra = int(any(doc_id is not None for doc_id in leave_out))
    return drop_left_out(store.search(field, vectors, k + extra, **options), leave_out, k)


def drop_left_out(
    hit_lists: Sequence[Sequence[Hit]], leave_out: Sequence[str | None], k: int
) -> list[list[Hit]]:
    """Each list without its query's doc id, cut to `k`."""
    return [
        [h for h in hits if h.doc_id != doc_id][:k]
        for hits, doc_id in zip(hit_lists, leave_out, strict=True)
    ]
