"""`cbir instance-eval`: score a TREC run with an instance-retrieval protocol's ground truth."""

from __future__ import annotations

import argparse
import json

from cbir.core.config import Settings

NAME = "instance-eval"
HELP = "revisited Oxford/Paris mAP (E/M/H), UKBench N-S score or copy-detection µAP of a run"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ground_truth",
        help="JSON with a 'protocol' (revisited, ukbench, copy-detection) or a DISC21 CSV; "
        "formats in docs/evaluation-measures.md",
    )
    parser.add_argument("run", help="TREC run file: 'topic Q0 docno rank score tag' lines")
    parser.add_argument("--json", action="store_true", help="print JSON instead")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from evaluation.instance_io import evaluate_instance_files

    result = evaluate_instance_files(args.ground_truth, args.run)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    protocol = result["protocol"]
    if protocol == "ukbench":
        print(f"N-S score (relevant in the first {result['n']}): {result['ns_score']:.4f}")
    elif protocol == "copy-detection":
        r90 = result["recall_at_p90"]
        shown = (
            "not reached" if r90 is None else f"{r90:.4f} (score >= {result['threshold_at_p90']:g})"
        )
        print(f"µAP {result['micro_ap']:.4f}; recall at 90% precision {shown}; "
              f"{result['predictions']:,} predictions, {result['positives']:,} true pairs")  # fmt: skip
    else:
        for setup in ("easy", "medium", "hard"):
            r = result[setup]
            extra = ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k.startswith("mP@"))
            print(f"{setup:<6} mAP {r['map']:.4f}, {extra} ({r['num_q']} queries)")
    return 0
