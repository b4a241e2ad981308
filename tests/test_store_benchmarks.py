"""The store benchmark runs (on tiny sizes) and compares like with like: same ids as faiss."""

from __future__ import annotations

import pytest

from benchmarks.stores import open_and_write, search_vs_faiss


def test_search_benchmark_agrees_with_faiss_on_its_own_data():
    pytest.importorskip("faiss")
    result = search_vs_faiss(n=600, dim=16, queries=40, k=5, repeats=1)
    assert result["same_ids_as_faiss"] == 1.0
    assert result["ratio_search_to_faiss"] == pytest.approx(
        result["embedded_search_s"] / result["faiss_IndexFlatIP_s"]
    )
    assert result["ratio_search_ranked_to_faiss"] == pytest.approx(
        result["embedded_search_ranked_s"] / result["faiss_IndexFlatIP_s"]
    )
    assert result["search_ranked_equals_search"] is True
    assert set(result["apis"]) <= set(result) and len(result["rounds_s"]) == 1


def test_write_and_open_benchmark_reports_every_figure():
    result = open_and_write(
        n=300, fields=(("bovw", 32), ("cnn", 8)), open_dim=16, batch=100, repeats=1
    )
    assert set(result) == {
        "n",
        "batch",
        "write_bovw_32d_s",
        "write_bovw_32d_docs_per_s",
        "write_cnn_8d_s",
        "write_cnn_8d_docs_per_s",
        "open_300x16_s",
        "open_and_first_search_300x16_s",
    }
    assert all(value > 0 for value in result.values())


def test_scan_precision_benchmark_finds_the_planted_rows_with_every_storage_type():
    pytest.importorskip("faiss")
    from benchmarks.scan_precision import run

    result = run(n=500, dim=32, repeats=5)
    assert set(result["kinds"]) == {
        "store float32 (exact_top_k)", "faiss IndexFlatIP float32", "store float32 at 8 dims",
        "faiss IndexScalarQuantizer QT_fp16", "faiss IndexScalarQuantizer QT_8bit",
    }  # fmt: skip
    for name, figures in result["kinds"].items():
        if "8 dims" not in name:  # a quarter of the dimensions may rank another row first
            assert figures["planted_row_first"] == 1.0, name
    assert result["kinds"]["store float32 (exact_top_k)"]["vs_store_float32"] == 1.0
