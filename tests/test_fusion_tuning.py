"""Fusion weights chosen on validation images (leave-one-out on the index), used by evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cbir.core.errors import CbirError
from cbir.stages.evaluate import evaluate_dataset
from cbir.stages.tune import tune_fusion
from evaluation import ArrayRun, evaluate
from evaluation.fusion_tuning import GRID
from evaluation.qrels import LabelQrels, LeaveOneOutQrels
from indexing.fusion_expansion import choice_file, fusion_for
from indexing.search import SearchService


def test_leave_one_out_qrels_do_not_count_the_query_as_relevant():
    docnos = ["a", "b", "c", "d"]
    labels = ["x", "x", "x", "y"]
    run = ArrayRun(
        ["a", "d"], np.array([[1, 3], [0, 1]]), np.array([[0.9, 0.5], [0.9, 0.8]]), docnos
    )
    loo = LeaveOneOutQrels({"a": "x", "d": "y"}, docnos, labels)
    assert loo.topics() == ["a"]  # d is the only document of its label: nothing to find
    assert loo.grade_counts(["a"]).tolist() == [[0, 2]]
    assert loo.relevant_docnos("a") == ["b", "c"]
    ev = evaluate(loo, run, ["map", "P.1", "recall.2"])
    # a retrieves b (relevant) then d: AP = (1/1) / R with R = 2 (b, c; not a itself)
    assert ev.summary["map"] == pytest.approx(0.5)
    assert ev.summary["recall_2"] == pytest.approx(0.5)
    plain = evaluate(LabelQrels({"a": "x"}, docnos, labels), run, ["map"])
    assert plain.summary["map"] == pytest.approx(1 / 3)  # R = 3 would count a itself
    own = ArrayRun(["a"], np.array([[0, 1]]), np.array([[1.0, 0.9]]), docnos)
    assert evaluate(loo, own, ["P.1"]).summary["P_1"] == 0.0  # retrieving itself is not relevant


def test_tuning_picks_the_best_of_the_grid_and_evaluate_uses_it(settings, indexed, tmp_path):
    root, _, validation = indexed
    choice = tune_fusion(settings, k=10, show_progress=False)
    assert choice.queries == len(validation) == 16 and not choice.reused
    fused = [c for c in choice.candidates if "rule" in c]
    assert [(c["rule"], c["weights"]["bovw"]) for c in fused] == list(GRID)
    assert choice.value == max(c["map_minRk_10"] for c in fused) > 0
    assert {c.get("method") for c in choice.candidates} >= {"bovw", "cnn"}
    saved = json.loads(choice_file(settings).read_text())
    assert saved["rule"] == choice.rule and saved["weights"] == choice.weights
    assert tune_fusion(settings, k=10, show_progress=False).reused

    summary = evaluate_dataset(
        settings, dataset="folder", data=str(root), k=10, out_dir=tmp_path / "e", ray=None,
        show_progress=False,
    )  # fmt: skip
    assert summary.fusion["source"] == "tuned on validation"
    assert summary.fusion["rule"] == choice.rule and summary.fusion["weights"] == choice.weights
    assert summary.fusion["validation_queries"] == 16
    assert "tuned on validation" in (tmp_path / "e" / "summary.md").read_text()
    explicit = evaluate_dataset(
        settings, dataset="folder", data=str(root), k=10, out_dir=tmp_path / "e", ray=None,
        show_progress=False, fusion_rule="rrf",
    )  # fmt: skip
    assert explicit.fusion["source"] == "command line" and not explicit.reused


def test_without_tuning_or_for_other_models_the_default_is_used_and_said(settings, indexed):
    rule, weights, provenance = fusion_for(settings, {"bovw": "f1", "cnn": "f2"})
    assert (rule.value, weights) == ("rrf", {"bovw": 1.0, "cnn": 1.0})
    assert provenance["source"].startswith("default (no tuned fusion")
    tune_fusion(settings, k=10, show_progress=False)
    _, _, provenance = fusion_for(settings, {"bovw": "f1", "cnn": "f2"})
    assert "tuned for other models" in provenance["source"]


def test_bad_validation_lists_are_refused(settings, indexed, tmp_path):
    with pytest.raises(CbirError, match=r"no validation list at .*missing\.json"):
        tune_fusion(settings, validation=tmp_path / "missing.json", show_progress=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ids": []}))
    with pytest.raises(CbirError, match="doc_ids"):
        tune_fusion(settings, validation=bad, show_progress=False)
    bad.write_text(json.dumps({"doc_ids": ["test/red/000.png"]}))
    with pytest.raises(CbirError, match="must be indexed train images"):
        tune_fusion(settings, validation=bad, show_progress=False)


def test_cli_tune_fusion_prints_the_grid(cli, indexed, home, settings):
    code, out, err = cli("tune-fusion", "-k", "10")
    assert code == 0, err
    assert "16 validation queries" in out and "rrf bovw=1 cnn=1" in out
    assert f"saved in {choice_file(settings)}" in out


def test_search_and_the_web_page_fuse_with_the_tuned_choice(settings, indexed):

    service = SearchService.open_tuned(settings)
    assert service.fusion_rule.value == "rrf" and service.fusion_weights == {
        "bovw": 1.0,
        "cnn": 1.0,
    }
    service.close()
    choice = tune_fusion(settings, k=10, show_progress=False)
    service = SearchService.open_tuned(settings)
    try:
        assert service.fusion_rule.value == choice.rule
        assert service.fusion_weights == choice.weights
        assert service.score_kind("fusion") == choice.rule
    finally:
        service.close()


def test_fusion_json_files_written_before_query_expansion_still_load(settings):
    """A fusion.json of the release before α-QE (no `expansion` key) gives its fusion and the
    default expansion, saying why."""
    from indexing.expansion import Expansion
    from indexing.fusion import FusionRule
    from indexing.fusion_expansion import expansion_for, load_choice

    old = {
        "rule": "weighted",
        "weights": {"bovw": 0.5, "cnn": 1.0},
        "measure": "map_minRk_100",
        "value": 0.81,
        "queries": 16,
        "validation_file": "/models/cnn/validation.json",
        "models": {"bovw": "fp-b", "cnn": "fp-c"},
        "key": "0123456789abcdef",
        "candidates": [],
        "created": "2026-11-01T00:00:00+00:00",
    }
    choice_file(settings).parent.mkdir(parents=True, exist_ok=True)
    choice_file(settings).write_text(json.dumps(old))
    assert load_choice(settings).expansion == {}
    rule, weights, provenance = fusion_for(settings, {"bovw": "fp-b", "cnn": "fp-c"})
    assert (rule, weights) == (FusionRule.WEIGHTED, {"bovw": 0.5, "cnn": 1.0})
    assert provenance["source"] == "tuned on validation"
    expansion, why = expansion_for(settings, "cnn", "fp-c")
    assert expansion == Expansion() and "not tuned" in why["source"]
