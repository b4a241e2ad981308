"""`cbir tune-fusion`: choose fusion and query expansion on validation queries, save the choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from evaluation.fusion_tuning import (
    VALIDATION_FILE,
    expansion_grid,
    fusion_grid,
    search_without_self,
    tuning_key,
    validation_ids,
)
from evaluation.qrels import LeaveOneOutQrels
from indexing.fusion_expansion import (
    FUSED_METHODS,
    FusionExpansionChoice,
    choice_file,
    load_choice,
)
from indexing.indexed import dataset_of, indexed_documents
from indexing.stores.base import VectorStore
from indexing.stores.urls import open_store


def tune_fusion(
    settings: Settings,
    *,
    store_url: str | None = None,
    validation: str | Path | None = None,
    k: int = 100,
    force: bool = False,
    show_progress: bool = True,
) -> FusionExpansionChoice:
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
        key = tuning_key(models, ids, k)
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
        docnos, labels = indexed_documents(store, dataset_of(store, settings), FUSED_METHODS)
        qrels = LeaveOneOutQrels({q: stored[q].label for q in queries}, docnos, labels)
        lists = {
            m: search_without_self(store, m, infos[m], [stored[q].vectors[m] for q in queries], queries, k)
            for m in FUSED_METHODS
        }  # fmt: skip
        measure = f"map_minRk_{k}"
        candidates = fusion_grid(lists, queries, docnos, qrels, k, measure, show_progress)
        fusions = [c for c in candidates if "rule" in c]
        best = max(fusions, key=lambda c: c[measure])  # first of equals: the grid's order
        unexpanded = {c["method"]: c[measure] for c in candidates if "method" in c}
        expansion = {
            m: expansion_grid(
                store, m, infos[m], stored, queries, lists[m], k, docnos, qrels, measure,
                unexpanded[m], show_progress,
            )
            for m in FUSED_METHODS
        }  # fmt: skip
    choice = FusionExpansionChoice(
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
    target = choice_file(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(choice.to_json(), indent=2) + "\n")
    partial.replace(target)
    return choice


def _fields(store: VectorStore, url: str):
    """The fused methods' fields, checked: both indexed, their models recorded."""
    if not store.exists() or any(m not in store.fields for m in FUSED_METHODS):
        raise CbirError(
            f"the index at {url} needs both {' and '.join(FUSED_METHODS)} fields; "
            "build it with `cbir index --method bovw,cnn`"
        )
    recorded = store.meta.get("models", {})
    if any(m not in recorded for m in FUSED_METHODS):
        raise CbirError(f"the index at {url} does not record where its models live; index again")
    return {m: store.fields[m] for m in FUSED_METHODS}
