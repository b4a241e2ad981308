"""Copy detection on the generated dev set (benchmarks/copydays.py): top-1 per transform, and
the time to verify a query against 100 candidates.

    PYTHONPATH=. python -m benchmarks.copy_detection --distractors 500 --root /tmp/copies
    PYTHONPATH=. python -m benchmarks.copy_detection --root /tmp/copies --bovw --bovw-recipe cifar

Indexes the dev set with the shipped CNN (and, with --bovw, a BoVW trained on its train split
as `cbir train bovw --dataset folder` does: the photo recipe unless --bovw-recipe cifar; each
recipe gets its own CBIR_HOME under --root, the data folder is shared), with local features; then searches every copy with each method and reports whether
the original comes first. Times are medians (and p95) over the queries, measured in the same
run: the unverified search (reference), the query's two local views (as given and mirrored),
and the verification of 100 candidates (reading their stored features, matching, RANSAC on
two threads); the machine's load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.copydays import write_copy_folder
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from features.registry import load_extractor
from features.verify import verify_many
from indexing.datasets import FolderDataset
from indexing.local_store import LocalOptions
from indexing.search import SearchService
from indexing.verified_search import query_views


def run(
    root: Path, distractors: int, seed: int = 0, bovw: bool = False, recipe: str | None = None
) -> dict:
    """Build, index and search the dev set under `root`; returns the figures (JSON-ready)."""
    data = root / "data"
    if not data.exists():
        write_copy_folder(data, distractors=distractors, seed=seed)
    home = root / ("home" if not bovw else f"home-bovw-{recipe or 'photo'}")
    settings = Settings.resolve(env={}, home=home)
    methods = ["cnn"]
    bovw_train = {}
    if bovw:
        from cbir.stages.train_bovw import train_bovw

        start = time.perf_counter()
        trained = train_bovw(
            settings, dataset="folder", data=str(data), show_progress=False, recipe=recipe
        )
        bovw_train = {
            "bovw_recipe": trained.recipe,
            "bovw_train_seconds": round(time.perf_counter() - start, 1),
            "bovw_dim": load_extractor(trained.model_dir).dim,
        }
        methods.append("bovw")
    start = time.perf_counter()
    index_dataset(
        settings, dataset="folder", data=str(data), methods=tuple(methods), ray=None,
        batch_size=200, show_progress=False, local=LocalOptions(),
    )  # fmt: skip
    index_seconds = time.perf_counter() - start
    searched = [*methods, *(f"{m}+gv" for m in methods)]
    ds = FolderDataset(data)
    queries = ds.records("test")
    service = SearchService.open(settings)
    correct: dict[str, dict[str, list[bool]]] = {m: {} for m in searched}
    verify_ms, first_ms, views_ms = [], [], []
    in_first: dict[str, list[bool]] = {}  # is the original among the candidates +gv re-ranks?
    try:
        for record in queries:
            transform = Path(record.path).stem
            image = ds.image(record)
            for method in searched:
                hits = service.search_image(image, method, 1).hits
                ok = bool(hits) and hits[0].label == record.label
                correct[method].setdefault(transform, []).append(ok)
            # verification alone, 100 candidates of the first method, views included
            t0 = time.perf_counter()
            first = service.search_image(image, methods[0], 100).hits
            first_ms.append((time.perf_counter() - t0) * 1000)
            in_first.setdefault(transform, []).append(any(h.label == record.label for h in first))
            t0 = time.perf_counter()
            views = query_views(image, service.local.options)
            views_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            stored = service.local.get(h.doc_id for h in first)
            verify_many(views, [stored.get(h.doc_id) for h in first], service.reranking.params)
            verify_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        service.close()
    return {
        "distractors": distractors,
        "documents": len(ds.records("train")),
        "queries": len(queries),
        "index_seconds": round(index_seconds, 1),
        **bovw_train,
        "top1": {
            m: {
                "all": round(float(np.mean([x for v in t.values() for x in v])), 3),
                **{k: round(float(np.mean(v)), 3) for k, v in sorted(t.items())},
            }
            for m, t in correct.items()
        },
        "candidates": len(first),
        f"{methods[0]}_recall_at_{len(first)}": {
            k: round(float(np.mean(v)), 3) for k, v in sorted(in_first.items())
        },
        "first_search_ms_median": round(statistics.median(first_ms), 1),
        "query_views_ms_median": round(statistics.median(views_ms), 1),
        "verify_100_ms_median": round(statistics.median(verify_ms), 1),
        "verify_100_ms_p95": round(float(np.percentile(verify_ms, 95)), 1),
        "load": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--distractors", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bovw", action="store_true", help="also train and evaluate BoVW")
    parser.add_argument(
        "--bovw-recipe",
        choices=["cifar", "photo"],
        help="BoVW recipe (default photo, as for folders)",
    )
    args = parser.parse_args(argv)
    figures = run(args.root, args.distractors, args.seed, args.bovw, args.bovw_recipe)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
