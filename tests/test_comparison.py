"""Reading `cbir evaluate` outputs back, stored vectors, sweeps and the figures: known answers."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex

from benchmarks.synthetic import write_labelled_folder
from benchmarks.toy_extractors import ColourMomentsExtractor, ThumbnailExtractor
from cbir.core.errors import CbirError
from evaluation import ArrayRun, LabelQrels, evaluate, write_qrels, write_run
from evaluation.analysis import GalleryRow
from evaluation.comparison import markdown_table, measures_table, read_evaluation, stored_vectors
from evaluation.plots import (
    NOT_RELEVANT_COLOUR,
    RELEVANT_COLOUR,
    plot_class_matrices,
    plot_curves,
    plot_gallery,
    plot_per_class,
)
from evaluation.sweep import rank_by_cosine, sweep, validation_split
from features.base import ModelInfo
from indexing.datasets import FolderDataset
from indexing.stores.base import Document
from indexing.stores.urls import open_store

matplotlib.use("Agg")


def write_outputs(directory, dataset="folder", k=2):
    docnos, labels = ["d1", "d2", "d3"], ["a", "a", "b"]
    qrels = LabelQrels({"q1": "a", "q2": "b"}, docnos, labels)
    runs = {
        "bovw": ArrayRun(["q1", "q2"], np.array([[2, 0], [2, 1]]), np.ones((2, 2)), docnos),
        "cnn": ArrayRun(["q1", "q2"], np.array([[0, 1], [2, 0]]), np.ones((2, 2)), docnos),
    }
    directory.mkdir(parents=True, exist_ok=True)
    write_qrels(directory / "qrels.txt", qrels)
    methods = {}
    for name, run in runs.items():
        write_run(directory / f"run.{name}.txt", run)
        ev = evaluate(qrels, run, [f"map_cut.{k}", "P.10"])
        methods[name] = {"measures": {m: v for m, v in ev.summary.items()}}
    summary = {"dataset": dataset, "k": k, "queries": 2, "documents": 3, "methods": methods}
    (directory / "summary.json").write_text(json.dumps(summary))
    return qrels, runs


def test_read_evaluation_gives_runs_and_qrels_that_evaluate_like_the_summary(tmp_path):
    write_outputs(tmp_path / "run")
    outputs = read_evaluation(tmp_path / "run")
    assert outputs.methods == ["bovw", "cnn"] and outputs.k == 2
    for name, run in outputs.runs.items():
        expected = outputs.summary["methods"][name]["measures"]["map_cut_2"]
        assert evaluate(outputs.qrels, run, ["map_cut.2"]).summary["map_cut_2"] == expected
    # ties (all scores 1): trec_eval order is docno descending, whatever the file order
    assert outputs.runs["cnn"].ranked("q1")[0] == ["d2", "d1"]
    assert read_evaluation(tmp_path / "run", ["cnn"]).methods == ["cnn"]


def test_read_evaluation_names_what_is_missing(tmp_path):
    with pytest.raises(CbirError, match=r"no summary\.json in .*cbir evaluate"):
        read_evaluation(tmp_path)
    write_outputs(tmp_path / "run")
    with pytest.raises(CbirError, match=r"no results for fusion \(it has: bovw, cnn\)"):
        read_evaluation(tmp_path / "run", ["bovw", "fusion"])
    (tmp_path / "run" / "run.cnn.txt").unlink()
    with pytest.raises(CbirError, match=r"run\.cnn\.txt is missing"):
        read_evaluation(tmp_path / "run")


def test_measures_table_adds_the_published_baselines_only_for_cifar10_at_100(tmp_path):
    summary = {
        "dataset": "cifar10",
        "k": 100,
        "methods": {"cnn": {"measures": {"map_cut_100": 0.012345, "P_10": 0.5}}},
    }
    header, rows = measures_table(summary)
    assert header[:3] == ["method", "map_cut_100", "AP@100/min(R,100)"]
    assert rows[0][:2] == ["cnn", "0.0123"] and rows[0][2] == "-"
    assert [r[:2] for r in rows[1:]] == [
        ["bovw (published)", "0.0019"],
        ["vgg16 (published)", "0.0088"],
    ]
    assert len(measures_table({**summary, "k": 10})[1]) == 1
    assert len(measures_table({**summary, "dataset": "folder"})[1]) == 1
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_stored_vectors_reads_back_and_leaves_out_zero_vectors(tmp_path):
    store = open_store(f"local:{tmp_path / 'index'}")
    store.create({"cnn": ModelInfo("cnn", 3, "f1")})
    vectors = {"a": [1, 0, 0], "b": [0, 0, 0], "c": [0, 3, 4]}
    store.upsert(
        Document(d, f"{d}.png", "x" if d != "c" else "y", "train", {"cnn": np.array(v, np.float32)})
        for d, v in vectors.items()
    )
    ids, labels, matrix = stored_vectors(store, "cnn", ["c", "b", "a", "missing"])
    assert ids == ["c", "a"] and labels == ["y", "x"]
    np.testing.assert_allclose(matrix, [[0, 0.6, 0.8], [1, 0, 0]], atol=1e-6)
    with pytest.raises(CbirError, match="no 'bovw' field"):
        stored_vectors(store, "bovw", ["a"])
    store.close()


def test_rank_by_cosine_by_hand():
    queries = np.array([[1, 0], [0, 1]], np.float32)
    documents = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
    qrels, run = rank_by_cosine(queries, documents, ["a", "b"], ["a", "b", "b"], 2)
    ev = evaluate(qrels, run, ["map_minRk.2", "P.1"])
    # q0: d0 (1.0, rel), d1 (0.6) -> AP 1/min(1,2) = 1; q1: d2 (1.0, rel), d1 (0.8, rel) -> 1
    assert ev.summary["map_minRk_2"] == 1.0 and ev.summary["P_1"] == 1.0
    index, _, _ = run.ranked()
    assert index.tolist() == [[0, 1, 2], [2, 1, 0]]


def test_validation_split_is_disjoint_stratified_and_from_train(tmp_path):
    root = write_labelled_folder(tmp_path / "data", labels=("r", "g", "b"), train=12, test=3)
    split = validation_split(
        FolderDataset(root), fit_per_label=4, documents_per_label=5, queries_per_label=2, seed=1
    )
    assert len(split.fit_images) == 12 and len(split.documents) == 15 and len(split.queries) == 6
    assert sorted(split.query_labels) == ["b", "b", "g", "g", "r", "r"]
    keys = [im.tobytes() for im in [*split.fit_images, *split.documents, *split.queries]]
    assert len(set(keys)) == len(keys)  # every image is a different noise draw
    test_images = {
        FolderDataset(root).image(r).tobytes() for r in FolderDataset(root).records("test")
    }
    assert not test_images & set(keys)


def test_sweep_measures_each_setting(tmp_path):
    root = write_labelled_folder(tmp_path / "data", labels=("r", "g", "b"), train=12, test=2)
    split = validation_split(
        FolderDataset(root), fit_per_label=4, documents_per_label=5, queries_per_label=3
    )
    seen = []
    results = sweep(
        lambda s: ThumbnailExtractor(**s) if "side" in s else ColourMomentsExtractor(),
        [{}, {"side": 1}],
        split,
        k=5,
        on_result=seen.append,
    )
    assert seen == results and [r.dim for r in results] == [6, 3]
    # distinct class colours: colour moments retrieve only the query's class
    assert results[0].measures["map_minRk_5"] == 1.0 and results[0].measures["P_10"] == 0.5
    assert results[1].setting == {"side": 1} and results[0].zero_vectors == 0


def test_gallery_frames_relevant_results_green_and_others_red():
    rows = [GalleryRow("q", {"bovw": [("a", True), ("b", False)], "cnn": [("b", False)]})]
    fig = plot_gallery(rows, lambda d: np.zeros((4, 4, 3), np.uint8), per_method=2)
    axes = np.array(fig.axes).reshape(2, 3)
    assert to_hex(axes[0, 1].spines["top"].get_edgecolor()) == RELEVANT_COLOUR
    assert to_hex(axes[0, 2].spines["top"].get_edgecolor()) == NOT_RELEVANT_COLOUR
    assert to_hex(axes[1, 1].spines["top"].get_edgecolor()) == NOT_RELEVANT_COLOUR
    assert not axes[1, 2].images and axes[1, 0].get_ylabel() == "cnn"


def test_bar_curve_and_matrix_figures_draw_the_given_values():
    fig = plot_per_class(
        {"bovw": {"a": 0.1, "b": 0.2}, "cnn": {"a": 0.3, "b": 0.4}}, ylabel="AP", title="t"
    )
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == [0.1, 0.2, 0.3, 0.4]
    fig = plot_curves(
        {"m": (np.arange(3), np.array([0.5, 0.4, 0.3]))}, xlabel="k", ylabel="P", title="t"
    )
    assert fig.axes[0].lines[0].get_ydata().tolist() == [0.5, 0.4, 0.3]
    fig = plot_class_matrices({"m": np.array([[0.75, 0.25], [0.0, 1.0]])}, ["a", "b"], title="t")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.25", "0.75", "1.00"]
