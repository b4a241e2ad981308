"""Reading and writing TREC qrels and runs: paths, .gz, file objects, errors with file:line."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from evaluation import (
    ArrayRun,
    LabelQrels,
    Run,
    TrecFormatError,
    evaluate,
    read_qrels,
    read_run,
    trec_order,
    write_qrels,
    write_run,
)
from evaluation.errors import EvaluationError
from tests.trec_cases import QRELS, RUN


def test_reads_paths_gzip_and_text_or_binary_file_objects(tmp_path):
    plain = tmp_path / "qrels.txt"
    plain.write_text(QRELS)
    packed = tmp_path / "qrels.gz"  # the magic bytes decide, not the suffix
    packed.write_bytes(gzip.compress(QRELS.encode()))
    readings = [
        read_qrels(plain),
        read_qrels(str(packed)),
        read_qrels(io.StringIO(QRELS)),
        read_qrels(io.BytesIO(QRELS.encode())),
    ]
    for qrels in readings:
        assert qrels.topics() == ["1", "2", "3", "10"]
        assert dict(qrels["1"]) == {"d1": 2, "d2": 0, "d3": 1, "d4": 1, "d9": 0}
    run = read_run(io.BytesIO(gzip.compress(RUN.encode())))
    assert list(run) == ["1", "2", "10", "77"] and run.tag == "tagB"
    assert dict(run["10"]) == {"9": 1.0, "10": 1.0}


def test_comments_blank_lines_crlf_and_extra_run_fields():
    qrels = read_qrels(io.StringIO("# judged by hand\n\n1 0 a 1\r\n  \n1 0 b 0\n"))
    assert dict(qrels["1"]) == {"a": 1, "b": 0}
    run = read_run(io.StringIO("  # header\n1 Q0 a 1 2.5 t extra fields\n\n"))
    assert dict(run["1"]) == {"a": 2.5} and run.tag == "t"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1 0 a 1\n1 0 b\n", 2, "4 fields"),
        ("1 0 a 1 extra\n", 1, "4 fields"),
        ("1 0 a 1\n1 0 b yes\n", 2, "not an integer"),
        ("1 0 a 1.5\n", 1, "not an integer"),
        ("1 0 a 1\n2 0 a 1\n1 0 a 0\n", 3, "judged twice"),
    ],
)
def test_malformed_qrels_name_file_line_and_text(tmp_path, text, line, message):
    path = tmp_path / "bad.qrels"
    path.write_text(text)
    with pytest.raises(TrecFormatError, match=message) as info:
        read_qrels(path)
    bad_line = text.splitlines()[line - 1]
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert repr(bad_line) in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1 Q0 a 1 0.5 t\n1 Q0 b 2 0.4\n", 2, "6 fields"),
        ("1 Q0 a 1 high t\n", 1, "not a number"),
        ("1 Q0 a 1 nan t\n", 1, "NaN"),
        ("1 Q0 a 1 0.5 t\n2 Q0 a 1 0.5 t\n1 Q0 a 9 0.1 t\n", 3, "appears twice"),
    ],
)
def test_malformed_runs_name_file_line_and_text(tmp_path, text, line, message):
    path = tmp_path / "bad.run"
    path.write_text(text)
    with pytest.raises(TrecFormatError, match=message) as info:
        read_run(path)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_streaming_qrels_keeps_only_what_the_run_needs_and_still_finds_duplicates(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(QRELS)
    kept = read_qrels(path, keep={"1": ["d1", "d5"], "10": ["9"]})
    assert dict(kept["1"]) == {"d1": 2} and dict(kept["10"]) == {"9": 1} and not kept["2"]
    assert kept.grade_counts(["1", "2"]).tolist() == [[2, 2, 1], [2, 0, 0]]
    full = read_qrels(path)
    run = read_run(io.StringIO(RUN))
    keep = {t: run[t].keys() for t in run}
    a = evaluate(read_qrels(path, keep=keep), run, ["all_trec"], complete=True)
    b = evaluate(full, run, ["all_trec"], complete=True)
    assert a.summary == b.summary
    # The same docno in two separate blocks of topic 1: found by a second pass.
    path.write_text("1 0 a 1\n2 0 a 1\n1 0 b 1\n1 0 a 0\n")
    with pytest.raises(TrecFormatError, match=":4: docno a judged twice"):
        read_qrels(path, keep={"1": ["a"]})
    with pytest.raises(TrecFormatError, match=":4: docno a judged twice"):
        read_qrels(io.BytesIO(path.read_bytes()), keep={"1": ["a"]})


def test_empty_run_is_valid_and_empty_qrels_is_an_error(tmp_path):
    (tmp_path / "empty").write_text("# nothing\n")
    assert len(read_run(tmp_path / "empty")) == 0
    with pytest.raises(TrecFormatError, match="no judgments"):
        read_qrels(tmp_path / "empty")
    with pytest.raises(EvaluationError, match="cannot read"):
        read_qrels(tmp_path / "missing.txt")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(QRELS.encode())[:30])
    with pytest.raises(EvaluationError, match="cannot read"):
        read_qrels(tmp_path / "broken.gz")


def test_written_runs_rank_in_trec_eval_order_and_read_back_exactly(tmp_path):
    run = Run.from_mapping({"q": {"b": 0.5, "a": 0.5, "c": 0.1 + 0.2, "10": 0.5, "9": 0.5}})
    write_run(tmp_path / "run.txt", run, tag="mine")
    lines = [line.split() for line in (tmp_path / "run.txt").read_text().splitlines()]
    assert [x[2] for x in lines] == ["b", "a", "9", "10", "c"]
    assert [x[3] for x in lines] == ["1", "2", "3", "4", "5"] and {x[5] for x in lines} == {"mine"}
    assert float(lines[-1][4]) == 0.1 + 0.2  # repr: the very same double
    back = read_run(tmp_path / "run.txt")
    assert dict(back["q"]) == dict(run["q"]) and back.tag == "mine"
    assert trec_order(["b", "a", "c"], [0.5, 0.5, 0.9]) == [2, 0, 1]


def test_array_run_and_label_qrels_round_trip_through_files(tmp_path):
    rng = np.random.default_rng(3)
    docnos = [f"train/{i % 3}/{i:03d}" for i in range(30)]
    qrels = LabelQrels({"q1": 0, "q2": 2, "q3": 1}, docnos, [i % 3 for i in range(30)])
    index = np.stack([rng.permutation(30)[:12] for _ in range(3)])
    index[2, 8:] = -1
    scores = np.round(rng.random((3, 12)), 1).astype(np.float32)
    run = ArrayRun(["q1", "q2", "q3"], index, scores, docnos, tag="cnn")
    assert write_qrels(tmp_path / "qrels.txt.gz", qrels) == 30
    assert write_run(tmp_path / "run.txt", run) == 12 + 12 + 8
    specs = ["all_trec", "map_minRk.5"]
    from_files = evaluate(
        read_qrels(tmp_path / "qrels.txt.gz"), read_run(tmp_path / "run.txt"), specs
    )
    in_memory = evaluate(qrels, run, specs)
    assert from_files.summary == in_memory.summary
    assert read_qrels(tmp_path / "qrels.txt.gz")["q2"] == {d: 1 for d in docnos[2::3]}


def test_writers_refuse_ids_with_whitespace(tmp_path):
    with pytest.raises(EvaluationError, match="whitespace"):
        write_run(tmp_path / "r", {"q 1": {"a": 1.0}})
    with pytest.raises(EvaluationError, match="whitespace"):
        write_qrels(tmp_path / "q", {"q": {"a b": 1}})
    with pytest.raises(EvaluationError, match="whitespace"):
        write_run(tmp_path / "r", {"q": {"a": 1.0}}, tag="my run")
    out = io.StringIO()
    write_qrels(out, {"q": {"a": 2}})
    assert out.getvalue() == "q 0 a 2\n"


def test_a_failed_write_leaves_no_file_and_label_topics_without_documents_are_not_judged(
    tmp_path,
):
    with pytest.raises(EvaluationError, match="whitespace"):
        write_run(tmp_path / "run.txt", {"ok": {"a": 1.0}, "bad topic": {"b": 1.0}})
    assert list(tmp_path.iterdir()) == []
    qrels = LabelQrels({"q1": "cat", "q2": "bird"}, ["a", "b"], ["cat", "dog"])
    assert qrels.topics() == ["q1"]  # no "bird" document: q2 has no line in the file either
    write_qrels(tmp_path / "qrels.txt", qrels)
    assert (tmp_path / "qrels.txt").read_text() == "q1 0 a 1\n"
    run = {"q1": {"a": 1.0}, "q2": {"b": 1.0}}
    in_memory = evaluate(qrels, run, ["num_q", "map"], complete=True)
    from_file = evaluate(read_qrels(tmp_path / "qrels.txt"), run, ["num_q", "map"], complete=True)
    assert in_memory.summary == from_file.summary == {"num_q": 1, "map": 1.0}
