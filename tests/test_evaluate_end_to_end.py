"""A miniature end to end: index a generated labelled dataset with two methods, evaluate, check the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.toy_extractors import ThumbnailExtractor
from benchmarks.web_index import build_indexed_folder
from cbir.stages import evaluate as evaluate_stage
from cbir.stages.evaluate import evaluate_dataset
from cbir.stages.trec_eval import evaluate_files
from evaluation.run import ArrayRun
from evaluation.trec_write import write_run
from indexing.datasets import FolderDataset
from indexing.fusion import fuse
from indexing.stores.base import ModelMismatchError
from indexing.stores.embedded import EmbeddedStore
from indexing.stores.urls import open_store

LABELS = ("red", "green", "blue", "grey")


@pytest.fixture
def indexed(tmp_path, settings):
    # written before indexing: the bad query image is skipped and listed
    root = tmp_path / "data"
    (root / "test" / "grey").mkdir(parents=True)
    (root / "test" / "grey" / "bad.png").write_bytes(b"not a png")
    built = build_indexed_folder(tmp_path, settings, labels=LABELS, train=15, test=5, spread=40)
    root, models = built.data, built.models
    return root, models


def run_evaluate(settings, root, tmp_path, **kwargs):
    return evaluate_dataset(
        settings,
        dataset="folder",
        data=str(root),
        k=kwargs.pop("k", 10),
        out_dir=tmp_path / "eval",
        ray=None,
        show_progress=False,
        **kwargs,
    )


def test_run_files_give_the_summary_numbers_under_trec_eval(settings, indexed, tmp_path):
    root, _ = indexed
    summary = run_evaluate(settings, root, tmp_path)
    assert summary.queries == 20 and summary.documents == 60 and summary.exact
    assert summary.skipped_queries[0]["path"] == "test/grey/bad.png"
    assert list(summary.methods) == ["bovw", "cnn", "fusion"]
    out = tmp_path / "eval"
    assert len((out / "qrels.txt").read_text().splitlines()) == 20 * 15
    for method, result in summary.methods.items():
        ev = evaluate_files(
            out / "qrels.txt",
            out / f"run.{method}.txt",
            ["map_cut.10", "map", "P.10", "ndcg_cut.10", "recip_rank", "recall.10"],
        )
        for name, value in ev.summary.items():
            if name != "runid":
                assert value == pytest.approx(result.measures[name], abs=1e-12), (method, name)
        assert result.measures["num_q"] == 20
    saved = json.loads((out / "summary.json").read_text())
    assert saved["methods"]["cnn"]["measures"]["P_10"] == summary.methods["cnn"].measures["P_10"]
    assert "| fusion |" in (out / "summary.md").read_text()


def test_fusion_is_at_least_as_good_as_the_worse_method(settings, indexed, tmp_path):
    root, _ = indexed
    m = run_evaluate(settings, root, tmp_path).methods
    key = "map_minRk_10"
    assert m["fusion"].measures[key] >= min(m["bovw"].measures[key], m["cnn"].measures[key])
    weighted = run_evaluate(
        settings,
        root,
        tmp_path,
        fusion_rule="weighted",
        fusion_weights={"bovw": 1, "cnn": 3},
        force=True,
    )
    assert weighted.fusion == {
        "rule": "weighted",
        "weights": {"bovw": 1, "cnn": 3},
        "source": "command line",
    }
    per_label = weighted.methods["cnn"].per_label
    assert set(per_label) == set(LABELS) and per_label["red"]["num_q"] == 5


def test_an_identical_evaluation_is_reused_unless_forced(settings, indexed, tmp_path):
    root, _ = indexed
    first = run_evaluate(settings, root, tmp_path)
    again = run_evaluate(settings, root, tmp_path)
    assert again.reused and again.methods["cnn"].measures == first.methods["cnn"].measures
    assert not run_evaluate(settings, root, tmp_path, force=True).reused
    assert not run_evaluate(settings, root, tmp_path, k=5).reused


def test_an_index_built_by_another_model_is_refused(settings, indexed, tmp_path):
    root, models = indexed
    ds = FolderDataset(root)
    retrained = ThumbnailExtractor(4).fit([ds.image(r) for r in ds.records("train")[:5]])
    retrained.save(models["cnn"])  # the path the index recorded now holds another model
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        run_evaluate(settings, root, tmp_path, force=True)


def test_cli_evaluate_prints_the_table(cli, settings, indexed, tmp_path, home):
    root, _ = indexed
    code, out, err = cli(
        "evaluate",
        "--dataset",
        "folder",
        "--data",
        root,
        "-k",
        "10",
        "--no-ray",
        "--method",
        "bovw,cnn",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert (
        "AP@10/min(R,10)" in lines[1] and lines[3].startswith("bovw") and lines[4].startswith("cnn")
    )
    assert (home / "runs" / "folder" / "run.cnn.txt").is_file()
    code, _, err = cli("evaluate", "--dataset", "folder", "--data", root, "--method", "sift")
    assert code == 2 and "no sift field" in err


def test_full_ranking_map_is_trec_eval_map_of_a_run_with_every_document(
    settings, indexed, tmp_path
):
    # With k = all 60 documents the run files hold the full ranking: trec_eval's map of them
    # is mAP@ALL. mAP@1000 divides by relevant found, all 15 here: the same value.
    root, _ = indexed
    summary = run_evaluate(
        settings, root, tmp_path, k=60, methods=["bovw", "cnn"], full_ranking=True
    )
    for method, result in summary.methods.items():
        ev = evaluate_files(
            tmp_path / "eval" / "qrels.txt", tmp_path / "eval" / f"run.{method}.txt", ["map"]
        )
        full = result.full_ranking
        assert full["num_q"] == 20 and full["documents"] == 60
        assert full["map_all"] == pytest.approx(ev.summary["map"], abs=1e-12), method
        assert full["map_found_1000"] == pytest.approx(full["map_all"], abs=1e-12)
    saved = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert (
        saved["methods"]["cnn"]["full_ranking"]["map_all"]
        == summary.methods["cnn"].full_ranking["map_all"]
    )


def test_run_files_from_the_store_arrays_equal_those_from_its_hits(
    settings, indexed, tmp_path, monkeypatch
):
    """The stage ranks with `search_ranked`; its run files are byte for byte those that
    `search`'s hit lists give (fusion included, which is built from them)."""
    searches, written = [], {}
    ranked = EmbeddedStore.search_ranked

    def recording(self, field, vectors, k, *args, **kwargs):
        searches.append((field, np.array(vectors), k, kwargs))
        return ranked(self, field, vectors, k, *args, **kwargs)

    def write(destination, run, **kwargs):
        written[Path(destination).name] = run
        return write_run(destination, run, **kwargs)

    monkeypatch.setattr(EmbeddedStore, "search_ranked", recording)
    monkeypatch.setattr(evaluate_stage, "write_run", write)
    root, _ = indexed
    summary = run_evaluate(settings, root, tmp_path, k=30)
    monkeypatch.undo()
    assert [s[0] for s in searches] == ["bovw", "cnn"]
    hits = {}
    with open_store(settings.store, settings) as store:
        for field, vectors, k, kwargs in searches:
            hits[field] = store.search(field, vectors, k, **kwargs)
    topics, docnos = written["run.cnn.txt"].topics, written["run.cnn.txt"].docnos
    fused = [
        fuse({m: hits[m][i] for m in hits}, 30, summary.fusion["rule"], summary.fusion["weights"])
        for i in range(len(topics))
    ]
    for method, lists in {**hits, "fusion": fused}.items():
        expected = ArrayRun.from_hits(topics, lists, docnos, tag=f"cbir-{method}")
        write_run(tmp_path / f"expected.{method}", expected)
        got = (tmp_path / "eval" / f"run.{method}.txt").read_bytes()
        assert got == (tmp_path / f"expected.{method}").read_bytes(), method
        assert got.count(b"\n") == 20 * 30
