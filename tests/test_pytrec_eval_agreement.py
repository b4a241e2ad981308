"""Randomised comparison with pytrec_eval (trec_eval's own C code) on many generated cases.

Cases are built to hit the traps: integer scores (many ties across relevant and non-relevant
documents), docnos that order differently as numbers, as strings and with non-ASCII bytes,
grades -1..3, topics with only grade 0, topics on one side only, several -l levels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from evaluation import ArrayRun, LabelQrels, evaluate, parse_measures

pytrec_eval = pytest.importorskip("pytrec_eval", reason="dev dependency pytrec-eval-terrier")

TREC_SPECS = [
    "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank",
    "P.1,3,5,10,100", "recall.1,5,20,100", "ndcg_cut.1,3,10,100", "map_cut.1,5,10,100",
]  # fmt: skip
DOCNOS = ["1", "2", "9", "10", "11", "100", "a", "B", "b", "é", "z", "Ω", "d-1", "d_1", "d1"]


def random_case(rng: np.random.Generator):
    pool = DOCNOS + [f"x{i}" for i in range(int(rng.integers(0, 40)))]
    qrels, run = {}, {}
    for _ in range(int(rng.integers(1, 12))):
        topic = str(int(rng.integers(0, 30)))
        judged = rng.choice(pool, size=int(rng.integers(1, len(pool))), replace=False)
        top_grade = 0 if rng.random() < 0.15 else 3  # some topics with grade 0 only
        qrels[topic] = {str(d): int(rng.integers(-1, top_grade + 1)) for d in judged}
    for _ in range(int(rng.integers(0, 12))):
        topic = str(int(rng.integers(0, 30)))
        retrieved = rng.choice(pool, size=int(rng.integers(1, len(pool))), replace=False)
        ties = rng.random() < 0.7
        run[topic] = {
            str(d): float(rng.integers(0, 4)) if ties else float(rng.normal()) for d in retrieved
        }
    return qrels, run


def c_order(item_a, item_b) -> int:
    """trec_eval's comp_sim_docno, restated: score descending, then strcmp(b, a)."""
    (doc_a, score_a), (doc_b, score_b) = item_a, item_b
    if score_a != score_b:
        return -1 if score_a > score_b else 1
    a, b = doc_a.encode(), doc_b.encode()
    return (b > a) - (b < a)


def truncated(run, depth):
    key = functools.cmp_to_key(c_order)
    return {t: dict(sorted(docs.items(), key=key)[:depth]) for t, docs in run.items()}


def reference(qrels, run, level=1):
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_SPECS), relevance_level=level)
    return evaluator.evaluate({t: dict(docs) for t, docs in run.items()})


def assert_same_per_topic(ev, ref):
    assert sorted(ev.topics) == sorted(ref)
    for i, topic in enumerate(ev.topics):
        for name, values in ev.values.items():
            if name in ref[topic]:
                assert abs(values[i] - ref[topic][name]) <= 1e-9, (topic, name)


@pytest.mark.parametrize("seed", range(150))
def test_per_topic_values_match_pytrec_eval(seed):
    rng = np.random.default_rng(seed)
    qrels, run = random_case(rng)
    level = int(rng.integers(1, 4))  # pytrec_eval refuses level 0
    judged_run = {t: d for t, d in run.items() if t in qrels}
    if not judged_run:
        return
    ev = evaluate(qrels, run, TREC_SPECS, relevance_level=level)
    assert_same_per_topic(ev, reference(qrels, judged_run, level))


@pytest.mark.parametrize("seed", range(40))
def test_max_depth_and_complete_match_a_truncated_pytrec_eval(seed):
    rng = np.random.default_rng(1000 + seed)
    qrels, run = random_case(rng)
    judged_run = {t: d for t, d in run.items() if t in qrels}
    if not judged_run:
        return
    depth = int(rng.integers(0, 12))
    ev = evaluate(qrels, run, TREC_SPECS, max_depth=depth, complete=True)
    ref = reference(qrels, truncated(judged_run, depth))
    assert_same_per_topic(ev, ref)
    for name in ("map", "P_5", "ndcg_cut_10", "recall_100"):
        expected = sum(ref[t][name] for t in sorted(ref)) / len(qrels)  # missing topics: 0
        assert abs(ev.summary[name] - expected) <= 1e-9
    assert ev.summary["num_rel"] == sum(g > 0 for docs in qrels.values() for g in docs.values())


def map_min_rk(ranked_grades, num_rel, k):
    hits, total = 0, 0.0
    for rank, grade in enumerate(ranked_grades[:k], 1):
        if grade >= 1:
            hits += 1
            total += hits / rank
    return total / min(num_rel, k) if num_rel else 0.0


@pytest.mark.parametrize("seed", range(30))
def test_normalised_ap_against_a_plain_loop(seed):
    rng = np.random.default_rng(2000 + seed)
    qrels, run = random_case(rng)
    if not any(t in qrels for t in run):
        return
    ev = evaluate(qrels, run, ["map_minRk.1,3,10"])
    key = functools.cmp_to_key(c_order)
    for i, topic in enumerate(ev.topics):
        ranked = [qrels[topic].get(d, -1) for d, _ in sorted(run[topic].items(), key=key)]
        num_rel = sum(g >= 1 for g in qrels[topic].values())
        for k in (1, 3, 10):
            assert math.isclose(
                ev.values[f"map_minRk_{k}"][i], map_min_rk(ranked, num_rel, k), abs_tol=1e-12
            )


def labelled_collection(seed: int, topics: int = 60, docs: int = 300, depth: int = 40):
    rng = np.random.default_rng(seed)
    doc_labels = rng.integers(0, 5, docs)
    docnos = [f"train/{label}/{i:04d}" for i, label in enumerate(doc_labels)]
    topic_ids = [f"test/{i}" for i in range(topics)]
    topic_labels = dict(zip(topic_ids, rng.integers(0, 5, topics).tolist(), strict=True))
    index = np.stack([rng.choice(docs, depth, replace=False) for _ in range(topics)])
    index[rng.random(index.shape) < 0.05] = -1  # a few empty slots
    scores = np.round(rng.random(index.shape), 2).astype(np.float32)  # float32 ties
    run = ArrayRun(topic_ids, index, scores, docnos)
    return LabelQrels(topic_labels, docnos, doc_labels.tolist()), run


@pytest.mark.parametrize("seed", range(5))
def test_array_run_with_label_qrels_matches_pytrec_eval(seed):
    qrels, run = labelled_collection(seed)
    explicit = {t: dict.fromkeys(qrels.relevant_docnos(t), 1) for t in qrels.topics()}
    ev = evaluate(qrels, run, TREC_SPECS)
    assert_same_per_topic(ev, reference(explicit, run.to_run()))
    for same in (evaluate(explicit, run.to_run(), TREC_SPECS), evaluate(explicit, run, TREC_SPECS)):
        for name, values in ev.values.items():
            np.testing.assert_array_equal(values, same.values[name])
        assert ev.summary == same.summary
    depth = evaluate(qrels, run, TREC_SPECS, max_depth=7)
    assert_same_per_topic(depth, reference(explicit, truncated(run.to_run(), 7)))


def test_measure_selection_is_the_union_in_the_api_and_first_wins_in_trec_eval_mode():
    assert parse_measures(["P.5", "P_10"]).names == ["P_5", "P_10"]
    assert parse_measures(["P.5", "P.10"], first_params_win=True).names == ["P_5"]


def test_values_are_bit_identical_not_just_close():
    # %6.4f output must match trec_eval even when a value sits on a rounding tie (0.03125).
    for seed in range(20):
        qrels, run = random_case(np.random.default_rng(seed))
        judged_run = {t: d for t, d in run.items() if t in qrels}
        if not judged_run:
            continue
        ev = evaluate(qrels, run, TREC_SPECS)
        ref = reference(qrels, judged_run)
        for i, topic in enumerate(ev.topics):
            for name, values in ev.values.items():
                assert values[i] == ref[topic][name], (seed, topic, name)
