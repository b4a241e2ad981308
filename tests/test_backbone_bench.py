"""The real-photo development set of benchmarks/backbones.py: seeded, labelled, scored right."""

from __future__ import annotations

import numpy as np

from benchmarks import backbones


def test_dev_set_is_seeded_and_labelled(monkeypatch):
    monkeypatch.setattr(backbones, "PHOTOS", ("chelsea", "coffee"))
    q, q_labels, index, i_labels = backbones.dev_set(copies=3, queries=1)
    assert q_labels.tolist() == [0, 1] and i_labels.tolist() == [0, 0, 1, 1]
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in q + index)
    assert 160 <= min(index[0].shape[:2]) <= 480
    again = backbones.dev_set(copies=3, queries=1)
    assert all(np.array_equal(a, b) for a, b in zip(index, again[2], strict=True))
    assert not np.array_equal(index[0][:100, :100], index[1][:100, :100])


def test_scores_follow_the_labels():
    index = np.eye(4, dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    queries = np.array([[1, 0.5, 0, 0], [0, 0, 0.2, 1]], np.float32)
    perfect = backbones.score(queries, np.array([0, 1]), index, labels)
    assert perfect["P_1"] == 1.0 and perfect["map_minRk_100"] == 1.0
    swapped = backbones.score(queries, np.array([1, 0]), index, labels)
    assert swapped["P_1"] == 0.0 and swapped["map_minRk_100"] < 0.5
