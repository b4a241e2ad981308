"""Print an Evaluation as trec_eval does, or as JSON.

trec_eval's line is `printf("%-22s\\t%s\\t%6.4f\\n", name, qid, value)`; counts (num_q,
num_ret, num_rel, num_rel_ret) use `%ld` of the value cast to long, and runid `%s`.
Per-topic lines (`-q`) come first, topic by topic in byte order of the topic ids, measures
in trec_eval's order, num_q and runid never per topic; the summary lines ("all") last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evaluation import compat
from evaluation.evaluate import Evaluation, byte_key
from evaluation.measures import Measure


def trec_eval_lines(
    ev: Evaluation,
    *,
    per_topic: bool = False,
    summary: bool = True,
    rows: list[int] | None = None,
) -> Iterator[str]:
    """The lines `trec_eval [-q] [-n]` prints, without newlines (`rows`: those topics only)."""
    if per_topic:
        shown = [m for m in ev.measures if m.info.per_topic]
        columns = [(m, ev.values[m.name]) for m in shown]
        for i in range(len(ev.topics)) if rows is None else rows:
            topic = ev.topics[i]
            for m, values in columns:
                yield _line(m, topic, values[i])
    if summary:
        for m in ev.measures:
            yield _line(m, "all", ev.summary[m.name])


def trec_eval_run(
    ev: Evaluation, *, per_topic: bool = False, summary: bool = True
) -> tuple[list[str], list[str], int]:
    """What trec_eval prints for `ev` in its release: stdout lines, stderr lines, exit status.

    Under 10.0 without `-c`, a judged topic the run lacks stops trec_eval with status 4 after
    the per-topic lines of the topics before it (byte order); we add a line saying why.
    """
    first = _first_missing(ev)
    if first is None:
        return list(trec_eval_lines(ev, per_topic=per_topic, summary=summary)), [], 0
    before = [i for i, t in enumerate(ev.topics) if byte_key(t) < byte_key(first)]
    lines = list(trec_eval_lines(ev, per_topic=per_topic, summary=False, rows=before))
    return lines, list(compat.missing_topic_message(first)), compat.EXIT_MISSING_TOPIC


def _first_missing(ev: Evaluation) -> str | None:
    if ev.version == compat.V10 and not ev.complete and ev.missing_topics:
        return ev.missing_topics[0]
    return None


def to_json(ev: Evaluation, *, per_topic: bool = False) -> dict[str, Any]:
    """A JSON-ready dict: summary, options, optionally per-topic values, and what is missing."""
    out: dict[str, Any] = {
        "measures": [m.name for m in ev.measures],
        "summary": dict(ev.summary),
        "options": {
            "complete": ev.complete,
            "max_depth": ev.max_depth,
            "relevance_level": ev.relevance_level,
            "trec_eval": ev.version,
        },
        "run_tag": ev.run_tag,
        "topics_evaluated": len(ev.topics),
        "topics_missing_from_run": ev.missing_topics,
        "not_computed": list(ev.unsupported),
    }
    if per_topic:
        out["per_topic"] = ev.per_topic()
    return out


def _line(m: Measure, qid: str, value: object) -> str:
    if m.family == "runid":
        return f"{m.name:<22}\t{qid}\t{value}"
    if m.info.count:
        return "%-22s\t%s\t%d" % (m.name, qid, int(value))  # noqa: UP031 - trec_eval's format
    return "%-22s\t%s\t%6.4f" % (m.name, qid, float(value))  # noqa: UP031 - trec_eval's format
