"""BoVW on the CIFAR-10 validation protocol: quality and speed of parameter choices, never the test split.

The 50,000 train images are split (seed 0) into 5,000 queries (500 per class) and a
45,000-image index; a model is fitted on a seeded sample of the index side only, both
sides are encoded through the shared batch path (Ray, one worker per CPU), and exact
cosine top-100 lists are scored (same class = relevant; map_cut_100 divides by the
4,500 relevant images of a query, normalised AP@100 by 100).

    CBIR_CIFAR10=/path/to/cifar10 python -m benchmarks.bovw_validation \
        --variant default '{}' --variant no-colour '{"colour": false}' --fit-images 10000

Each variant prints one line and appends a JSON object to `--out`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from cbir.core.config import Settings
from cbir.core.progress import Stopwatch
from evaluation.validation import validation_retrieval
from features.bovw import BovwExtractor
from features.sampling import stratified_rows
from indexing.dataset_kinds import open_dataset
from indexing.datasets import ImageBatch, ImageRecord
from indexing.encoding import RayOptions, encode_batches


def validation_split(labels: np.ndarray, per_class: int = 500, seed: int = 0):
    """(query rows, index rows), int64 sorted: `per_class` queries of every class, the rest indexed."""
    queries = stratified_rows(labels, lambda count: per_class, seed)
    index = np.setdiff1d(np.arange(len(labels)), queries)
    return queries, index


def scores(queries: np.ndarray, index: np.ndarray, yq: np.ndarray, yx: np.ndarray, k: int = 100):
    """Exact cosine top-k measures: normalised AP@k, map_cut_k (trec_eval), P@10, P@k."""
    measures = validation_retrieval(queries, yq, index, yx, k)
    return {
        "ap_norm_100": measures[f"map_minRk_{k}"],  # R >= k for every CIFAR-10 query
        "map_cut_100": measures[f"map_cut_{k}"],
        "P_10": measures["P_10"],
        "P_100": measures[f"P_{k}"],
    }


def encode_rows(
    images: np.ndarray, rows: np.ndarray, model_dir: Path, workers: int
) -> tuple[np.ndarray, float]:
    """float32 (len(rows), dim) vectors of images[rows] via the shared batch path, and seconds."""

    def batches():
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            records = [ImageRecord(str(i), None, None, str(i)) for i in chunk]
            yield ImageBatch(records, [np.asarray(images[i]) for i in chunk])

    clock = Stopwatch()
    vectors = {}
    for result in encode_batches(
        batches(),
        {"bovw": model_dir},
        ray=RayOptions(workers=workers),
        total=len(rows),
        desc="encode",
    ):
        vectors.update(
            zip((int(r.doc_id) for r in result.records), result.vectors["bovw"], strict=True)
        )
    return np.stack([vectors[int(i)] for i in rows]), clock.seconds


def run_variant(name: str, params: dict, fit_images: int, images, labels, workers: int) -> dict:
    queries, index = validation_split(labels)
    rng = np.random.default_rng(params.get("seed", 0))
    fit_rows = np.sort(rng.choice(index, min(fit_images, len(index)), replace=False))
    clock = Stopwatch()
    model = BovwExtractor(**params).fit(
        [np.asarray(images[i]) for i in fit_rows], show_progress=True
    )
    fit_seconds = clock.seconds
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "bovw")
        rows = np.concatenate([index, queries])
        vectors, encode_seconds = encode_rows(images, rows, Path(tmp) / "bovw", workers)
    measures = scores(vectors[len(index) :], vectors[: len(index)], labels[queries], labels[index])
    return {
        "variant": name,
        "params": model.params,
        "fit_images": len(fit_rows),
        "fit_seconds": round(fit_seconds, 1),
        "fit_phases": model.report.seconds,
        "encode_images": len(rows),
        "encode_seconds": round(encode_seconds, 1),
        "encode_images_per_s": round(len(rows) / encode_seconds, 1),
        "dim": model.dim,
        **measures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), default=[])
    parser.add_argument("--fit-images", type=int, nargs="+", default=[10_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="var/reports/bovw_validation.jsonl")
    args = parser.parse_args(argv)
    settings = Settings.resolve()
    ds = open_dataset("cifar10", settings)
    images, labels, _ = ds.split_array("train")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for name, params in args.variant or [("default", "{}")]:
        for n in args.fit_images:
            result = run_variant(name, json.loads(params), n, images, labels, args.workers)
            print(
                f"{name} fit_images={n}: AP@100/100={result['ap_norm_100']:.4f} "
                f"map_cut_100={result['map_cut_100']:.5f} P@10={result['P_10']:.4f} "
                f"P@100={result['P_100']:.4f} fit {result['fit_seconds']} s, encode "
                f"{result['encode_images_per_s']} images/s",
                flush=True,
            )
            with open(args.out, "a") as out:
                out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
