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
        help="use the model saved in DIR for METHOD (default: $CBIR_HOME/models/METHOD, then the "
        "shipped one; a folder's cnn default is the pretrained EfficientNet-Lite0)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="images per batch and per commit"
    )
    parser.add_argument("--limit", type=int, help="index only the first N images of each label")
    watch = parser.add_argument_group("watch (folders)")
    watch.add_argument(
        "--watch",
        action="store_true",
        help="sync the folder, then keep it in sync as files change until Ctrl-C",
    )
    watch.add_argument(
        "--poll",
        type=float,
        metavar="SECONDS",
        help="look for changes every SECONDS instead of file events (default: events, "
        "polling every 5 s on network file systems)",
    )
    watch.add_argument(
        "--debounce",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="sync once no file has changed for SECONDS (default 0.5)",
    )
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
    if args.watch:
        return run_watch(args, settings)
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
        echo=print,
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


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    """`cbir index --watch`: encodes in this process unless --ray-address names a cluster
    (starting a local Ray for every small batch would cost more than the batch)."""
    from cbir.core.errors import CbirError
    from cbir.stages.watch import watch_folder
    from indexing.local_store import LocalOptions

    if args.dataset != "folder" or not args.data:
        raise CbirError("--watch follows a folder: use --dataset folder --data FOLDER")
    if args.limit is not None:
        raise CbirError("--watch keeps the whole folder in sync: drop --limit")
    if args.debounce < 0:
        raise CbirError(f"--debounce must be zero or more seconds, got {args.debounce}")
    ray = ray_options(args) if args.ray_address else None

    def ready(watcher) -> None:
        how = f"polling every {watcher.poll:g} s" if watcher.polling else "file events"
        print(f"watching {args.data} ({how}); Ctrl-C stops", flush=True)

    summary = watch_folder(
        settings,
        data=args.data,
        methods=args.method,
        models=parse_models(args.model),
        ray=ray,
        batch_size=args.batch_size,
        poll=args.poll,
        quiet=args.debounce,
        on_sync=lambda report: print(report.summary, flush=True),
        on_ready=ready,
        local=LocalOptions(max_keypoints=args.local_keypoints) if args.local else None,
    )
    print(summary.line(), flush=True)
    return 0
