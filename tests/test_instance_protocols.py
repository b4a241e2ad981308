"""Instance-retrieval protocols: hand-computed answers, and agreement with the reference code.

The agreement values were computed once, outside the repository, by the public reference
implementations on the cases `revisited_case(seed)` / `copy_case(seed)` below generate:
revisitop python/evaluate.py `compute_map` (commit be39832, numpy's `in1d` aliased to `isin`
for numpy 2) with the Easy/Medium/Hard ground truths of its example_evaluate.py, and
facebookresearch/isc2021 isc/metrics.py `evaluate` (commit c6f5528). They are pasted here as
literals (repr of the float64 results); the reference code is not part of this project.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.errors import EvaluationError
from evaluation.instance import copy_detection, ns_score, revisited
from evaluation.instance_io import evaluate_instance_files


def revisited_case(seed: int):
    """60 database images, 6 queries with disjoint easy/hard/junk lists, full random rankings."""
    rng = np.random.default_rng(seed)
    db = [f"img{i:02d}" for i in range(60)]
    ground_truth, rankings = {}, {}
    for q in range(6):
        picked = rng.permutation(60)
        sizes = rng.integers(0, 8, 3)
        if q == 0:
            sizes[1] = 0  # no hard positive: left out of Hard
        if q == 1:
            sizes[2] = 0  # no junk
        easy = [db[i] for i in picked[: sizes[0]]]
        hard = [db[i] for i in picked[sizes[0] : sizes[0] + sizes[1]]]
        junk = [db[i] for i in picked[sizes[0] + sizes[1] : sizes.sum()]]
        ground_truth[f"q{q}"] = {"easy": easy, "hard": hard, "junk": junk}
        rankings[f"q{q}"] = [db[i] for i in rng.permutation(60)]
    return ground_truth, rankings


def copy_case(seed: int):
    """Pooled predictions with one-decimal scores (ties), some true pairs never predicted;
    true pairs mostly score higher, so 90 % precision is reached at some threshold."""
    rng = np.random.default_rng(seed)
    matches = [(f"Q{q}", f"R{int(rng.integers(0, 50))}") for q in range(20) if rng.random() < 0.6]
    predictions = []
    for q in range(20):
        refs = set(rng.choice(50, size=5, replace=False).tolist())
        for ref, truth in matches:
            if ref == f"Q{q}" and rng.random() < 0.7:
                refs.add(int(truth[1:]))
        for r in sorted(refs):
            low = 0.4 if (f"Q{q}", f"R{r}") in matches else 0.0
            predictions.append((f"Q{q}", f"R{r}", round(low + 0.6 * float(rng.random()), 1)))
    return matches, predictions


# --- hand-computed cases ---------------------------------------------------------------------


def test_revisited_ap_skips_junk_and_uses_the_trapezoid_rule():
    # Ranking a j b c d with junk j: positives a, b, d at positions 0, 1, 3 of a b c d.
    # Trapezoids: (1 + 1/1)/2, (1/1 + 2/2)/2, (2/3 + 3/4)/2 -> sum 65/24, over 3: 65/72.
    # mP@1: 1/1; mP@5: the last positive is at rank 4 < 5, so 3 of the first 4: 0.75.
    gt = {"q": {"easy": ["a", "b", "d"], "hard": [], "junk": ["j"]}}
    result = revisited({"q": ["a", "j", "b", "c", "d"]}, gt, kappas=(1, 5))
    assert result["easy"].map == pytest.approx(65 / 72, abs=1e-15)
    assert result["easy"].precision == {1: 1.0, 5: 0.75}
    assert result["hard"].num_q == 0 and np.isnan(result["hard"].ap["q"])


def test_revisited_setups_move_hard_and_easy_between_positive_and_junk():
    gt = {"q": {"easy": ["e"], "hard": ["h"], "junk": []}}
    result = revisited({"q": ["h", "x", "e"]}, gt)
    # Easy: h is junk, e at position 1 of [x, e], first positive: (0/1 + 1/2)/2 = 0.25.
    # Medium: h at 0, e at 2: (1 + 1)/2 + (1/2 + 2/3)/2 = 1.5833.. over 2. Hard: e junk, h first.
    assert result["easy"].map == pytest.approx(0.25)
    assert result["medium"].map == pytest.approx((1 + 7 / 12) / 2)
    assert result["hard"].map == 1.0


def test_ukbench_counts_relevant_in_the_first_four():
    rankings = {"q1": ["q1", "x", "a", "b", "c"], "q2": ["y", "z", "w", "v"]}
    relevant = {"q1": ["q1", "a", "b", "c"], "q2": ["q2", "m", "n", "o"]}
    assert ns_score(rankings, relevant) == 1.5  # 3 and 0
    assert ns_score(rankings, relevant, n=5) == 2.0


def test_copy_detection_micro_ap_puts_non_matches_first_in_ties():
    # Sorted: 0.9 match; 0.8 non-match then 0.8 match; 0.5 match. 4 true pairs (q5 never
    # predicted). Precision 1, 1/2, 2/3, 3/4 at recall 1/4, 1/4, 2/4, 3/4:
    # µAP = 1/4 * 1 + 0 + 1/4 * 2/3 + 1/4 * 3/4 = 29/48. Precision >= 0.9 only at the first.
    truth = [("q1", "r1"), ("q3", "r3"), ("q4", "r4"), ("q5", "r5")]
    preds = [("q4", "r4", 0.5), ("q3", "r3", 0.8), ("q2", "r5", 0.8), ("q1", "r1", 0.9)]
    result = copy_detection(preds, truth)
    assert result.micro_ap == pytest.approx(29 / 48, abs=1e-15)
    assert (result.recall_at_p90, result.threshold_at_p90) == (0.25, 0.9)
    assert copy_detection([("q2", "r5", 1.0)], truth).recall_at_p90 is None
    with pytest.raises(EvaluationError, match="twice"):
        copy_detection(preds + preds[:1], truth)


# --- agreement with the reference implementations --------------------------------------------

# revisitop compute_map(ranks, gnd, kappas=[1, 5, 10]) per setup: (mAP, [mP@1, mP@5, mP@10]).
REVISITOP = {
    0: {
        "easy": (
            0.108048230985338,
            [0.16666666666666666, 0.10000000000000002, 0.09999999999999999],
        ),
        "medium": (
            0.1672889197455848,
            [0.3333333333333333, 0.13333333333333333, 0.16666666666666666],
        ),
        "hard": (
            0.1734856042745013,
            [0.3333333333333333, 0.13333333333333333, 0.16666666666666666],
        ),
    },
    1: {
        "easy": (0.11028156874944801, [0.0, 0.14666666666666667, 0.12666666666666665]),
        "medium": (0.11111151635486431, [0.0, 0.13333333333333333, 0.08333333333333333]),
        "hard": (0.0780446192338306, [0.0, 0.05, 0.025]),
    },
    2: {
        "easy": (0.09283675290875343, [0.0, 0.08, 0.06000000000000001]),
        "medium": (0.1404711183691687, [0.0, 0.16666666666666666, 0.09999999999999999]),
        "hard": (0.1084076923052634, [0.0, 0.12000000000000002, 0.1]),
    },
}
# isc2021 evaluate(gt, predictions): (average_precision, recall_at_p90, threshold_at_p90).
ISC2021 = {
    0: (0.2719427376685441, 0.2222222222222222, 0.7),
    1: (0.5519807923169268, 0.5, 0.7),
    2: (0.6836168991305768, 0.6363636363636364, 0.7),
}


@pytest.mark.parametrize("seed", sorted(REVISITOP))
def test_revisited_agrees_with_revisitop_compute_map(seed):
    ground_truth, rankings = revisited_case(seed)
    result = revisited(rankings, ground_truth, kappas=(1, 5, 10))
    for setup, (expected_map, expected_precision) in REVISITOP[seed].items():
        assert result[setup].map == pytest.approx(expected_map, abs=1e-12), setup
        got = [result[setup].precision[k] for k in (1, 5, 10)]
        assert got == pytest.approx(expected_precision, abs=1e-12), setup


@pytest.mark.parametrize("seed", sorted(ISC2021))
def test_copy_detection_agrees_with_isc2021_metrics(seed):
    matches, predictions = copy_case(seed)
    result = copy_detection(predictions, matches)
    expected_ap, expected_recall, expected_threshold = ISC2021[seed]
    assert result.micro_ap == pytest.approx(expected_ap, abs=1e-12)
    assert result.recall_at_p90 == pytest.approx(expected_recall, abs=1e-12)
    assert result.threshold_at_p90 == expected_threshold


# --- files and command line ------------------------------------------------------------------


def write_run(path, rankings):
    lines = [
        f"{q} Q0 {d} {i + 1} {len(docs) - i} t\n"
        for q, docs in rankings.items()
        for i, d in enumerate(docs)
    ]
    path.write_text("".join(lines))


def test_files_and_cli(tmp_path, cli):
    ground_truth, rankings = revisited_case(0)
    (tmp_path / "gt.json").write_text(
        json.dumps({"protocol": "revisited", "queries": ground_truth})
    )
    write_run(tmp_path / "run", rankings)
    result = evaluate_instance_files(tmp_path / "gt.json", tmp_path / "run")
    assert result["medium"]["map"] == revisited(rankings, ground_truth)["medium"].map
    code, out, _ = cli("instance-eval", tmp_path / "gt.json", tmp_path / "run")
    assert code == 0 and out.splitlines()[1].startswith("medium mAP ")
    (tmp_path / "gt.csv").write_text("query_id,reference_id\nq0,img01\nq1,\n")
    code, out, _ = cli("instance-eval", "--json", tmp_path / "gt.csv", tmp_path / "run")
    assert code == 0 and json.loads(out)["positives"] == 1
    (tmp_path / "bad.json").write_text('{"protocol": "oxford"}')
    code, _, err = cli("instance-eval", tmp_path / "bad.json", tmp_path / "run")
    assert code == 2 and "'protocol' must be one of" in err
