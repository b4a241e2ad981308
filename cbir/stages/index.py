"""The `cbir index` stage: encode a dataset's index side on Ray and bulk-write it to a store.

Resumable: documents that already have a method's field are not encoded again, so an
interrupted job (Ctrl-C, kill) re-run with the same arguments finishes the work with
exactly one document per image. Every upsert is one commit of the store. A folder is
synced (indexing/sync.py): new files added, changed ones re-encoded, vanished ones removed,
renamed ones re-keyed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from cbir.core.progress import Stopwatch, summary_line
from indexing import sync
from indexing.dataset_kinds import open_dataset
from indexing.datasets import (
    Dataset,
    DatasetKind,
    FolderDataset,
    ImageRecord,
    folder_doc_id,
    index_side,
    limit_per_label,
)
from indexing.encoding import LOCAL_RAY, RayOptions, encode_batches
from indexing.local_store import LocalOptions, LocalStore
from indexing.manifest import Manifest, manifest_path
from indexing.models import folder_cnn_model, load_models, model_dirs
from indexing.skipped import SkipReport
from indexing.stores.base import VectorStore, documents_from
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
    sync: dict[str, int] | None = None  # folders: added, changed, removed, renamed, ...
    notes: list[str] = field(default_factory=list)  # choices made for the user (which model, why)
    report_path: str = ""

    @property
    def summary(self) -> str:
        line = summary_line("index", self.encoded, self.seconds)
        if self.sync is not None:
            line += "; " + ", ".join(f"{n} {v:,}" for n, v in self.sync.items())
        return line

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
    only: Collection[str] | None = None,
    echo: Callable[[str], None] | None = None,
    local: LocalOptions | None = None,
) -> IndexReport:
    """Index the index side of `dataset` with every method into the store; returns the report.

    `models` maps a method to an explicit model directory (default: see indexing.models).
    `limit` keeps the first n images of each label. `ray=None` encodes in this process.
    `only` (folders; paths relative to it) syncs just those files when the folder allows it
    (FolderDataset.restrict), else the whole folder: what a watcher's batch of events asks.
    A folder without an explicit cnn model gets `indexing.models.folder_cnn_model`'s choice;
    the reason is passed to `echo` at once and kept in the report's notes.
    `local` also extracts local features into the index's sidecar (indexing/local_store.py),
    each batch's shard written right after its store commit, resumable the same way.
    """
    clock = Stopwatch()
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise CbirError("no method given; use --method bovw,cnn")
    ds = open_dataset(dataset, settings, data)
    scoped = only is not None and isinstance(ds, FolderDataset) and ds.restrict(only)
    scope = {folder_doc_id(rel) for rel in only} if scoped and only is not None else None
    records = limit_per_label(index_side(ds), limit)
    if not records and scope is None:
        raise CbirError(f"dataset {ds.source} has no images to index")
    explicit, notes = dict(models or {}), []
    if ds.name == DatasetKind.FOLDER.value and "cnn" in methods and "cnn" not in explicit:
        explicit["cnn"], why = folder_cnn_model(settings)
        notes.append(why)
        if echo:
            echo(why)
    dirs = model_dirs(settings, methods, explicit)
    infos = {m: ex.info for m, ex in load_models(dirs).items()}
    url = store_url or settings.store
    report = SkipReport(ds.skipped.items)
    empty: dict[str, list[str]] = {m: [] for m in methods}
    written = encoded = 0
    with open_store(url, settings) as store, contextlib.ExitStack() as closing:
        plan, manifest, start = None, None, None
        if isinstance(ds, FolderDataset):
            manifest = closing.enter_context(Manifest(manifest_path(settings.home, url)))
            start = sync.tie_manifest(store, manifest, str(Path(ds.source).resolve()))
        meta = _index_meta(store.meta if store.exists() else {}, ds, dirs)
        if start is not None:
            meta[sync.SYNC_META_KEY] = {"manifest": start.token}
        store.create(infos, meta=meta)
        if manifest is not None and start is not None:
            if start.reset:
                manifest.reset(start.token)
            before = _labels_held(store, scope)
            plan = _plan_folder(store, ds, records, methods, manifest, start.trust_store, scope)
        report.extend(ds.skipped.items)
        done = {m: store.ids_with(m) for m in methods}
        sidecar = LocalStore.open(settings, url, local) if local is not None else None
        if sidecar is not None:
            if plan is not None:
                _sync_sidecar(sidecar, plan)
            done[LOCAL] = sidecar.ids()
        already = {m: len(ids & {r.doc_id for r in records}) for m, ids in done.items()}
        groups = _plan_groups(plan) if plan is not None else _todo_groups(records, methods, done)
        if sidecar is not None:
            stored = set().union(*(done[m] for m in methods))
            groups = _with_local(groups, records, done[LOCAL], stored)
        for group, todo in groups.items():
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
                seen = {s.path for s in report.items}
                unreadable = [s.path for s in ds.skipped.items if s.path not in seen]
                report.extend(result.skipped)
                report.extend(ds.skipped.items)
                if plan is not None and manifest is not None:
                    undecodable = {s.path: s.reason for s in result.skipped}
                    sync.record_skipped(store, manifest, plan, undecodable, unreadable)
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
                if plan is not None and manifest is not None:
                    sync.record_encoded(manifest, plan, result.records)
        if scope is None:
            store.create(infos, meta=_with_label_counts(store.meta, records, report))
        else:
            store.create(infos, meta=_with_label_deltas(store.meta, before, records, report))
        documents = store.count()
    counts = None
    if plan is not None:
        plan.counts.skipped = len(report)
        counts = asdict(plan.counts)
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
        sync=counts,
        notes=notes,
    )
    path = settings.reports_dir / f"index-{ds.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    out.report_path = str(path)
    path.write_text(json.dumps(out.to_json(), indent=2) + "\n")
    return out


def _plan_folder(
    store: VectorStore,
    ds: FolderDataset,
    records: Sequence[ImageRecord],
    methods: Sequence[str],
    manifest: Manifest,
    trust_store: bool,
    scope: set[str] | None,
) -> sync.SyncPlan:
    """Plan the sync of a folder, then re-key renamed files and drop vanished ones."""
    current = {r.doc_id for r in index_side(ds)}
    plan = sync.plan_sync(
        store, ds, records, current, methods, manifest, trust_store=trust_store, scope=scope
    )
    sync.apply_renames(store, manifest, plan)
    sync.apply_removals(store, manifest, plan)
    if plan.touched:
        manifest.put(plan.touched)
    for path, reason in plan.known_skips:
        ds.skipped.add(path, reason)
    return plan


def _plan_groups(plan: sync.SyncPlan) -> dict[tuple[str, ...], list[ImageRecord]]:
    """The plan's records to encode, grouped by the fields they need (one pass each)."""
    groups: dict[tuple[str, ...], list[ImageRecord]] = {}
    for record, fields in plan.todo.values():
        groups.setdefault(fields, []).append(record)
    return groups


def _sync_sidecar(sidecar: LocalStore, plan: sync.SyncPlan) -> None:
    """Follow the folder's renames in the local features, and drop those of files that changed
    or vanished (the encoding pass then extracts what is missing)."""
    moved = sidecar.get(old for old, _ in plan.renames)
    pairs = [(record.doc_id, moved[old]) for old, record in plan.renames if old in moved]
    if pairs:
        sidecar.add([d for d, _ in pairs], [f for _, f in pairs])
    stale = [old for old, _ in plan.renames] + plan.remove + plan.clear_first + plan.changed
    sidecar.remove(stale)


def _with_local(
    groups: Mapping[tuple[str, ...], list[ImageRecord]],
    records: Sequence[ImageRecord],
    have_local: set[str],
    stored: set[str],
) -> dict[tuple[str, ...], list[ImageRecord]]:
    """`groups` with local features added wherever a record has none yet: to the group that
    encodes it anyway, or a local-only pass for a stored record (files that could not be
    decoded are not retried here)."""
    fields = {r.doc_id: (r, group) for group, todo in groups.items() for r in todo}
    for record in records:
        missing = record.doc_id not in have_local and record.doc_id in stored
        if missing and record.doc_id not in fields:
            fields[record.doc_id] = (record, ())
    out: dict[tuple[str, ...], list[ImageRecord]] = {}
    for doc_id, (record, group) in fields.items():
        if doc_id not in have_local:
            group = (*group, LOCAL)
        if group:
            out.setdefault(group, []).append(record)
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


def _labels_held(store: VectorStore, scope: set[str] | None) -> dict[str, str | None]:
    """Doc id -> label of the scope's documents in the store before a scoped sync."""
    if scope is None or not store.exists():
        return {}
    return {doc_id: doc.label for doc_id, doc in store.get(sorted(scope)).items()}


def _with_label_deltas(
    meta: Mapping, before: Mapping[str, str | None], records: Sequence[ImageRecord], report
) -> dict:
    """Label counts after a scoped sync: the scope's old documents out, its indexed files in."""
    counts = dict(meta.get("label_counts", {}))
    for label in before.values():
        if label is not None and counts.get(label, 0) > 0:
            counts[label] -= 1
    skipped = {s.path for s in report.items}
    for r in records:
        if r.path not in skipped and r.label is not None:
            counts[r.label] = counts.get(r.label, 0) + 1
    return {**meta, "label_counts": {k: v for k, v in counts.items() if v > 0}}
