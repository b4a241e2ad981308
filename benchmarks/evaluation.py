"""Benchmark: our evaluation against pytrec_eval on 10,000 topics x 100 results, and TREC file I/O.

`run_benchmark()` returns the figures as a dict (medians over `repeats`, seconds) and the
ratio pytrec_eval / ours measured in the same process; `python -m benchmarks.evaluation`
prints them. The collection is CIFAR-10-shaped: 50,000 documents in 10 classes, 10,000
query topics, 100 retrieved each, float32 scores rounded so that ties occur.

- "explicit": qrels as `{topic: {docno: grade}}` with `relevant` judgments per topic, run as
  `{topic: {docno: score}}`: the same input for both, so the comparison is like for like.
  pytrec_eval's time includes building its evaluator from the qrels.
- "labels": `LabelQrels` + `ArrayRun` with every document of the class relevant
  (R = 5,000, 50 million judgments) - what `cbir evaluate` uses; pytrec_eval would need all
  50 million judgments as dict entries (about 5 GB), so it is not run there.
- "files" (opt-in, writes about 1.2 GB): write the 50-million-line qrels and the
  1-million-line run, read the run, evaluate the files streaming the qrels.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cbir.stages.trec_eval import evaluate_files
from evaluation import ArrayRun, LabelQrels, Qrels, evaluate, read_run, write_qrels, write_run

MEASURES = [
    "map", "map_cut.100", "map_minRk.100", "P.10,100", "recall.100", "ndcg_cut.10", "recip_rank",
]  # fmt: skip
PYTREC_MEASURES = {"map", "map_cut.100", "P.10,100", "recall.100", "ndcg_cut.10", "recip_rank"}


def collection(topics: int, depth: int, docs: int = 50_000, classes: int = 10, seed: int = 0):
    """A labelled collection and a run: (LabelQrels, ArrayRun)."""
    rng = np.random.default_rng(seed)
    doc_labels = np.arange(docs) % classes
    docnos = [f"train/{label}/{i:05d}" for i, label in enumerate(doc_labels)]
    topic_ids = [f"test/{i:05d}" for i in range(topics)]
    topic_labels = rng.integers(0, classes, topics)
    index = np.stack([rng.choice(docs, depth, replace=False) for _ in range(topics)])
    scores = np.round(rng.random((topics, depth)), 3).astype(np.float32)
    qrels = LabelQrels(dict(zip(topic_ids, topic_labels.tolist(), strict=True)), docnos, doc_labels)
    return qrels, ArrayRun(topic_ids, index, scores, docnos, tag="bench")


def median_seconds(task: Callable[[], Any], repeats: int) -> tuple[dict[str, float], Any]:
    """Median wall-clock and CPU seconds of `task` over `repeats` runs, and its last result.

    CPU time (this process) is reported beside wall time because shared machines inflate
    the wall clock; both are medians.
    """
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = task()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}, result


def run_benchmark(
    topics: int = 10_000,
    depth: int = 100,
    relevant: int = 50,
    repeats: int = 5,
    files: bool = False,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """Time our evaluation and pytrec_eval's on the same input; optionally the file path."""
    import pytrec_eval

    labels, array_run = collection(topics, depth)
    run = {t: dict(docs) for t, docs in array_run.to_run().items()}
    explicit = {t: dict.fromkeys(labels.relevant_docnos(t)[:relevant], 1) for t in labels.topics()}
    qrels = Qrels(explicit)
    out: dict[str, Any] = {"topics": topics, "depth": depth, "relevant": relevant}

    ours, ev = median_seconds(lambda: evaluate(qrels, run, MEASURES), repeats)

    def pytrec() -> dict:
        return pytrec_eval.RelevanceEvaluator(explicit, PYTREC_MEASURES).evaluate(run)

    theirs, ref = median_seconds(pytrec, repeats)
    worst = max(
        abs(ev.values[name][i] - ref[topic][name])
        for i, topic in enumerate(ev.topics)
        for name in ref[topic]
    )
    out["explicit"] = {
        "ours": ours,
        "pytrec_eval": theirs,
        "pytrec_eval_over_ours_wall": theirs["wall_s"] / ours["wall_s"],
        "pytrec_eval_over_ours_cpu": theirs["cpu_s"] / ours["cpu_s"],
        "max_abs_difference": worst,
    }
    seconds, _ = median_seconds(lambda: evaluate(labels, array_run, MEASURES), repeats)
    out["labels"] = {"ours": seconds, "judgments": int(labels.positive_total())}
    if files:
        out["files"] = _file_figures(labels, array_run, workdir)
    return out


def _file_figures(labels: LabelQrels, run: ArrayRun, workdir: str | Path | None) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        qrels_path, run_path = Path(tmp) / "qrels.txt", Path(tmp) / "run.txt"
        figures: dict[str, float | int] = {}
        start = time.perf_counter()
        figures["qrels_lines"] = write_qrels(qrels_path, labels)
        figures["write_qrels_s"] = time.perf_counter() - start
        figures["qrels_bytes"] = qrels_path.stat().st_size
        start = time.perf_counter()
        figures["run_lines"] = write_run(run_path, run)
        figures["write_run_s"] = time.perf_counter() - start
        start = time.perf_counter()
        read_run(run_path)
        figures["read_run_s"] = time.perf_counter() - start
        start = time.perf_counter()
        from_files = evaluate_files(qrels_path, run_path, MEASURES, first_params_win=False)
        figures["evaluate_files_s"] = time.perf_counter() - start
        in_memory = evaluate(labels, run, MEASURES)
        figures["same_as_in_memory"] = from_files.summary == in_memory.summary
        return figures


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", action="store_true", help="also the 1.2 GB file round trip")
    args = parser.parse_args(argv)
    print(json.dumps(run_benchmark(args.topics, repeats=args.repeats, files=args.files), indent=1))


if __name__ == "__main__":
    main()
