"""`cbir train bovw|cnn`: fit a method's model on the train split and save it under CBIR_HOME."""

from __future__ import annotations

import argparse
import importlib

from cbir.core.config import Settings

NAME = "train"
HELP = (
    "fit a model on the train split: `cbir train bovw` (vocabulary) or `cbir train cnn` (network)"
)
# method -> module defining add_arguments(parser) and run(args, settings)
METHODS = {"bovw": "cbir.commands.train_bovw", "cnn": "cbir.commands.train_cnn"}


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    methods = parser.add_subparsers(dest="method", metavar="METHOD", required=True)
    for method, module_name in METHODS.items():
        module = importlib.import_module(module_name)
        sub = methods.add_parser(
            method, help=module.HELP, description=module.HELP, parents=[parent]
        )
        module.add_arguments(sub)
        sub.set_defaults(train_run=module.run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return args.train_run(args, settings)
