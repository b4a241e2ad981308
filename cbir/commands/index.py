"""`cbir index`: encode a dataset on Ray and write one document per image into a store."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

NAME = "index"
HELP = "encode the index side of a dataset (CIFAR-10 train split, or a folder) into a store"


def method_list(value: str) -> list[str]:
    methods = [m.strip() for m in value.split(",") if m.strip()]
    if not methods:
        raise argparse.ArgumentTypeError("give at least one method, e.g. bovw,cnn")
    return methods


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray")
    group.add_argument("--ray-address", help="a Ray cluster (default: a local Ray on this machine)")
    group.add_argument("--workers", type=int, help="encoding workers (default: one per CPU)")
    group.add_argument(
        "--threads-per-worker", type=int, default=1, help="CPUs per worker (default 1)"
    )
    group.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (default 0)"
    )
    group.add_argument("--no-ray", action="store_true", help="encode in this process, without Ray")


def ray_options(args: argparse.Namespace):
    from indexing.encoding import RayOptions

    if args.no_ray:
        return None
    return RayOptions(
        address=args.ray_address,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        gpus_per_worker=args.gpus_per_worker,
    )


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (default) or folder")
    parser.add_argument("--data", help="dataset path (cifar10: overrides CBIR_CIFAR10)")
    parser.add_argument(
        "--method", type=method_list, default=["bovw", "cnn"], help="bovw,cnn (default both)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="METHOD=DIR",
        help="use the model saved in DIR for METHOD (default: $CBIR_HOME/models/METHOD, then the shipped one)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="images per batch and per commit"
    )
    parser.add_argument("--limit", type=int, help="index only the first N images of each label")
    parser.add_argument(
        "--local",
        action="store_true",
        help="also keep local features (RootSIFT keypoints) for +gv re-ranking and duplicates",
    )
    parser.add_argument(
        "--local-keypoints", type=int, default=500, help="keypoints kept per image (default 500)"
    )
    add_ray_arguments(parser)


def parse_models(pairs: list[str]) -> dict[str, str]:
    from cbir.core.errors import CbirError

    models = {}
    for pair in pairs:
        method, sep, path = pair.partition("=")
        if not sep or not method or not path:
            raise CbirError(
                f"--model {pair!r}: expected METHOD=DIR, e.g. --model cnn=var/models/cnn"
            )
        models[method] = path
    return models


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.index import index_dataset
    from indexing.local_store import LocalOptions

    report = index_dataset(
        settings,
        dataset=args.dataset,
        data=args.data,
        methods=args.method,
        models=parse_models(args.model),
        ray=ray_options(args),
        batch_size=args.batch_size,
        limit=args.limit,
        local=LocalOptions(max_keypoints=args.local_keypoints) if args.local else None,
    )
    already = ", ".join(f"{m} {n:,}" for m, n in report.already_indexed.items())
    print(
        f"store {report.store}: {report.documents:,} documents (already indexed before this run: {already})"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} files (listed in the report)")
    for method, ids in report.empty_vectors.items():
        print(f"{method}: {len(ids)} images gave an empty (zero) vector (listed in the report)")
    print(f"report: {report.report_path}")
    print(report.summary)
    return 0
