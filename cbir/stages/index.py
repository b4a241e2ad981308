"""The `cbir index` stage: encode a dataset's index side on Ray and bulk-write it to a store.

Resumable: documents that already have a method's field are not encoded again, so an
interrupted job (Ctrl-C, kill) re-run with the same arguments finishes the work with
exactly one document per image. Every upsert is one commit of the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from cbir.core.progress import Stopwatch, summary_line
from indexing.dataset_kinds import open_dataset
from indexing.datasets import Dataset, DatasetKind, ImageRecord, index_side, limit_per_label
from indexing.encoding import LOCAL_RAY, RayOptions, encode_batches
from indexing.local_store import LocalOptions, LocalStore
from indexing.models import load_models, model_dirs
from indexing.skipped import SkipReport
from indexing.stores.base import documents_from
from indexing.stores.urls import open_store

INDEX_META_VERSION = 1
LOCAL = "local-features"  # the sidecar's name among the fields to do (not a valid field name)


@dataclass
class IndexReport:
    """What an index run did; written as JSON next to the other reports."""

    dataset: str
    source: str
    store: str
    methods: list[str]
    models: dict[str, dict]
    records: int  # images on the index side of the dataset
    already_indexed: dict[str, int]  # per method, found in the store at the start
    encoded: int  # images encoded by this run
    written: int  # documents written by this run
    documents: int  # documents in the store at the end
    seconds: float
    skipped: list[dict] = field(default_factory=list)
    empty_vectors: dict[str, list[str]] = field(default_factory=dict)  # method -> doc ids
    report_path: str = ""

    @property
    def summary(self) -> str:
        return summary_line("index", self.encoded, self.seconds)

    def to_json(self) -> dict:
        return asdict(self)


def index_dataset(
    settings: Settings,
    *,
    dataset: str = DatasetKind.CIFAR10.value,
    data: str | None = None,
    methods: Sequence[str] = ("bovw", "cnn"),
    store_url: str | None = None,
    models: Mapping[str, str | Path] | None = None,
    ray: RayOptions | None = LOCAL_RAY,
    batch_size: int = 1000,
    limit: int | None = None,
    show_progress: bool = True,
    local: LocalOptions | None = None,
) -> IndexReport:
    """Index the index side of `dataset` with every method into the store; returns the report.

    `models` maps a method to an explicit model directory (default: see indexing.models).
    `limit` keeps the first n images of each label. `ray=None` encodes in this process.
    `local` also extracts local features into the index's sidecar (indexing/local_store.py),
    each batch's shard written right after its store commit, resumable the same way.
    """
    clock = Stopwatch()
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise CbirError("no method given; use --method bovw,cnn")
    ds = open_dataset(dataset, settings, data)
    records = limit_per_label(index_side(ds), limit)
    if not records:
        raise CbirError(f"dataset {ds.source} has no images to index")
    dirs = model_dirs(settings, methods, models)
    infos = {m: ex.info for m, ex in load_models(dirs).items()}
    url = store_url or settings.store
    report = SkipReport(ds.skipped.items)
    empty: dict[str, list[str]] = {m: [] for m in methods}
    written = encoded = 0
    with open_store(url, settings) as store:
        store.create(infos, meta=_index_meta(store.meta if store.exists() else {}, ds, dirs))
        done = {m: store.ids_with(m) for m in methods}
        sidecar = LocalStore.open(settings, url, local) if local is not None else None
        if sidecar is not None:
            done[LOCAL] = sidecar.ids()
        already = {m: len(ids & {r.doc_id for r in records}) for m, ids in done.items()}
        for group, todo in _todo_groups(records, list(done), done).items():
            batches = ds.iter_batches(records=todo, batch_size=batch_size)
            for result in encode_batches(
                batches,
                {m: dirs[m] for m in group if m != LOCAL},
                ray=ray,
                max_pixels=settings.max_pixels,
                total=len(todo),
                desc=f"index {'+'.join(group)}",
                show_progress=show_progress,
                local=local.to_json() if local is not None and LOCAL in group else None,
            ):
                report.extend(result.skipped)
                if not result.records:
                    continue
                for method, vectors in result.vectors.items():
                    zero = np.flatnonzero(~np.any(vectors, axis=1))
                    empty[method] += [result.records[i].doc_id for i in zero]
                if result.vectors:
                    written += store.upsert(documents_from(result.records, result.vectors))
                if sidecar is not None and result.local is not None:
                    sidecar.add([r.doc_id for r in result.records], result.local)
                encoded += len(result.records)
        store.create(infos, meta=_with_label_counts(store.meta, records, report))
        documents = store.count()
    out = IndexReport(
        dataset=ds.name,
        source=ds.source,
        store=url,
        methods=methods,
        models={m: {"path": str(dirs[m]), **infos[m].to_json()} for m in methods},
        records=len(records),
        already_indexed=already,
        encoded=encoded,
        written=written,
        documents=documents,
        seconds=round(clock.seconds, 3),
        skipped=[asdict(s) for s in report.items],
        empty_vectors={m: sorted(ids) for m, ids in empty.items() if ids},
    )
    path = settings.reports_dir / f"index-{ds.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    out.report_path = str(path)
    path.write_text(json.dumps(out.to_json(), indent=2) + "\n")
    return out


def _todo_groups(
    records: Sequence[ImageRecord], methods: Sequence[str], done: Mapping[str, set[str]]
) -> dict[tuple[str, ...], list[ImageRecord]]:
    """Records still missing some fields, grouped by which fields they miss (one pass each)."""
    groups: dict[tuple[str, ...], list[ImageRecord]] = {}
    for record in records:
        missing = tuple(m for m in methods if record.doc_id not in done[m])
        if missing:
            groups.setdefault(missing, []).append(record)
    return groups


def _index_meta(previous: Mapping, ds: Dataset, dirs: Mapping[str, Path]) -> dict:
    """The store's metadata: which dataset the documents come from and where each model lives."""
    meta = dict(previous)
    meta["cbir"] = INDEX_META_VERSION
    meta["dataset"] = {"name": ds.name, "source": str(Path(ds.source).resolve())}
    meta["models"] = {
        **meta.get("models", {}),
        **{m: str(Path(d).resolve()) for m, d in dirs.items()},
    }
    return meta


def _with_label_counts(meta: Mapping, records: Sequence[ImageRecord], report: SkipReport) -> dict:
    """Record how many indexed documents each label has (R for per-query AP in the web page)."""
    skipped = {s.path for s in report.items}
    counts: dict[str, int] = {}
    for r in records:
        if r.path not in skipped and r.label is not None:
            counts[r.label] = counts.get(r.label, 0) + 1
    return {**meta, "label_counts": counts}
