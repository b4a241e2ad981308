"""`cbir train bovw`: fit the BoVW vocabularies, idf and PCA on the train split and save them."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

HELP = "fit the BoVW model (SIFT vocabulary, colour words, idf, PCA) on a sample of the train split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from features.bovw_config import BovwConfig
    from features.bovw_defaults import PHOTO_PRESET

    d, photo = BovwConfig(), PHOTO_PRESET
    by_size = "default: by collection size, {} at 10,000+ train images (docs/photos.md)"
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (default) or folder")
    parser.add_argument("--data", help="dataset path (cifar10: overrides CBIR_CIFAR10)")
    parser.add_argument("--out", help="model directory (default: $CBIR_HOME/models/bovw)")
    parser.add_argument(
        "--recipe",
        choices=["cifar", "photo"],
        help="cifar: SIFT on a 32-px thumbnail (dense, upright); photo: SIFT keypoints of the "
        "whole image (default: cifar for --dataset cifar10, photo for folders; docs/bovw.md)",
    )
    parser.add_argument(
        "--images",
        type=int,
        help="train images sampled for the fit (" + by_size.format("10,000") + ")",
    )
    parser.add_argument(
        "--force", action="store_true", help="refit even if an identical model exists"
    )
    parser.add_argument("--seed", type=int, help=f"sampling and k-means seed (default {d.seed})")
    g = parser.add_argument_group("model parameters")
    g.add_argument(
        "--vocabulary-size",
        type=int,
        help="visual words (" + by_size.format(d.vocabulary_size) + ")",
    )
    g.add_argument(
        "--vocabulary-images",
        type=int,
        help="images sampled for k-means (" + by_size.format(f"{d.vocabulary_images:,}") + ")",
    )
    g.add_argument(
        "--descriptors-per-image",
        type=int,
        help=f"descriptors sampled per image for k-means (default {d.descriptors_per_image})",
    )
    g.add_argument(
        "--sampling",
        choices=["dense", "detector", "both"],
        help=f"where SIFT is computed (default {d.sampling}, photo {photo['sampling']})",
    )
    g.add_argument(
        "--working-side",
        type=int,
        help="photo: long side (px) images are reduced to before SIFT "
        f"(default {d.working_side}; smaller ones are enlarged to {d.min_working_side})",
    )
    g.add_argument(
        "--max-keypoints",
        type=int,
        help=f"photo: SIFT keypoints kept per image, strongest first (default {d.max_keypoints})",
    )
    g.add_argument(
        "--knn",
        type=int,
        help=f"words per descriptor, 1 = hard assignment (default {d.knn})",
    )
    g.add_argument(
        "--sigma",
        type=float,
        help=f"soft-assignment kernel width (default {d.sigma})",
    )
    g.add_argument(
        "--pca-dim",
        type=int,
        help="PCA dimensions, 0 = off (" + by_size.format(d.pca_dim) + ")",
    )
    pyramid = g.add_mutually_exclusive_group()
    pyramid.add_argument(
        "--no-pyramid",
        action="store_true",
        help="one whole-image histogram instead of the 1+2x2 pyramid (the photo recipe's default)",
    )
    pyramid.add_argument(
        "--pyramid",
        action="store_true",
        help="the 1+2x2 spatial pyramid (the cifar recipe's default; not rotation-invariant)",
    )
    g.add_argument("--no-mirror", action="store_true", help="do not pool the mirrored image")
    g.add_argument("--no-idf", action="store_true", help="no idf weighting")
    g.add_argument(
        "--no-root-sift",
        action="store_true",
        help="plain (L2-normalised) SIFT instead of RootSIFT (cifar recipe only)",
    )
    g.add_argument("--no-colour", action="store_true", help="no colour-word channel")
    g.add_argument(
        "--hog", action="store_true", help="add the HOG channel (the cifar recipe's default)"
    )
    g.add_argument("--no-hog", action="store_true", help="no HOG channel")


def params_from(args: argparse.Namespace) -> dict:
    """BovwConfig fields the user gave; the rest come from the recipe and the collection's size."""
    params = {}
    for name in (
        "seed", "descriptors_per_image", "sampling", "knn", "sigma", "vocabulary_size",
        "vocabulary_images", "pca_dim", "working_side", "max_keypoints",
    ):  # fmt: skip
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    for flag, name in (
        ("no_mirror", "mirror"), ("no_idf", "idf"), ("no_root_sift", "root_sift"),
        ("no_colour", "colour"), ("no_hog", "hog"),
    ):  # fmt: skip
        if getattr(args, flag):
            params[name] = False
    if args.hog:
        params["hog"] = True
    if args.no_pyramid:
        params["pyramid"] = [[1, 1.0]]
    if args.pyramid:
        params["pyramid"] = [[1, 1.0], [2, 2.0]]
    return params


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.train_bovw import train_bovw

    result = train_bovw(
        settings,
        args.dataset,
        args.data,
        params=params_from(args),
        images=args.images,
        out=args.out,
        force=args.force,
        recipe=args.recipe,
    )
    print(f"recipe: {result.recipe}")
    if result.defaults is not None:
        print(result.defaults.line())
    if result.skipped:
        print(
            f"an identical BoVW model (same parameters, same training data) is already in "
            f"{result.model_dir}: kept it; pass --force to fit again"
        )
    else:
        print(f"model {result.fingerprint} saved to {result.model_dir}")
        for line in result.report.lines():
            print(line)
        if result.unreadable:
            print(f"unreadable train images left out: {len(result.unreadable)}")
        print(f"fit seconds: {result.report.seconds}")
    print(result.summary)
    return 0
