"""`cbir trec-eval`: trec_eval's exact output format, options, and one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.trec_cases import QRELS, RUN


@pytest.fixture
def files(tmp_path):
    (tmp_path / "qrels.txt").write_text(QRELS)
    (tmp_path / "run.txt").write_text(RUN)
    return str(tmp_path / "qrels.txt"), str(tmp_path / "run.txt")


def test_per_topic_output_is_trec_eval_byte_for_byte(cli, files):
    # -m order does not matter: trec_eval prints in its own measure order; topics in byte
    # order ("1" < "10" < "2"); num_q and runid only on the summary; counts as integers.
    code, out, err = cli("trec-eval", "-q", "-m", "P.5", "-m", "map", "-m", "num_q", "-m",
                         "num_rel", "-m", "runid", *files)  # fmt: skip
    assert code == 0
    assert out == (
        "num_rel               \t1\t3\n"
        "map                   \t1\t0.5333\n"
        "P_5                   \t1\t0.6000\n"
        "num_rel               \t10\t1\n"
        "map                   \t10\t1.0000\n"
        "P_5                   \t10\t0.2000\n"
        "num_rel               \t2\t0\n"
        "map                   \t2\t0.0000\n"
        "P_5                   \t2\t0.0000\n"
        "runid                 \tall\ttagB\n"
        "num_q                 \tall\t3\n"
        "num_rel               \tall\t4\n"
        "map                   \tall\t0.5111\n"
        "P_5                   \tall\t0.2667\n"
    )
    assert "trec-eval: 3 topics in" in err


def test_complete_depth_and_level_flags(cli, files):
    code, out, _ = cli(
        "trec-eval", "-c", "-M1", "-l2", "-m", "P.1", "-mnum_q", "-m", "num_rel", *files
    )
    assert code == 0
    # -M1 keeps d5 (topic 1), "9" (topic 10), x (topic 2); only "9" is relevant but -l2 asks
    # for grade 2: P_1 = 0 everywhere. -c: 4 judged topics; num_rel counts grades > 0.
    assert out.splitlines() == [
        "num_q                 \tall\t4",
        "num_rel               \tall\t5",
        "P_1                   \tall\t0.0000",
    ]


def test_default_is_the_computable_part_of_official(cli, files):
    code, out, err = cli("trec-eval", *files)
    names = [line.split("\t")[0].strip() for line in out.splitlines()]
    assert code == 0 and names[:8] == [
        "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank",
    ]  # fmt: skip
    assert names[8:] == [f"P_{k}" for k in (5, 10, 15, 20, 30, 100, 200, 500, 1000)]
    assert "not computed here: gm_map, bpref, iprec_at_recall" in err


def test_first_parameter_list_wins_like_trec_eval(cli, files):
    _, out, _ = cli("trec-eval", "-m", "P.5", "-m", "P.10", *files)
    assert [line.split("\t")[0].strip() for line in out.splitlines()] == ["P_5"]
    # Topic 1: AP@2 sum 1/2 over R = 3 vs min(R, 2) = 2; topic 10: 1; topic 2: 0.
    _, out, _ = cli("trec-eval", "-m", "map_cut.2", "-m", "map_minRk.2", *files)
    assert out.splitlines() == [
        "map_cut_2             \tall\t0.3889",
        "map_minRk_2           \tall\t0.4167",
    ]


def test_json_and_nosummary(cli, files):
    code, out, _ = cli("trec-eval", "--json", "-q", "-m", "map", "-m", "num_ret", *files)
    data = json.loads(out)
    assert code == 0 and data["measures"] == ["num_ret", "map"]
    assert data["summary"] == {"num_ret": 8, "map": pytest.approx(0.51111111)}
    assert data["per_topic"]["10"] == {"num_ret": 2, "map": 1.0}
    assert data["topics_missing_from_run"] == ["3"]
    _, out, _ = cli("trec-eval", "-q", "-n", "-m", "map", *files)
    assert out.splitlines() == [f"map                   \t{t}\t{v}" for t, v in
                                (("1", "0.5333"), ("10", "1.0000"), ("2", "0.0000"))]  # fmt: skip


def test_errors_are_one_line_with_exit_status_2(cli, files, tmp_path):
    bad = tmp_path / "bad.run"
    bad.write_text("1 Q0 a 1 0.5 t\n1 Q0 a 2\n")
    code, out, err = cli("trec-eval", files[0], str(bad))
    assert code == 2 and out == ""
    assert (
        err.strip()
        == f"cbir: error: {bad}:2: a run line has 6 fields: topic Q0 docno rank score tag: '1 Q0 a 2'"
    )
    code, _, err = cli("trec-eval", "-m", "bpref", *files)
    assert code == 2 and "'bpref' is not implemented here" in err
    code, _, err = cli("trec-eval", "-m", "P.0", *files)
    assert code == 2 and "cutoffs must be positive" in err


def test_compat_10_prints_missing_topics_under_c_and_stops_without_it(cli, files):
    # Expected bytes: trec_eval 10.0 built from the v10.0 tag, on these same two files.
    code, out, _ = cli("trec-eval", "--compat", "10.0", "-q", "-c", "-m", "num_ret", "-m",
                       "map", *files)  # fmt: skip
    assert code == 0
    assert out.splitlines()[6:] == [
        "num_ret               \t3\t0",
        "map                   \t3\t0.0000",
        "num_ret               \tall\t8",
        "map                   \tall\t0.3833",
    ]
    code, out, err = cli("trec-eval", "--compat", "10.0", "-q", "-m", "map", *files)
    assert code == 4
    assert out.splitlines() == [
        "map                   \t1\t0.5333",
        "map                   \t10\t1.0000",
        "map                   \t2\t0.0000",
    ]
    first, ours = err.splitlines()[:2]
    assert first == "trec_eval: result qid '3' not found in qrels"
    assert "judged topic '3' has no result in the run" in ours and "-c" in ours
    code, _, _ = cli("trec-eval", "-q", "-m", "map", *files)  # 9.0.8 skips topic 3
    assert code == 0


def test_compat_9_0_8_ties_scores_equal_in_single_precision(cli, tmp_path):
    # trec_eval 9.0.8 keeps scores as C floats: 0.30000002 and 0.30000001 tie, and the tie
    # goes to docno b; 10.0 ranks a first (values from the binaries built from source).
    (tmp_path / "q").write_text("1 0 a 1\n1 0 b 0\n")
    (tmp_path / "r").write_text("1 Q0 a 1 0.30000002 t\n1 Q0 b 2 0.30000001 t\n")
    paths = (str(tmp_path / "q"), str(tmp_path / "r"))
    _, out, _ = cli("trec-eval", "-m", "map", *paths)
    assert out == "map                   \tall\t0.5000\n"
    _, out, _ = cli("trec-eval", "--compat", "10.0", "-m", "map", *paths)
    assert out == "map                   \tall\t1.0000\n"
