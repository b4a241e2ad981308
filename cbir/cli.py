"""The `cbir` command: a thin dispatcher over importable stage functions."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from cbir import __version__
from cbir.commands import COMMANDS
from cbir.core.config import Settings
from cbir.core.errors import CbirError
from cbir.core.progress import use_progress_bars

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def common_options() -> argparse.ArgumentParser:
    """Flags every subcommand accepts; each overrides its environment variable."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("configuration (flags override the environment)")
    group.add_argument(
        "--home", help="models, indexes, runs and reports (CBIR_HOME, default ./var)"
    )
    group.add_argument("--store", help="store URL: local:PATH or http(s)://host:9200 (CBIR_STORE)")
    group.add_argument(
        "--es-url", dest="es_url", help="Elasticsearch URL for tests and tools (CBIR_ES_URL)"
    )
    group.add_argument(
        "--cifar10", help="CIFAR-10 copy: archive, folder or ImageFolder (CBIR_CIFAR10)"
    )
    group.add_argument(
        "--max-pixels",
        dest="max_pixels",
        type=int,
        help="decompression-bomb limit: most pixels one image may decode to (CBIR_MAX_PIXELS)",
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cbir",
        description="Content-based image retrieval: BoVW and CNN features, vector stores, trec_eval evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"cbir {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = common_options()
    for name in COMMANDS:
        module = importlib.import_module(f"cbir.commands.{name}")
        sub = subparsers.add_parser(
            module.NAME, help=module.HELP, description=module.HELP, parents=[parent]
        )
        module.add_arguments(sub, parent)
        sub.set_defaults(handler=module.run)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.resolve(
        home=args.home,
        store=args.store,
        es_url=args.es_url,
        cifar10=args.cifar10,
        max_pixels=args.max_pixels,
    )


def main(argv: Sequence[str] | None = None) -> int:
    # Before torch or faiss load: OpenMP threads that busy-wait between parallel regions made
    # one image's cnn encoding 765 ms instead of 14 ms at load 10 (docs/embedded-store.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from cbir.terminal import tqdm_bar

    use_progress_bars(tqdm_bar)
    try:
        return int(args.handler(args, settings_from(args)) or 0)
    except CbirError as exc:
        print(f"cbir: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("cbir: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
