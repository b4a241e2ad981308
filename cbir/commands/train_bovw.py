"""`cbir train bovw`: fit the BoVW vocabularies, idf and PCA on the train split and save them."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

HELP = "fit the BoVW model (SIFT vocabulary, colour words, idf, PCA) on a sample of the train split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from features.bovw_config import BovwConfig

    d = BovwConfig()
    by_size = "default: by collection size, {} at 10,000+ train images (docs/photos.md)"
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (default) or folder")
    parser.add_argument("--data", help="dataset path (cifar10: overrides CBIR_CIFAR10)")
    parser.add_argument("--out", help="model directory (default: $CBIR_HOME/models/bovw)")
    parser.add_argument(
        "--images",
        type=int,
        help="train images sampled for the fit (" + by_size.format("10,000") + ")",
    )
    parser.add_argument(
        "--force", action="store_true", help="refit even if an identical model exists"
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help=f"sampling and k-means seed (default {d.seed})"
    )
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
        default=d.descriptors_per_image,
        help=f"descriptors sampled per image for k-means (default {d.descriptors_per_image})",
    )
    g.add_argument(
        "--sampling",
        choices=["dense", "detector", "both"],
        default=d.sampling,
        help=f"where SIFT is computed (default {d.sampling})",
    )
    g.add_argument(
        "--knn",
        type=int,
        default=d.knn,
        help=f"words per descriptor, 1 = hard assignment (default {d.knn})",
    )
    g.add_argument(
        "--sigma",
        type=float,
        default=d.sigma,
        help=f"soft-assignment kernel width (default {d.sigma})",
    )
    g.add_argument(
        "--pca-dim",
        type=int,
        help="PCA dimensions, 0 = off (" + by_size.format(d.pca_dim) + ")",
    )
    g.add_argument(
        "--no-pyramid",
        action="store_true",
        help="one whole-image histogram instead of the 1+2x2 pyramid",
    )
    g.add_argument("--no-mirror", action="store_true", help="do not pool the mirrored image")
    g.add_argument("--no-idf", action="store_true", help="no idf weighting")
    g.add_argument(
        "--no-root-sift", action="store_true", help="plain (L2-normalised) SIFT instead of RootSIFT"
    )
    g.add_argument("--no-colour", action="store_true", help="no colour-word channel")
    g.add_argument("--no-hog", action="store_true", help="no HOG channel")


def params_from(args: argparse.Namespace) -> dict:
    """BovwConfig fields from the parsed options; sized options not given are left out."""
    params = {
        "seed": args.seed,
        "descriptors_per_image": args.descriptors_per_image,
        "sampling": args.sampling,
        "knn": args.knn,
        "sigma": args.sigma,
        "mirror": not args.no_mirror,
        "idf": not args.no_idf,
        "root_sift": not args.no_root_sift,
        "colour": not args.no_colour,
        "hog": not args.no_hog,
    }
    for name in ("vocabulary_size", "vocabulary_images", "pca_dim"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.no_pyramid:
        params["pyramid"] = [[1, 1.0]]
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
    )
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
