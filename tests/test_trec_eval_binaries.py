"""`cbir trec-eval --compat V` against the trec_eval binaries themselves, byte for byte.

Runs when TREC_EVAL_908 / TREC_EVAL_10 name binaries built from usnistgov/trec_eval tags
v9.0.8 / v10.0 (`make` in a scratch folder; see docs/evaluation-measures.md); skipped
otherwise. Every case compares stdout and the exit status (and, on a stop, trec_eval's own
stderr line). The randomised pytrec_eval comparison stays the always-on oracle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

MEASURES = [
    "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "Rprec", "recip_rank",
    "P.1,3,5,10,20", "recall.1,5,10", "ndcg_cut.1,3,10", "map_cut.3,10",
]  # fmt: skip
BINARIES = {"9.0.8": "TREC_EVAL_908", "10.0": "TREC_EVAL_10"}


@dataclass(frozen=True)
class Case:
    name: str
    qrels: str
    run: str
    options: tuple[str, ...] = ("-q",)
    versions: tuple[str, ...] = ("9.0.8", "10.0")


def lines(rows) -> str:
    return "".join(" ".join(map(str, row)) + "\n" for row in rows)


def random_case(name: str, seed: int, options: tuple[str, ...], *, comments: bool = False,
                missing: bool = True) -> Case:  # fmt: skip
    """Integer scores (ties), docnos ordering differently as numbers and strings, grades -1..3,
    grade-0-only topics, run-only topics, and (if `missing`) judged topics the run lacks."""
    rng = np.random.default_rng(seed)
    pool = ["1", "2", "9", "10", "11", "100", "a", "B", "b", "d-1", "d_1", "d1"]
    pool += [f"x{i}" for i in range(25)]
    topics = [str(t) for t in rng.choice(40, size=8, replace=False)]
    qrels, run = [], []
    for n, topic in enumerate(topics):
        if n < 6 or missing:  # topics 6 and 7: judged only (unless missing=False)
            top = 0 if n == 1 else 3  # topic 1: grade 0 only, R = 0
            for d in rng.choice(pool, size=int(rng.integers(3, 20)), replace=False):
                qrels.append((topic, 0, d, int(rng.integers(-1, top + 1))))
    for n, topic in enumerate([*topics[:6], "777", "8888"]):  # 777, 8888: run only
        ties = n % 2 == 0
        for d in rng.choice(pool, size=int(rng.integers(1, 30)), replace=False):
            score = int(rng.integers(0, 4)) if ties else round(float(rng.normal()), 6)
            run.append((topic, "Q0", d, 0, score, "tagA"))
    rng.shuffle(qrels)
    rng.shuffle(run)
    q, r = lines(qrels), lines(run)
    if comments:
        ql, rl = q.splitlines(keepends=True), r.splitlines(keepends=True)
        # 10.0 skips one '#' line at a time in qrels (a second one in a row is read as data).
        q = "# judged by hand\n" + "".join(
            x + ("# more\n" if i == 3 else "") for i, x in enumerate(ql)
        )
        r = "# run\n#second comment\n" + "".join(
            x + ("  # indented\n" if i == 5 else "") for i, x in enumerate(rl)
        )
        return Case(name, q, r, options, ("10.0",))
    return Case(name, q, r, options)


CASES = [
    Case(
        "ties-broken-by-docno-as-bytes",
        lines([(1, 0, d, g) for d, g in (("9", 1), ("10", 0), ("100", 2), ("a", 1), ("B", 1))]),
        lines([(1, "Q0", d, 1, 1.0, "t") for d in ("9", "10", "100", "a", "B", "c")]),
    ),
    Case(
        "float32-ties-9.0.8-only",  # equal as C floats, different as doubles
        lines([(1, 0, "a", 1), (1, 0, "b", 0), (2, 0, "x", 1), (2, 0, "y", 1)]),
        lines(
            [
                (1, "Q0", "a", 1, "0.30000002", "t"),
                (1, "Q0", "b", 2, "0.30000001", "t"),
                (2, "Q0", "x", 1, "16777216", "t"),
                (2, "Q0", "y", 2, "16777217", "t"),
                (2, "Q0", "z", 3, "1e39", "t"),
                (2, "Q0", "w", 3, "2e39", "t"),
            ]
        ),
    ),
    random_case("rel0-and-negative-grades-missing-topics-no-c", 1, ("-q",)),
    random_case("missing-topics-with-c", 2, ("-q", "-c")),
    random_case("graded-level-2", 3, ("-q", "-l", "2"), missing=False),
    random_case("depth-3-with-ties", 4, ("-q", "-M", "3"), missing=False),
    random_case("c-M-l-together", 5, ("-q", "-c", "-M", "5", "-l", "2")),
    random_case("summary-only-no-missing", 6, (), missing=False),
    random_case("comments-10.0", 7, ("-q", "-c"), comments=True),
    random_case("level-0", 8, ("-q", "-l", "0", "-c")),
    random_case("nosummary", 9, ("-q", "-n", "-c")),
]


def binary(version: str) -> str:
    path = os.environ.get(BINARIES[version])
    if not path or not Path(path).is_file():
        pytest.skip(f"{BINARIES[version]} does not name a trec_eval {version} binary")
    return path


def measure_args() -> list[str]:
    return [arg for m in MEASURES for arg in ("-m", m)]


@pytest.mark.parametrize("version", list(BINARIES))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_bytes_as_trec_eval(case, version, cli, tmp_path):
    if version not in case.versions:
        pytest.skip(f"case {case.name} is for trec_eval {', '.join(case.versions)} only")
    exe = binary(version)
    qrels, run = tmp_path / "qrels", tmp_path / "run"
    qrels.write_text(case.qrels)
    run.write_text(case.run)
    args = [*case.options, *measure_args(), str(qrels), str(run)]
    ref = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    code, out, err = cli("trec-eval", "--compat", version, *args)
    assert (code, out) == (ref.returncode, ref.stdout), ref.stderr
    if ref.returncode:
        assert err.splitlines()[0] == ref.stderr.splitlines()[0]


def test_run_from_standard_input_like_10(tmp_path):
    exe = binary("10.0")
    case = CASES[3]
    qrels = tmp_path / "qrels"
    qrels.write_text(case.qrels)
    args = [*case.options, *measure_args(), str(qrels), "-"]
    ref = subprocess.run([exe, *args], input=case.run, capture_output=True, text=True)
    ours = subprocess.run(
        [sys.executable, "-m", "cbir.cli", "trec-eval", "--compat", "10.0", *args],
        input=case.run, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."},
        cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert (ours.returncode, ours.stdout) == (ref.returncode, ref.stdout), ours.stderr
