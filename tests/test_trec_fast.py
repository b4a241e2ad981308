"""The Arrow-based qrels and run readers give exactly what the line-by-line readers give."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from evaluation.errors import TrecFormatError
from evaluation.trec_fast import KeptQrelsReader, read_plain_run
from evaluation.trec_io import _lines, _read_kept_qrels, read_qrels, read_run


def qrels_text(seed: int, *, grades=(0, 1, 2, -1), shuffle=False, split=False) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    topics = [f"t{i}" for i in rng.permutation(30)]
    for topic in topics:
        docs = sorted(
            {f"doc-{int(x)}" + "x" * int(rng.integers(0, 20)) for x in rng.integers(0, 400, 40)}
        )
        if shuffle:
            rng.shuffle(docs)
        lines += [f"{topic} 0 {d} {rng.choice(grades)}\n" for d in docs]
    if split:  # a topic comes back after others
        lines += [f"{topics[0]} 0 zz-late-{i} 1\n" for i in range(3)]
    return "".join(lines)


def keep_for(text: str, seed: int) -> dict[bytes, set[bytes]]:
    rng = np.random.default_rng(seed)
    keep: dict[bytes, set[bytes]] = {}
    for line in text.splitlines():
        q, _, d, _ = line.encode().split()
        if rng.random() < 0.3:
            keep.setdefault(q, set()).add(d)
    keep[b"not-judged"] = {b"x"}
    return keep


def slow(text: str, keep):
    with _lines(io.BytesIO(text.encode()), None) as lines:
        return _read_kept_qrels("q", lines, keep)


@pytest.mark.parametrize(
    "options",
    [{}, {"grades": (1,)}, {"shuffle": True}, {"split": True}, {"grades": (3, -2, 0, 1, 7)}],
    ids=["graded", "one-grade", "unsorted", "split-topic", "many-grades"],
)
@pytest.mark.parametrize("chunk", [1 << 20, 700])  # 700 bytes: topics span several reads
def test_plain_qrels_read_fast_equal_the_line_reader(options, chunk):
    text = qrels_text(3, **options)
    keep = keep_for(text, 4)
    reader = KeptQrelsReader(keep)
    assert reader.read(io.BytesIO(text.encode()), chunk=chunk)
    expected, split = slow(text, keep)
    assert reader.counts == {k.encode(): v for k, v in expected._counts.items()}
    got = {(q, d): g for q, docs in reader.kept.items() for d, g in docs.items()}
    want = {(q.encode(), d.encode()): g for q in expected for d, g in expected[q].items()}
    assert got == want and len(want) > 50
    assert reader.split == split


def test_read_qrels_uses_it_and_falls_back_for_other_layouts(tmp_path):
    text = qrels_text(5)
    keep = {q.decode(): {d.decode() for d in docs} for q, docs in keep_for(text, 6).items()}
    plain = tmp_path / "plain.txt"
    plain.write_text(text.rstrip("\n"))  # no newline at the end
    gz = tmp_path / "q.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    other = tmp_path / "other.txt"  # a comment and a tab: read line by line
    other.write_text("# judged\n" + text.replace(" 0 ", "\t0 ", 1))
    results = [read_qrels(p, keep=keep) for p in (plain, gz, other)]
    for qrels in results[1:]:
        assert qrels._counts == results[0]._counts
        assert {t: dict(qrels[t]) for t in qrels} == {t: dict(results[0][t]) for t in results[0]}


def test_a_duplicate_is_reported_with_its_line_as_before(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("1 0 a 1\n1 0 c 1\n1 0 b 0\n1 0 a 0\n2 0 a 1\n")
    with pytest.raises(TrecFormatError, match=r"dup.txt:4: docno a judged twice for topic 1"):
        read_qrels(path, keep={"1": {"a"}})


def run_text(seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for topic in [*range(12), 3, 5]:  # 3 and 5 come back with other docnos
        for i in range(int(rng.integers(1, 30))):
            score = int(rng.integers(0, 3)) if topic % 2 else float(rng.normal())
            lines.append(f"{topic} Q0 d{topic}-{i}-{len(lines)} {i} {score} tag{topic}\n")
    return "".join(lines)


def test_plain_runs_read_fast_equal_the_line_reader(tmp_path):
    text = run_text(1)
    fast = read_plain_run(text.encode())
    assert fast is not None
    path = tmp_path / "run.txt"
    path.write_text("#\n" + text)  # a comment: the line reader
    expected = read_run(path)
    assert fast[0] == {t: dict(expected[t]) for t in expected} and fast[1] == expected.tag


@pytest.mark.parametrize(
    "text",
    ["1 Q0 a 1 nan t\n", "1 Q0 a 1 0.5 t\n1 Q0 a 2 0.4 t\n", "1 Q0 a 1 x t\n", "1 Q0 a 1 1 t x\n",
     "1\tQ0 a 1 1 t\n", "", "1 Q0 a 1 0.5 t\n2 Q0 b 1 1 t\n1 Q0 a 3 0.2 t\n"],
)  # fmt: skip
def test_other_runs_go_to_the_line_reader(text):
    assert read_plain_run(text.encode()) is None
