"""`cbir train cnn`: not implemented yet (issue #6)."""

from __future__ import annotations

import argparse

from cbir.config import Settings
from cbir.errors import CbirError

HELP = "not implemented yet (issue #6)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CbirError("cbir train cnn is not implemented yet (issue #6)")
