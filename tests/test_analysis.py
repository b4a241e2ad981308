"""Curves, per-class AP, class mixes and samples (evaluation/analysis.py): known answers."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import ArrayRun, LabelQrels, Qrels, Run, evaluate
from evaluation.analysis import (
    ELEVEN_POINTS,
    as_array_run,
    average_precision,
    disagreements,
    embedding_map,
    gallery_rows,
    head_to_head,
    interpolated_precision,
    per_class_mean,
    precision_at,
    precision_recall_curve,
    rank_run,
    retrieved_class_matrix,
    stratified_sample,
)
from evaluation.errors import EvaluationError
from tests.test_pytrec_eval_agreement import random_case

pytrec_eval = pytest.importorskip("pytrec_eval", reason="dev dependency pytrec-eval-terrier")


def small_case():
    """q1: R = 4, relevant at ranks 1 and 3 (after tie-breaking); q2: R = 1, relevant at rank 2."""
    qrels = Qrels.from_mapping(
        {"q1": {"a": 1, "c": 1, "x": 1, "y": 1, "b": 0}, "q2": {"e": 1, "d": 0}}
    )
    run = Run.from_mapping(
        {
            # ties: c and b both 0.5 -> docno descending puts c first
            "q1": {"a": 0.9, "b": 0.5, "c": 0.5, "z": 0.1},
            "q2": {"d": 0.8, "e": 0.7, "f": 0.6, "g": 0.5},
            "q3": {"a": 1.0},  # not judged: left out, as trec_eval does
        }
    )
    return qrels, run


def test_rank_run_uses_trec_eval_order_and_judgments():
    qrels, run = small_case()
    ranked = rank_run(qrels, run)
    assert ranked.topics == ["q1", "q2"]
    assert ranked.docnos.tolist() == [["a", "c", "b", "z"], ["d", "e", "f", "g"]]
    assert ranked.relevant.tolist() == [[True, True, False, False], [False, True, False, False]]
    assert ranked.num_rel.tolist() == [4, 1] and ranked.num_ret.tolist() == [4, 4]
    deep = rank_run(qrels, run, depth=2)
    assert deep.docnos.tolist() == [["a", "c"], ["d", "e"]] and deep.num_ret.tolist() == [2, 2]


def test_rank_run_refuses_runs_without_judged_topics():
    qrels, _ = small_case()
    with pytest.raises(EvaluationError, match="no topic in common"):
        rank_run(qrels, Run.from_mapping({"other": {"a": 1.0}}))


def test_precision_recall_curve_by_hand():
    qrels, run = small_case()
    recall, precision = precision_recall_curve(rank_run(qrels, run))
    # q1: hits 1,2,2,2 of R=4; q2: hits 0,1,1,1 of R=1
    assert recall == pytest.approx([(0.25 + 0) / 2, (0.5 + 1) / 2, (0.5 + 1) / 2, (0.5 + 1) / 2])
    assert precision == pytest.approx([(1 + 0) / 2, (1 + 0.5) / 2, (2 / 3 + 1 / 3) / 2, 0.75 / 2])


def test_precision_at_matches_trec_eval_p_including_short_rankings():
    qrels, run = small_case()
    ranked = rank_run(qrels, run)
    ev = evaluate(qrels, run, ["P.1,2,3,10"])
    expected = [ev.summary[f"P_{k}"] for k in (1, 2, 3, 10)]
    assert precision_at(ranked, [1, 2, 3, 10]) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(EvaluationError, match="positive"):
        precision_at(ranked, [0])


def test_interpolated_precision_matches_pytrec_eval():
    """40 random cases (ties, odd docnos, grades -1..3) that share topics with their qrels."""
    rng = np.random.default_rng(9)
    checked = 0
    while checked < 40:
        qrels, run = random_case(rng)
        judged = Qrels.from_mapping(qrels)
        common = [t for t in run if t in judged.topics()]
        if not common:
            continue
        reference = pytrec_eval.RelevanceEvaluator(qrels, {"iprec_at_recall"}).evaluate(run)
        ours = interpolated_precision(rank_run(judged, Run.from_mapping(run)))
        expected = [
            np.mean([reference[t][f"iprec_at_recall_{level:.2f}"] for t in common])
            for level in ELEVEN_POINTS
        ]
        assert ours == pytest.approx(expected, abs=1e-12), (qrels, run)
        checked += 1


def test_interpolated_precision_by_hand():
    qrels, run = small_case()
    values = interpolated_precision(rank_run(qrels, run), [0.0, 0.25, 0.5, 0.75])
    # q1 (R=4): best precision 1 at ranks >= 1 and >= 2; 3 relevant needed at 0.75 -> 0.
    # q2 (R=1): level 0 -> best precision 0.5; 0.25 -> floor(0.25 + 0.9) = 1 relevant -> 0.5;
    # 0.5 -> floor(1.4) = 1 -> 0.5; 0.75 -> floor(1.65) = 1 -> 0.5.
    assert values == pytest.approx([(1 + 0.5) / 2, (1 + 0.5) / 2, (1 + 0.5) / 2, (0 + 0.5) / 2])


def label_case():
    docnos = ["d0", "d1", "d2", "d3", "d4", "d5"]
    doc_labels = ["cat", "cat", "dog", "dog", "ship", "ship"]
    topic_labels = {"t-cat": "cat", "t-dog": "dog", "t-dog2": "dog"}
    qrels = LabelQrels(topic_labels, docnos, doc_labels)
    run = ArrayRun(
        ["t-cat", "t-dog", "t-dog2"],
        np.array([[0, 2, 1], [2, 4, 5], [4, 5, 3]]),
        np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7]]),
        docnos,
    )
    return qrels, run, topic_labels, dict(zip(docnos, doc_labels, strict=True))


def test_per_class_average_precision_by_hand():
    qrels, run, topic_labels, _ = label_case()
    ap = average_precision(qrels, run, 3)
    # t-cat: relevant at 1 and 3 -> (1 + 2/3) / min(2, 3); t-dog: rank 1 -> 1/2; t-dog2: rank 3 -> (1/3)/2
    assert ap == pytest.approx({"t-cat": (1 + 2 / 3) / 2, "t-dog": 0.5, "t-dog2": 1 / 6})
    assert average_precision(qrels, run, 3, normalised=False)["t-dog"] == pytest.approx(0.5)
    by_class = per_class_mean(ap, topic_labels)
    assert list(by_class) == ["cat", "dog"]
    assert by_class["dog"] == pytest.approx((0.5 + 1 / 6) / 2)
    ev = evaluate(qrels, run, ["map_minRk.3"])
    assert ev.by_label(qrels)["dog"]["map_minRk_3"] == pytest.approx(by_class["dog"])


def test_retrieved_class_matrix_by_hand():
    qrels, run, topic_labels, doc_labels = label_case()
    ranked = rank_run(qrels, run)
    matrix = retrieved_class_matrix(ranked, topic_labels, doc_labels, ["cat", "dog", "ship"])
    expected = [[2 / 3, 1 / 3, 0], [0, 2 / 6, 4 / 6], [0, 0, 0]]
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    top1 = retrieved_class_matrix(ranked, topic_labels, doc_labels, ["cat", "dog", "ship"], 1)
    assert top1.tolist() == [[1, 0, 0], [0, 0.5, 0.5], [0, 0, 0]]


def test_disagreements_largest_absolute_difference_first():
    first = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.3, "only-first": 1.0}
    second = {"a": 0.1, "b": 0.8, "c": 0.5, "d": 0.0}
    found = disagreements(first, second, 3)
    assert [d.topic for d in found] == ["a", "b", "d"]
    assert found[0].difference == pytest.approx(0.8) and found[1].difference == pytest.approx(-0.7)


def test_head_to_head_counts_wins_and_ties():
    result = head_to_head({"a": 0.5, "b": 0.1, "c": 0.3, "d": 1.0}, {"a": 0.2, "b": 0.4, "c": 0.3})
    assert (result.first_better, result.second_better, result.ties, result.topics) == (1, 1, 1, 3)


def test_gallery_rows_take_the_ranked_top_with_relevance():
    qrels, run, _, _ = label_case()
    ranked = {"m": rank_run(qrels, run)}
    (row,) = gallery_rows(ranked, ["t-cat"], n=2, captions={"t-cat": "cat"})
    assert row.query == "t-cat" and row.caption == "cat"
    assert row.results == {"m": [("d0", True), ("d2", False)]}


def test_as_array_run_keeps_the_trec_ranking():
    _, run = small_case()
    arrays = as_array_run(run)
    assert arrays.to_run()["q1"] == dict(run["q1"])
    assert as_array_run(arrays) is arrays


def test_stratified_sample_is_per_label_and_seeded():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 6
    chosen = stratified_sample(labels, 4, seed=1)
    picked = [labels[i] for i in chosen]
    assert picked.count("a") == 4 and picked.count("b") == 3 and picked.count("c") == 4
    assert chosen.tolist() == sorted(chosen.tolist())
    assert stratified_sample(labels, 4, seed=1).tolist() == chosen.tolist()
    assert stratified_sample(labels, 4, seed=2).tolist() != chosen.tolist()
    with pytest.raises(ValueError, match="positive"):
        stratified_sample(labels, 0)


def test_embedding_map_keeps_separated_classes_apart():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:3] * 5
    vectors = np.concatenate([c + rng.normal(0, 0.1, (15, 8)) for c in centres])
    labels = np.repeat([0, 1, 2], 15)
    points = embedding_map(vectors, seed=3)
    assert points.shape == (45, 2)
    distance = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    assert (labels[distance.argmin(axis=1)] == labels).all()
    assert np.array_equal(points, embedding_map(vectors, seed=3))
    with pytest.raises(ValueError, match="at least 4"):
        embedding_map(vectors[:3])
