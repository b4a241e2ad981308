"""Local features kept beside an index: a sidecar folder of shards named by the store URL.

`<CBIR_HOME>/local/<key>/` holds `options.json` (the store URL and the extraction options)
and one folder per written batch, `shard-<n>/` (ids.json, points.npy, descriptors.npy,
offsets.npy, shapes.npy, scales.npy). A shard is written under a temporary name and renamed
into place, so a killed run leaves whole shards only; resuming skips the doc ids already in
a shard. Removing doc ids (a folder sync's changed, renamed or vanished files) writes a shard
that holds only `ids.json` and a `removed` marker; shards are read in order, so a later shard
wins. Shards are read memory-mapped: looking up 100 candidates touches only their rows.

One sidecar serves both stores: Elasticsearch documents would grow by ~72 KB each as a
`binary` field (500 keypoints), slowing every search and reindex, while verification only
ever needs the rows of a query's top N, which a memory-mapped file gives without a round trip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from features.local import DEFAULT_MAX_KEYPOINTS, DEFAULT_MAX_SIDE, DEFAULT_MIN_SIDE, LocalFeatures

OPTIONS_FILE = "options.json"
REMOVED_MARKER = "removed"
SIDECAR_VERSION = 1


class LocalStoreError(CbirError):
    """The local-feature sidecar of an index is missing, or was built with other options."""


@dataclass(frozen=True)
class LocalOptions:
    """How local features are extracted for an index (features.local.extract_local)."""

    max_side: int = DEFAULT_MAX_SIDE
    min_side: int = DEFAULT_MIN_SIDE
    max_keypoints: int = DEFAULT_MAX_KEYPOINTS

    def to_json(self) -> dict:
        return asdict(self)


def without_credentials(store_url: str) -> str:
    """`store_url` without any user:password part (never written to disk)."""
    parts = urlsplit(store_url)
    if not (parts.username or parts.password):
        return store_url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def sidecar_dir(settings: Settings, store_url: str) -> Path:
    """The sidecar folder of the index at `store_url`: `<home>/local/<sha1 of the URL without
    credentials and without its query, 16 hex>`.

    The query holds search options (`local:PATH?index=hnsw&ef_search=128`, Elasticsearch's
    `?index_options=...`) that name the same documents, so they share one sidecar. A sidecar
    made before this rule under the full URL (query included) is still found.
    """
    plain = without_credentials(store_url)
    documents = urlunsplit(urlsplit(plain)._replace(query="", fragment=""))
    folder = settings.home / "local" / _key(documents)
    legacy = settings.home / "local" / _key(plain)
    return legacy if not folder.exists() and legacy.exists() else folder


def _key(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:16]


class LocalStore:
    """Read and append the local features of one index; safe for readers in many threads."""

    def __init__(self, directory: Path, store_url: str, options: LocalOptions | None = None):
        self.directory = Path(directory)
        self.store_url = without_credentials(store_url)
        self.options = options or self._recorded_options() or LocalOptions()
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[int, int]] | None = None  # doc id -> (shard, row)
        self._shards: dict[int, dict[str, np.ndarray]] = {}

    @classmethod
    def open(
        cls, settings: Settings, store_url: str, options: LocalOptions | None = None
    ) -> LocalStore:
        """The sidecar of `store_url`; `options` given must match those it was built with."""
        store = cls(sidecar_dir(settings, store_url), store_url, options)
        recorded = store._recorded_options()
        if options is not None and recorded is not None and recorded != options:
            raise LocalStoreError(
                f"the local features of {store_url} ({store.directory}) were extracted with "
                f"{recorded.to_json()}, not {options.to_json()}; delete that folder to rebuild them"
            )
        return store

    def exists(self) -> bool:
        return (self.directory / OPTIONS_FILE).exists()

    def ids(self) -> set[str]:
        """Doc ids that have local features."""
        return set(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def add(self, doc_ids: Sequence[str], features: Sequence[LocalFeatures]) -> int:
        """Write one shard for these documents (those already present are left out); returns
        how many were written."""
        if len(doc_ids) != len(features):
            raise LocalStoreError(f"{len(doc_ids)} doc ids for {len(features)} local features")
        with self._lock:
            present = self._index()
            fresh = [(d, f) for d, f in zip(doc_ids, features, strict=True) if d not in present]
            fresh = list({d: (d, f) for d, f in fresh}.values())  # one row per doc id
            if not fresh:
                return 0
            self._write_options()
            number = self._publish(lambda folder: self._write_shard(folder, fresh))
            for row, (doc_id, _) in enumerate(fresh):
                present[doc_id] = (number, row)
            return len(fresh)

    def remove(self, doc_ids: Iterable[str]) -> int:
        """Forget the local features of those `doc_ids` that have some; returns how many."""
        with self._lock:
            present = self._index()
            gone = list(dict.fromkeys(d for d in doc_ids if d in present))
            if not gone:
                return 0
            self._publish(lambda folder: self._write_removal(folder, gone))
            for doc_id in gone:
                del present[doc_id]
            return len(gone)

    def get(self, doc_ids: Iterable[str]) -> dict[str, LocalFeatures]:
        """The local features of those `doc_ids` that have some."""
        rows = self._index()
        out = {}
        for doc_id in doc_ids:
            where = rows.get(doc_id)
            if where is None:
                continue
            shard = self._shard(where[0])
            start, end = shard["offsets"][where[1]], shard["offsets"][where[1] + 1]
            height, width = shard["shapes"][where[1]]
            out[doc_id] = LocalFeatures(
                np.asarray(shard["points"][start:end]),
                np.asarray(shard["descriptors"][start:end]),
                (int(height), int(width)),
                float(shard["scales"][where[1]]),
            )
        return out

    def nbytes(self) -> int:
        """Bytes on disk of every shard (removed rows stay on disk until the index is rebuilt)."""
        return sum(p.stat().st_size for p in self.directory.glob("shard-*/*") if p.is_file())

    def _recorded_options(self) -> LocalOptions | None:
        path = self.directory / OPTIONS_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return LocalOptions(**data["options"])

    def _write_options(self) -> None:
        path = self.directory / OPTIONS_FILE
        if path.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        record = {
            "version": SIDECAR_VERSION,
            "store": self.store_url,
            "options": self.options.to_json(),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, path)

    def _shard_numbers(self) -> list[int]:
        return [int(p.name.split("-")[1]) for p in self.directory.glob("shard-*") if p.is_dir()]

    def _publish(self, write: Callable[[Path], None]) -> int:
        """Fill a temporary folder with `write`, then rename it to the next shard; its number.

        The rename is atomic: a kill leaves the whole shard or none of it.
        """
        number = max(self._shard_numbers(), default=0) + 1
        tmp = self.directory / f".tmp-shard-{number:06d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        os.rename(tmp, self.directory / f"shard-{number:06d}")
        return number

    @staticmethod
    def _write_shard(folder: Path, rows: Sequence[tuple[str, LocalFeatures]]) -> None:
        features = [f for _, f in rows]
        counts = np.array([len(f) for f in features], dtype=np.int64)
        arrays = {
            "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "points": np.concatenate([f.points for f in features]).astype(np.float32),
            "descriptors": np.concatenate([f.descriptors for f in features]).astype(np.uint8),
            "shapes": np.array([f.shape for f in features], dtype=np.int32).reshape(-1, 2),
            "scales": np.array([f.scale for f in features], dtype=np.float32),
        }
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array)
        (folder / "ids.json").write_text(json.dumps([d for d, _ in rows]))

    @staticmethod
    def _write_removal(folder: Path, doc_ids: Sequence[str]) -> None:
        (folder / "ids.json").write_text(json.dumps(list(doc_ids)))
        (folder / REMOVED_MARKER).write_text("")

    def _index(self) -> dict[str, tuple[int, int]]:
        if self._rows is None:
            rows: dict[str, tuple[int, int]] = {}
            for number in sorted(self._shard_numbers()):
                folder = self.directory / f"shard-{number:06d}"
                ids = json.loads((folder / "ids.json").read_text())
                if (folder / REMOVED_MARKER).exists():
                    for doc_id in ids:
                        rows.pop(doc_id, None)
                    continue
                for row, doc_id in enumerate(ids):
                    rows[doc_id] = (number, row)
            self._rows = rows
        return self._rows

    def _shard(self, number: int) -> Mapping[str, np.ndarray]:
        shard = self._shards.get(number)
        if shard is None:
            folder = self.directory / f"shard-{number:06d}"
            shard = {
                name: np.load(folder / f"{name}.npy", mmap_mode="r")
                for name in ("offsets", "points", "descriptors", "shapes", "scales")
            }
            self._shards[number] = shard
        return shard
