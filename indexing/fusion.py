"""Rank fusion: combine the hit lists of several methods into one ranking.

Two standard rules (neither store nor the systems we compare with ship one):
- reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): score(d) = sum over methods
  of w_m / (k0 + rank_m(d)), ranks from 1, k0 = 60; a document absent from a list adds 0;
- weighted score fusion (CombSUM of min-max normalised scores, Fox & Shaw 1994): each list's
  cosines are scaled to [0, 1] within that list, then summed with weights; absent adds 0.
Ties are broken like every ranking here: doc id descending (trec_eval's order).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from indexing.stores.base import Hit

RRF_K0 = 60


class FusionRule(enum.StrEnum):
    RRF = "rrf"
    WEIGHTED = "weighted"


def fuse(
    hit_lists: Mapping[str, Sequence[Hit]],
    k: int,
    rule: FusionRule | str = FusionRule.RRF,
    weights: Mapping[str, float] | None = None,
    k0: int = RRF_K0,
) -> list[Hit]:
    """The top `k` of the fused ranking of `hit_lists` (method -> hits, best first).

    `weights` default to 1 per method. Each fused hit's score is the fused score (not a cosine).
    """
    rule = FusionRule(rule)
    weights = {m: 1.0 for m in hit_lists} if weights is None else dict(weights)
    unknown = set(weights) - set(hit_lists)
    if unknown:
        raise ValueError(f"weights for methods without hits: {sorted(unknown)}")
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for method, hits in hit_lists.items():
        weight = weights.get(method, 0.0)
        if rule is FusionRule.RRF:
            contributions = [weight / (k0 + rank) for rank in range(1, len(hits) + 1)]
        else:
            contributions = [weight * s for s in _min_max([h.score for h in hits])]
        for hit, value in zip(hits, contributions, strict=True):
            scores[hit.doc_id] = scores.get(hit.doc_id, 0.0) + value
            first.setdefault(hit.doc_id, hit)
    ranked = sorted(scores, key=lambda d: (scores[d], d), reverse=True)[:k]
    return [first[d]._replace(score=scores[d]) for d in ranked]


def _min_max(values: Sequence[float]) -> list[float]:
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [1.0] * len(values)
    return [(v - low) / (high - low) for v in values]
