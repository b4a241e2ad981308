"""How fast the shipped CNN encodes all of CIFAR-10 in one process: issue #6's "60,000 in 60 s".

Pure encoding: the 60,000 images are decoded into memory first (not timed), then
`CnnExtractor.encode` turns them into vectors in batches, as `cbir index --no-ray` and a
Ray worker do. The reference, timed in the same run on the same images, is the same
network without the test-time flip (half the work). For a backbone model (`--model DIR`
saved by `cbir train cnn --arch NAME`), the reference is the shipped CIFAR network, timed in
the same run. Prints one line per repeat and the medians:

    CBIR_CIFAR10=/path/to/cifar10 python -m benchmarks.cnn_encode --repeats 3
    CBIR_CIFAR10=/path/to/cifar10 python -m benchmarks.cnn_encode --model DIR --repeats 3
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from cbir.core.config import Settings
from cbir.core.progress import Stopwatch, progress
from features.registry import load_extractor
from indexing.arrays import split_arrays
from indexing.dataset_kinds import open_dataset

SHIPPED = "features/models/cnn"


def encode_all(extractor, images: list[np.ndarray], chunk: int = 5_000) -> float:
    """Seconds to encode `images` (progress bar per chunk)."""
    clock = Stopwatch()
    for start in progress(range(0, len(images), chunk), desc="encode", unit="chunk"):
        extractor.encode(images[start : start + chunk])
    return clock.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SHIPPED, help=f"model directory (default {SHIPPED})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", help="CIFAR-10 copy (default: CBIR_CIFAR10)")
    args = parser.parse_args(argv)

    settings = Settings.resolve()
    dataset = open_dataset("cifar10", settings, args.data)
    images = [im for split in ("train", "test") for im in split_arrays(dataset, split).images]
    extractor = load_extractor(args.model)
    extractor.encode(images[:500])  # warm-up: thread pools, kernels
    if not hasattr(extractor, "flip_tta"):
        return _against_shipped(extractor, images, args.repeats)
    flip, plain = [], []
    for repeat in range(1, args.repeats + 1):
        extractor.flip_tta = True
        flip.append(encode_all(extractor, images))
        extractor.flip_tta = False
        plain.append(encode_all(extractor, images))
        print(
            f"repeat {repeat}: {len(images):,} images, flip TTA {flip[-1]:.1f} s, "
            f"without flip {plain[-1]:.1f} s"
        )
    extractor.flip_tta = True
    median, reference = statistics.median(flip), statistics.median(plain)
    print(
        f"cnn encode: {len(images):,} images in {median:.1f} s ({len(images) / median:,.0f} "
        f"images/s, median of {args.repeats}); without the flip {reference:.1f} s "
        f"({median / reference:.2f}x the time)"
    )
    return 0


def _against_shipped(extractor, images: list[np.ndarray], repeats: int) -> int:
    """Time a backbone model against the shipped CIFAR network (flip on), alternating."""
    shipped = load_extractor(SHIPPED)
    shipped.encode(images[:500])
    model, reference = [], []
    for repeat in range(1, repeats + 1):
        model.append(encode_all(extractor, images))
        reference.append(encode_all(shipped, images))
        print(
            f"repeat {repeat}: {len(images):,} images, {extractor.params['arch']} "
            f"{model[-1]:.1f} s, shipped CIFAR network {reference[-1]:.1f} s"
        )
    median, ref = statistics.median(model), statistics.median(reference)
    print(
        f"{extractor.params['arch']} encode: {len(images):,} images in {median:.1f} s "
        f"({len(images) / median:,.0f} images/s, median of {repeats}); shipped CIFAR network "
        f"{ref:.1f} s ({median / ref:.2f}x its time)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
