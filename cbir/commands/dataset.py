"""`cbir dataset`: locate a dataset, check every image, print a summary, report skipped files."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

NAME = "dataset"
HELP = "locate a dataset (CIFAR-10 or a folder), decode every image once and print a summary"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (default) or folder")
    parser.add_argument("--data", help="dataset path (for cifar10 it overrides CBIR_CIFAR10)")
    parser.add_argument("--report", help="where to write the JSON report of skipped files")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.dataset import summarize_dataset

    result = summarize_dataset(settings, args.dataset, args.data, report_path=args.report)
    for line in result.summary.lines():
        print(line)
    print(f"skipped-file report: {result.report_path}")
    print(result.timing)
    return 0
