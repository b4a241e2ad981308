"""`cbir bench`: speed and memory of every stage, each beside a reference measured in the same run."""

from __future__ import annotations

import argparse

from cbir.commands.index import add_ray_arguments, ray_options
from cbir.core.config import Settings

NAME = "bench"
HELP = (
    "measure encode/write throughput, query latency, batch search vs faiss, evaluation vs "
    "pytrec_eval, peak memory, the web load check and +gv verification time; JSON under "
    "$CBIR_HOME/bench/"
)


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        help="comma-separated parts: encode,write,latency,search,evaluation,web,verify "
        "(default all)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that it runs")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure, the median is kept (default 3)"
    )
    parser.add_argument(
        "--dataset", default="cifar10", help="images to encode: cifar10 (default) or folder"
    )
    parser.add_argument("--data", help="dataset path (cifar10: overrides CBIR_CIFAR10)")
    parser.add_argument(
        "-k", type=int, default=10, help="hits per single query in the latency part (default 10)"
    )
    parser.add_argument("--out", help="JSON file (default $CBIR_HOME/bench/bench-<UTC time>.json)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    add_ray_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.table import table
    from cbir.stages.bench import parse_parts, run_bench

    results = run_bench(
        settings,
        parts=parse_parts(args.only),
        quick=args.quick,
        repeat=args.repeat,
        dataset=args.dataset,
        data=args.data,
        ray=ray_options(args),
        k=args.k,
        out=args.out,
    )
    print(table(results, markdown=args.markdown))
    load = results["machine"]
    print(
        f"{load['cpus']} CPUs; load average {load['load_average_start'][0]:.2f} at the start, "
        f"{load['load_average_end'][0]:.2f} at the end; results: {results['file']}"
    )
    failed = [name for name, stage in results["stages"].items() if "error" in stage]
    return 1 if failed else 0
