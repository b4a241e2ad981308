"""The `cbir duplicates` stage: groups of copies in an indexed collection, with one to keep.

Exact duplicates share a file content hash (SHA-256). Near duplicates are pairs whose global
vectors (the index's `method` field, cosine) reach `threshold`, confirmed by geometric
verification of their stored local features (`cbir index --local`) when the index has them.
Groups are the connected components of exact and confirmed pairs; the suggested keeper is
the largest image (pixels), then the oldest file, then the first doc id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from cbir.core.progress import Stopwatch, progress
from features.imaging import ImageDecodeError
from features.local import LocalFeatures, extract_local
from features.verify import VerifyParams, verify
from indexing.datasets import Dataset
from indexing.indexed import dataset_of
from indexing.local_store import LocalStore
from indexing.stores.urls import open_store

# Near candidates: pairs at cosine >= 0.5 where one image is among the other's 10 nearest;
# confirmed with >= 6 inliers. Chosen on the validation copy set for precision >= 0.99
# (benchmarks/duplicate_threshold.py; docs/runs/duplicate-threshold-validation.json).
DEFAULT_THRESHOLD = 0.5
DEFAULT_NEIGHBOURS = 10
DUPLICATE_MIN_INLIERS = 6  # with no floor on the inliers' share of the matches (as chosen)
REPORT_NAME = "duplicates"  # without --out: $CBIR_HOME/reports/duplicates.json and .csv
_BLOCK = 1024  # rows of the cosine matrix computed at once (1024 x n float32)


@dataclass
class Member:
    doc_id: str
    path: str | None
    width: int | None
    height: int | None
    modified: float | None  # file mtime (seconds since the epoch) when the dataset has files
    sha256: str


@dataclass
class Pair:
    a: str
    b: str
    kind: str  # "exact" or "near"
    cosine: float
    inliers: int | None  # None: not verified (exact pair, or no local features)


@dataclass
class Group:
    keep: str
    members: list[Member]
    pairs: list[Pair]

    @property
    def kind(self) -> str:
        return "exact" if all(p.kind == "exact" for p in self.pairs) else "near"


@dataclass
class DuplicatesReport:
    store: str
    method: str
    threshold: float
    neighbours: int | None  # candidates per image (its nearest), None: every pair >= threshold
    verified: bool  # near pairs were confirmed by geometric verification
    min_inliers: int
    documents: int
    candidate_pairs: int  # near pairs at or over the threshold, before verification
    groups: list[Group] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        for g, group in zip(data["groups"], self.groups, strict=True):
            g["kind"] = group.kind
        return data

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def write_csv(self, path: Path) -> None:
        """One row per member: group, kind, doc_id, path, width, height, modified, keep."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["group", "kind", "doc_id", "path", "width", "height", "modified", "keep"])
        for number, group in enumerate(self.groups, start=1):
            for m in group.members:
                writer.writerow(
                    [
                        number,
                        group.kind,
                        m.doc_id,
                        m.path,
                        m.width,
                        m.height,
                        m.modified,
                        m.doc_id == group.keep,
                    ]
                )
        path.write_text(buffer.getvalue())


def find_duplicates(
    settings: Settings,
    *,
    store_url: str | None = None,
    method: str = "cnn",
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: int | None = DEFAULT_NEIGHBOURS,
    params: VerifyParams | None = None,
    show_progress: bool = True,
) -> DuplicatesReport:
    """Exact and near-duplicate groups of the index at `store_url` (default CBIR_STORE).

    Near candidates are pairs at cosine >= `threshold` where one is among the other's
    `neighbours` nearest (None: every such pair), which bounds the pairs to verify.
    """
    if not -1.0 <= threshold <= 1.0:
        raise CbirError(f"--threshold is a cosine, from -1 to 1; got {threshold}")
    if neighbours is not None and neighbours < 1:
        raise CbirError(f"--neighbours must be at least 1 (or 0 for every pair); got {neighbours}")
    params = params or VerifyParams(min_inliers=DUPLICATE_MIN_INLIERS, min_inlier_ratio=0.0)
    clock = Stopwatch()
    url = store_url or settings.store
    with open_store(url, settings) as store:
        if not store.exists() or method not in store.fields:
            raise CbirError(
                f"the index at {url} has no {method!r} field; "
                f"build it with `cbir index --method {method}` or pick another --method"
            )
        ds = dataset_of(store, settings)
        ids = sorted(store.ids_with(method))
        docs = store.get(ids)
    records = {r.doc_id: r for r in ds.records() if r.doc_id in docs}
    ids = [i for i in ids if i in records]
    members = {
        i: _member(ds, records[i]) for i in progress(ids, desc="hash", disable=not show_progress)
    }
    pairs = _exact_pairs(members)
    exact = {(p.a, p.b) for p in pairs}
    vectors = np.stack([docs[i].vectors[method] for i in ids]).astype(np.float32)
    near = [
        (a, b, c)
        for a, b, c in close_pairs(ids, vectors, threshold, neighbours)
        if (a, b) not in exact
    ]
    local = LocalStore.open(settings, url)
    verified = local.exists()
    scored = (
        verify_pairs(ds, local, near, params, show_progress=show_progress)
        if verified
        else [(a, b, c, None) for a, b, c in near]
    )
    for a, b, cosine, inliers in scored:
        if inliers is None or inliers >= max(params.min_inliers, 1):
            pairs.append(Pair(a, b, "near", round(cosine, 6), inliers))
    report = DuplicatesReport(
        store=url,
        method=method,
        threshold=threshold,
        neighbours=neighbours,
        verified=verified,
        min_inliers=params.min_inliers,
        documents=len(ids),
        candidate_pairs=len(near),
        groups=_groups(members, pairs),
    )
    report.seconds = round(clock.seconds, 3)
    return report


def verify_pairs(
    ds: Dataset,
    local: LocalStore,
    near: list[tuple[str, str, float]],
    params: VerifyParams,
    *,
    show_progress: bool = False,
) -> list[tuple[str, str, float, int]]:
    """(a, b, cosine, inliers) for each near pair: the best of b's stored features against a's
    stored ones and against a's image mirrored left-right, as `+gv` verifies a query's two
    views (SIFT descriptors do not match across a mirror). The mirrored view is extracted
    once per image a."""
    features = local.get({x for a, b, _ in near for x in (a, b)})
    mirrored: dict[str, LocalFeatures | None] = {}
    out = []
    for a, b, cosine in progress(near, desc="verify", disable=not show_progress):
        fa, fb = features.get(a), features.get(b)
        if fa is None or fb is None:
            out.append((a, b, cosine, 0))
            continue
        inliers = verify(fa, fb, params).inliers
        if a not in mirrored:
            mirrored[a] = _mirrored_view(ds, a, local)
        if mirrored[a] is not None:
            inliers = max(inliers, verify(mirrored[a], fb, params, mirrored=True).inliers)
        out.append((a, b, cosine, inliers))
    return out


def _mirrored_view(ds: Dataset, doc_id: str, local: LocalStore) -> LocalFeatures | None:
    """Local features of `doc_id`'s image mirrored left-right; None when it cannot be read."""
    try:
        image = ds.image(ds.record(doc_id))
    except (KeyError, ImageDecodeError):
        return None
    return extract_local(np.ascontiguousarray(image[:, ::-1]), **local.options.to_json())


def _member(ds: Dataset, record) -> Member:
    data = ds.payload(record)
    data = data if isinstance(data, bytes) else bytes(np.asarray(data).tobytes())
    width = height = None
    try:
        with Image.open(io.BytesIO(data)) as img:  # header only: the declared size
            width, height = img.size
    except Exception:  # an array payload (CIFAR) or a format Pillow cannot open lazily
        pass
    modified = None
    root = getattr(ds, "root", None)
    if root is not None and record.path:
        try:
            modified = os.stat(Path(root) / record.path).st_mtime
        except OSError:
            modified = None
    return Member(
        record.doc_id, record.path, width, height, modified, hashlib.sha256(data).hexdigest()
    )


def _exact_pairs(members: dict[str, Member]) -> list[Pair]:
    by_hash: dict[str, list[str]] = {}
    for doc_id, m in members.items():
        by_hash.setdefault(m.sha256, []).append(doc_id)
    return [Pair(g[0], other, "exact", 1.0, None) for g in by_hash.values() for other in g[1:]]


def close_pairs(
    ids: list[str], vectors: np.ndarray, threshold: float, neighbours: int | None = None
) -> list[tuple[str, str, float]]:
    """(a, b, cosine) with a before b in `ids` and cosine >= threshold, where b is among a's
    `neighbours` nearest or a among b's (None: every pair); zero vectors never pair.

    The nearest are by cosine, ties broken by position in `ids` (a stable sort), so the
    same vectors give the same pairs.
    """
    norms = np.linalg.norm(vectors, axis=1)
    usable = norms > 0
    unit = np.where(usable[:, None], vectors / np.maximum(norms, 1e-12)[:, None], 0.0)
    unit = unit.astype(np.float32)
    found: dict[tuple[int, int], float] = {}
    for start in range(0, len(ids), _BLOCK):
        block = unit[start : start + _BLOCK] @ unit.T
        rows = np.arange(len(block))
        block[rows, start + rows] = -np.inf  # never its own neighbour
        block[:, ~usable] = -np.inf
        block[~usable[start : start + len(block)]] = -np.inf
        for r in rows:
            # the row's nearest among those >= threshold (they rank above all the others)
            cols = np.flatnonzero(block[r] >= threshold)
            if neighbours is not None and len(cols) > neighbours:
                cols = cols[np.argsort(-block[r, cols], kind="stable")[:neighbours]]
            i = start + int(r)
            for j in cols.tolist():
                found[min(i, j), max(i, j)] = float(block[r, j])
    return [(ids[i], ids[j], cosine) for (i, j), cosine in sorted(found.items())]


def _groups(members: dict[str, Member], pairs: list[Pair]) -> list[Group]:
    parent = {i: i for i in members}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        parent[root(p.a)] = root(p.b)
    components: dict[str, list[str]] = {}
    for doc_id in members:
        components.setdefault(root(doc_id), []).append(doc_id)
    groups = []
    for component in components.values():
        if len(component) < 2:
            continue
        inside = set(component)
        people = [members[i] for i in sorted(component)]
        groups.append(
            Group(_keeper(people), people, [p for p in pairs if p.a in inside and p.b in inside])
        )
    return sorted(groups, key=lambda g: (-len(g.members), g.keep))


def _keeper(members: list[Member]) -> str:
    """Largest resolution, then oldest file, then first doc id."""

    def key(m: Member):
        pixels = (m.width or 0) * (m.height or 0)
        return (-pixels, m.modified if m.modified is not None else float("inf"), m.doc_id)

    return min(members, key=key).doc_id


def default_report(settings: Settings) -> Path:
    """Where `cbir duplicates` writes its JSON report without `--out` (what the page shows)."""
    return settings.reports_dir / f"{REPORT_NAME}.json"


def read_report(path: Path) -> dict | None:
    """The JSON report at `path` as written by `write_json`; None when there is none."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CbirError(
            f"the duplicates report {path} cannot be read ({exc}); run `cbir duplicates` again"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise CbirError(
            f"{path} is not a `cbir duplicates` report (no list of groups); "
            "run `cbir duplicates` again"
        )
    return data
