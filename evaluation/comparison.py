"""Read back what `cbir evaluate` wrote (summary, qrels, run files) to compare its methods.

`cbir evaluate --out DIR` leaves `DIR/summary.json`, `DIR/qrels.txt` and one
`DIR/run.<method>.txt` per method. The files are found by those names in DIR (the paths
recorded inside summary.json belong to the machine that wrote them). The qrels are streamed
once, keeping only the judgments of documents some run retrieved plus every topic's counts
(exact for these runs; 50 million CIFAR-10 judgments are never held in memory).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cbir.core.errors import CbirError
from evaluation.qrels import Qrels
from evaluation.run import Run
from evaluation.summary import PUBLISHED_BASELINES, columns
from evaluation.trec_io import read_qrels, read_run

if TYPE_CHECKING:
    from indexing.stores.base import VectorStore

SUMMARY = "summary.json"
QRELS = "qrels.txt"


@dataclass
class EvaluationOutputs:
    """One `cbir evaluate` output directory, read back."""

    directory: Path
    summary: dict[str, Any]
    qrels: Qrels
    runs: dict[str, Run]

    @property
    def k(self) -> int:
        return int(self.summary.get("k", 100))

    @property
    def methods(self) -> list[str]:
        return list(self.runs)


def read_evaluation(
    directory: Path | str, methods: Sequence[str] | None = None
) -> EvaluationOutputs:
    """The summary, qrels and runs in `directory`; `methods` default to the summary's.

    Raises CbirError naming the missing file and the command that writes it.
    """
    directory = Path(directory)
    summary_path = directory / SUMMARY
    if not summary_path.is_file():
        raise CbirError(f"no {SUMMARY} in {directory}: run `cbir evaluate --out {directory}` first")
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as exc:
        raise CbirError(
            f"{summary_path} is not valid JSON ({exc}); run `cbir evaluate` again"
        ) from None
    known = list(summary.get("methods", {}))
    chosen = list(methods) if methods is not None else known
    missing = [m for m in chosen if m not in known]
    if missing:
        raise CbirError(
            f"{summary_path} has no results for {', '.join(missing)} (it has: "
            f"{', '.join(known) or 'none'}); evaluate with --method {','.join(chosen)}"
        )
    runs = {}
    for method in chosen:
        path = directory / f"run.{method}.txt"
        if not path.is_file():
            raise CbirError(f"{path} is missing; run `cbir evaluate --out {directory}` again")
        runs[method] = read_run(path)
    keep: dict[str, set[str]] = {}
    for run in runs.values():
        for topic, docs in run.items():
            keep.setdefault(topic, set()).update(docs)
    qrels = read_qrels(directory / QRELS, keep=keep)
    return EvaluationOutputs(directory, summary, qrels, runs)


def measures_table(
    summary: Mapping[str, Any], methods: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the measures of each method, with the published baselines for CIFAR-10.

    Columns are `cbir evaluate`'s (`map_cut_k`, AP@k/min(R,k), map, P_10, P_k, recall_k,
    ndcg_cut_10, recip_rank), formatted like trec_eval (4 decimals). The baselines (published
    `map_cut_100` only) are added when the summary is CIFAR-10 at k = 100, the only setting
    they were measured in.
    """
    k = int(summary.get("k", 100))
    cols = columns(k)
    header = ["method", *[title for _, title in cols]]
    results = summary.get("methods", {})
    rows = []
    for method in methods if methods is not None else list(results):
        measures = results[method]["measures"]
        rows.append([method, *[_cell(measures.get(name)) for name, _ in cols]])
    if summary.get("dataset") == "cifar10" and k == 100:
        for name, value in PUBLISHED_BASELINES.items():
            rows.append([name, f"{value:.4f}", *["-"] * (len(cols) - 1)])
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (for `IPython.display.Markdown`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def stored_vectors(
    store: VectorStore, field: str, ids: Sequence[str]
) -> tuple[list[str], list[str | None], np.ndarray]:
    """The `field` vectors of documents `ids` as stored: ids, labels and float32 (n, dim).

    Documents without the field, or whose vector is all zeros (the method found nothing to
    describe), are left out; the ids returned say which remain, in the order given.
    """
    if field not in store.fields:
        raise CbirError(
            f"the index at {store.url} has no {field!r} field (it has: {', '.join(store.fields)})"
        )
    documents = store.get(ids)
    kept, labels, rows = [], [], []
    for doc_id in ids:
        doc = documents.get(doc_id)
        vector = None if doc is None else doc.vectors.get(field)
        if vector is None or not np.any(vector):
            continue
        kept.append(doc_id)
        labels.append(doc.label)
        rows.append(np.asarray(vector, dtype=np.float32))
    dim = store.fields[field].dim
    return kept, labels, np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
