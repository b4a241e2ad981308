"""`cbir serve`: not implemented yet (issue #8)."""

from __future__ import annotations

import argparse

from cbir.config import Settings
from cbir.errors import CbirError

NAME = "serve"
HELP = "not implemented yet (issue #8)"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CbirError("cbir serve is not implemented yet (issue #8)")
