"""`+gv`: re-rank a method's top candidates by geometric verification against the query.

The candidates' local features come from the index's sidecar (indexing/local_store.py); the
query's are extracted from its image with the sidecar's options, plus its mirror image.
A re-ranked hit's score is its inlier count plus a fraction (< 0.5) that falls with its
first rank, so scores stay strictly decreasing (trec_eval sorts by score) and ties in
inliers keep the first ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cbir.core.progress import progress
from features.local import LocalFeatures, extract_local
from features.verify import Verification, VerifyParams, rerank_order, verify_many
from indexing.datasets import Dataset, ImageRecord
from indexing.local_store import LocalOptions, LocalStore
from indexing.stores.base import Hit

DEFAULT_TOP = 50  # chosen on the validation copy set (benchmarks/copy_validation.py)


@dataclass(frozen=True)
class Reranking:
    """How +gv re-ranks: the first `top` candidates, verified with `params` on `workers` threads."""

    top: int = DEFAULT_TOP
    params: VerifyParams = field(default_factory=VerifyParams)
    workers: int = 2

    def __post_init__(self) -> None:
        if self.top < 1 or self.workers < 1:
            raise ValueError(f"top and workers must be positive, got {self.top}, {self.workers}")


def query_views(image: np.ndarray, options: LocalOptions) -> list[LocalFeatures]:
    """The query's local features as given and mirrored left-right (uint8 RGB (h, w, 3) in)."""
    kwargs = options.to_json()
    return [
        extract_local(image, **kwargs),
        extract_local(np.ascontiguousarray(image[:, ::-1]), **kwargs),
    ]


def verified_hits(
    hits: Sequence[Hit],
    views: Sequence[LocalFeatures],
    local: LocalStore,
    reranking: Reranking,
) -> tuple[list[Hit], dict[str, Verification]]:
    """The first `reranking.top` of `hits` re-ranked by inliers, then the rest as they were.

    Returns the hits (scores as in the module docstring; hits beyond `top` keep theirs minus
    nothing but come after) and the verification of every verified candidate by doc id.
    """
    head, tail = list(hits[: reranking.top]), list(hits[reranking.top :])
    stored = local.get(h.doc_id for h in head)
    results = verify_many(
        views, [stored.get(h.doc_id) for h in head], reranking.params, workers=reranking.workers
    )
    n = len(head)
    order = rerank_order(results, reranking.params.min_inliers)
    ranked = [
        head[i]._replace(score=float(results[i].inliers) + 0.5 * (n - i) / (n + 1)) for i in order
    ]
    # hits past `top` were not verified: below every verified score, in their first order
    rest = [
        h._replace(score=0.5 * (len(tail) - j) / (len(tail) + 1) / (n + 1))
        for j, h in enumerate(tail)
    ]
    return ranked + rest, {h.doc_id: r for h, r in zip(head, results, strict=True) if r.inliers}


def verify_hit_lists(
    dataset: Dataset,
    queries: Sequence[ImageRecord],
    hit_lists: Sequence[Sequence[Hit]],
    local: LocalStore,
    reranking: Reranking,
    show_progress: bool = True,
) -> list[list[Hit]]:
    """`verified_hits` for every query of a batch evaluation (query i's first list is hits i)."""
    out = []
    for record, hits in zip(
        queries,
        progress(hit_lists, desc="verify", total=len(queries), disable=not show_progress),
        strict=True,
    ):
        image = dataset.image(record, min_side=local.options.max_side)
        out.append(verified_hits(hits, query_views(image, local.options), local, reranking)[0])
    return out
