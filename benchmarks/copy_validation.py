"""Choose the `+gv` parameters on the validation copy set (never on the test one).

    PYTHONPATH=. python -m benchmarks.copy_validation --root /tmp/copies-val \
        --cifar /path/to/cifar10-jpg.tar.gz --out docs/runs/copy-validation-grid.json

Builds and indexes the validation split (benchmarks/copydays.py: originals that the test split
does not have) with the product's first stage (EfficientNet-Lite0) and local features at the
extraction cap (500 keypoints), then verifies every query against its first 100 candidates
for each point of a small grid and re-ranks them as `+gv` does:

- stage A, every combination of `keypoints` (strongest kept per image; the first rows of the
  stored ones, as SIFT's own cap keeps the strongest), Lowe `ratio` and RANSAC `threshold`,
  with the similarity model; `min_inliers` and `top` (candidates re-ranked) are applied to
  the inlier counts afterwards, so they cost nothing;
- stage B, the affine and homography models at stage A's best point;
- stage C, fewer RANSAC iterations (MAX_ITERS) at the best point so far (speed);
- stage D, a floor on the share of matches that are inliers (MIN_INLIER_RATIOS, 0 = none) at
  the best point so far: chance fits of a few inliers among many matches count as none.
  `--from GRID.json` runs only stage D at the best point of an earlier grid.

The best point maximises validation top-1 over all copies, then the worst transform's top-1,
then µAP over the top 10 (to 2 decimals), then prefers fewer keypoints and RANSAC iterations
(speed), a larger `top` (recall), fewer `min_inliers`; ties keep grid order. Matching is timed per keypoint
count (median ms per query for 100 candidates x 2 views, load printed beside).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.copy_detection import MICRO_AP_DEPTH, prepare
from benchmarks.copydays import Split, add_dev_set_arguments
from cbir.core.config import Settings
from evaluation.instance import copy_detection
from features.local import LocalFeatures
from features.verify import TransformModel, VerifyParams, fit, nearest_neighbours
from indexing.datasets import FolderDataset
from indexing.search import SearchService
from indexing.stores.base import Hit
from indexing.verified_search import query_views

KEYPOINTS = (128, 256, 500)
RATIOS = (0.75, 0.8, 0.85, 0.9)
THRESHOLDS = (4.0, 8.0, 16.0)
MIN_INLIERS = (4, 6, 8, 10, 15)
TOPS = (25, 50, 100)
MAX_ITERS = (500, 1000)  # stage C: fewer RANSAC iterations (2,000 in stages A and B)
MIN_INLIER_RATIOS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)  # stage D


@dataclass(frozen=True)
class Case:
    """One validation query: its first-stage hits, its two views, its candidates' features."""

    doc_id: str
    label: str
    transform: str
    original: str  # doc id of the original photo
    hits: list[Hit]
    views: list[LocalFeatures]
    candidates: list[LocalFeatures | None]


def collect(settings: Settings, data: Path, top: int = max(TOPS)) -> list[Case]:
    """Every validation query with its first `top` cnn hits and the features to verify them."""
    ds = FolderDataset(data)
    originals = {
        str(r.label): r.doc_id for r in ds.records("train") if Path(r.path).stem == "original"
    }
    service = SearchService.open(settings)
    if service.local is None:
        raise RuntimeError(f"the index of {data} has no local features")
    cases = []
    try:
        for record in ds.records("test"):
            image = ds.image(record)
            hits = service.search_image(image, "cnn", top).hits
            stored = service.local.get(h.doc_id for h in hits)
            views = query_views(image, service.local.options)
            candidates = [stored.get(h.doc_id) for h in hits]
            transform = Path(record.path).stem
            original = originals[str(record.label)]
            cases.append(
                Case(record.doc_id, str(record.label), transform, original, hits, views, candidates)
            )
    finally:
        service.close()
    return cases


def inlier_counts(
    cases: Sequence[Case],
    params: VerifyParams,
    matches: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]],
    workers: int = 2,
) -> np.ndarray:
    """int (queries, candidates) inliers of the best view (0 below `params.min_inliers`).

    `matches` holds, per (case, candidate, view), the pairs and ratios of nearest_neighbours
    at `params.keypoints` and the grid's largest ratio; `params.ratio` filters them.
    """

    def one(i: int) -> list[int]:
        row = []
        for j, candidate in enumerate(cases[i].candidates):
            best = 0
            for v, view in enumerate(cases[i].views):
                if candidate is None:
                    continue
                pairs, ratios = matches[i, j, v]
                best = max(best, fit(view, candidate, pairs[ratios < params.ratio], params).inliers)
            row.append(best)
        return row

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.array(list(pool.map(one, range(len(cases)))), dtype=np.int64)


def match_all(
    cases: Sequence[Case], keypoints: int, workers: int = 2
) -> tuple[dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]], float]:
    """nearest_neighbours of every (case, candidate, view) at the grid's largest ratio, and
    the median ms per query."""

    def one(i: int) -> tuple[dict, float]:
        t0 = time.perf_counter()
        out = {}
        for j, candidate in enumerate(cases[i].candidates):
            for v, view in enumerate(cases[i].views):
                if candidate is not None:
                    out[i, j, v] = nearest_neighbours(
                        view, candidate, keypoints=keypoints, max_ratio=max(RATIOS)
                    )
        return out, (time.perf_counter() - t0) * 1000

    matches, times = {}, []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for out, ms in pool.map(one, range(len(cases))):
            matches.update(out)
            times.append(ms)
    return matches, statistics.median(times)


def score(cases: Sequence[Case], inliers: np.ndarray, top: int, min_inliers: int) -> dict:
    """Top-1 (all, per transform, worst) and µAP of `+gv` re-ranking the first `top` hits."""
    per: dict[str, list[bool]] = {}
    predictions, truth = [], set()
    for case, counts in zip(cases, inliers, strict=True):
        head = np.where(counts[:top] >= min_inliers, counts[:top], 0)
        n = len(head)
        order = sorted(range(n), key=lambda i: -head[i])  # stable: ties keep the first ranking
        # the scores of indexing/verified_search.py: inliers + a fraction falling with rank
        ranked = [(case.hits[i], head[i] + 0.5 * (n - i) / (n + 1)) for i in order]
        per.setdefault(case.transform, []).append(ranked[0][0].label == case.label)
        predictions += [(case.doc_id, h.doc_id, float(s)) for h, s in ranked[:MICRO_AP_DEPTH]]
        truth.add((case.doc_id, case.original))
    every = [x for v in per.values() for x in v]
    top1 = {t: float(np.mean(v)) for t, v in sorted(per.items())}
    return {
        "top1": round(float(np.mean(every)), 4),
        "top1_worst": round(min(top1.values()), 4),
        "micro_ap": round(copy_detection(predictions, truth).micro_ap, 4),
        "per_transform": {t: round(v, 4) for t, v in top1.items()},
    }


def _key(row: dict) -> tuple:
    return (row["top1"], row["top1_worst"], round(row["micro_ap"], 2), -row["keypoints"],
            -row["max_iters"], row["top"], -row["min_inliers"],
            -row.get("min_inlier_ratio", 0.0))  # fmt: skip


def grid(cases: Sequence[Case], workers: int = 2, echo=print) -> dict:
    """Stage A and B of the module docstring; returns every row, the timings and the choice."""
    rows, match_ms = [], {}
    base = VerifyParams(min_inliers=min(MIN_INLIERS))
    cached: dict[int, dict] = {}
    for keypoints in KEYPOINTS:
        cached[keypoints], match_ms[keypoints] = match_all(cases, keypoints, workers)
        echo(f"keypoints {keypoints}: matching {match_ms[keypoints]:.0f} ms per query (median)")
        for ratio, threshold in itertools.product(RATIOS, THRESHOLDS):
            params = replace(base, keypoints=keypoints, ratio=ratio, threshold=threshold)
            rows += _rows(cases, params, cached[keypoints], workers)
        if keypoints != max(KEYPOINTS):
            del cached[keypoints]  # keep memory small; stage B re-matches if it needs to
    best_a = max(rows, key=_key)
    for model in (TransformModel.AFFINE, TransformModel.HOMOGRAPHY):
        k = best_a["keypoints"]
        if k not in cached:
            cached[k], _ = match_all(cases, k, workers)
        params = replace(
            base, keypoints=k, ratio=best_a["ratio"], threshold=best_a["threshold"], model=model
        )
        rows += _rows(cases, params, cached[k], workers)
    best_b = max(rows, key=_key)
    for iterations in MAX_ITERS:
        params = replace(
            base, keypoints=best_b["keypoints"], ratio=best_b["ratio"],
            threshold=best_b["threshold"], model=TransformModel(best_b["model"]),
            max_iters=iterations,
        )  # fmt: skip
        rows += _rows(cases, params, cached[best_b["keypoints"]], workers)
    rows += refine_ratio(cases, max(rows, key=_key), cached[best_b["keypoints"]], workers)
    best = max(rows, key=_key)
    return {
        "queries": len(cases),
        "first_stage_recall": {t: _recall(cases, t) for t in TOPS},
        "matching_ms_median_per_query": match_ms,
        "load": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "best": best,
    }


def params_of(row: dict) -> VerifyParams:
    """The VerifyParams of a grid row (its `min_inliers` floor left to `score`)."""
    return VerifyParams(
        keypoints=row["keypoints"], ratio=row["ratio"], threshold=row["threshold"],
        model=TransformModel(row["model"]), max_iters=row["max_iters"],
        min_inliers=min(MIN_INLIERS), min_inlier_ratio=row.get("min_inlier_ratio", 0.0),
    )  # fmt: skip


def refine_ratio(cases, best: dict, matches, workers: int = 2) -> list[dict]:
    """Stage D: the rows of every MIN_INLIER_RATIOS floor at `best`'s parameters."""
    rows = []
    for floor in MIN_INLIER_RATIOS:
        params = replace(params_of(best), min_inlier_ratio=floor)
        rows += [{**row, "stage": "D"} for row in _rows(cases, params, matches, workers)]
    return rows


def _rows(cases, params: VerifyParams, matches, workers: int) -> list[dict]:
    inliers = inlier_counts(cases, params, matches, workers)
    out = []
    for top, minimum in itertools.product(TOPS, MIN_INLIERS):
        out.append({
            "keypoints": params.keypoints, "ratio": params.ratio, "threshold": params.threshold,
            "model": params.model.value, "max_iters": params.max_iters, "top": top,
            "min_inliers": minimum, "min_inlier_ratio": params.min_inlier_ratio,
            **score(cases, inliers, top, minimum),
        })  # fmt: skip
    return out


def _recall(cases: Sequence[Case], top: int) -> float:
    return round(float(np.mean([any(h.label == c.label for h in c.hits[:top]) for c in cases])), 4)


def grid_json(result: dict) -> str:
    """`result` as JSON with one line per grid row (diffable, a fraction of the indented size)."""
    head = {k: v for k, v in result.items() if k != "rows"}
    rows = ",\n".join("  " + json.dumps(row) for row in result["rows"])
    return json.dumps(head, indent=1)[:-2] + ',\n "rows": [\n' + rows + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dev_set_arguments(parser, None)
    parser.add_argument("--out", type=Path, help="write the grid and the choice to this JSON")
    parser.add_argument("--from", dest="earlier", type=Path, help="run stage D only at its best")
    args = parser.parse_args(argv)
    settings, data, _methods, _seconds = prepare(
        args.root, Split.VALIDATION, args.distractors, seed=args.seed, cifar=args.cifar
    )
    cases = collect(settings, data)
    if args.earlier:
        result = json.loads(args.earlier.read_text())
        result["rows"] = [r for r in result["rows"] if r.get("stage") != "D"]  # runs again
        best = max(result["rows"], key=_key)
        matches, _ = match_all(cases, best["keypoints"])
        result["rows"] += refine_ratio(cases, best, matches)
        result["best"] = max(result["rows"], key=_key)
        result["load_stage_d"] = [round(x, 2) for x in os.getloadavg()]
    else:
        result = grid(cases)
    if args.out:
        args.out.write_text(grid_json(result))
    ranked = sorted(result["rows"], key=_key, reverse=True)
    for row in ranked[:15]:
        print({k: v for k, v in row.items() if k != "per_transform"})
    print("best:", json.dumps(result["best"]))


if __name__ == "__main__":
    main()
