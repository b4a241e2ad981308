"""The `cbir evaluate` stage: query an index with a dataset's test images, write TREC files, measure.

Queries are the test split (CIFAR-10: 10,000 images), encoded on Ray with the very models
that built the index (a different model is refused); the index side is whatever `cbir index`
wrote. Relevant = same label. Writes `qrels.txt` (every indexed document of the query's
label), one `run.<method>.txt` per method, and `summary.json` / `summary.md`; the numbers in
the summary are computed in memory from the same rankings the run files hold, so
`cbir trec-eval qrels.txt run.<method>.txt` prints the same values.

This module sits above `indexing` (it searches a store); the rest of `evaluation/` does not
import it, so the measures stay usable without any store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from cbir.core.progress import Stopwatch
from evaluation.evaluate import evaluate
from evaluation.full_ranking import stored_full_rankings
from evaluation.qrels import LabelQrels
from evaluation.run import ArrayRun
from evaluation.summary import EvaluationSummary, MethodResult, measures_for, summary_markdown
from evaluation.trec_write import write_qrels, write_run
from indexing.dataset_kinds import open_dataset
from indexing.datasets import ImageRecord, Split, limit_per_label
from indexing.encoding import LOCAL_RAY, RayOptions, encode_batches
from indexing.expansion import Expansion, expanded_search
from indexing.fusion import FusionRule, fuse
from indexing.fusion_expansion import expansion_for, fusion_for
from indexing.indexed import indexed_documents
from indexing.local_store import LocalStore
from indexing.methods import FUSION, MethodName
from indexing.models import load_models
from indexing.skipped import SkipReport
from indexing.stores.base import Hit, RankedHits, VectorStore, check_model
from indexing.stores.urls import open_store
from indexing.verified_search import Reranking, verify_hit_lists

DEFAULT_FUSION_WEIGHTS = {"bovw": 1.0, "cnn": 1.0}


def evaluate_dataset(
    settings: Settings,
    *,
    dataset: str = "cifar10",
    data: str | None = None,
    methods: Sequence[str] = ("bovw", "cnn", FUSION),
    k: int = 100,
    out_dir: str | Path | None = None,
    store_url: str | None = None,
    exact: bool = False,
    num_candidates: int | None = None,
    fusion_rule: FusionRule | str | None = None,
    fusion_weights: Mapping[str, float] | None = None,
    expansion: Expansion | None = None,
    reranking: Reranking | None = None,
    ray: RayOptions | None = LOCAL_RAY,
    limit: int | None = None,
    force: bool = False,
    show_progress: bool = True,
    full_ranking: bool = False,
) -> EvaluationSummary:
    """Evaluate every method (and their fusion) on the test split; returns the summary.

    `exact` asks Elasticsearch for exact script_score search (the embedded store is always
    exact). `limit` keeps the first n queries of each label. A method named `<m>+qe` is `<m>`
    searched again after alpha query expansion: with `expansion` when given, else with the
    one `cbir tune-fusion` chose on validation. A method named `<m>+gv` is `<m>`'s first
    min(k, reranking.top) hits re-ranked by geometric verification (indexing/verified_search.py;
    needs `cbir index --local`). An identical earlier evaluation in `out_dir`
    (same models, documents, queries and options) is reused unless `force`. `full_ranking`
    adds mAP over every document and the hashing mAP@1000 for bovw and cnn
    (evaluation/full_ranking.py).
    """
    if k <= 0:
        raise CbirError(f"-k must be positive, got {k}")
    methods = list(dict.fromkeys(methods))
    names = [MethodName.parse(m) for m in methods]
    if any(n.is_fusion and n.expanded for n in names):
        raise CbirError(
            f"query expansion works on one method's vectors: {FUSION}+qe does not exist"
        )
    # what +gv re-ranks is computed even when not asked for itself
    firsts = [str(n.unverified) for n in names if n.verified]
    names += [MethodName.parse(m) for m in firsts if m not in methods]
    base = list(dict.fromkeys(n.base for n in names if not n.is_fusion))
    fused = any(n.is_fusion and not n.expanded for n in names)
    if fused:
        base = list(dict.fromkeys([*base, *DEFAULT_FUSION_WEIGHTS]))
    url = store_url or settings.store
    out = Path(out_dir) if out_dir else settings.runs_dir / dataset
    ds = open_dataset(dataset, settings, data)
    queries = limit_per_label(ds.records(Split.TEST), limit)
    if not queries:
        raise CbirError(
            f"dataset {ds.source} has no test split: put query images under test/<label>/"
        )
    with open_store(url, settings) as store:
        _check_index(store, base, url)
        exact = exact or (url.startswith("local:") and not getattr(store, "approximate", False))
        models = _models_of(store, base)
        docnos, doc_labels = indexed_documents(store, ds, base)
        fusion_rule, weights, fusion = _fusion_options(
            settings, store, base, fusion_rule, fusion_weights, fused
        )
        expansions = _expansion_options(settings, store, [*methods, *firsts], expansion)
        key = _cache_key(store, base, methods, docnos, queries, k, exact, num_candidates, fusion)
        key["expansion"] = expansions
        if full_ranking:
            key["full_ranking"] = True
        reranking = reranking or Reranking()
        local = _local_features(settings, url) if firsts else None
        if local is not None:
            key["verification"] = {
                "top": reranking.top,
                **_params_json(reranking),
                **local.options.to_json(),
            }
        cached = _reusable(out, key) if not force else None
        if cached is not None:
            return cached
        clock = Stopwatch()
        vectors, kept, skipped = _encode_queries(
            ds, queries, store, base, ray, settings, show_progress
        )
        encode_seconds = clock.seconds
        ranked: dict[str, RankedHits] = {}
        hit_lists = _HitLists(ranked)
        results: dict[str, MethodResult] = {}
        qrels = LabelQrels({q.doc_id: q.label for q in kept}, docnos, doc_labels)
        out.mkdir(parents=True, exist_ok=True)
        for method in base:
            clock = Stopwatch()
            ranked[method] = store.search_ranked(
                method,
                vectors[method],
                k,
                model=models[method],
                exact=exact,
                num_candidates=num_candidates,
            )
            seconds = clock.seconds
            if method in methods:
                results[method] = _measure(
                    method, ranked[method], kept, docnos, qrels, out, seconds, k
                )
                results[method].model = models[method].to_json()
                if not exact and hasattr(store, "recall_at_k"):  # approximate embedded index
                    results[method].measures[f"recall_{k}_vs_exact"] = store.recall_at_k(
                        method, vectors[method], ranked[method], k, models[method]
                    )
        if full_ranking:
            ranked = [m for m in base if m in methods]
            labels = dict(zip(docnos, doc_labels, strict=True))
            for method, values in stored_full_rankings(
                store, ranked, vectors, kept, labels
            ).items():
                results[method].full_ranking = values
        if fused:
            clock = Stopwatch()
            fused_hits = [
                fuse({m: hit_lists[m][i] for m in base}, k, fusion_rule, weights)
                for i in range(len(kept))
            ]
            hit_lists[FUSION] = fused_hits
            results[FUSION] = _measure(
                FUSION, fused_hits, kept, docnos, qrels, out, clock.seconds, k
            )
        for method, options in expansions.items():
            clock = Stopwatch()
            m = MethodName.parse(method).base
            chosen = Expansion(options["k"], options["alpha"])
            hits = expanded_search(
                store,
                m,
                vectors[m],
                k,
                chosen,
                model=models[m],
                exact=exact,
                num_candidates=num_candidates,
                first=hit_lists[m] if k >= chosen.k else None,
            )
            hit_lists[method] = hits
            results[method] = _measure(method, hits, kept, docnos, qrels, out, clock.seconds, k)
            results[method].model = models[m].to_json()
        for method in [m for m, n in zip(methods, names, strict=False) if n.verified]:
            clock = Stopwatch()
            first = hit_lists[str(MethodName.parse(method).unverified)]
            hits = verify_hit_lists(ds, kept, first, local, reranking, show_progress)
            results[method] = _measure(method, hits, kept, docnos, qrels, out, clock.seconds, k)
    qrels_path = out / "qrels.txt"
    clock = Stopwatch()
    write_qrels(qrels_path, qrels)
    summary = EvaluationSummary(
        dataset=ds.name,
        store=url,
        queries=len(kept),
        documents=len(docnos),
        k=k,
        exact=exact,
        methods={m: results[m] for m in methods},
        encode_seconds=round(encode_seconds, 3),
        qrels_file=str(qrels_path),
        out_dir=str(out),
        fusion=fusion,
        expansion=expansions,
        skipped_queries=[{"path": s.path, "reason": s.reason} for s in skipped.items],
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    data = summary.to_json()
    data["cache_key"] = key
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    return summary


def _local_features(settings: Settings, url: str) -> LocalStore:
    local = LocalStore.open(settings, url)
    if not local.exists():
        raise CbirError(
            f"the index at {url} has no local features for +gv; "
            "add them with `cbir index --local` (same dataset and methods)"
        )
    return local


def _params_json(reranking: Reranking) -> dict:
    params = asdict(reranking.params)
    return {**params, "model": reranking.params.model.value}


def _fusion_options(settings, store, base, rule, weights, wanted: bool):
    """(rule, weights, the summary's `fusion` entry): explicit options, else the tuned choice."""
    if rule is None and weights is None and set(DEFAULT_FUSION_WEIGHTS) <= set(base):
        rule, weights, provenance = fusion_for(
            settings, {m: store.fields[m].fingerprint for m in DEFAULT_FUSION_WEIGHTS}
        )
    else:
        provenance = {"source": "command line"}
    rule = FusionRule(rule or FusionRule.RRF)
    weights = dict(weights or {m: DEFAULT_FUSION_WEIGHTS.get(m, 1.0) for m in base})
    fusion = {"rule": rule.value, "weights": weights, **provenance} if wanted else {}
    return rule, weights, fusion


def _expansion_options(settings, store, methods, expansion: Expansion | None) -> dict:
    """Each `<m>+qe` method's k and alpha with their provenance: explicit, else tuned."""
    options = {}
    for method in methods:
        name = MethodName.parse(method)
        if not name.expanded:
            continue
        if expansion is not None:
            chosen, provenance = expansion, {"source": "command line"}
        else:
            m = name.base
            chosen, provenance = expansion_for(settings, m, store.fields[m].fingerprint)
        options[method] = {"k": chosen.k, "alpha": chosen.alpha, **provenance}
    return options


def _check_index(store: VectorStore, methods: Sequence[str], url: str) -> None:
    if not store.exists() or not store.fields:
        raise CbirError(f"no index at {url}; build one with `cbir index`")
    missing = [m for m in methods if m not in store.fields]
    if missing:
        have = ", ".join(store.fields) or "none"
        raise CbirError(
            f"the index at {url} has no {', '.join(missing)} field (it has: {have}); "
            f"run `cbir index --method {','.join(missing)}` first"
        )


def _models_of(store: VectorStore, methods: Sequence[str]):
    """The models that built each field, loaded from the paths the index recorded, checked."""
    paths = store.meta.get("models", {})
    missing = [m for m in methods if m not in paths]
    if missing:
        raise CbirError(
            f"the index does not record where the {', '.join(missing)} model lives; index again"
        )
    models = load_models({m: Path(paths[m]) for m in methods})
    infos = {m: ex.info for m, ex in models.items()}
    for m in methods:
        check_model(m, store.fields[m], infos[m], store.url)
    return infos


def _encode_queries(
    ds, queries: Sequence[ImageRecord], store, methods, ray, settings, show_progress
):
    dirs = {m: Path(store.meta["models"][m]) for m in methods}
    skipped = SkipReport(s for s in ds.skipped.items if s.path in {q.path for q in queries})
    rows: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
    by_id: dict[str, ImageRecord] = {}
    batches = ds.iter_batches(records=queries, batch_size=1000)
    for result in encode_batches(
        batches,
        dirs,
        ray=ray,
        max_pixels=settings.max_pixels,
        total=len(queries),
        desc="encode queries",
        show_progress=show_progress,
    ):
        skipped.extend(result.skipped)
        for i, record in enumerate(result.records):
            by_id[record.doc_id] = record
            for m in methods:
                rows[m][record.doc_id] = result.vectors[m][i]
    kept = [q for q in queries if q.doc_id in by_id]
    if not kept:
        raise CbirError("no query image could be decoded; see the skipped list")
    vectors = {m: np.stack([rows[m][q.doc_id] for q in kept]).astype(np.float32) for m in methods}
    return vectors, kept, skipped


class _HitLists(dict):
    """Hit lists per method, a searched one's built from its arrays when first used (fusion,
    +qe, +gv need hits; run files and measures use the arrays)."""

    def __init__(self, ranked: Mapping[str, RankedHits]):
        super().__init__()
        self.ranked = ranked

    def __missing__(self, method: str) -> list[list[Hit]]:
        hits = self[method] = self.ranked[method].hit_lists()
        return hits


def _measure(
    method: str,
    hits: list[list[Hit]] | RankedHits,
    queries: Sequence[ImageRecord],
    docnos: Sequence[str],
    qrels: LabelQrels,
    out: Path,
    search_seconds: float,
    k: int,
) -> MethodResult:
    """Rank arrays from hits, the run file, the measures and the per-label breakdown."""
    topics, tag = [q.doc_id for q in queries], f"cbir-{method}"
    if isinstance(hits, RankedHits):
        run = ArrayRun.from_ids(topics, hits.doc_ids, hits.scores, docnos, tag=tag)
    else:
        run = ArrayRun.from_hits(topics, hits, docnos, tag=tag)
    run_path = out / f"run.{method}.txt"
    write_run(run_path, run)
    ev = evaluate(qrels, run, measures_for(k))
    shown = ("num_q", f"map_minRk_{k}", f"map_cut_{k}", "map", "P_10")
    per_label = {
        str(label): {m: float(v) for m, v in values.items() if m in shown}
        for label, values in ev.by_label(qrels).items()
    }
    return MethodResult(
        measures={m: float(v) if not isinstance(v, str) else v for m, v in ev.summary.items()},
        per_label=per_label,
        run_file=str(run_path),
        search_seconds=round(search_seconds, 3),
    )


def _cache_key(store, base, methods, docnos, queries, k, exact, num_candidates, fusion) -> dict:
    return {
        "store": store.url,
        "fields": {m: store.fields[m].to_json() for m in base},
        "methods": list(methods),
        "documents": len(docnos),
        "queries": [q.doc_id for q in queries[:3]] + [len(queries)],
        "k": k,
        "exact": exact,
        "num_candidates": num_candidates,
        "fusion": fusion,
    }


def _reusable(out: Path, key: dict) -> EvaluationSummary | None:
    path = out / "summary.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if data.pop("cache_key", None) != json.loads(json.dumps(key)):
        return None
    summary = EvaluationSummary.from_json(data)
    summary.reused = True
    return summary
