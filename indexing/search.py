"""Single queries against an index: what `cbir search` and the web app call.

A SearchService opens the store once, loads the models that built its fields (from the
paths the index recorded) and the dataset the documents come from, then answers queries
by image (encoded in-process, never through Ray) or by doc id (an indexed document's
stored vector, or an image of the dataset's other split, e.g. a CIFAR-10 test image).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from features.base import Extractor
from features.imaging import decode_image
from features.verify import verify_views
from indexing.dataset_kinds import open_dataset
from indexing.datasets import Dataset, FolderDataset, ImageRecord
from indexing.expansion import Expansion, expanded_search
from indexing.fusion import FusionRule, fuse
from indexing.fusion_expansion import FUSED_METHODS, expansion_for, fusion_for
from indexing.local_store import LocalStore
from indexing.methods import FUSION, MethodName
from indexing.models import load_models
from indexing.stores.base import Hit, VectorStore, check_model, search_leaving_out
from indexing.stores.urls import open_store
from indexing.verified_search import Reranking, query_views, verified_hits


class IndexMissingError(CbirError):
    """There is no index to search yet."""


class UnknownDocumentError(CbirError):
    """A doc id that is neither in the index nor in its dataset."""


@dataclass(frozen=True)
class Query:
    """What was searched: an uploaded image, or a known image (doc id, label)."""

    doc_id: str | None = None
    label: str | None = None
    indexed: bool = False


@dataclass(frozen=True)
class SearchResult:
    method: str
    k: int
    hits: list[Hit]
    took_ms: float
    query: Query
    verifications: Mapping[str, Any] | None = None  # +gv: doc id -> features.verify.Verification


class SearchService:
    """An open index with its models and dataset, ready for queries from many threads."""

    def __init__(
        self,
        store: VectorStore,
        models: Mapping[str, Extractor],
        dataset: Dataset | None,
        fusion_rule: FusionRule | str = FusionRule.RRF,
        fusion_weights: Mapping[str, float] | None = None,
        expansions: Mapping[str, Expansion] | None = None,
        local: LocalStore | None = None,
        reranking: Reranking | None = None,
    ):
        self.store = store
        self.models = dict(models)
        self.dataset = dataset
        self.fusion_rule = FusionRule(fusion_rule)
        self.fusion_weights = dict(fusion_weights) if fusion_weights else None
        # alpha query expansion of each method, for "<method>+qe" (default: Expansion())
        self.expansions = {m: Expansion() for m in models} | dict(expansions or {})
        # local features of the index, for "<method>+gv" (None: the index has none)
        self.local = local
        self.reranking = reranking or Reranking()
        # Extractors hold native objects (OpenCV, torch) not documented as thread-safe.
        self._locks = {method: threading.Lock() for method in self.models}
        # Fusion encodes and searches each method at once (torch, OpenCV, BLAS free the GIL).
        self._pool = ThreadPoolExecutor(max(1, len(self.models)), thread_name_prefix="cbir-query")
        # `Extractor.info` hashes the model's learned state (about 100 ms for bovw): once here.
        self.infos = {method: model.info for method, model in self.models.items()}
        fields = store.fields
        for method, info in self.infos.items():
            check_model(method, fields[method], info, store.url)

    @classmethod
    def open(cls, settings: Settings, store_url: str | None = None, **fusion) -> SearchService:
        """Open the index at `store_url` (default CBIR_STORE) with the models that built it."""
        url = store_url or settings.store
        store = open_store(url, settings)
        if not store.exists() or not store.fields:
            store.close()
            raise IndexMissingError(
                f"no index at {url}; build one with `cbir index` (e.g. `cbir index --dataset cifar10`)"
            )
        meta = store.meta
        paths = {m: Path(p) for m, p in meta.get("models", {}).items() if m in store.fields}
        models = load_models(paths)
        dataset = None
        if "dataset" in meta:
            info = meta["dataset"]
            dataset = open_dataset(info["name"], settings, info["source"])
        local = LocalStore.open(settings, url)
        return cls(store, models, dataset, local=local if local.exists() else None, **fusion)

    @classmethod
    def open_tuned(cls, settings: Settings, store_url: str | None = None) -> SearchService:
        """`open`, with the fusion and query expansions chosen on validation for the index's
        models (indexing/fusion_expansion.py); without such a choice, RRF 1:1 and `Expansion()`.

        What `cbir search` and the web page use.
        """
        service = cls.open(settings, store_url)
        fields = service.store.fields
        if all(m in fields for m in FUSED_METHODS):
            fingerprints = {m: fields[m].fingerprint for m in FUSED_METHODS}
            service.fusion_rule, service.fusion_weights, _ = fusion_for(settings, fingerprints)
        for m in service.base_methods:
            service.expansions[m], _ = expansion_for(settings, m, fields[m].fingerprint)
        return service

    @property
    def methods(self) -> list[str]:
        """Searchable methods: every field with its model, fusion when there are several,
        then each field with alpha query expansion ("<method>+qe"), then, when the index has
        local features, each of those verified ("<method>+gv")."""
        methods = list(self.models)
        fused = [FUSION] if len(methods) > 1 else []
        expanded = [str(MethodName(m, expanded=True)) for m in methods]
        first = [*methods, *fused, *expanded]
        if self.local is None:
            return first
        return first + [f"{m}+gv" for m in first]

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(self.store.meta.get("label_counts", {}))

    @property
    def base_methods(self) -> list[str]:
        """The methods with a vector field of their own (those fusion combines)."""
        return list(self.models)

    def score_kind(self, method: str) -> str:
        """What a hit's score is for `method`: "cosine", the fusion rule ("rrf", "weighted"),
        or "inliers" (+gv; see indexing/verified_search.py)."""
        name = MethodName.parse(method)
        if name.verified:
            return "inliers"
        return self.fusion_rule.value if name.is_fusion else "cosine"

    def is_current(self) -> bool:
        """Whether the store still has exactly the fields this service loaded, built by its models.

        False after `cbir index` added a method or rebuilt a field with another model: reopen.
        """
        fields = self.store.fields
        recorded = self.store.meta.get("models", {})
        available = {m for m in fields if m in recorded}
        return available == set(self.models) and all(
            fields[m] == self.infos[m] for m in self.models
        )

    def stats(self) -> dict[str, Any]:
        """What the index holds, for an about page: sizes, methods and their models, labels.

        Holds no filesystem path (the store URL and dataset source stay on the server).
        """
        fields = self.store.fields
        return {
            "documents": self.store.count(),
            "dataset": self.dataset.name if self.dataset is not None else None,
            "methods": {
                m: {
                    "model": fields[m].name,
                    "dim": fields[m].dim,
                    "fingerprint": fields[m].fingerprint,
                }
                for m in self.models
            },
            "fusion": (
                {"rule": self.fusion_rule.value, "methods": self.base_methods}
                if FUSION in self.methods
                else None
            ),
            "searchable": self.methods,
            "labels": self.label_counts,
        }

    def check_method(self, method: str) -> str:
        if method not in self.methods:
            raise CbirError(f"unknown method {method!r}; this index has: {', '.join(self.methods)}")
        return method

    def search_image(self, image: np.ndarray, method: str, k: int) -> SearchResult:
        """Search with a decoded RGB image (uint8, (h, w, 3)), encoded in this process."""
        start = time.perf_counter()
        self.check_method(method)
        wanted = self._base_methods(method)
        views = self._views(image) if MethodName.parse(method).verified else None
        return self._search(self._encode(image, wanted), method, k, Query(), start, views)

    def search_id(self, doc_id: str, method: str, k: int) -> SearchResult:
        """Search with a known image: an indexed document (left out of its own results)
        or another image of the dataset (e.g. a CIFAR-10 test image)."""
        start = time.perf_counter()
        self.check_method(method)
        wanted = self._base_methods(method)
        stored = self.store.get([doc_id]).get(doc_id)
        if stored is not None and all(m in stored.vectors for m in wanted):
            query = Query(doc_id, stored.label, indexed=True)
            vectors = {m: stored.vectors[m] for m in wanted}
        else:
            record = self.record(doc_id)
            image = self.dataset.image(record)
            query = Query(doc_id, record.label, indexed=stored is not None)
            vectors = self._encode(image, wanted)
        views = None
        if MethodName.parse(method).verified:
            record = self.record(doc_id)
            views = self._views(self.dataset.image(record, min_side=self.local.options.max_side))
        return self._search(vectors, method, k, query, start, views)

    def explain(self, query_id: str, result_id: str) -> tuple:
        """Why `result_id` matches `query_id`: (Verification, the query view it used, the
        result's stored features); needs local features (`cbir index --local`)."""
        if self.local is None:
            raise CbirError("this index has no local features; add them with `cbir index --local`")
        stored = self.local.get([result_id]).get(result_id)
        if stored is None:
            raise UnknownDocumentError(f"no local features for {result_id!r} in this index")
        record = self.record(query_id)
        views = self._views(self.dataset.image(record, min_side=self.local.options.max_side))
        check = verify_views(views, stored, self.reranking.params)
        return check, views[1 if check.mirrored else 0], stored

    def record(self, doc_id: str) -> ImageRecord:
        """The dataset record of `doc_id`; UnknownDocumentError when there is none.

        A folder synced since the service opened has documents its scan lacks: those are
        found through the store's record of their path (kept inside the folder)."""
        if self.dataset is not None:
            try:
                return self.dataset.record(doc_id)
            except KeyError:
                pass
            found = self._synced_record(doc_id)
            if found is not None:
                return found
        raise UnknownDocumentError(f"no image with id {doc_id!r} in this index or its dataset")

    def _synced_record(self, doc_id: str) -> ImageRecord | None:
        if not isinstance(self.dataset, FolderDataset):
            return None
        stored = self.store.get([doc_id]).get(doc_id)
        if stored is None or not stored.path:
            return None
        root = self.dataset.root.resolve()
        if root not in (root / stored.path).resolve().parents:
            return None
        return ImageRecord(doc_id, stored.label, stored.split, stored.path)

    def image(self, doc_id: str, max_side: int | None = None) -> np.ndarray:
        """The pixels of a known image (uint8 RGB (h, w, 3)), looked up by doc id only."""
        record = self.record(doc_id)
        image = decode_image(self.dataset.payload(record), name=record.path, min_side=max_side)
        if max_side and max(image.shape[:2]) > max_side:
            pil = Image.fromarray(image)
            pil.thumbnail((max_side, max_side))
            image = np.asarray(pil)
        return image

    def image_png(self, doc_id: str, max_side: int | None = 512) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(self.image(doc_id, max_side)).save(buffer, format="PNG")
        return buffer.getvalue()

    def close(self) -> None:
        self._pool.shutdown()
        self.store.close()

    def _encode(self, image: np.ndarray, methods: list[str]) -> dict[str, np.ndarray]:
        return self._each(methods, lambda m: self._encode_one(image, m))

    def _encode_one(self, image: np.ndarray, method: str) -> np.ndarray:
        with self.holding(method) as model:
            return model.encode_one(image)

    @contextlib.contextmanager
    def holding(self, method: str) -> Iterator[Extractor]:
        """`method`'s model, used by this thread alone while held (extractors hold native
        objects not documented as thread-safe)."""
        with self._locks[method]:
            yield self.models[method]

    def _each(self, methods: list[str], run: Any) -> dict[str, Any]:
        """`{m: run(m)}`, run in parallel threads when there are several methods."""
        if len(methods) == 1:
            return {methods[0]: run(methods[0])}
        futures = {m: self._pool.submit(run, m) for m in methods}
        return {m: future.result() for m, future in futures.items()}

    def _base_methods(self, method: str) -> list[str]:
        name = MethodName.parse(method)
        return list(self.models) if name.is_fusion else [name.base]

    def _views(self, image: np.ndarray) -> list:
        return query_views(image, self.local.options)

    def _search(
        self,
        vectors: Mapping[str, np.ndarray],
        method: str,
        k: int,
        query: Query,
        start: float,
        views: list | None = None,
    ) -> SearchResult:
        if k <= 0:
            raise CbirError(f"k must be positive, got {k}")
        name = MethodName.parse(method)
        if name.verified:
            first = self._search(
                vectors, str(name.unverified), max(k, self.reranking.top), query, start
            )
            hits, checks = verified_hits(first.hits, views, self.local, self.reranking)
            took = (time.perf_counter() - start) * 1000
            return SearchResult(method, k, hits[:k], took, query, checks)
        if name.expanded:
            m = name.base
            hits = expanded_search(
                self.store,
                m,
                vectors[m][None, :],
                k,
                self.expansions[m],
                model=self.infos[m],
                exclude=[query.doc_id if query.indexed else None],
            )[0]
        else:
            leave_out = [query.doc_id if query.indexed else None]
            lists = self._each(
                list(vectors),
                lambda m: search_leaving_out(
                    self.store, m, vectors[m][None, :], k, leave_out, model=self.infos[m]
                )[0],
            )
            hits = self._fuse(lists, k) if name.is_fusion else lists[name.base]
        took = (time.perf_counter() - start) * 1000
        return SearchResult(method, k, hits, took, query)

    def _fuse(self, lists: Mapping[str, list[Hit]], k: int) -> list[Hit]:
        return fuse(lists, k, self.fusion_rule, self.fusion_weights)
