"""Ground-truth files of the instance-retrieval protocols, and scoring a TREC run with them.

One JSON file says which protocol it is for:

- `{"protocol": "revisited", "queries": {"q": {"easy": [...], "hard": [...], "junk": [...]}}}`
- `{"protocol": "ukbench", "relevant": {"q": ["doc", ...]}, "n": 4}` (n optional)
- `{"protocol": "copy-detection", "matches": [["query", "reference"], ...]}`; a DISC21
  ground-truth CSV (`query_id,reference_id` header, rows with an empty reference ignored)
  is read as well.

The run is a TREC run file (`cbir search`/`cbir evaluate` write them): rankings in trec_eval
order, and for copy detection every (topic, docno, score) line is one prediction.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from evaluation.errors import EvaluationError
from evaluation.instance import copy_detection, ns_score, revisited
from evaluation.run import Run
from evaluation.trec_io import read_run

PROTOCOLS = ("revisited", "ukbench", "copy-detection")


def read_ground_truth(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ground truth, checked: `{"protocol": ..., ...}` as described above."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"{path}: cannot read ({exc})") from None
    if path.suffix.lower() == ".csv":
        return {"protocol": "copy-detection", "matches": _csv_matches(path, text)}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationError(
            f"{path}: not JSON ({exc}); see docs/evaluation-measures.md"
        ) from None
    protocol = data.get("protocol") if isinstance(data, dict) else None
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"{path}: 'protocol' must be one of {', '.join(PROTOCOLS)}")
    key = {"revisited": "queries", "ukbench": "relevant", "copy-detection": "matches"}[protocol]
    if not data.get(key):
        raise EvaluationError(f"{path}: a {protocol} ground truth needs a non-empty {key!r}")
    if protocol == "copy-detection":
        data["matches"] = [tuple(map(str, pair)) for pair in data["matches"]]
        if any(len(pair) != 2 for pair in data["matches"]):
            raise EvaluationError(f"{path}: each match is [query, reference]")
    return data


def score_run(ground_truth: dict[str, Any], run: Run) -> dict[str, Any]:
    """The protocol's figures for `run` as a JSON-ready dict."""
    protocol = ground_truth["protocol"]
    if protocol == "copy-detection":
        result = copy_detection(
            ((q, d, s) for q in run for d, s in run[q].items()), ground_truth["matches"]
        )
        return {"protocol": protocol, **result.__dict__}
    rankings = {q: run.ranked(q)[0] for q in run}
    if protocol == "ukbench":
        n = int(ground_truth.get("n", 4))
        return {
            "protocol": protocol,
            "n": n,
            "ns_score": ns_score(rankings, ground_truth["relevant"], n),
        }
    setups = revisited(rankings, ground_truth["queries"])
    return {
        "protocol": protocol,
        **{
            setup: {
                "map": r.map,
                **{f"mP@{k}": v for k, v in r.precision.items()},
                "num_q": r.num_q,
            }
            for setup, r in setups.items()
        },
    }


def evaluate_instance_files(
    ground_truth_path: str | os.PathLike, run_path: str | os.PathLike
) -> dict[str, Any]:
    """Read both files and score the run."""
    return score_run(read_ground_truth(ground_truth_path), read_run(run_path))


def _csv_matches(path: Path, text: str) -> list[tuple[str, str]]:
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0][:2]] != ["query_id", "reference_id"]:
        raise EvaluationError(f"{path}: a copy-detection CSV starts with 'query_id,reference_id'")
    return [(r[0], r[1]) for r in rows[1:] if len(r) >= 2 and r[0] and r[1]]
