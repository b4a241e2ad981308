"""The grid search behind `cbir tune-fusion`: score fusion rules and query expansions on validation.

The CNN is trained on 45,000 CIFAR-10 train images; the other 5,000 are its validation set,
listed in its model directory as `validation.json` (`{"doc_ids": [...]}`). Those images are
in the index (it holds the whole train split), so each becomes a query with its stored
vectors: it is left out of its own results, and relevant = the other indexed documents of
its label (`LeaveOneOutQrels`). Every candidate of a small grid (RRF and weighted score
fusion with a few weights) is evaluated on the same hit lists and ranked by AP@k/min(R,k);
the same hit lists choose each method's alpha query expansion (every (k, alpha) of
`EXPANSION_GRID`). The stage (cbir/stages/tune.py) saves the best as the tuned choice
(indexing/fusion_expansion.py). Never run on the test split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cbir.core.errors import CbirError
from cbir.core.progress import progress
from evaluation.evaluate import evaluate
from evaluation.run import ArrayRun
from indexing.expansion import expand_vectors, neighbour_vectors
from indexing.fusion import fuse
from indexing.fusion_expansion import FUSED_METHODS
from indexing.methods import MethodName
from indexing.stores.base import Hit, VectorStore, check_model, search_leaving_out

VALIDATION_FILE = "validation.json"
# (rule, bovw weight) with the CNN's weight 1: the CNN is expected to be the stronger method.
GRID: tuple[tuple[str, float], ...] = (
    ("rrf", 1.0),
    ("rrf", 0.5),
    ("rrf", 0.25),
    ("weighted", 1.0),
    ("weighted", 0.5),
    ("weighted", 0.25),
    ("weighted", 0.1),
)
# (neighbours, alpha) for alpha query expansion, tried for each method.
EXPANSION_GRID: tuple[tuple[int, float], ...] = (
    (5, 3.0),
    (10, 3.0),
    (20, 3.0),
    (50, 3.0),
    (10, 1.0),
    (20, 1.0),
)


def validation_ids(path: Path) -> list[str]:
    """The doc ids listed in a `validation.json` file; CbirError naming the file otherwise."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CbirError(
            f"no validation list at {path}; the CNN model directory should hold {VALIDATION_FILE} "
            '({"doc_ids": [...]}), or pass --validation FILE'
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CbirError(f"cannot read validation list {path}: {exc}") from None
    ids = data.get("doc_ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise CbirError(
            f'{path}: expected {{"doc_ids": ["train/cat/0001", ...]}} (a non-empty list)'
        )
    return list(dict.fromkeys(ids))


def fusion_grid(
    lists: Mapping[str, Sequence[Sequence[Hit]]],
    queries: Sequence[str],
    docnos: Sequence[str],
    qrels,
    k: int,
    measure: str,
    show_progress: bool = True,
) -> list[dict]:
    """Every (rule, weights) of `GRID`, then each method alone, scored by `measure`."""
    candidates = []
    for rule, bovw_weight in progress(
        GRID, desc="fusion grid", unit="rule", disable=not show_progress
    ):
        weights = {"bovw": bovw_weight, "cnn": 1.0}
        fused = [
            fuse({m: lists[m][i] for m in FUSED_METHODS}, k, rule, weights)
            for i in range(len(queries))
        ]
        value = _score(fused, queries, docnos, qrels, measure)
        candidates.append({"rule": rule, "weights": weights, measure: value})
    for m in FUSED_METHODS:  # for comparison in the saved file, never chosen
        candidates.append({"method": m, measure: _score(lists[m], queries, docnos, qrels, measure)})
    return candidates


def expansion_grid(
    store: VectorStore,
    method: str,
    info,
    stored,
    queries: Sequence[str],
    first: Sequence[Sequence[Hit]],
    k: int,
    docnos: Sequence[str],
    qrels,
    measure: str,
    unexpanded: float,
    show_progress: bool,
) -> dict:
    """Score every (k, alpha) of the grid on the leave-one-out validation queries; the best.

    The first round is `first` (each query's hits without itself); the neighbours' vectors
    are fetched once for the largest k. Returns the best entry, which says what the method
    scored without expansion, and every candidate's score.
    """
    grid = [(n, a) for n, a in EXPANSION_GRID if n <= k]
    deepest = max(n for n, _ in grid)
    top = [list(hits[:deepest]) for hits in first]
    vectors = np.stack([stored[q].vectors[method] for q in queries]).astype(np.float32)
    neighbours = neighbour_vectors(store, method, top, vectors.shape[1])
    sims = [np.array([h.score for h in hits], np.float64) for hits in top]
    candidates = []
    for n, alpha in progress(
        grid,
        desc=f"{MethodName(method, expanded=True)} grid",
        unit="setting",
        disable=not show_progress,
    ):
        expanded = expand_vectors(
            vectors, [v[:n] for v in neighbours], [s[:n] for s in sims], alpha
        )
        hits = search_without_self(store, method, info, list(expanded), queries, k)
        value = _score(hits, queries, docnos, qrels, measure)
        candidates.append({"k": n, "alpha": alpha, measure: value})
    best = max(candidates, key=lambda c: c[measure])  # first of equals: the grid's order
    return {**best, "unexpanded": unexpanded, "candidates": candidates}


def search_without_self(store, method, info, vectors, queries: Sequence[str], k: int):
    """Each query's top k with itself left out (it is indexed, so it comes back first)."""
    check_model(method, store.fields[method], info, store.url)
    vectors = np.stack(vectors).astype(np.float32)
    return search_leaving_out(store, method, vectors, k, list(queries), model=info, exact=True)


def _score(
    hits: Sequence[Sequence[Hit]],
    queries: Sequence[str],
    docnos: Sequence[str],
    qrels,
    measure: str,
) -> float:
    run = ArrayRun.from_hits(queries, hits, docnos, tag="tune")
    cut = measure.rsplit("_", 1)[1]
    return float(evaluate(qrels, run, [f"map_minRk.{cut}"]).summary[measure])


def tuning_key(models: Mapping[str, str], ids: Sequence[str], k: int) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps([dict(models), sorted(ids), k, list(GRID), list(EXPANSION_GRID)]).encode()
    )
    return digest.hexdigest()[:16]
