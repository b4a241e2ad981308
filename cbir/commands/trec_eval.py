"""`cbir trec-eval`: trec_eval 9.0.8's output for a qrels file and a run file."""

from __future__ import annotations

import argparse
import json
import sys

from cbir.core.config import Settings

NAME = "trec-eval"
HELP = "evaluate a TREC run against qrels; prints what trec_eval 9.0.8 (or 10.0) prints"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", dest="per_topic", action="store_true", help="also print each topic's values"
    )
    parser.add_argument(
        "-c",
        dest="complete",
        action="store_true",
        help="average over every topic of the qrels; topics missing from the run count 0",
    )
    parser.add_argument(
        "-M", dest="max_depth", type=int, metavar="N", help="evaluate the first N documents only"
    )
    parser.add_argument(
        "-l",
        dest="relevance_level",
        type=int,
        default=1,
        metavar="N",
        help="lowest relevant grade (default 1)",
    )
    parser.add_argument(
        "-m",
        dest="measures",
        action="append",
        metavar="MEASURE",
        help="measure to print, trec_eval spelling: map, P.10,100, map_cut.100, ndcg_cut.10, "
        "recall.100, recip_rank, Rprec, num_q, ..., map_minRk.100 (ours), or a group: "
        "official (default), all_trec; repeatable",
    )
    parser.add_argument(
        "--compat",
        choices=("9.0.8", "10.0"),
        default="9.0.8",
        help="trec_eval release to reproduce (default 9.0.8, what pytrec_eval embeds; 10.0 "
        "ranks in double precision, prints missing topics under -c -q and stops with exit "
        "status 4 on a judged topic the run lacks without -c)",
    )
    parser.add_argument("-n", dest="no_summary", action="store_true", help="no summary lines")
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    parser.add_argument("qrels", help="qrels file: 'topic 0 docno relevance' lines (.gz too)")
    parser.add_argument(
        "run", help="run file: 'topic Q0 docno rank score tag' lines (.gz too; - for stdin)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.core.progress import Stopwatch, summary_line
    from cbir.stages.trec_eval import evaluate_files
    from evaluation.report import to_json, trec_eval_run

    clock = Stopwatch()
    ev = evaluate_files(
        args.qrels,
        args.run,
        args.measures,
        complete=args.complete,
        max_depth=args.max_depth,
        relevance_level=args.relevance_level,
        version=args.compat,
    )
    if ev.unsupported:
        print(f"cbir trec-eval: not computed here: {', '.join(ev.unsupported)}", file=sys.stderr)
    lines, errors, status = trec_eval_run(ev, per_topic=args.per_topic, summary=not args.no_summary)
    if args.json and not status:
        print(json.dumps(to_json(ev, per_topic=args.per_topic), indent=1))
    elif not args.json:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()
    for line in errors:
        print(line, file=sys.stderr)
    if not status:
        print(summary_line("trec-eval", len(ev.topics), clock.seconds, "topics"), file=sys.stderr)
    return status
