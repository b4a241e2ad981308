"""Choose `cbir duplicates`' cosine threshold and inlier minimum on the validation copy set.

    PYTHONPATH=. python -m benchmarks.duplicate_threshold --split validation --root /tmp/dups-val \
        --cifar /path/to/cifar10-jpg.tar.gz --out docs/runs/duplicate-threshold-validation.json
    PYTHONPATH=. python -m benchmarks.duplicate_threshold --split test --root /tmp/dups-test \
        --cifar /path/to/cifar10-jpg.tar.gz --threshold T --min-inliers M

Builds the split of benchmarks/copydays.py (the split's originals, 9 copies of each, 3,000
distractors) as one flat folder, `<original>/<name>.jpg` and `distractor-N/d.jpg`, and
indexes it as `cbir index --local` does for a folder (EfficientNet-Lite0 `cnn` and local
features). A pair of images is a duplicate when both come from the same original (the
original and its copies: 10 images, 45 pairs per original). Pairs of two distractors are
left out of the counts: crops of the same distractor photo may overlap, so their truth is
unknown; every pair with at least one copy-set image counts.

Every pair at or above the lowest grid cosine is scored as the stage scores it
(cbir.stages.duplicates: `close_pairs`, then `verify_pairs` with its mirrored view), and
precision and recall are computed for every (cosine threshold, neighbours, inlier minimum)
of the grid, verified (inliers >= minimum) and not (minimum 0). `neighbours` keeps a pair
when one image is among the other's N nearest (None: every pair); each row also gives how
many pairs of the whole collection, distractor pairs included, the stage would verify.
The choice (validation only), among verified rows with a neighbour cap (which bounds the
time): the largest recall with precision >= TARGET; ties go to the higher threshold, then
fewer neighbours (fewer pairs to verify), then the higher inlier minimum.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.copydays import Split, add_dev_set_arguments, write_split
from cbir.core.config import Settings
from cbir.stages.duplicates import close_pairs, verify_pairs
from cbir.stages.index import index_dataset
from features.verify import VerifyParams
from indexing.datasets import FolderDataset
from indexing.local_store import LocalOptions, LocalStore
from indexing.stores.urls import open_store

THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
MIN_INLIERS = (4, 6, 8, 10, 15, 20)
NEIGHBOURS = (5, 10, 20, None)
TARGET_PRECISION = 0.99
COMPLETE = "flat.json"


def flat_folder(
    root: Path, split: Split, distractors: int, seed: int | None, cifar: Path | None
) -> Path:
    """The split written once under root/split-data, linked flat under root/data."""
    data = root / "data"
    if (root / COMPLETE).exists():
        return data
    source = root / "split-data"
    write_split(source, split, distractors, seed=seed, cifar=cifar)
    for path in sorted(source.rglob("*.jpg")):
        part, group, name = path.relative_to(source).parts
        target = data / group / (name if part == "train" else f"copy-{name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(path, target)
    (root / COMPLETE).write_text(json.dumps({"split": split, "distractors": distractors}))
    return data


def scored(settings: Settings, data: Path) -> tuple[list, dict, dict, dict]:
    """Every counted pair at or above min(THRESHOLDS) with its cosine and inliers; the groups
    (doc id -> original name, or None for a distractor); per NEIGHBOURS cap the set of pairs
    it keeps; per (threshold, cap) how many pairs of the whole collection (distractor pairs
    included) `cbir duplicates` would verify."""
    ds = FolderDataset(data)
    group = {
        r.doc_id: None if str(r.label).startswith("distractor-") else str(r.label)
        for r in ds.records()
    }
    with open_store(settings.store, settings) as store:
        ids = sorted(store.ids_with("cnn"))
        docs = store.get(ids)
    vectors = np.stack([docs[i].vectors["cnn"] for i in ids]).astype(np.float32)
    every = close_pairs(ids, vectors, min(THRESHOLDS))
    capped, collection = {}, {}
    for cap in NEIGHBOURS:
        found = every if cap is None else close_pairs(ids, vectors, min(THRESHOLDS), cap)
        capped[cap] = {(a, b) for a, b, _ in found}
        cosines = np.array([c for _, _, c in found])
        collection |= {(t, cap): int((cosines >= t).sum()) for t in THRESHOLDS}
    near = [(a, b, c) for a, b, c in every if group[a] is not None or group[b] is not None]
    local = LocalStore.open(settings, settings.store)
    params = VerifyParams(min_inliers=min(MIN_INLIERS), min_inlier_ratio=0.0)
    pairs = verify_pairs(ds, local, near, params, show_progress=True)
    return pairs, group, capped, collection


def table(
    pairs: Sequence[tuple[str, str, float, int]],
    group: dict,
    capped: dict | None = None,
    collection: dict | None = None,
) -> list[dict]:
    """Precision and recall (verified and not) for each point of the grid (`capped`: the
    pairs each NEIGHBOURS cap keeps; without it, every pair, as `neighbours` None)."""
    capped = capped or {None: {(a, b) for a, b, _, _ in pairs}}
    members: dict[str, int] = {}
    for g in group.values():
        if g is not None:
            members[g] = members.get(g, 0) + 1
    positives = sum(n * (n - 1) // 2 for n in members.values())
    truth = np.array([group[a] is not None and group[a] == group[b] for a, b, _, _ in pairs])
    cosine = np.array([c for _, _, c, _ in pairs])
    inliers = np.array([n for _, _, _, n in pairs])
    rows = []
    for cap, keys in capped.items():
        inside = np.array([(a, b) in keys for a, b, _, _ in pairs], dtype=bool)
        for threshold, minimum in itertools.product(THRESHOLDS, (0, *MIN_INLIERS)):
            candidates = inside & (cosine >= threshold)
            kept = candidates & (inliers >= minimum)
            hits = int((kept & truth).sum())
            rows.append({
                "threshold": threshold, "neighbours": cap, "min_inliers": minimum,
                "pairs_verified": int(candidates.sum()), "kept": int(kept.sum()), "true": hits,
                "precision": round(hits / max(int(kept.sum()), 1), 4),
                "recall": round(hits / positives, 4),
                **({"collection_pairs": collection[threshold, cap]} if collection else {}),
            })  # fmt: skip
    return rows


def choose(rows: Sequence[dict]) -> dict | None:
    """The module docstring's rule over the verified rows (min_inliers > 0)."""
    ok = [
        r
        for r in rows
        if r["min_inliers"] > 0
        and r["neighbours"] is not None
        and r["precision"] >= TARGET_PRECISION
    ]
    if not ok:
        return None
    return max(ok, key=lambda r: (r["recall"], r["threshold"], -r["neighbours"], r["min_inliers"]))


def per_transform(
    pairs: Sequence[tuple[str, str, float, int]],
    group: dict,
    threshold: float,
    minimum: int,
    keys: set | None = None,
) -> dict[str, float]:
    """Recall of (original, copy) pairs per transform at one point of the grid (`keys`: the
    pairs its neighbour cap keeps; None: every pair)."""
    found = {
        (a, b)
        for a, b, c, n in pairs
        if c >= threshold and n >= minimum and group[a] == group[b]
        and (keys is None or (a, b) in keys)
    }  # fmt: skip
    out: dict[str, list[bool]] = {}
    for doc_id, g in group.items():
        name = Path(doc_id).name
        if g is None or not name.startswith("copy-"):
            continue
        original = next(d for d, h in group.items() if h == g and "copy-" not in d)
        pair = tuple(sorted((doc_id, original)))
        out.setdefault(Path(name).stem[5:], []).append(pair in found)
    return {t: round(float(np.mean(v)), 4) for t, v in sorted(out.items())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dev_set_arguments(parser, Split.VALIDATION)
    parser.add_argument("--threshold", type=float, help="report this point (test split)")
    parser.add_argument("--min-inliers", type=int, help="report this point (test split)")
    parser.add_argument("--neighbours", type=int, help="report this point (test split)")
    parser.add_argument("--out", type=Path, help="write the grid and the choice to this JSON")
    args = parser.parse_args(argv)
    data = flat_folder(args.root, args.split, args.distractors, args.seed, args.cifar)
    settings = Settings.resolve(env={}, home=args.root / "home")
    start = time.perf_counter()
    index_dataset(
        settings, dataset="folder", data=str(data), methods=("cnn",), ray=None,
        batch_size=200, show_progress=True, local=LocalOptions(),
    )  # fmt: skip
    indexed = time.perf_counter() - start
    start = time.perf_counter()
    pairs, group, capped, collection = scored(settings, data)
    rows = table(pairs, group, capped, collection)
    point = (args.threshold, args.neighbours, args.min_inliers)
    chosen = choose(rows) if args.threshold is None else next(
        r for r in rows if (r["threshold"], r["neighbours"], r["min_inliers"]) == point
    )  # fmt: skip
    result = {
        "split": args.split.value,
        "documents": len(group),
        "copy_set_images": sum(g is not None for g in group.values()),
        "pairs_scored": len(pairs),
        "index_seconds": round(indexed, 1),
        "score_seconds": round(time.perf_counter() - start, 1),
        "load": [round(x, 2) for x in os.getloadavg()],
        "target_precision": TARGET_PRECISION,
        "chosen" if args.threshold is None else "point": chosen,
        "recall_per_transform": chosen
        and per_transform(
            pairs, group, chosen["threshold"], chosen["min_inliers"], capped[chosen["neighbours"]]
        ),
        "rows": rows,
    }
    text = json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1)
    if args.out:
        rows_text = ",\n".join("  " + json.dumps(r) for r in rows)
        args.out.write_text(text[:-2] + ',\n "rows": [\n' + rows_text + "\n ]\n}\n")
    print(text)
    for r in rows:
        if r["min_inliers"] == 6 or r is chosen:
            print(r)


if __name__ == "__main__":
    main()
