"""Alpha query expansion: the formula, the search through a store, tuning and evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cbir.core.errors import CbirError
from cbir.stages.evaluate import evaluate_dataset
from cbir.stages.tune import tune_fusion
from evaluation.fusion_tuning import EXPANSION_GRID
from evaluation.query_quality import query_quality
from features.base import ModelInfo
from indexing.expansion import Expansion, expand_vectors, expanded_search
from indexing.fusion_expansion import choice_file, expansion_for
from indexing.methods import MethodName, MethodNameError
from indexing.search import SearchService
from indexing.stores.base import Document
from indexing.stores.embedded import EmbeddedStore


def test_expanded_query_is_the_weighted_sum_of_query_and_neighbours():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    neighbours = [np.array([[0.0, 1.0], [1.0, 0.0]]), np.zeros((0, 2))]
    sims = [np.array([0.5, -0.2]), np.zeros(0)]
    out = expand_vectors(q, neighbours, sims, alpha=2.0)
    # q + 0.5^2 * (0, 1) + max(-0.2, 0)^2 * (1, 0) = (1, 0.25), normalised
    np.testing.assert_allclose(out[0], np.array([1, 0.25]) / np.hypot(1, 0.25), rtol=1e-6)
    np.testing.assert_array_equal(out[1], q[1])  # no neighbours: the query is kept
    flat = expand_vectors(q[:1], [np.array([[0.0, 1.0]])], [np.array([0.25])], alpha=0.0)
    np.testing.assert_allclose(flat[0], np.array([1, 1]) / np.sqrt(2), rtol=1e-6)  # alpha 0: mean


def test_expansion_options_parse_and_bad_ones_are_refused():
    assert Expansion.parse("10:3") == Expansion(10, 3.0)
    assert Expansion.parse("7") == Expansion(7, Expansion.alpha)
    assert str(Expansion(20, 1.0)) == "20:1"
    with pytest.raises(CbirError, match=r"cannot read query expansion 'ten'.*10:3"):
        Expansion.parse("ten")
    with pytest.raises(CbirError, match="k >= 1"):
        Expansion(0)
    with pytest.raises(CbirError, match="alpha >= 0"):
        Expansion(5, -1.0)
    assert MethodName.parse("cnn+qe") == MethodName("cnn", expanded=True)
    assert MethodName.parse("cnn") == MethodName("cnn") and str(MethodName("cnn", True)) == "cnn+qe"
    assert MethodName.parse("fusion").is_fusion
    for bad in ("", "+qe", "cnn+xx", "cnn+qe+qe"):
        with pytest.raises(MethodNameError, match="cannot read method"):
            MethodName.parse(bad)


def _store(tmp_path, vectors: np.ndarray) -> EmbeddedStore:
    store = EmbeddedStore(tmp_path / "index")
    info = ModelInfo("toy", vectors.shape[1], "f" * 16)
    store.create({"v": info})
    store.upsert(Document(f"d{i:02d}", vectors={"v": v}) for i, v in enumerate(vectors))
    return store


def _reference(matrix: np.ndarray, q: np.ndarray, k: int, expansion: Expansion, skip=None):
    """Numpy by hand: top k by cosine, expand, search again (ids of the second round)."""
    allowed = np.ones(len(matrix), bool)
    if skip is not None:
        allowed[skip] = False
    scores = np.where(allowed, matrix @ q, -np.inf)
    top = np.argsort(-scores, kind="stable")[: expansion.k]
    weights = np.clip(scores[top], 0, None) ** expansion.alpha
    new = q + (weights[:, None] * matrix[top]).sum(0)
    new /= np.linalg.norm(new)
    again = np.where(allowed, matrix @ new, -np.inf)
    return [f"d{i:02d}" for i in np.argsort(-again, kind="stable")[:k]]


def test_expanded_search_matches_a_by_hand_reference_and_leaves_the_query_out(tmp_path):
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(40, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    store = _store(tmp_path, matrix)
    try:
        queries = matrix[:3] + 0.3 * rng.normal(size=(3, 8)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        expansion = Expansion(5, 2.0)
        hits = expanded_search(store, "v", queries, 6, expansion)
        for q, row in zip(queries, hits, strict=True):
            assert [h.doc_id for h in row] == _reference(matrix, q, 6, expansion)
        plain = [[h.doc_id for h in row] for row in store.search("v", queries, 6)]
        assert [[h.doc_id for h in row] for row in hits] != plain  # expansion changed something

        # an indexed query: left out of both rounds, so it never expands itself
        own = expanded_search(store, "v", matrix[:2], 6, expansion, exclude=["d00", "d01"])
        for i, row in enumerate(own):
            assert f"d{i:02d}" not in [h.doc_id for h in row]
            assert [h.doc_id for h in row] == _reference(matrix, matrix[i], 6, expansion, skip=i)
        # a first round already searched is reused
        first = store.search("v", queries, 6)
        assert [[h.doc_id for h in r] for r in expanded_search(
            store, "v", queries, 6, expansion, first=first
        )] == [[h.doc_id for h in r] for r in hits]  # fmt: skip
        # a zero query stays without hits
        assert expanded_search(store, "v", np.zeros((1, 8), np.float32), 6, expansion) == [[]]
    finally:
        store.close()


def test_tuning_chooses_each_methods_expansion_and_evaluate_uses_it(
    settings,
    indexed,
    tmp_path,
):
    root, _, _ = indexed
    expansion, provenance = expansion_for(settings, "cnn", "any")
    assert expansion == Expansion() and provenance["source"].startswith("default (not tuned")
    choice = tune_fusion(settings, k=10, show_progress=False)
    assert set(choice.expansion) == {"bovw", "cnn"}
    for tuned in choice.expansion.values():
        grid = [(c["k"], c["alpha"]) for c in tuned["candidates"]]
        assert grid == [(n, a) for n, a in EXPANSION_GRID if n <= 10]
        assert tuned["map_minRk_10"] == max(c["map_minRk_10"] for c in tuned["candidates"])
    assert json.loads(choice_file(settings).read_text())["expansion"] == choice.expansion

    summary = evaluate_dataset(
        settings, dataset="folder", data=str(root), methods=["cnn", "cnn+qe"], k=10,
        out_dir=tmp_path / "e", ray=None, show_progress=False,
    )  # fmt: skip
    options = summary.expansion["cnn+qe"]
    assert options["source"] == "tuned on validation"
    assert (options["k"], options["alpha"]) == (
        choice.expansion["cnn"]["k"],
        choice.expansion["cnn"]["alpha"],
    )
    assert list(summary.methods) == ["cnn", "cnn+qe"]
    assert (tmp_path / "e" / "run.cnn+qe.txt").is_file()
    assert "cnn+qe: alpha query expansion" in (tmp_path / "e" / "summary.md").read_text()
    assert 0 < summary.methods["cnn+qe"].measures["map_minRk_10"] <= 1

    explicit = evaluate_dataset(
        settings, dataset="folder", data=str(root), methods=["cnn+qe"], k=10,
        out_dir=tmp_path / "e", ray=None, show_progress=False, expansion=Expansion(3, 1.0),
    )  # fmt: skip
    assert not explicit.reused and explicit.expansion["cnn+qe"]["source"] == "command line"
    assert (explicit.expansion["cnn+qe"]["k"], explicit.expansion["cnn+qe"]["alpha"]) == (3, 1.0)


def test_cli_evaluate_with_expansion(cli, indexed, home, capsys):
    code, out, err = cli("evaluate", "--dataset", "folder", "--data", str(indexed[0]),
                         "--method", "cnn+qe", "-k", "5", "--expand", "3:1", "--no-ray")  # fmt: skip
    assert code == 0, err
    assert "cnn+qe: alpha query expansion k=3 alpha=1, command line" in out
    with pytest.raises(SystemExit) as exit_info:
        cli("evaluate", "--method", "cnn+qe", "--expand", "x")
    assert exit_info.value.code == 2
    assert "cannot read query expansion 'x'" in capsys.readouterr().err


def test_search_service_offers_expanded_methods_with_the_tuned_expansion(settings, indexed):

    _, _, validation = indexed
    choice = tune_fusion(settings, k=10, show_progress=False)
    service = SearchService.open_tuned(settings)
    try:
        assert service.methods == ["bovw", "cnn", "fusion", "bovw+qe", "cnn+qe"]
        tuned = choice.expansion["cnn"]
        assert service.expansions["cnn"] == Expansion(tuned["k"], tuned["alpha"])
        doc = validation[0]
        result = service.search_id(doc, "cnn+qe", 8)
        assert doc not in [h.doc_id for h in result.hits] and len(result.hits) == 8
        vector = service.store.get([doc])[doc].vectors["cnn"]
        expected = expanded_search(
            service.store, "cnn", vector[None, :], 8, service.expansions["cnn"], exclude=[doc]
        )[0]
        assert result.hits == expected and service.score_kind("cnn+qe") == "cosine"
        assert query_quality(result, service.label_counts)["precision"] > 0
    finally:
        service.close()
