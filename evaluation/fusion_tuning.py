"""Choose the fusion rule and weights on validation images, never on the test split.

The CNN is trained on 45,000 CIFAR-10 train images; the other 5,000 are its validation set,
listed in its model directory as `validation.json` (`{"doc_ids": [...]}`). Those images are
in the index (it holds the whole train split), so each becomes a query with its stored
vectors: it is left out of its own results, and relevant = the other indexed documents of
its label (`LeaveOneOutQrels`). Every candidate of a small grid (RRF and weighted score
fusion with a few weights) is evaluated on the same hit lists, and the best by AP@k/min(R,k)
is saved as `$CBIR_HOME/models/fusion.json`, which `cbir evaluate --method fusion` then uses.

The same hit lists choose each method's alpha query expansion (`indexing/expansion.py`):
every (k, alpha) of `EXPANSION_GRID` searches the validation queries again, and the best is
saved in the same file for `cbir evaluate --method cnn+qe`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cbir.config import Settings
from cbir.errors import CbirError
from cbir.progress import progress
from evaluation.batch import _indexed_documents
from evaluation.evaluate import evaluate
from evaluation.qrels import LeaveOneOutQrels
from evaluation.run import ArrayRun
from indexing.expansion import SUFFIX, Expansion, expand_vectors, neighbour_vectors
from indexing.fusion import FusionRule, fuse
from indexing.stores.base import Hit, VectorStore, check_model, open_store

FUSION_FILE = "fusion.json"
VALIDATION_FILE = "validation.json"
FUSED_METHODS = ("bovw", "cnn")
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


@dataclass
class FusionChoice:
    """The chosen rule and weights, how they were chosen, and every candidate's score."""

    rule: str
    weights: dict[str, float]
    measure: str
    value: float
    queries: int
    validation_file: str
    models: dict[str, str]  # method -> fingerprint of the model that built the field
    key: str
    candidates: list[dict] = field(default_factory=list)
    # method -> {"k", "alpha", measure, "unexpanded", "candidates"}: the query expansion chosen
    expansion: dict[str, dict] = field(default_factory=dict)
    created: str = ""
    reused: bool = False

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "reused"}


def fusion_file(settings: Settings) -> Path:
    return settings.models_dir / FUSION_FILE


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


def tune_fusion(
    settings: Settings,
    *,
    store_url: str | None = None,
    validation: str | Path | None = None,
    k: int = 100,
    force: bool = False,
    show_progress: bool = True,
) -> FusionChoice:
    """Evaluate the grid on the validation queries, save the best to `fusion.json`; returns it.

    An earlier choice made from the same models, validation list and k is reused unless `force`.
    """
    if k <= 0:
        raise CbirError(f"-k must be positive, got {k}")
    url = store_url or settings.store
    with open_store(url, settings) as store:
        infos = _fields(store, url)
        path = (
            Path(validation) if validation else Path(store.meta["models"]["cnn"]) / VALIDATION_FILE
        )
        ids = validation_ids(path)
        models = {m: infos[m].fingerprint for m in FUSED_METHODS}
        key = _key(models, ids, k)
        saved = load_choice(settings)
        if saved is not None and saved.key == key and not force:
            saved.reused = True
            return saved
        stored = store.get(ids)
        queries = [
            i for i in ids if i in stored and all(m in stored[i].vectors for m in FUSED_METHODS)
        ]
        if len(queries) < len(ids):
            kept = set(queries)
            missing = [i for i in ids if i not in kept]
            raise CbirError(
                f"{len(missing):,} of the {len(ids):,} validation ids in {path} are not in the "
                f"index at {url} with both methods (e.g. {missing[0]!r}); validation images "
                "must be indexed train images: index the whole train split with "
                "`cbir index --method bovw,cnn`"
            )
        docnos, labels = _indexed_documents(store, _dataset(store, settings), FUSED_METHODS)
        qrels = LeaveOneOutQrels({q: stored[q].label for q in queries}, docnos, labels)
        lists = {
            m: _search_without_self(store, m, infos[m], [stored[q].vectors[m] for q in queries], queries, k)
            for m in FUSED_METHODS
        }  # fmt: skip
        measure = f"map_minRk_{k}"
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
            candidates.append(
                {"method": m, measure: _score(lists[m], queries, docnos, qrels, measure)}
            )
        fusions = [c for c in candidates if "rule" in c]
        best = max(fusions, key=lambda c: c[measure])  # first of equals: the grid's order
        unexpanded = {c["method"]: c[measure] for c in candidates if "method" in c}
        expansion = {
            m: _tune_expansion(
                store, m, infos[m], stored, queries, lists[m], k, docnos, qrels, measure,
                unexpanded[m], show_progress,
            )
            for m in FUSED_METHODS
        }  # fmt: skip
    choice = FusionChoice(
        rule=best["rule"],
        weights=best["weights"],
        measure=measure,
        value=best[measure],
        queries=len(queries),
        validation_file=str(path),
        models=models,
        key=key,
        candidates=candidates,
        expansion=expansion,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    target = fusion_file(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(choice.to_json(), indent=2) + "\n")
    partial.replace(target)
    return choice


def _tune_expansion(
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
        grid, desc=f"{method}{SUFFIX} grid", unit="setting", disable=not show_progress
    ):
        expanded = expand_vectors(
            vectors, [v[:n] for v in neighbours], [s[:n] for s in sims], alpha
        )
        hits = _search_without_self(store, method, info, list(expanded), queries, k)
        value = _score(hits, queries, docnos, qrels, measure)
        candidates.append({"k": n, "alpha": alpha, measure: value})
    best = max(candidates, key=lambda c: c[measure])  # first of equals: the grid's order
    return {**best, "unexpanded": unexpanded, "candidates": candidates}


def expansion_for(settings: Settings, method: str, fingerprint: str) -> tuple[Expansion, dict]:
    """The query expansion for `method` without explicit options: (expansion, provenance).

    The one chosen on validation when `fusion.json` was tuned for this model; otherwise
    the default `Expansion()`, and the provenance says why.
    """
    choice = load_choice(settings)
    tuned = choice.expansion.get(method) if choice is not None else None
    if tuned is None:
        return Expansion(), {"source": "default (not tuned: run `cbir tune-fusion`)"}
    if choice.models.get(method) != fingerprint:
        return Expansion(), {
            "source": f"default ({fusion_file(settings)} was tuned for another {method} model; "
            "run `cbir tune-fusion` again)"
        }
    return Expansion(int(tuned["k"]), float(tuned["alpha"])), {
        "source": "tuned on validation",
        "file": str(fusion_file(settings)),
        "measure": choice.measure,
        "value": tuned[choice.measure],
        "unexpanded": tuned["unexpanded"],
    }


def load_choice(settings: Settings) -> FusionChoice | None:
    """The saved choice, or None when there is none (or it cannot be read)."""
    path = fusion_file(settings)
    try:
        return FusionChoice(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def fusion_for(
    settings: Settings, fingerprints: Mapping[str, str]
) -> tuple[FusionRule, dict[str, float], dict]:
    """The fusion to use without explicit options: (rule, weights, provenance for the summary).

    The saved choice when it was made for these models (`fingerprints`: method -> fingerprint
    of the index's fields); otherwise RRF with weight 1 each, and the provenance says why.
    """
    default = (FusionRule.RRF, {m: 1.0 for m in FUSED_METHODS})
    choice = load_choice(settings)
    if choice is None:
        return *default, {"source": "default (no tuned fusion: run `cbir tune-fusion`)"}
    if any(choice.models.get(m) != fingerprints.get(m) for m in FUSED_METHODS):
        return *default, {
            "source": f"default ({fusion_file(settings)} was tuned for other models; run "
            "`cbir tune-fusion` again)"
        }
    return (
        FusionRule(choice.rule),
        dict(choice.weights),
        {
            "source": "tuned on validation",
            "file": str(fusion_file(settings)),
            "validation_file": choice.validation_file,
            "validation_queries": choice.queries,
            "measure": choice.measure,
            "value": choice.value,
        },
    )


def _fields(store: VectorStore, url: str):
    if not store.exists() or any(m not in store.fields for m in FUSED_METHODS):
        raise CbirError(
            f"the index at {url} needs both {' and '.join(FUSED_METHODS)} fields; "
            "build it with `cbir index --method bovw,cnn`"
        )
    recorded = store.meta.get("models", {})
    if any(m not in recorded for m in FUSED_METHODS):
        raise CbirError(f"the index at {url} does not record where its models live; index again")
    return {m: store.fields[m] for m in FUSED_METHODS}


def _dataset(store: VectorStore, settings: Settings):
    """The dataset the index was built from (its labels are the judgments)."""
    from indexing.datasets import open_dataset

    info = store.meta.get("dataset")
    if not info:
        raise CbirError(f"the index at {store.url} does not record its dataset; index again")
    return open_dataset(info["name"], settings, info["source"])


def _search_without_self(store, method, info, vectors, queries: Sequence[str], k: int):
    """Each query's top k with itself left out (it is indexed, so it comes back first)."""
    check_model(method, store.fields[method], info, store.url)
    hits = store.search(method, np.stack(vectors).astype(np.float32), k + 1, model=info, exact=True)
    return [[h for h in row if h.doc_id != q][:k] for q, row in zip(queries, hits, strict=True)]


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


def _key(models: Mapping[str, str], ids: Sequence[str], k: int) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps([dict(models), sorted(ids), k, list(GRID), list(EXPANSION_GRID)]).encode()
    )
    return digest.hexdigest()[:16]


def open_search_service(settings: Settings, store_url: str | None = None):
    """`SearchService.open` with the fusion and query expansions chosen on validation for the
    index's models.

    For `cbir search` and the web page; without a choice for these models, RRF 1:1 and
    `Expansion()`.
    """
    from indexing.search import SearchService

    service = SearchService.open(settings, store_url)
    fields = service.store.fields
    if all(m in fields for m in FUSED_METHODS):
        rule, weights, _ = fusion_for(settings, {m: fields[m].fingerprint for m in FUSED_METHODS})
        service.fusion_rule, service.fusion_weights = rule, weights
    for m in service.base_methods:
        service.expansions[m], _ = expansion_for(settings, m, fields[m].fingerprint)
    return service
