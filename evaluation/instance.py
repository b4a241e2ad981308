"""Instance-retrieval protocols: revisited Oxford/Paris, UKBench N-S score, copy-detection µAP.

Each follows its public reference implementation (definitions restated, code our own; see
docs/evaluation-measures.md and the agreement tests):

- revisited Oxford/Paris (Radenović et al., CVPR 2018; revisitop `compute_map`): junk
  images are removed from the ranking before positions are counted; AP is the trapezoid
  rule over the precision-recall steps, `sum_j ((j / r_j) + (j + 1) / (r_j + 1)) / 2 / |ok|`
  with r_j the 0-based position of the j-th positive (j / r_j read as 1 when r_j = 0);
  queries without positives are left out. Easy: ok = easy, junk = junk + hard; Medium:
  ok = easy + hard, junk = junk; Hard: ok = hard, junk = junk + easy. mP@k is revisitop's:
  positives among the first min(k, last positive's rank) over that number.
- UKBench (Nistér & Stewénius, CVPR 2006): the mean over queries of how many of the query's
  relevant images (itself included when it is in the collection) are among the first 4.
- copy detection (DISC21, facebookresearch/isc2021 `isc/metrics.py`): every (query,
  reference, score) prediction of every query is pooled and sorted by score, ties put
  non-matches first (the worst case); µAP = sum over the pooled list of precision times the
  step in recall, recall = true pairs found / all ground-truth pairs; recall at 90 %
  precision is the highest recall at any point whose precision is >= 0.9 (None if none).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.errors import EvaluationError

SETUPS = {  # setup -> (groups counted positive, groups ignored as junk)
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}
KAPPAS = (1, 5, 10)


def positive_positions(
    ranking: Sequence[str], ok: Collection[str], junk: Collection[str] = ()
) -> np.ndarray:
    """int64: 0-based positions of the positives in `ranking` once the junk is removed."""
    ok, junk = set(ok), set(junk) - set(ok)
    kept = [doc for doc in ranking if doc not in junk]
    return np.fromiter((i for i, doc in enumerate(kept) if doc in ok), dtype=np.int64)


def trapezoid_ap(positions: np.ndarray, num_positive: int) -> float:
    """AP by the trapezoid rule from the positives' 0-based positions (revisitop's)."""
    if num_positive <= 0:
        raise EvaluationError("AP needs at least one positive")
    j = np.arange(len(positions), dtype=np.float64)
    r = positions.astype(np.float64)
    before = np.where(r > 0, j / np.where(r > 0, r, 1.0), 1.0)
    after = (j + 1) / (r + 1)
    return float(((before + after) / 2.0).sum() / num_positive)


def revisited_precision(positions: np.ndarray, k: int) -> float:
    """revisitop's mP@k term: positives in the first min(k, last positive rank) / that number."""
    if not len(positions):
        return 0.0
    ranks = positions + 1
    top = min(int(ranks.max()), k)
    return float((ranks <= top).sum() / top)


@dataclass(frozen=True)
class SetupResult:
    """One setup of the revisited protocol: mAP, mP@k and per-query AP (NaN: no positive)."""

    map: float
    precision: dict[int, float]
    ap: dict[str, float]
    num_q: int


def revisited(
    rankings: Mapping[str, Sequence[str]],
    ground_truth: Mapping[str, Mapping[str, Collection[str]]],
    kappas: Sequence[int] = KAPPAS,
) -> dict[str, SetupResult]:
    """Easy / Medium / Hard results; `ground_truth[q]` has "easy", "hard", "junk" lists.

    A query with no ranking ranks nothing (AP 0); rankings of unknown queries are an error.
    """
    extra = [q for q in rankings if q not in ground_truth]
    if extra:
        raise EvaluationError(f"run topic {extra[0]!r} is not a query of the ground truth")
    out = {}
    for setup, (positive, ignored) in SETUPS.items():
        aps: dict[str, float] = {}
        precisions = {k: 0.0 for k in kappas}
        for query, groups in ground_truth.items():
            ok = {d for g in positive for d in groups.get(g, ())}
            if not ok:
                aps[query] = float("nan")
                continue
            junk = {d for g in ignored for d in groups.get(g, ())}
            positions = positive_positions(rankings.get(query, ()), ok, junk)
            aps[query] = trapezoid_ap(positions, len(ok))
            for k in kappas:
                precisions[k] += revisited_precision(positions, k)
        n = sum(not np.isnan(v) for v in aps.values())
        total = sum(v for v in aps.values() if not np.isnan(v))
        out[setup] = SetupResult(
            map=total / n if n else 0.0,
            precision={k: v / n if n else 0.0 for k, v in precisions.items()},
            ap=aps,
            num_q=n,
        )
    return out


def ns_score(
    rankings: Mapping[str, Sequence[str]],
    relevant: Mapping[str, Collection[str]],
    n: int = 4,
) -> float:
    """UKBench N-S score: mean over the ground truth's queries of relevant images in the top n."""
    if not relevant:
        raise EvaluationError("the ground truth has no queries")
    found = [len(set(rankings.get(q, ())[:n]) & set(docs)) for q, docs in relevant.items()]
    return float(np.mean(found))


@dataclass(frozen=True)
class CopyDetection:
    """µAP over all query-reference pairs, and the operating point at 90 % precision."""

    micro_ap: float
    recall_at_p90: float | None
    threshold_at_p90: float | None
    predictions: int
    positives: int


def copy_detection(
    predictions: Iterable[tuple[str, str, float]],
    matches: Collection[tuple[str, str]],
    required_precision: float = 0.9,
) -> CopyDetection:
    """µAP of pooled (query, reference, score) predictions against the true (query, ref) pairs."""
    truth = set(matches)
    if not truth:
        raise EvaluationError("the ground truth has no (query, reference) match")
    triples = list(predictions)
    if len({(q, d) for q, d, _ in triples}) != len(triples):
        raise EvaluationError("a (query, reference) pair is predicted twice")
    scores = np.array([s for _, _, s in triples], dtype=np.float64)
    correct = np.array([(q, d) in truth for q, d, _ in triples], dtype=bool)
    order = np.lexsort((correct, -scores))  # score descending, non-matches first in a tie
    scores, correct = scores[order], correct[order]
    found = np.cumsum(correct)
    precision = found / np.arange(1, len(found) + 1)
    recall = found / len(truth)
    steps = np.diff(recall, prepend=0.0)
    valid = precision >= required_precision
    if valid.any():
        best = int(np.argmax(np.where(valid, recall, -1.0)))
        at_p90: tuple[float | None, float | None] = (float(recall[best]), float(scores[best]))
    else:
        at_p90 = (None, None)
    return CopyDetection(
        micro_ap=float((steps * precision).sum()),
        recall_at_p90=at_p90[0],
        threshold_at_p90=at_p90[1],
        predictions=len(triples),
        positives=len(truth),
    )
