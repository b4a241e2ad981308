"""Rank fusion: reciprocal rank fusion and weighted score fusion, known answers."""

from __future__ import annotations

import pytest

from indexing.fusion import fuse
from indexing.stores.base import Hit


def hits(*pairs):
    return [Hit(d, s, None, None, None) for d, s in pairs]


def test_reciprocal_rank_fusion_known_answer():
    a = hits(("x", 0.9), ("y", 0.8), ("z", 0.7))
    b = hits(("y", 0.5), ("w", 0.4))
    fused = fuse({"a": a, "b": b}, k=4)
    # y: 1/62 + 1/61, x: 1/61, w: 1/62, z: 1/63
    assert [h.doc_id for h in fused] == ["y", "x", "w", "z"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)


def test_weights_and_cut():
    a = hits(("x", 0.9), ("y", 0.8))
    b = hits(("y", 0.5), ("x", 0.4))
    assert [h.doc_id for h in fuse({"a": a, "b": b}, k=1, weights={"a": 2.0, "b": 1.0})] == ["x"]
    assert [h.doc_id for h in fuse({"a": a, "b": b}, k=1, weights={"a": 1.0, "b": 2.0})] == ["y"]


def test_weighted_score_fusion_min_max_normalises_each_list():
    a = hits(("x", 0.9), ("y", 0.5), ("z", 0.1))  # -> 1.0, 0.5, 0.0
    b = hits(("z", 0.3), ("y", 0.2))  # -> 1.0, 0.0
    fused = fuse({"a": a, "b": b}, k=3, rule="weighted")
    scores = {h.doc_id: h.score for h in fused}
    assert scores == pytest.approx({"x": 1.0, "z": 1.0, "y": 0.5})
    # x and z tie at 1.0: doc id descending puts z first.
    assert [h.doc_id for h in fused] == ["z", "x", "y"]


def test_ties_break_by_doc_id_descending():
    fused = fuse({"a": hits(("a1", 0.5)), "b": hits(("b1", 0.5))}, k=2)
    assert [h.doc_id for h in fused] == ["b1", "a1"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="weights for methods without hits"):
        fuse({"a": hits(("x", 1.0))}, k=1, weights={"c": 1.0})
    with pytest.raises(ValueError):
        fuse({"a": hits(("x", 1.0))}, k=1, rule="borda")
