"""`cbir evaluate`: not implemented yet (issue #7)."""

from __future__ import annotations

import argparse

from cbir.config import Settings
from cbir.errors import CbirError

NAME = "evaluate"
HELP = "not implemented yet (issue #7)"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CbirError("cbir evaluate is not implemented yet (issue #7)")
