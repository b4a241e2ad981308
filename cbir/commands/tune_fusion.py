"""`cbir tune-fusion`: choose the fusion rule and weights on validation images (never the test split)."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

NAME = "tune-fusion"
HELP = (
    "choose fusion rule and weights, and each method's query expansion, on the CNN's validation "
    "images (train split, leave-one-out) for `cbir evaluate --method fusion,cnn+qe`"
)


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--validation",
        help='JSON file {"doc_ids": [...]} of indexed images (default: validation.json '
        "in the directory of the CNN model that built the index)",
    )
    parser.add_argument("-k", type=int, default=100, help="cut-off of AP@k/min(R,k) (default 100)")
    parser.add_argument(
        "--force", action="store_true", help="tune again even if a choice for these models exists"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.core.progress import Stopwatch
    from cbir.stages.tune import tune_fusion
    from indexing.fusion_expansion import choice_file

    clock = Stopwatch()
    choice = tune_fusion(settings, validation=args.validation, k=args.k, force=args.force)
    if choice.reused:
        print(f"reused the choice in {choice_file(settings)} (same models, validation list and k)")
    else:
        print(f"{choice.queries:,} validation queries from {choice.validation_file}")
        for candidate in choice.candidates:
            name = candidate.get("method") or (
                f"{candidate['rule']} bovw={candidate['weights']['bovw']:g} "
                f"cnn={candidate['weights']['cnn']:g}"
            )
            print(f"  {name:<28} {choice.measure} {candidate[choice.measure]:.4f}")
        for method, tuned in choice.expansion.items():
            for candidate in tuned["candidates"]:
                name = f"{method}+qe k={candidate['k']} alpha={candidate['alpha']:g}"
                print(f"  {name:<28} {choice.measure} {candidate[choice.measure]:.4f}")
    for method, tuned in choice.expansion.items():
        print(
            f"{method}+qe: k={tuned['k']} alpha={tuned['alpha']:g}, {choice.measure} "
            f"{tuned[choice.measure]:.4f} on validation ({method} alone {tuned['unexpanded']:.4f})"
        )
    weights = ", ".join(f"{m}={w:g}" for m, w in choice.weights.items())
    print(
        f"fusion: {choice.rule} ({weights}), {choice.measure} {choice.value:.4f} on validation; "
        f"saved in {choice_file(settings)} ({clock.seconds:.1f} s)"
    )
    return 0
