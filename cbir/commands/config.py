"""`cbir config`: print the effective configuration and where each value came from."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

NAME = "config"
HELP = "print the effective configuration (environment variables and flags)"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    del parser, parent  # only the common flags


def run(args: argparse.Namespace, settings: Settings) -> int:
    for variable, value, source in settings.describe():
        print(f"{variable:<16} {value}  ({source})")
    return 0
