"""Evaluate a run file against a qrels file: the stage behind `cbir trec-eval`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from cbir.core.progress import progress
from evaluation import compat
from evaluation.evaluate import Evaluation, evaluate
from evaluation.measures import DEFAULT_MEASURES, parse_measures
from evaluation.trec_io import Progress, read_qrels, read_run

_BAR_FROM_BYTES = 32 << 20  # files smaller than this are read without a progress bar


def evaluate_files(
    qrels_path: str | os.PathLike,
    run_path: str | os.PathLike,
    measures: Iterable[str] | None = None,
    *,
    complete: bool = False,
    max_depth: int | None = None,
    relevance_level: int = 1,
    first_params_win: bool = True,
    version: str = compat.DEFAULT,
) -> Evaluation:
    """Read the run, then stream the qrels keeping only what the run needs, and evaluate.

    `measures` are trec_eval spellings; as in trec_eval only the first parameter list of a
    family counts unless `first_params_win=False`. A run path `-` is standard input (as in
    trec_eval 10.0). Raises TrecFormatError for bad files.
    """
    selection = parse_measures(
        measures or DEFAULT_MEASURES, first_params_win=first_params_win, version=version
    )
    source = sys.stdin.buffer if str(run_path) == "-" else run_path
    run = _with_bar(run_path, "reading run", lambda report: read_run(source, progress=report))
    keep = {topic: run[topic].keys() for topic in run}
    qrels = _with_bar(
        qrels_path,
        "reading qrels",
        lambda report: read_qrels(qrels_path, keep=keep, progress=report),
    )
    return evaluate(
        qrels,
        run,
        selection,
        complete=complete,
        max_depth=max_depth,
        relevance_level=relevance_level,
        version=version,
    )


def _with_bar(path: str | os.PathLike, desc: str, read):
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    with progress(desc=desc, unit="B", total=size, disable=size < _BAR_FROM_BYTES) as bar:

        def report(position: int) -> None:
            bar.update(position - bar.n)

        callback: Progress = report
        return read(callback)
