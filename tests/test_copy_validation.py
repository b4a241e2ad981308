"""Choosing `+gv` parameters on validation: re-ranking and scoring of cached inlier counts."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.copy_validation import Case, _key, grid_json, score
from indexing.stores.base import Hit


def _case(doc_id: str, label: str, transform: str, labels: list[str]) -> Case:
    hits = [Hit(f"{lab}-{i}", 1.0 - i / 10, lab, None, "train") for i, lab in enumerate(labels)]
    original = next(h.doc_id for h in hits if h.label == label)
    return Case(doc_id, label, transform, original, hits, [], [None] * len(hits))


def test_score_reranks_by_inliers_with_min_inliers_and_top():
    cases = [
        _case("q1", "a", "rot90", ["x", "y", "a", "z"]),  # the original third
        _case("q2", "b", "crop", ["b", "x", "y", "z"]),  # already first
    ]
    inliers = np.array([[5, 0, 9, 0], [0, 7, 0, 0]])
    # min 6: q1's original (9) rises; q2's distractor (7) beats its unverified original
    result = score(cases, inliers, top=4, min_inliers=6)
    assert result["per_transform"] == {"crop": 0.0, "rot90": 1.0}
    assert result["top1"] == 0.5 and result["top1_worst"] == 0.0
    # min 8: the 7 counts as none, q2 keeps its first ranking
    assert score(cases, inliers, top=4, min_inliers=8)["top1"] == 1.0
    # top 2: q1's original (third) is not re-ranked, its distractor with 5 < 6 keeps rank 1
    assert score(cases, inliers, top=2, min_inliers=6)["per_transform"]["rot90"] == 0.0
    # µAP of the pooled top 10: q1's original 9 + 0.5 * 2/5 = 9.2 first; then q1's distractor
    # x (0 + 0.5 * 4/5) ties with q2's unverified original b (0.4): non-matches first in a tie
    assert score(cases, inliers, top=4, min_inliers=8)["micro_ap"] == round((1 + 2 / 3) / 2, 4)


def test_choice_prefers_accuracy_then_fewer_keypoints():
    row = {"top1": 1.0, "top1_worst": 1.0, "micro_ap": 0.991, "keypoints": 500, "top": 100,
           "min_inliers": 6, "max_iters": 2000}  # fmt: skip
    cheaper = {**row, "keypoints": 256, "micro_ap": 0.994}
    worse = {**row, "keypoints": 128, "top1": 0.99}
    assert max([row, cheaper, worse], key=_key) is cheaper
    assert max([row, {**row, "top": 50}], key=_key) is row
    assert max([row, {**row, "max_iters": 500}], key=_key)["max_iters"] == 500


def test_grid_json_has_one_line_per_row_and_reads_back():
    result = {"queries": 2, "best": {"top1": 1.0}, "rows": [{"top1": 1.0}, {"top1": 0.5}]}
    text = grid_json(result)
    assert json.loads(text) == result
    assert '  {"top1": 0.5}' in text.splitlines()


def test_best_verified_method_ranks_top1_then_worst_transform_then_micro_ap():
    from benchmarks.copy_detection import best_verified_method

    figures = {
        "top1": {
            "cnn": {"all": 1.0, "crop": 1.0, "text": 1.0},  # not verified: never chosen
            "cnn+gv": {"all": 0.95, "crop": 1.0, "text": 0.9},
            "bovw+gv": {"all": 0.98, "crop": 1.0, "text": 0.96},
            "fusion+gv": {"all": 0.98, "crop": 0.97, "text": 0.99},
        },
        "micro_ap_top10": {"cnn": 1.0, "cnn+gv": 0.9, "bovw+gv": 0.8, "fusion+gv": 0.7},
    }
    assert best_verified_method(figures) == "fusion+gv"  # tie on all: worst 0.97 > 0.96
    figures["top1"]["fusion+gv"]["crop"] = 0.96
    assert best_verified_method(figures) == "bovw+gv"  # tie on worst too: µAP 0.8 > 0.7


def test_duplicate_threshold_table_and_choice_on_a_planted_case():
    from benchmarks.duplicate_threshold import choose, per_transform, table

    group = {"a/original.jpg": "a", "a/copy-crop.jpg": "a", "a/copy-text.jpg": "a",
             "b/original.jpg": "b", "distractor-1/d.jpg": None}  # fmt: skip
    pairs = [  # (a, b, cosine, inliers)
        ("a/copy-crop.jpg", "a/original.jpg", 0.95, 40),
        ("a/copy-text.jpg", "a/original.jpg", 0.62, 12),
        ("a/copy-crop.jpg", "a/copy-text.jpg", 0.60, 5),
        ("a/original.jpg", "b/original.jpg", 0.91, 4),  # a chance fit
        ("b/original.jpg", "distractor-1/d.jpg", 0.97, 0),
    ]
    every = {(a, b) for a, b, _, _ in pairs}
    nearest = every - {("a/copy-text.jpg", "a/original.jpg")}  # a cap that drops one pair
    both = table(pairs, group, {1: nearest, None: every}, None)
    assert table(pairs, group) == [r for r in both if r["neighbours"] is None]
    rows = {(r["threshold"], r["neighbours"], r["min_inliers"]): r for r in both}
    assert rows[0.9, None, 0] == {"threshold": 0.9, "neighbours": None, "min_inliers": 0,
                                  "pairs_verified": 3, "kept": 3, "true": 1,
                                  "precision": round(1 / 3, 4), "recall": round(1 / 3, 4)}  # fmt: skip
    assert rows[0.6, None, 4]["kept"] == 4 and rows[0.6, None, 4]["precision"] == 0.75
    assert rows[0.6, None, 6]["precision"] == 1.0
    assert rows[0.6, None, 6]["recall"] == round(2 / 3, 4)
    assert rows[0.5, None, 6]["recall"] == round(2 / 3, 4)  # the 5-inlier pair is lost
    assert rows[0.6, 1, 6]["recall"] == round(1 / 3, 4) and rows[0.6, 1, 6]["pairs_verified"] == 4
    assert choose([r for r in both if r["neighbours"] is None]) is None  # needs a cap
    rows[0.6, 1, 6]["precision"] = 0.5  # only capped rows count: make 0.9 the best of them
    chosen = choose(list(rows.values()))
    # recall 1/3 at precision 1 with the cap from 0.5 to 0.95: the highest threshold, then
    # most inliers (the crop pair has 40)
    assert (chosen["threshold"], chosen["neighbours"], chosen["min_inliers"]) == (0.95, 1, 20)
    assert per_transform(pairs, group, 0.6, 10) == {"crop": 1.0, "text": 1.0}
    assert per_transform(pairs, group, 0.9, 10) == {"crop": 1.0, "text": 0.0}
    assert per_transform(pairs, group, 0.6, 10, nearest) == {"crop": 1.0, "text": 0.0}
