"""`cbir train`: not implemented yet (issue #5 (bovw) and #6 (cnn))."""

from __future__ import annotations

import argparse

from cbir.config import Settings
from cbir.errors import CbirError

NAME = "train"
HELP = "not implemented yet (issue #5 (bovw) and #6 (cnn))"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CbirError("cbir train is not implemented yet (issue #5 (bovw) and #6 (cnn))")
