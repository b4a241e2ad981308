"""`cbir train bovw`: not implemented yet (issue #5)."""

from __future__ import annotations

import argparse

from cbir.config import Settings
from cbir.errors import CbirError

HELP = "not implemented yet (issue #5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise CbirError("cbir train bovw is not implemented yet (issue #5)")
