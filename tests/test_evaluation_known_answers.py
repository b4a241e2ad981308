"""Hand-computed answers for the traps of trec_eval semantics, on inline TREC strings."""

from __future__ import annotations

import io
import math

import pytest

from evaluation import LabelQrels, evaluate, read_qrels, read_run
from evaluation.errors import EvaluationError
from tests.trec_cases import QRELS, RUN

ALL = [
    "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank",
    "P.1,2,5,10", "recall.2,5", "ndcg_cut.2,5", "map_cut.2,5", "map_minRk.2,5",
]  # fmt: skip


def run_and_qrels(qrels: str = QRELS, run: str = RUN):
    return read_qrels(io.StringIO(qrels)), read_run(io.StringIO(run))


def values(ev, topic: str) -> dict[str, float]:
    return ev.per_topic()[topic]


def test_ties_are_broken_by_docno_descending_and_the_rank_column_is_ignored():
    ev = evaluate(*run_and_qrels(), ALL)
    t1 = values(ev, "1")
    # Ranking d5 (not judged), d3 (1), d2 (0), d1 (2), d4 (1); R = 3 (d1, d3, d4).
    assert t1["map"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3, abs=1e-12)
    assert t1["recip_rank"] == 0.5
    assert t1["Rprec"] == pytest.approx(1 / 3)  # 1 relevant among the first R = 3
    assert t1["P_1"] == 0.0 and t1["P_2"] == 0.5 and t1["P_5"] == 0.6
    assert t1["P_10"] == 0.3  # always divided by k, even with 5 retrieved
    assert t1["recall_2"] == pytest.approx(1 / 3) and t1["recall_5"] == 1.0
    assert t1["map_cut_2"] == pytest.approx((1 / 2) / 3)
    assert t1["map_minRk_2"] == pytest.approx((1 / 2) / 2)
    assert t1["num_ret"] == 5 and t1["num_rel"] == 3 and t1["num_rel_ret"] == 3


def test_ndcg_uses_the_grade_as_gain_and_log2_of_rank_plus_one():
    ev = evaluate(*run_and_qrels(), ["ndcg_cut.2,5"])
    t1 = values(ev, "1")
    dcg5 = 1 / math.log2(3) + 2 / math.log2(5) + 1 / math.log2(6)  # grades 1, 2, 1 at ranks 2, 4, 5
    ideal5 = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # grades 2, 1, 1
    assert t1["ndcg_cut_5"] == pytest.approx(dcg5 / ideal5, abs=1e-12)
    assert t1["ndcg_cut_2"] == pytest.approx((1 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_zero_and_negative_zero_scores_tie():
    ev = evaluate({"q": {"a": 1}}, {"q": {"a": 0.0, "b": -0.0}}, ["recip_rank"])
    assert values(ev, "q")["recip_rank"] == 0.5  # a tie: "b" > "a" ranks first


def test_docnos_compare_as_strings_not_numbers():
    ev = evaluate(*run_and_qrels(), ALL)
    t10 = values(ev, "10")  # "9" (relevant) ranks above "10" although 10 > 9
    assert t10["recip_rank"] == 1.0 and t10["map"] == 1.0 and t10["P_1"] == 1.0


def test_topic_with_only_grade_zero_judgments_counts_and_scores_zero():
    ev = evaluate(*run_and_qrels(), ALL)
    assert "2" in ev.topics
    assert all(v == 0 for k, v in values(ev, "2").items() if k != "num_ret")
    assert ev.summary["num_q"] == 3


def test_missing_and_run_only_topics_without_c():
    ev = evaluate(*run_and_qrels(), ALL)
    assert ev.topics == ["1", "10", "2"]  # byte order; 3 missing, 77 run-only
    assert ev.missing_topics == ["3"]
    ap1 = (1 / 2 + 2 / 4 + 3 / 5) / 3
    assert ev.summary["map"] == pytest.approx((ap1 + 1.0 + 0.0) / 3, abs=1e-12)
    assert ev.summary["num_rel"] == 3 + 1 + 0 and ev.summary["num_ret"] == 5 + 2 + 1


def test_complete_averages_over_all_judged_topics():
    ev = evaluate(*run_and_qrels(), ALL, complete=True)
    ap1 = (1 / 2 + 2 / 4 + 3 / 5) / 3
    assert ev.summary["num_q"] == 4  # 1, 2, 3, 10
    assert ev.summary["map"] == pytest.approx((ap1 + 1.0) / 4, abs=1e-12)
    assert ev.summary["P_5"] == pytest.approx((3 / 5 + 1 / 5) / 4)
    assert ev.summary["num_rel"] == 5  # every grade > 0 in the qrels, topic 3 included
    assert ev.summary["num_ret"] == 8 and ev.summary["num_rel_ret"] == 4
    assert ev.topics == ["1", "10", "2"]  # no per-topic values for the missing topic


def test_relevance_level_two():
    ev = evaluate(*run_and_qrels(), ALL, relevance_level=2)
    t1 = values(ev, "1")
    assert t1["num_rel"] == 1 and t1["map"] == 0.25 and t1["recip_rank"] == 0.25
    plain = evaluate(*run_and_qrels(), ALL)
    assert t1["ndcg_cut_5"] == values(plain, "1")["ndcg_cut_5"]  # nDCG ignores -l
    assert ev.summary["num_rel"] == 1  # topic 10 has no grade >= 2
    assert (
        evaluate(*run_and_qrels(), ALL, relevance_level=2, complete=True).summary["num_rel"] == 5
    )  # trec_eval's -c count is grade > 0 whatever -l
    zero = values(evaluate(*run_and_qrels(), ALL, relevance_level=0), "1")
    assert zero["num_rel"] == 5  # every judged document, grade 0 included; d5 was not judged
    assert zero["map"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4 + 4 / 5) / 5, abs=1e-12)


def long_topic(retrieved: int = 150, relevant_unretrieved: int = 125):
    """Ranks 1..150, every odd rank relevant (75 retrieved), R = 200."""
    qrels = [f"L 0 d{i:03d} {1 if i % 2 == 0 else 0}" for i in range(retrieved)]
    qrels += [f"L 0 u{i:03d} 1" for i in range(relevant_unretrieved)]
    run = [f"L Q0 d{i:03d} {i + 1} {retrieved - i} t" for i in range(retrieved)]
    return run_and_qrels("\n".join(qrels) + "\n", "\n".join(run) + "\n")


def odd_rank_sum(relevant_seen: int) -> float:
    return sum((j + 1) / (2 * j + 1) for j in range(relevant_seen))


def test_runs_longer_than_100_and_map_cut_divides_by_all_relevant():
    ev = evaluate(*long_topic(), ["map", "map_cut.100", "map_minRk.100", "P.100", "recall.100"])
    t = values(ev, "L")
    assert t["map_cut_100"] == pytest.approx(odd_rank_sum(50) / 200, abs=1e-12)  # not / 100
    assert t["map_minRk_100"] == pytest.approx(odd_rank_sum(50) / 100, abs=1e-12)
    assert t["map"] == pytest.approx(odd_rank_sum(75) / 200, abs=1e-12)
    assert t["P_100"] == 0.5 and t["recall_100"] == 50 / 200


def test_max_depth_cuts_the_ranking():
    ev = evaluate(*long_topic(), ["map", "P.100", "num_ret", "num_rel"], max_depth=50)
    t = values(ev, "L")
    assert t["num_ret"] == 50 and t["num_rel"] == 200
    assert t["map"] == pytest.approx(odd_rank_sum(25) / 200, abs=1e-12)
    assert t["P_100"] == 25 / 100
    zero = evaluate(*long_topic(), ["map", "num_ret"], max_depth=0)
    assert values(zero, "L") == {"num_ret": 0, "map": 0.0}


def test_empty_run_scores_zero_and_bad_inputs_are_errors():
    qrels, _ = run_and_qrels()
    ev = evaluate(qrels, read_run(io.StringIO("")), ["map", "num_q", "P.5"])
    assert ev.topics == [] and ev.summary == {"num_q": 0, "map": 0.0, "P_5": 0.0}
    assert evaluate(qrels, {}, ["num_q"], complete=True).summary["num_q"] == 4
    with pytest.raises(EvaluationError, match="none of the run's 1 topics"):
        evaluate(qrels, {"zz": {"d": 1.0}}, ["map"])
    with pytest.raises(EvaluationError, match="no topics"):
        evaluate({}, {"1": {"d": 1.0}}, ["map"])
    with pytest.raises(EvaluationError, match="-M"):
        evaluate(qrels, {}, ["map"], max_depth=-1)


def test_runid_is_the_tag_of_the_last_line():
    ev = evaluate(*run_and_qrels(), ["runid"])
    assert ev.summary == {"runid": "tagB"}


def test_per_label_breakdown():
    ev = evaluate(*run_and_qrels(), ["map", "num_ret"])
    labels = {"1": "cats", "10": "cats", "2": "dogs", "3": "dogs"}
    ap1 = (1 / 2 + 2 / 4 + 3 / 5) / 3
    assert ev.by_label(labels) == {
        "cats": {"num_q": 2, "map": pytest.approx((ap1 + 1.0) / 2), "num_ret": 7},
        "dogs": {"num_q": 1, "map": 0.0, "num_ret": 1},
    }


def test_label_qrels_breakdown_per_class():
    docnos = ["c1", "c2", "d1", "d2", "d3"]
    qrels = LabelQrels({"qc": "cat", "qd": "dog"}, docnos, ["cat", "cat", "dog", "dog", "dog"])
    run = {"qc": {"c1": 0.9, "d1": 0.8, "c2": 0.1}, "qd": {"c1": 0.9, "d3": 0.5}}
    ev = evaluate(qrels, run, ["map", "num_rel"])
    assert ev.by_label(qrels) == {
        "cat": {"num_q": 1, "map": pytest.approx((1 + 2 / 3) / 2), "num_rel": 2},
        "dog": {"num_q": 1, "map": pytest.approx((1 / 2) / 3), "num_rel": 3},
    }
