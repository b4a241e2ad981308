"""`cbir search`: the most similar indexed images to an image file or a known doc id."""

from __future__ import annotations

import argparse

from cbir.core.config import Settings

NAME = "search"
HELP = "print the top hits for an image file (or --id DOC_ID) from the index"


def add_arguments(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", help="an image file to search with")
    parser.add_argument(
        "--id",
        dest="doc_id",
        help="search with a known image instead (indexed or from the dataset)",
    )
    parser.add_argument(
        "--method",
        default="cnn",
        help="bovw, cnn, fusion, or bovw+qe / cnn+qe (query expansion) (default cnn)",
    )
    parser.add_argument("-k", type=int, default=10, help="number of hits (default 10)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from cbir.stages.search import search
    from indexing.methods import MethodName

    answer = search(settings, image=args.image, doc_id=args.doc_id, method=args.method, k=args.k)
    result, quality = answer.result, answer.quality
    name = MethodName.parse(result.method)
    score_name = "inliers" if name.verified else "fused" if name.is_fusion else "cosine"
    print(f"{'rank':>4}  {score_name:>8}  {'label':<12} {'id':<28} path")
    for rank, hit in enumerate(result.hits, start=1):
        print(
            f"{rank:>4}  {hit.score:>8.4f}  {hit.label or '-':<12} {hit.doc_id:<28} {hit.path or '-'}"
        )
    if quality:
        print(
            f"query label {result.query.label}: P@{result.k} {quality['precision']:.3f}, AP@{result.k} {quality['ap']:.3f}"
        )
    for doc_id, check in (result.verifications or {}).items():
        t = check.to_json()
        print(
            f"verified {doc_id}: {t['inliers']} inliers, angle {t['angle']}, scale {t['scale']}"
            + (" (mirrored)" if t["mirrored"] else "")
        )
    print(f"{result.method}, k={result.k}, {result.took_ms:.1f} ms")
    return 0
