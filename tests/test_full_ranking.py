"""mAP over the whole ranking in memory: a hand-computed case, trec_eval's map on the full run."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from evaluation import ArrayRun, LabelQrels, evaluate, read_qrels, read_run
from evaluation.errors import EvaluationError
from evaluation.full_ranking import full_ranking
from evaluation.trec_write import write_qrels, write_run


def test_hand_computed_case_with_a_tie():
    # One query along x. Cosines: d0 1.0 (rel), d1 0.6 (not), d2 0.6 (rel), d3 0 (rel), d4 -1.
    # d1 and d2 tie: trec_eval puts the larger docno first, "d2" > "d1": ranking d0 d2 d1 d3 d4.
    # Relevant at ranks 1, 2, 4 of R = 3: AP = (1/1 + 2/2 + 3/4) / 3 = 0.91666...
    # First 2: relevant at 1, 2, found 2: ap_found@2 = (1 + 1) / 2 = 1.0; first 1: 1.0.
    docs = np.array([[1, 0], [0.6, 0.8], [0.6, -0.8], [0, 1], [-1, 0]], dtype=np.float32)
    labels = ["a", "b", "a", "a", "c"]
    docnos = ["d0", "d1", "d2", "d3", "d4"]
    result = full_ranking(np.array([[2.0, 0.0]]), docs, ["a"], labels, docnos, cutoff=2)
    assert result.ap_all[0] == pytest.approx((1 + 1 + 0.75) / 3, abs=1e-15)
    assert result.ap_found[0] == 1.0
    # Swap the tied pair's docnos: the non-relevant one is now "d2" and leads the tie;
    # relevant at ranks 1, 3, 4: (1 + 2/3 + 3/4) / 3.
    swapped = ["d0", "d2", "d1", "d3", "d4"]
    result = full_ranking(np.array([[1.0, 0.0]]), docs, ["a"], labels, swapped, cutoff=2)
    assert result.ap_all[0] == pytest.approx((1 + 2 / 3 + 0.75) / 3, abs=1e-15)
    assert result.ap_found[0] == 1.0  # only d0 found in the first 2: 1/1 over 1


def test_queries_without_relevant_documents_are_left_out_of_the_means():
    docs = np.eye(3, dtype=np.float32)
    result = full_ranking(np.eye(3)[:2], docs, ["a", "zzz"], ["a", "b", "b"], ["x", "y", "z"])
    assert result.num_rel.tolist() == [1, 0]
    assert result.summary() == {"num_q": 1, "map_all": 1.0, "map_found_1000": 1.0}


def sign_collection(seed: int, queries: int = 25, docs: int = 160, dim: int = 16):
    """+-1 vectors: every cosine is a multiple of 1/8 computed exactly, so ties abound."""
    rng = np.random.default_rng(seed)
    q = rng.choice([-1.0, 1.0], size=(queries, dim)).astype(np.float32)
    d = rng.choice([-1.0, 1.0], size=(docs, dim)).astype(np.float32)
    q_labels = rng.integers(0, 5, queries).tolist()  # label 4: no document has it
    d_labels = rng.integers(0, 4, docs).tolist()
    docnos = [f"{int(i)}" for i in rng.permutation(docs) * 7]  # "1001" < "98" as bytes
    return q, d, q_labels, d_labels, docnos


@pytest.mark.parametrize("seed", range(4))
def test_ap_all_is_trec_eval_map_of_the_full_run(seed, tmp_path):
    q, d, q_labels, d_labels, docnos = sign_collection(seed)
    result = full_ranking(q, d, q_labels, d_labels, docnos, cutoff=10, chunk=7)
    topics = [f"q{i}" for i in range(len(q))]
    scores = (q @ d.T) / np.float32(len(q[0]))  # exact: the cosines of +-1 vectors
    index = np.tile(np.arange(len(d)), (len(q), 1))
    run = ArrayRun(topics, index, scores, docnos)
    qrels = LabelQrels(dict(zip(topics, q_labels, strict=True)), docnos, d_labels)
    write_qrels(tmp_path / "qrels", qrels)
    write_run(tmp_path / "run", run)
    ev = evaluate(read_qrels(tmp_path / "qrels"), read_run(tmp_path / "run"), ["map", "num_q"])
    judged = [i for i in range(len(q)) if result.num_rel[i] > 0]
    assert ev.topics == sorted(topics[i] for i in judged)
    expected = dict(zip(ev.topics, ev.values["map"].tolist(), strict=True))
    assert [result.ap_all[i] for i in judged] == [expected[topics[i]] for i in judged]
    summary = result.summary()
    assert summary["num_q"] == ev.summary["num_q"] == len(judged) < len(q)
    assert summary["map_all"] == pytest.approx(ev.summary["map"], abs=1e-15)
    binary = os.environ.get("TREC_EVAL_908")
    if binary:  # the release itself, when built (see docs/evaluation-measures.md)
        out = subprocess.run(
            [binary, "-m", "map", str(tmp_path / "qrels"), str(tmp_path / "run")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out == f"map                   \tall\t{summary['map_all']:6.4f}\n"


@pytest.mark.parametrize("seed", range(3))
def test_ap_found_against_a_plain_loop(seed):
    q, d, q_labels, d_labels, docnos = sign_collection(seed, queries=12, docs=60)
    cutoff = 9
    result = full_ranking(q, d, q_labels, d_labels, docnos, cutoff=cutoff)
    scores = (q @ d.T) / np.float32(16)
    for i in range(len(q)):
        ranked = sorted(range(len(d)), key=lambda j: (scores[i, j], docnos[j].encode()))[::-1]
        found, total = 0, 0.0
        for rank, j in enumerate(ranked[:cutoff], 1):
            if d_labels[j] == q_labels[i]:
                found += 1
                total += found / rank
        assert result.ap_found[i] == pytest.approx(total / found if found else 0.0, abs=1e-15)


def test_bad_input_is_named():
    with pytest.raises(EvaluationError, match="dims"):
        full_ranking(np.ones((1, 3)), np.ones((2, 4)), ["a"], ["a", "b"], ["x", "y"])
    with pytest.raises(EvaluationError, match="NaN"):
        full_ranking(np.full((1, 2), np.nan), np.ones((2, 2)), ["a"], ["a", "b"], ["x", "y"])
