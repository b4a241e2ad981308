"""Benchmark: `cbir trec-eval` against trec_eval 9.0.8 on CIFAR-10-sized qrels and run files.

The files are what `cbir evaluate` writes for CIFAR-10, made with the project's own writers:
qrels with every training image of the query's class relevant (10,000 topics x 5,000 = 50
million lines, about 1.9 GB with CIFAR-10's `test/<class>/<n>` / `train/<class>/<n>` ids)
and a run of 10,000 x 100 lines. Both programs are run as processes, alternately, `repeats`
times each; the medians of wall time and peak memory (RSS) are reported with their ratio,
and every output is compared byte for byte. The machine load (`os.getloadavg`) is recorded
before and after, since shared machines skew wall times.

    python -m benchmarks.trec_eval_files --trec-eval /tmp/te908/trec_eval --workdir /tmp/teb

The trec_eval binary is built from usnistgov/trec_eval tag v9.0.8 (`make`; see
docs/evaluation-measures.md). The files are kept in `--workdir` for the next run; they are
never part of the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evaluation import ArrayRun, LabelQrels, write_qrels, write_run

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEASURES = ["map", "P.10", "recall.100", "ndcg_cut.10", "recip_rank", "num_rel", "num_rel_ret"]
REPO = Path(__file__).resolve().parents[1]


def make_files(workdir: Path, topics: int = 10_000, depth: int = 100, per_class: int = 5_000):
    """Write (or reuse) qrels.txt and run.txt in `workdir`; returns their paths."""
    qrels_path, run_path = workdir / "qrels.txt", workdir / "run.txt"
    if qrels_path.is_file() and run_path.is_file():
        return qrels_path, run_path
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    doc_labels = np.repeat(np.arange(len(CLASSES)), per_class)
    docnos = [f"train/{CLASSES[c]}/{i % per_class:04d}" for i, c in enumerate(doc_labels)]
    topic_labels = np.arange(topics) % len(CLASSES)
    topic_ids = [f"test/{CLASSES[c]}/{i // len(CLASSES):04d}" for i, c in enumerate(topic_labels)]
    qrels = LabelQrels(dict(zip(topic_ids, topic_labels.tolist(), strict=True)), docnos, doc_labels)
    index = np.stack([rng.choice(len(docnos), depth, replace=False) for _ in range(topics)])
    scores = np.round(rng.random((topics, depth)), 3).astype(np.float32)  # ties
    write_qrels(qrels_path, qrels)
    write_run(run_path, ArrayRun(topic_ids, index, scores, docnos, tag="bench"))
    return qrels_path, run_path


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS (bytes) and stdout of one process."""
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env) as p:
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if p.returncode:
        raise RuntimeError(f"{command[0]} exited with {p.returncode}")
    return seconds, usage.ru_maxrss * 1024, out


def run_benchmark(trec_eval: str, workdir: Path, repeats: int = 3) -> dict:
    """Alternate trec_eval and `cbir trec-eval` on the files; medians, ratio, identity."""
    qrels_path, run_path = make_files(workdir)
    args = [a for m in MEASURES for a in ("-m", m)] + [str(qrels_path), str(run_path)]
    ours_cmd = [sys.executable, "-m", "cbir.cli", "trec-eval", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    load_before = os.getloadavg()
    theirs, ours, identical = [], [], True
    for _ in range(repeats):
        t = timed([trec_eval, *args])
        o = timed(ours_cmd, env)
        identical &= t[2] == o[2]
        theirs.append(t)
        ours.append(o)

    def median(rows, i):
        return statistics.median(r[i] for r in rows)

    return {
        "qrels_bytes": qrels_path.stat().st_size,
        "run_bytes": run_path.stat().st_size,
        "repeats": repeats,
        "trec_eval_s": median(theirs, 0),
        "cbir_s": median(ours, 0),
        "cbir_over_trec_eval": median(ours, 0) / median(theirs, 0),
        "trec_eval_rss_gb": median(theirs, 1) / 1e9,
        "cbir_rss_gb": median(ours, 1) / 1e9,
        "all_runs_s": {"trec_eval": [r[0] for r in theirs], "cbir": [r[0] for r in ours]},
        "byte_identical": identical,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trec-eval", default=os.environ.get("TREC_EVAL_908"), required=False)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cbir-trec-eval-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.trec_eval:
        parser.error(
            "give --trec-eval PATH (or set TREC_EVAL_908): trec_eval 9.0.8 built from source"
        )
    print(json.dumps(run_benchmark(args.trec_eval, args.workdir, args.repeats), indent=1))


if __name__ == "__main__":
    main()
