"""benchmarks.option_cost: at full size its measures are `cbir evaluate`'s; shorter sizes cost."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.option_cost import run, truncated
from cbir.stages.evaluate import evaluate_dataset


def test_full_size_figures_equal_cbir_evaluate_and_hnsw_at_high_ef_equals_exact(
    settings, indexed, tmp_path
):
    root, _, _ = indexed
    summary = evaluate_dataset(
        settings, dataset="folder", data=str(root), k=100, out_dir=tmp_path / "e", ray=None,
        show_progress=False,
    )  # fmt: skip
    dim = summary.methods["bovw"].model["dim"]
    figures = run(
        settings.store, [dim, 3], tmp_path / "cache", dataset="folder", data=str(root),
        settings=settings, repeats=3, ef_values=(1000,),
    )  # fmt: skip
    assert figures["queries"] == summary.queries
    for method, got in (
        ("bovw", figures["bovw"][dim]["bovw"]),
        ("fusion", figures["bovw"][dim]["fusion"]),
        ("cnn", figures["cnn"]),
        ("bovw", figures["hnsw"][1000]["bovw"]),
        ("fusion", figures["hnsw"][1000]["fusion"]),
    ):
        expected = summary.methods[method].measures
        for ours, theirs in (("AP@100/min(R,100)", "map_minRk_100"), ("P_10", "P_10")):
            assert got[ours] == pytest.approx(expected[theirs], abs=1e-9), (method, ours)
    assert figures["hnsw"][1000]["cnn"]["recall_100_vs_exact"] == 1.0
    assert figures["bovw"][3]["bovw"] != figures["bovw"][dim]["bovw"]


def test_truncation_renormalises_and_keeps_zero_rows():
    rows = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 0.0], [0.0, 0.0, 5.0]], np.float32)
    np.testing.assert_allclose(truncated(rows, 2), [[0.6, 0.8], [0, 0], [0, 0]])
