"""Keep a store in sync with a folder: plan what changed, re-key renames, drop what is gone.

The plan compares the folder with the manifest (indexing/manifest.py) and the store: a file
whose size and mtime match its entry is unchanged without being read; otherwise its sha256
decides. New files whose content equals that of a vanished document are renames: their
stored vectors are copied to the new id (store.get + upsert) and the old id deleted, with no
encoding. The caller encodes `plan.todo` and records each committed batch in the manifest.
Every step writes the store first and the manifest after, so a crash at any point leaves a
manifest that is never ahead of the store, and the next run repairs the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from cbir.core.errors import CbirError
from indexing.datasets import FolderDataset, ImageRecord
from indexing.manifest import Entry, Manifest, chunks, file_sha256
from indexing.stores.base import Document, VectorStore

SYNC_META_KEY = "sync"
RENAME_BATCH = 500


@dataclass
class SyncCounts:
    """What a sync did to the documents (files the dataset could not read are `skipped`)."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    renamed: int = 0
    unchanged: int = 0
    skipped: int = 0

    def line(self) -> str:
        return ", ".join(f"{n} {v:,}" for n, v in asdict(self).items())


@dataclass
class SyncPlan:
    """What to do; `todo` maps each record to encode to the fields it needs."""

    counts: SyncCounts
    entries: dict[str, Entry]  # doc id -> what the folder holds now (for the manifest)
    methods: tuple[str, ...] = ()  # the fields this run computes
    todo: dict[str, tuple[ImageRecord, tuple[str, ...]]] = field(default_factory=dict)
    renames: list[tuple[str, ImageRecord]] = field(default_factory=list)  # (old id, new record)
    remove: list[str] = field(default_factory=list)
    clear_first: list[str] = field(default_factory=list)  # changed docs holding other fields
    changed: list[str] = field(default_factory=list)  # doc ids whose file content changed
    touched: list[Entry] = field(default_factory=list)  # same content, new size/mtime
    known_skips: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), unchanged


@dataclass(frozen=True)
class SyncStart:
    """How a sync begins: the store's manifest token, and whether the manifest starts over."""

    token: str
    reset: bool  # the manifest must be emptied under `token` (after the store records it)
    trust_store: bool  # a store from before sync: adopt its documents as current


def tie_manifest(store: VectorStore, manifest: Manifest, source: str) -> SyncStart:
    """Tie `manifest` to `store`'s life, or say how to start it over.

    A store written before sync existed (no token in its metadata) is adopted once: its
    documents count as encoded from the files' current content. A token mismatch (the store
    was dropped and rebuilt, or the manifest belongs to another life) starts the manifest
    over. Refuses to sync a store that holds another folder, which would remove its documents.
    """
    meta = store.meta if store.exists() else {}
    recorded = meta.get("dataset", {})
    if recorded and (recorded.get("name"), recorded.get("source")) != ("folder", source):
        count = store.count()
        if count:
            held = f"the {recorded.get('name')} dataset at {recorded.get('source')}"
            raise CbirError(
                f"the store {store.url} holds {held}; syncing the folder {source} into it "
                f"would remove its {count:,} documents: pass another --store (or "
                "CBIR_STORE), or drop that index first"
            )
    token = meta.get(SYNC_META_KEY, {}).get("manifest")
    if token is not None and token == manifest.token:
        return SyncStart(token, reset=False, trust_store=False)
    legacy = SYNC_META_KEY not in meta and manifest.token is None and store.exists()
    return SyncStart(uuid.uuid4().hex, reset=True, trust_store=legacy)


def plan_sync(
    store: VectorStore,
    dataset: FolderDataset,
    records: Sequence[ImageRecord],
    current_ids: set[str],
    methods: Sequence[str],
    manifest: Manifest,
    *,
    trust_store: bool = False,
    scope: set[str] | None = None,
) -> SyncPlan:
    """Compare folder, manifest and store. `current_ids` are every file's doc id on the index
    side (before any --limit): documents outside it are removed. With `scope` (doc ids), only
    those documents are considered for removal and as rename sources."""
    entries = manifest.entries()
    fields = set(store.fields) if store.exists() else set()
    have = {f: store.ids_with(f) for f in fields | set(methods)} if store.exists() else {}
    in_store = set().union(*have.values()) if have else set()
    extra_fields = fields - set(methods)
    plan = SyncPlan(SyncCounts(), {}, tuple(methods))
    fresh: list[tuple[ImageRecord, Entry]] = []
    for record in records:
        try:
            entry = _current_entry(dataset, record, entries.get(record.doc_id))
        except OSError as exc:  # unreadable (or gone since the scan): no vectors for it
            dataset.skipped.add(record.path, f"cannot read file ({exc.strerror})")
            if record.doc_id in in_store:
                plan.clear_first.append(record.doc_id)
            continue
        plan.entries[record.doc_id] = entry
        old = entries.get(record.doc_id)
        same = old is not None and old.sha256 == entry.sha256
        if old is None and trust_store and record.doc_id in in_store:
            same = True
        if not same:
            if old is None:
                fresh.append((record, entry))
            else:
                plan.counts.changed += 1
                plan.changed.append(record.doc_id)
                plan.todo[record.doc_id] = (record, tuple(methods))
                if record.doc_id in in_store and extra_fields:
                    plan.clear_first.append(record.doc_id)
            continue
        if old is not None and old.skipped is not None:
            plan.known_skips.append((record.path, old.skipped))
            continue
        if old is None or (old.size, old.mtime_ns) != (entry.size, entry.mtime_ns):
            plan.touched.append(entry)
        missing = tuple(m for m in methods if record.doc_id not in have.get(m, ()))
        if missing:
            plan.todo[record.doc_id] = (record, missing)
            if record.doc_id not in in_store:
                plan.counts.added += 1
                continue
        plan.counts.unchanged += 1
    known = in_store | set(entries)
    gone = sorted((known if scope is None else known & scope) - current_ids)
    by_sha: dict[str, list[str]] = {}
    for doc_id in gone:
        old = entries.get(doc_id)
        if old is not None and old.skipped is None and doc_id in in_store:
            by_sha.setdefault(old.sha256, []).append(doc_id)
    renamed: set[str] = set()
    for record, entry in fresh:
        sources = by_sha.get(entry.sha256)
        if sources:
            source = sources.pop()
            renamed.add(source)
            plan.renames.append((source, record))
            plan.counts.renamed += 1
            missing = tuple(m for m in methods if source not in have.get(m, ()))
            if missing:
                plan.todo[record.doc_id] = (record, missing)
        else:
            plan.counts.added += 1
            plan.todo[record.doc_id] = (record, tuple(methods))
    plan.remove = [d for d in gone if d not in renamed]
    plan.counts.removed = sum(1 for d in plan.remove if d in in_store)
    return plan


def _current_entry(dataset: FolderDataset, record: ImageRecord, old: Entry | None) -> Entry:
    """The file's entry now: size and mtime from the scan, the hash re-read only when they moved."""
    size, mtime_ns = dataset.file_stat(record)
    if old is not None and (old.size, old.mtime_ns) == (size, mtime_ns):
        return Entry(record.doc_id, size, mtime_ns, old.sha256, old.skipped)
    return Entry(record.doc_id, size, mtime_ns, file_sha256(dataset.path_of(record)))


def apply_renames(
    store: VectorStore, manifest: Manifest, plan: SyncPlan, batch_size: int = RENAME_BATCH
) -> int:
    """Copy each renamed document's vectors to its new id, delete the old id; returns how many."""
    done = 0
    for batch in chunks(plan.renames, batch_size):
        stored = store.get([old for old, _ in batch])
        moved = [(old, rec) for old, rec in batch if old in stored]
        for old, record in batch:
            if old not in stored:  # vanished meanwhile: encode instead
                plan.todo[record.doc_id] = (record, plan.methods)
                plan.counts.renamed -= 1
                plan.counts.added += 1
        store.upsert(
            Document(rec.doc_id, rec.path, rec.label, rec.split, dict(stored[old].vectors))
            for old, rec in moved
        )
        store.delete(old for old, _ in moved)
        manifest.replace([old for old, _ in moved], [plan.entries[r.doc_id] for _, r in moved])
        done += len(moved)
    return done


def apply_removals(store: VectorStore, manifest: Manifest, plan: SyncPlan) -> None:
    """Delete vanished documents (and changed ones holding other fields) from store, then manifest."""
    for batch in chunks(plan.remove, 1000):
        store.delete(batch)
        manifest.remove(batch)
    for batch in chunks(plan.clear_first, 1000):
        store.delete(batch)


def record_encoded(manifest: Manifest, plan: SyncPlan, records: Iterable[ImageRecord]) -> None:
    """After a committed upsert: the manifest learns what the new vectors were computed from."""
    manifest.put(plan.entries[r.doc_id] for r in records if r.doc_id in plan.entries)


def record_skipped(
    store: VectorStore,
    manifest: Manifest,
    plan: SyncPlan,
    undecodable: Mapping[str, str],
    unreadable: Iterable[str],
) -> None:
    """Files that failed while encoding (by path): drop any old vectors from the store; the
    manifest remembers undecodable files (not retried while unchanged) and forgets unreadable
    ones (retried next run)."""
    by_path = {rec.path: doc_id for doc_id, (rec, _) in plan.todo.items()}
    bad = [by_path[p] for p in undecodable if p in by_path]
    lost = [by_path[p] for p in unreadable if p in by_path]
    if not bad and not lost:
        return
    store.delete([*bad, *lost])
    manifest.replace(
        lost,
        [
            Entry(**{**asdict(plan.entries[d]), "skipped": undecodable[plan.todo[d][0].path]})
            for d in bad
        ],
    )
