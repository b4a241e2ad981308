"""`cbir evaluate`: test images as queries against the index; TREC qrels/run files and a summary."""

from __future__ import annotations

import argparse

from cbir.commands.index import add_ray_arguments, method_list, ray_options
from cbir.core.config import Settings

NAME = "evaluate"
HELP = "query the index with the test split, write qrels/run files (TREC) and a summary table"


def weight_list(value: str) -> dict[str, float]:
    weights = {}
    for pair in value.split(","):
        method, sep, number = pair.partition("=")
        try:
            weights[method.strip()] = float(number)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected METHOD=WEIGHT,..., got {value!r}") from None
        if not sep:
            raise argparse.ArgumentTypeError(f"expected METHOD=WEIGHT,..., got {value!r}")
    return weights


def expansion_arg(value: str):
    from cbir.core.errors import CbirError
    from indexing.expansion import Expansion

    try:
        return Expansion.parse(value)
    except CbirError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", default="cifar10", help="cifar10 (default) or folder (needs a test/ split)"
    )
    parser.add_argument("--data", help="dataset path (cifar10: overrides CBIR_CIFAR10)")
    parser.add_argument(
        "--method",
        type=method_list,
        default=["bovw", "cnn", "fusion"],
        help="bovw,cnn,fusion (default all); add cnn+qe or bovw+qe for alpha query expansion, "
        "<method>+gv for geometric verification of the top 50 (needs `cbir index --local`)",
    )
    parser.add_argument("-k", type=int, default=100, help="results per query (default 100)")
    parser.add_argument("--out", help="output directory (default $CBIR_HOME/runs/<dataset>)")
    parser.add_argument(
        "--exact", action="store_true", help="Elasticsearch: exact script_score search"
    )
    parser.add_argument(
        "--num-candidates", type=int, help="Elasticsearch approximate kNN candidates"
    )
    parser.add_argument(
        "--fusion",
        choices=["rrf", "weighted"],
        help="fusion rule (default: the one `cbir tune-fusion` chose on validation, else rrf)",
    )
    parser.add_argument(
        "--fusion-weights",
        type=weight_list,
        help="e.g. bovw=1,cnn=2 (default: tuned on validation, else 1 each)",
    )
    parser.add_argument(
        "--expand",
        type=expansion_arg,
        metavar="K[:ALPHA]",
        help="the +qe methods' neighbours and alpha, e.g. 10:3 (default: tuned on validation)",
    )
    parser.add_argument("--limit", type=int, help="only the first N test images of each label")
    parser.add_argument(
        "--force", action="store_true", help="recompute even if an identical evaluation exists"
    )
    parser.add_argument(
        "--full-ranking",
        action="store_true",
        help="also mAP over every indexed document (mAP@ALL) and the hashing papers' mAP@1000 "
        "(divided by relevant found), for bovw and cnn, in memory",
    )
    add_ray_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.evaluate import evaluate_dataset
    from evaluation.summary import summary_table

    summary = evaluate_dataset(
        settings,
        dataset=args.dataset,
        data=args.data,
        methods=args.method,
        k=args.k,
        out_dir=args.out,
        exact=args.exact,
        num_candidates=args.num_candidates,
        fusion_rule=args.fusion,
        fusion_weights=args.fusion_weights,
        expansion=args.expand,
        ray=ray_options(args),
        limit=args.limit,
        force=args.force,
        full_ranking=args.full_ranking,
    )
    state = "reused an identical evaluation from" if summary.reused else "wrote"
    print(
        f"{summary.queries:,} queries, {summary.documents:,} documents, k={summary.k}, "
        f"{'exact' if summary.exact else 'approximate'} search; {state} {summary.out_dir}"
    )
    print(summary_table(summary))
    for method, result in summary.methods.items():
        recall = result.measures.get(f"recall_{summary.k}_vs_exact")
        if recall is not None:
            print(
                f"{method}: recall@{summary.k} of the approximate index against exact: {recall:.4f}"
            )
    if summary.fusion:
        weights = ", ".join(f"{m}={w:g}" for m, w in summary.fusion["weights"].items())
        print(f"fusion: {summary.fusion['rule']} ({weights}), {summary.fusion['source']}")
    for method, options in summary.expansion.items():
        print(
            f"{method}: alpha query expansion k={options['k']} alpha={options['alpha']:g}, {options['source']}"
        )
    for method, result in summary.methods.items():
        if result.full_ranking:
            f = result.full_ranking
            print(
                f"{method}: mAP@ALL {f['map_all']:.4f}, mAP@1000 (÷ relevant found) "
                f"{f['map_found_1000']:.4f} over {f['num_q']:,} queries x {f['documents']:,} documents"
            )
    if summary.skipped_queries:
        print(f"skipped {len(summary.skipped_queries)} query images (listed in summary.json)")
    print(
        f"query encoding {summary.encode_seconds:.1f} s; files: qrels.txt, "
        + ", ".join(f"run.{m}.txt" for m in summary.methods)
        + ", summary.json, summary.md"
    )
    return 0
