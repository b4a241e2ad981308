"""`cbir bench --quick` on a generated dataset with the test extractors: structure, not timings."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.synthetic import write_labelled_folder
from benchmarks.web_index import build_indexed_folder
from cbir.core.errors import CbirError
from cbir.stages.bench import parse_parts
from features.verify import VerifyParams


@pytest.fixture
def bench_home(tmp_path, settings, home):
    """A labelled folder, both test models saved where `cbir` finds them, and an index."""
    built = build_indexed_folder(
        tmp_path, settings, labels=("red", "green", "blue"), models_dir=settings.models_dir
    )
    root = built.data
    return root


def positive_numbers(value, where=""):
    """Every number in a nested result is finite and > 0 (counts of errors may be 0)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("errors", "max_abs_difference", "gpus_per_worker") and not (
                key.startswith("load_average")  # an idle machine's load can be 0
            ):
                positive_numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            positive_numbers(item, where)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        assert math.isfinite(value) and value > 0, where


def test_quick_bench_writes_every_part(cli, bench_home, home):
    code, out, err = cli(
        "bench", "--quick", "--repeat", "2", "--dataset", "folder", "--data", bench_home, "--no-ray"
    )
    assert code == 0, err
    files = list((home / "bench").glob("bench-*.json"))
    assert len(files) == 1 and str(files[0]) in out
    results = json.loads(files[0].read_text())
    stages = results["stages"]
    assert list(stages) == [
        "baseline", "encode", "write", "latency", "search", "evaluation", "web", "verify",
        "encode_ray",
    ]  # fmt: skip
    assert stages["encode_ray"] == {"skipped": "Ray left out (--no-ray)"}
    assert set(results["methods"]) == {"bovw", "cnn"} and not results["methods_without_model"]
    assert set(stages["encode"]["methods"]) == {"bovw", "cnn"}
    assert stages["encode"]["images"] == 40
    assert stages["write"]["fields"] == {"bovw": 6, "cnn": 48}
    assert set(stages["latency"]["methods"]) == {"bovw", "cnn", "fusion"}
    hnsw = stages["latency"]["store_options"]["?index=hnsw&ef_search=128"]["methods"]
    assert set(hnsw) == {"bovw", "cnn", "fusion"} and hnsw["fusion"]["methods_in_parallel"]
    for figures in [*stages["latency"]["methods"].values(), *hnsw.values()]:
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert stages["search"]["same_ids_as_faiss"] > 0.99  # float ties may order apart
    assert stages["search"]["search_ranked_equals_search"] is True
    assert stages["evaluation"]["explicit"]["max_abs_difference"] == 0.0
    assert stages["web"]["errors"] == 0 and stages["web"]["requests"] > 0
    verify = stages["verify"]  # a generated copy set: 11 originals + 30 distractors, 9 copies
    assert (verify["documents"], verify["queries"], verify["candidates"]) == (41, 9, 100)
    assert verify["verify_p50_ms"] <= verify["verify_p95_ms"]
    assert verify["params"] == VerifyParams().to_json()
    for name, stage in stages.items():
        if name != "encode_ray":
            assert stage["peak_rss_mb"] > 0 and stage["wall_s"] > 0, name
            positive_numbers(stage, name)
    assert "batch search 200 x 2,000 x 64, k=100, store.search (Hit lists)" in out
    assert "batch search 200 x 2,000 x 64, k=100, store.search_ranked (arrays)" in out
    assert "peak RSS, latency stage" in out
    assert "+gv: verify 100 candidates x 2 views, 41 docs, 9 queries" in out


def test_methods_without_a_model_are_skipped_not_faked(cli, home, tmp_path, monkeypatch):
    monkeypatch.setattr("indexing.models.SHIPPED", tmp_path / "no-shipped-models")
    root = write_labelled_folder(tmp_path / "data", train=3, test=1)
    code, out, _ = cli(
        "bench", "--quick", "--repeat", "1", "--only", "encode,latency,web",
        "--dataset", "folder", "--data", root, "--no-ray",
    )  # fmt: skip
    assert code == 0
    results = json.loads(next((home / "bench").glob("bench-*.json")).read_text())
    assert set(results["methods_without_model"]) == {"bovw", "cnn"}
    assert "cbir train bovw" in results["methods_without_model"]["bovw"]
    for part in ("encode", "latency"):
        assert "no method has a model" in results["stages"][part]["skipped"]
    assert "no index at" in results["stages"]["web"]["skipped"]
    assert "skipped" in out


def test_unknown_parts_are_refused():
    assert parse_parts("web,encode") == ["encode", "web"]
    assert parse_parts("verify") == ["verify"]
    with pytest.raises(CbirError, match="choose from"):
        parse_parts("encode,speed")


@pytest.mark.slow
def test_quick_bench_encodes_on_ray_beside_in_process(cli, bench_home, home):
    code, out, err = cli(
        "bench", "--quick", "--repeat", "1", "--only", "encode", "--workers", "1",
        "--dataset", "folder", "--data", bench_home,
    )  # fmt: skip
    assert code == 0, err
    stages = json.loads(next((home / "bench").glob("bench-*.json")).read_text())["stages"]
    assert list(stages) == ["baseline", "encode", "encode_ray"]
    ray = stages["encode_ray"]
    assert ray["images"] == 40 and set(ray["methods"]) == {"bovw", "cnn"}
    positive_numbers(ray, "encode_ray")
    assert "the in-process rate" in out
