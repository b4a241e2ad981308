"""BoVW on photos: the CIFAR (32-px) recipe against the photo recipe, fitted as `cbir train bovw` does.

Two sets, both built from scikit-image's bundled photographs (no download):

- `validation`: a copy-detection set like benchmarks/copydays.py but from *other* originals
  (VALIDATION_ORIGINALS) and other distractor sources, so that no test original or test query
  is seen; top-1 (original first) per transform. Parameters of the photo recipe are chosen here.
- `dev`: the real-photo set of benchmarks/backbones.py (each photo an instance, random copies
  relevant); P@1, P@10, map_cut_100, encode images/s (median of --repeats passes, decoding
  not included) and the vector dimension.

The model is fitted on the train (index) side only, with the recipe's parameters and the
defaults by collection size (features.bovw_defaults), then `--variant NAME JSON` overrides.

    python -m benchmarks.bovw_photos validation --variant cifar '{"recipe": "cifar"}' \\
        --variant photo '{}'
    python -m benchmarks.bovw_photos dev --variant cifar '{"recipe": "cifar"}' --variant photo '{}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from benchmarks.copydays import TRANSFORMS, copy_images
from features.bovw import BovwExtractor
from features.bovw_defaults import recipe_params, sized_defaults

VALIDATION_ORIGINALS = ("hubble_deep_field", "moon", "page", "cell", "retina", "logo")
VALIDATION_SOURCES = ("text", "brick", "grass", "gravel", "colorwheel")


_DESCRIBED: dict[tuple, object] = {}  # (sampler parameters, id of an image) -> its descriptors


def fitted(variant: dict, train: Sequence[np.ndarray], memo: bool = False) -> BovwExtractor:
    """A BoVW fitted on `train` as `cbir train bovw` would (recipe, then sized defaults).

    With `memo` the photo sampler's output is memoised per image within this process (the
    images stay alive in the caller's lists), so variants that differ after SIFT do not detect
    again; never with a timed encoding.
    """
    given = dict(variant)
    recipe = given.pop("recipe", "photo")
    sized = sized_defaults(len(train), recipe_params(recipe, given))
    model = BovwExtractor(**sized.params)
    sampler = model.photo_sampler
    if memo and sampler is not None:
        key = tuple(sorted((k, str(v)) for k, v in vars(sampler).items() if not k.startswith("_")))
        describe = sampler.describe

        def memoised(image: np.ndarray, key: tuple = key, describe=describe):
            if (key, id(image)) not in _DESCRIBED:
                _DESCRIBED[(key, id(image))] = describe(image)
            return _DESCRIBED[(key, id(image))]

        sampler.describe = memoised
    return model.fit(train)


def validation_set(distractors: int, seed: int = 0):
    """(train images, train labels, query images, query labels, query transforms)."""
    train, labels, queries, q_labels, q_transforms = [], [], [], [], []
    for relpath, image in copy_images(
        originals=VALIDATION_ORIGINALS, distractors=distractors, seed=seed,
        sources=VALIDATION_SOURCES,
    ):  # fmt: skip
        split, label, name = relpath.split("/")
        _ok, buffer = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)[:, :, ::-1].copy()  # as the folder stores it
        if split == "train":
            train.append(image)
            labels.append(label)
        else:
            queries.append(image)
            q_labels.append(label)
            q_transforms.append(name.removesuffix(".jpg"))
    return train, np.array(labels), queries, np.array(q_labels), q_transforms


def run_validation(variants: dict[str, dict], distractors: int) -> list[dict]:
    train, labels, queries, q_labels, q_transforms = validation_set(distractors)
    rows = []
    for name, variant in variants.items():
        started = time.perf_counter()
        model = fitted(variant, train, memo=True)
        fit_s = time.perf_counter() - started
        index, vectors = model.encode(train), model.encode(queries)
        top1 = labels[np.argmax(vectors @ index.T, axis=1)] == q_labels
        per = {
            t: float(np.mean([ok for ok, q in zip(top1, q_transforms, strict=True) if q == t]))
            for t in TRANSFORMS
        }
        rows.append(
            {"variant": name, "all": round(float(top1.mean()), 3),
             **{t: round(v, 3) for t, v in per.items()}, "dim": model.dim,
             "words": model.config.vocabulary_size, "fit_s": round(fit_s, 1)}
        )  # fmt: skip
    return rows


def run_dev(variants: dict[str, dict], copies: int, queries: int, repeats: int, sample: int):
    from benchmarks.backbones import dev_set, score

    q_images, q_labels, i_images, i_labels = dev_set(copies, queries)
    rows = []
    for name, variant in variants.items():
        model = fitted(variant, i_images)
        figures = score(model.encode(q_images), q_labels, model.encode(i_images), i_labels)
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.encode(i_images[:sample])
            seconds.append(time.perf_counter() - started)
        rows.append(
            {"variant": name, **figures, "dim": model.dim,
             "words": model.config.vocabulary_size,
             "images_per_s": round(min(sample, len(i_images)) / float(np.median(seconds)), 1)}
        )  # fmt: skip
    return rows, {"queries": len(q_images), "index": len(i_images)}


def table(rows: list[dict]) -> list[str]:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=["validation", "dev"])
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"))
    parser.add_argument("--distractors", type=int, default=300, help="validation distractors")
    parser.add_argument("--copies", type=int, default=12, help="dev: copies of each photo")
    parser.add_argument("--queries", type=int, default=3, help="dev: of which queries")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    variants = {n: json.loads(v) for n, v in (args.variant or [["photo", "{}"]])}
    header = {"command": "python -m benchmarks.bovw_photos " + " ".join(argv or sys.argv[1:])}
    if args.set == "validation":
        rows = run_validation(variants, args.distractors)
        header["distractors"] = args.distractors
    else:
        rows, sizes = run_dev(variants, args.copies, args.queries, args.repeats, args.sample)
        header.update(sizes)
    header["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(header))
    print("\n".join(table(rows)))
    if args.out:
        args.out.write_text(json.dumps({**header, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
