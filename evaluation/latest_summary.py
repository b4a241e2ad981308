"""Find the latest `cbir evaluate` summary: `$CBIR_HOME/runs/<name>/summary.json`.

The summary is shaped like {"dataset", "queries", "documents", "k", "exact", "finished"
(ISO 8601), "methods": {method: {"measures": {"map_cut_100": ..., "map_minRk_100": ...}}}}.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


def latest_summary(runs_dir: Path) -> dict[str, Any] | None:
    """The most recent readable summary under `runs_dir/*/` (by `finished`, else file mtime).

    Unreadable or malformed files are skipped with a warning; None when there is none.
    The returned dict gets a `run` key: the name of its directory.
    """
    found: list[tuple[float, str, dict[str, Any]]] = []
    if not runs_dir.is_dir():
        return None
    for path in runs_dir.glob(f"*/{SUMMARY}"):
        try:
            summary = json.loads(path.read_text())
            mtime = path.stat().st_mtime
        except (OSError, ValueError) as exc:
            log.warning("skipping evaluation summary %s: %s", path, exc)
            continue
        if not isinstance(summary, dict) or not isinstance(summary.get("methods"), dict):
            log.warning('skipping evaluation summary %s: no "methods" object', path)
            continue
        when = _finished(summary.get("finished"))
        found.append((mtime if when is None else when, path.parent.name, summary))
    if not found:
        return None
    _, run, summary = max(found, key=lambda item: (item[0], item[1]))
    return {**summary, "run": run}


def _finished(value: object) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (naive times taken as UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's facts for display, each checked for its type (None where absent or odd).

    `rows` has per method trec_eval's MAP@k (`map_cut`, i.e. `map_cut_k`) and AP@k normalised
    by min(R, k) (`map_min_rk`, i.e. `map_minRk_k`), k being the summary's `k` (default 100).
    """
    k = _integer(summary.get("k")) or 100
    rows = []
    for method, entry in summary.get("methods", {}).items():
        measures = entry.get("measures", {}) if isinstance(entry, dict) else {}
        measures = measures if isinstance(measures, dict) else {}
        rows.append(
            {
                "method": str(method),
                "map_cut": _number(measures.get(f"map_cut_{k}")),
                "map_min_rk": _number(measures.get(f"map_minRk_{k}")),
            }
        )
    exact = summary.get("exact")
    return {
        "run": str(summary.get("run", "")),
        "dataset": _text(summary.get("dataset")),
        "queries": _integer(summary.get("queries")),
        "documents": _integer(summary.get("documents")),
        "finished": _text(summary.get("finished")),
        "exact": exact if isinstance(exact, bool) else None,
        "k": k,
        "rows": rows,
    }


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
