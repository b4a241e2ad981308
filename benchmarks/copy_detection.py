"""Copy detection on a generated dev set (benchmarks/copydays.py): top-1 per transform, µAP,
and the time to verify a query against 100 candidates.

    PYTHONPATH=. python -m benchmarks.copy_detection --split test --distractors 3000 \
        --cifar /path/to/cifar10-jpg.tar.gz --root /tmp/copies-test

Indexes the dev set with the product's folder default CNN (EfficientNet-Lite0 ImageNet,
indexing.models.folder_cnn_model; `--cnn cifar` takes the shipped CIFAR-10 network as a
reference) and a BoVW trained on its train split with `--bovw` (as `cbir train bovw
--dataset folder` does: the photo recipe unless `--bovw-recipe cifar`; each recipe gets its
own home under --root, the data folder is shared), with local features; then
searches every copy with each method and its `+gv` re-ranking (the defaults of
features/verify.py, chosen on the validation split by benchmarks/copy_validation.py) and
reports whether the original comes first, and µAP over the top 10 of every query
(evaluation/instance.py). Times are medians and p95 over the queries, in the same run: the
unverified search of 100 hits (reference), the query's two local views (as given and
mirrored), and the verification of the 100 candidates; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.copydays import Split, add_dev_set_arguments, write_split
from benchmarks.verify_speed import summary, timed_query
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from evaluation.instance import copy_detection
from indexing.datasets import FolderDataset
from indexing.local_store import LocalOptions
from indexing.models import model_dir
from indexing.search import SearchService

COMPLETE = "data.json"  # beside data/, written last: without it the dev set is rewritten
MICRO_AP_DEPTH = 10


class FirstStage(enum.StrEnum):
    """The cnn model of the first stage: the product's folder default, or the CIFAR network."""

    LITE0 = "lite0"
    CIFAR = "cifar"


def prepare(
    root: Path,
    split: Split = Split.TEST,
    distractors: int = 3000,
    *,
    seed: int | None = None,
    cifar: Path | None = None,
    cnn: FirstStage = FirstStage.LITE0,
    bovw: bool = False,
    local: LocalOptions | None = None,
    recipe: str | None = None,
) -> tuple[Settings, Path, list[str], float]:
    """Write (once) and index (resumably) a dev set under `root`.

    Returns (settings of its index, data folder, first-stage methods, seconds spent indexing).
    """
    data = root / "data"
    if not (root / COMPLETE).exists():
        write_split(data, split, distractors, seed=seed, cifar=cifar)
        (root / COMPLETE).write_text(json.dumps({"split": split, "distractors": distractors}))
    home = root / ("home" if not bovw else f"home-bovw-{recipe or 'photo'}")
    settings = Settings.resolve(env={}, home=home)
    methods = ["cnn"]
    if bovw:
        from cbir.stages.train_bovw import train_bovw

        if not (settings.models_dir / "bovw").exists():
            train_bovw(
                settings, dataset="folder", data=str(data), show_progress=False, recipe=recipe
            )
        methods.append("bovw")
    models = {"cnn": model_dir(settings, "cnn")} if cnn is FirstStage.CIFAR else {}
    start = time.perf_counter()
    index_dataset(
        settings, dataset="folder", data=str(data), methods=tuple(methods), models=models,
        ray=None, batch_size=200, show_progress=False, local=local or LocalOptions(),
    )  # fmt: skip
    return settings, data, methods, time.perf_counter() - start


def run(settings: Settings, data: Path, methods: list[str]) -> dict:
    """Search every copy with each method and its +gv; returns the figures (JSON-ready)."""
    ds = FolderDataset(data)
    queries = ds.records("test")
    originals = {r.label: r.doc_id for r in ds.records("train") if Path(r.path).stem == "original"}
    searched = [*methods, *(f"{m}+gv" for m in methods)]
    correct: dict[str, dict[str, list[bool]]] = {m: {} for m in searched}
    predictions: dict[str, list[tuple[str, str, float]]] = {m: [] for m in searched}
    times: list[dict[str, float]] = []
    in_first: dict[str, dict[str, list[bool]]] = {m: {} for m in methods}
    service = SearchService.open(settings)
    if service.local is None:
        raise RuntimeError(f"the index of {data} has no local features")
    try:
        for record in queries:
            transform = Path(record.path).stem
            image = ds.image(record)
            for method in methods:
                timed = timed_query(service, image, method)
                first, verified = timed.first, timed.verified
                if method == methods[0]:
                    times.append(timed.ms)
                hits_in = in_first[method].setdefault(transform, [])
                hits_in.append(any(h.label == record.label for h in first))
                for name, hits in ((method, first), (f"{method}+gv", verified)):
                    ok = bool(hits) and hits[0].label == record.label
                    correct[name].setdefault(transform, []).append(ok)
                    predictions[name].extend(
                        (record.doc_id, h.doc_id, h.score) for h in hits[:MICRO_AP_DEPTH]
                    )
    finally:
        service.close()
    truth = {(r.doc_id, originals[r.label]) for r in queries}
    return {
        "documents": len(ds.records("train")),
        "queries": len(queries),
        "verify_params": service.reranking.params.to_json(),
        "top": service.reranking.top,
        "local_options": service.local.options.to_json(),
        "top1": {m: _per_transform(t) for m, t in correct.items()},
        f"recall_at_{service.reranking.top}": {m: _per_transform(t) for m, t in in_first.items()},
        f"micro_ap_top{MICRO_AP_DEPTH}": {
            m: round(copy_detection(p, truth).micro_ap, 4) for m, p in predictions.items()
        },
        "ms": summary(times),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def bench_verification(
    workdir: Path, distractors: int, queries: int | None = None, candidates: int = 100
) -> dict:
    """Build (once) and index a copy dev set under `workdir`, then time `queries` copies, each
    verified against its first `candidates` hits (100: the issue's figure; `+gv` re-ranks
    DEFAULT_TOP by default)."""
    settings, data, _methods, _seconds = prepare(workdir, Split.TEST, distractors)
    ds = FolderDataset(data)
    records = ds.records("test")[: queries or None]
    service = SearchService.open(settings)
    service.reranking = replace(service.reranking, top=candidates)
    try:
        load_start = os.getloadavg()
        times = [timed_query(service, ds.image(r)).ms for r in records]
        reranking = service.reranking
        keypoints = service.local.options.max_keypoints if service.local else None
    finally:
        service.close()
    return {
        "documents": len(ds.records("train")),
        "queries": len(records),
        "candidates": reranking.top,
        "workers": reranking.workers,
        "keypoints_stored": keypoints,
        "params": reranking.params.to_json(),
        **summary(times),
        "load_average": [list(load_start), list(os.getloadavg())],
    }


def best_verified_method(figures: dict) -> str:
    """The `+gv` method with the best top-1 over all copies, then the best worst transform,
    then the best µAP (the rule copy_validation.py applies to parameters); ties keep the
    order searched. Meant for the validation split: the test split only reports."""
    top1, aps = figures["top1"], figures[f"micro_ap_top{MICRO_AP_DEPTH}"]
    verified = [m for m in top1 if m.endswith("+gv")]

    def key(m: str) -> tuple[float, float, float]:
        worst = min(v for t, v in top1[m].items() if t != "all")
        return (top1[m]["all"], worst, aps[m])

    return max(verified, key=key)


def _per_transform(outcomes: dict[str, list[bool]]) -> dict[str, float]:
    every = [x for v in outcomes.values() for x in v]
    return {
        "all": round(float(np.mean(every)), 4),
        **{k: round(float(np.mean(v)), 4) for k, v in sorted(outcomes.items())},
    }


def table(figures: dict) -> str:
    """A markdown table of top-1 per transform (rows) and method (columns), with µAP."""
    top1 = figures["top1"]
    methods = list(top1)
    lines = ["| transform | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    transforms = [t for t in next(iter(top1.values())) if t != "all"] + ["all"]
    for t in transforms:
        lines.append(f"| {t} | " + " | ".join(f"{top1[m][t]:.3f}" for m in methods) + " |")
    aps = figures[f"micro_ap_top{MICRO_AP_DEPTH}"]
    lines.append("| µAP | " + " | ".join(f"{aps[m]:.3f}" for m in methods) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dev_set_arguments(parser, Split.TEST)
    parser.add_argument("--cnn", type=FirstStage, choices=list(FirstStage), default="lite0")
    parser.add_argument("--bovw", action="store_true", help="also train and evaluate BoVW")
    parser.add_argument(
        "--bovw-recipe",
        choices=["cifar", "photo"],
        help="BoVW recipe (default photo, as for folders)",
    )
    parser.add_argument(
        "--store-options",
        help="search the same index with these store URL options, e.g. 'index=hnsw&ef_search=128'",
    )
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    settings, data, methods, seconds = prepare(
        args.root, args.split, args.distractors, seed=args.seed, cifar=args.cifar,
        cnn=args.cnn, bovw=args.bovw, recipe=args.bovw_recipe,
    )  # fmt: skip
    if args.store_options:
        settings = replace(settings, store=f"{settings.store}?{args.store_options}")
    figures = {"split": args.split.value, "cnn": args.cnn.value, "index_seconds": round(seconds, 1)}
    figures["store"] = settings.store
    searched = [*methods, "fusion"] if len(methods) > 1 else methods  # RRF 1:1, untuned
    figures |= run(settings, data, searched)
    if args.split is Split.VALIDATION:
        figures["best_verified_method"] = best_verified_method(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(table(figures))


if __name__ == "__main__":
    main()
