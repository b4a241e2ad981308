"""`cbir duplicates`: exact and near-duplicate groups of the indexed collection, JSON and CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from cbir.core.config import Settings

NAME = "duplicates"
HELP = "find groups of copies in the index (content hash, cosine, geometric verification)"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    from cbir.stages.duplicates import DEFAULT_NEIGHBOURS, DEFAULT_THRESHOLD

    parser.add_argument("--method", default="cnn", help="the vector field compared (default cnn)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cosine at or over which two images are near-duplicate candidates "
        f"(default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        default=DEFAULT_NEIGHBOURS,
        help="verify only pairs where one image is among the other's N nearest, which bounds "
        f"the time on large collections (default {DEFAULT_NEIGHBOURS}; 0: every pair)",
    )
    parser.add_argument(
        "--out",
        help="output prefix: writes PREFIX.json and PREFIX.csv "
        "(default $CBIR_HOME/reports/duplicates)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.duplicates import REPORT_NAME, find_duplicates

    report = find_duplicates(
        settings,
        method=args.method,
        threshold=args.threshold,
        neighbours=args.neighbours or None,
    )
    prefix = Path(args.out) if args.out else settings.reports_dir / REPORT_NAME
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = prefix.with_suffix(".json"), prefix.with_suffix(".csv")
    report.write_json(json_path)
    report.write_csv(csv_path)
    check = "confirmed by geometric verification" if report.verified else "NOT verified"
    nearest = f" among each image's {report.neighbours} nearest" if report.neighbours else ""
    print(
        f"{report.documents:,} documents, {report.candidate_pairs:,} pairs with cosine >= "
        f"{report.threshold}{nearest} ({check}), {len(report.groups):,} groups"
    )
    for number, group in enumerate(report.groups[:20], start=1):
        others = ", ".join(m.doc_id for m in group.members if m.doc_id != group.keep)
        print(f"{number:>4} {group.kind:<5} keep {group.keep}; copies: {others}")
    if len(report.groups) > 20:
        print(f"... {len(report.groups) - 20} more groups in the report")
    if not report.verified:
        print("add local features with `cbir index --local` to confirm near pairs")
    print(f"report: {json_path} and {csv_path} ({report.seconds:.1f} s)")
    return 0
