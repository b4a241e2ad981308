"""Evaluate a run against judgments with trec_eval 9.0.8 semantics, in memory.

- Topics evaluated: those in both the run and the judgments, in byte order of their ids
  (trec_eval's order). A run-only topic is ignored; a judged topic the run lacks is left
  out, unless `complete=True` (`-c`): then averages divide by the number of judged topics,
  so a missing topic counts 0, `num_q` is that number and `num_rel` counts every judgment
  with grade > 0 (trec_eval's rule, whatever `-l`); missing topics get no per-topic values.
- Topics with no relevant documents are evaluated and score 0.
- Documents are re-ranked by score, ties by docno descending; `max_depth` (`-M`) keeps the
  first n of that ranking; `relevance_level` (`-l`) is the lowest relevant grade.
- An empty run is valid and scores 0; a non-empty run sharing no topic with the
  judgments is an error (trec_eval exits with "No queries with both results and relevance").
- `version` picks the trec_eval release reproduced (evaluation/compat.py): "9.0.8" compares
  scores in float32; "10.0" in float64, and with `complete=True` it also evaluates the missing
  topics as empty rankings (listed among `topics`, so `-q` prints them). Without `-c`, 10.0
  stops on a missing topic: that is the caller's to do (see `compat.missing_topic_message`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from evaluation import compat
from evaluation.compute import PAD, topic_values
from evaluation.errors import EvaluationError
from evaluation.measures import DEFAULT_MEASURES, Measure, MeasureSelection, parse_measures
from evaluation.qrels import Judgments, LabelQrels, Qrels
from evaluation.ranking import array_run_grades, dict_run_values
from evaluation.run import ArrayRun, Run


@dataclass
class Evaluation:
    """Per-topic values and trec_eval's summary ("all") for a set of measures."""

    measures: tuple[Measure, ...]
    topics: list[str]  # evaluated topics, in trec_eval's order
    values: dict[str, np.ndarray]  # measure name -> float64 (len(topics),)
    summary: dict[str, float | int | str]  # measure name -> value printed on the "all" line
    run_tag: str
    missing_topics: list[str]  # judged topics the run does not have
    complete: bool = False
    max_depth: int | None = None
    relevance_level: int = 1
    unsupported: tuple[str, ...] = field(default=())  # trec_eval measures asked for, not computed
    version: str = compat.DEFAULT  # trec_eval release reproduced

    def per_topic(self) -> dict[str, dict[str, float | int]]:
        """`{topic: {measure: value}}` for the measures trec_eval prints per topic."""
        shown = [m for m in self.measures if m.info.per_topic]
        return {
            topic: {m.name: _typed(m, self.values[m.name][i]) for m in shown}
            for i, topic in enumerate(self.topics)
        }

    def by_label(
        self, topic_labels: Mapping[str, Hashable] | LabelQrels
    ) -> dict[Hashable, dict[str, float]]:
        """Mean of each measure over the evaluated topics of each label (counts are summed).

        `topic_labels` maps topics to labels (a LabelQrels knows them). Labels appear in the
        order of the first topic that has them; topics without a label are left out.
        """
        if isinstance(topic_labels, LabelQrels):
            topic_labels = {t: topic_labels.topic_label(t) for t in topic_labels.topics()}
        groups: dict[Hashable, list[int]] = {}
        for i, topic in enumerate(self.topics):
            if topic in topic_labels:
                groups.setdefault(topic_labels[topic], []).append(i)
        out: dict[Hashable, dict[str, float]] = {}
        for label, rows in groups.items():
            out[label] = {"num_q": len(rows)}
            for m in self.measures:
                if not m.info.per_topic:
                    continue
                v = self.values[m.name][rows]
                out[label][m.name] = _typed(m, v.sum() if m.info.count else v.mean())
        return out


def evaluate(
    qrels: Judgments | Mapping[str, Mapping[str, int]],
    run: Run | ArrayRun | Mapping[str, Mapping[str, float]],
    measures: MeasureSelection | Iterable[str] = DEFAULT_MEASURES,
    *,
    complete: bool = False,
    max_depth: int | None = None,
    relevance_level: int = 1,
    version: str = compat.DEFAULT,
) -> Evaluation:
    """Evaluate `run` against `qrels` (see the module docstring for the rules).

    `measures` are trec_eval spellings (`map`, `P.10,100`, `ndcg_cut_10`, `all_trec`); several
    parameter lists for one family are merged. Raises EvaluationError for unusable input.
    """
    if max_depth is not None and max_depth < 0:
        raise EvaluationError(f"max_depth (-M) must be >= 0, got {max_depth}")
    if relevance_level < 0:
        raise EvaluationError(f"relevance_level (-l) must be >= 0, got {relevance_level}")
    try:
        compat.check(version)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    selection = measures if isinstance(measures, MeasureSelection) else parse_measures(measures)
    judgments = qrels if isinstance(qrels, Qrels | LabelQrels) else Qrels.from_mapping(qrels)
    if not isinstance(run, Run | ArrayRun):
        run = Run.from_mapping(run)
    judged = judgments.topics()
    if not judged:
        raise EvaluationError("the qrels have no topics: nothing to evaluate against")
    run_topics = [str(t) for t in (run.topics if isinstance(run, ArrayRun) else run)]
    judged_set = set(judged)
    topics = sorted((t for t in run_topics if t in judged_set), key=byte_key)
    if run_topics and not topics:
        raise EvaluationError(
            f"none of the run's {len(run_topics)} topics (e.g. {run_topics[0]!r}) is in the "
            f"qrels ({len(judged)} topics, e.g. {judged[0]!r}): wrong qrels file?"
        )
    if isinstance(run, ArrayRun):
        grades, num_ret = array_run_grades(judgments, run, topics, max_depth, version)
        counts = judgments.grade_counts(topics)
        values = topic_values(grades, num_ret, counts, selection.measures, relevance_level)
    else:
        values = dict_run_values(
            judgments,
            run,
            topics,
            selection.measures,
            relevance_level=relevance_level,
            max_depth=max_depth,
            version=version,
        )
    in_run = set(run_topics)
    missing = sorted((t for t in judged if t not in in_run), key=byte_key)
    if complete and version == compat.V10 and missing:
        topics, values = _with_empty_rankings(judgments, topics, values, missing, selection,
                                              relevance_level)  # fmt: skip
    ev = Evaluation(
        measures=selection.measures,
        topics=topics,
        values=values,
        summary={},
        run_tag=run.tag,
        missing_topics=missing,
        complete=complete,
        max_depth=max_depth,
        relevance_level=relevance_level,
        unsupported=selection.unsupported,
        version=version,
    )
    ev.summary = _summary(ev, judgments, len(judged))
    return ev


def _with_empty_rankings(
    judgments: Judgments,
    topics: list[str],
    values: dict[str, np.ndarray],
    missing: list[str],
    selection: MeasureSelection,
    relevance_level: int,
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Topics and values with the missing topics evaluated as empty rankings, in byte order."""
    empty = topic_values(
        np.full((len(missing), 1), PAD, dtype=np.int32),
        np.zeros(len(missing), dtype=np.int64),
        judgments.grade_counts(missing),
        selection.measures,
        relevance_level,
    )
    merged = topics + missing
    order = sorted(range(len(merged)), key=lambda i: byte_key(merged[i]))
    joined = {name: np.concatenate([v, empty[name]])[order] for name, v in values.items()}
    return [merged[i] for i in order], joined


def byte_key(text: str) -> bytes:
    """Sort key giving C `strcmp` order (UTF-8 bytes)."""
    return text.encode("utf-8", "surrogateescape")


def _summary(ev: Evaluation, judgments: Judgments, judged: int) -> dict[str, float | int | str]:
    """The "all" values: sums for counts, else the running sum in topic order / topics."""
    topics = judged if ev.complete else len(ev.topics)
    out: dict[str, float | int | str] = {}
    for m in ev.measures:
        values = ev.values.get(m.name)
        match m.family:
            case "runid":
                out[m.name] = ev.run_tag
            case "num_q":
                out[m.name] = topics
            case "num_rel" if ev.complete:
                out[m.name] = judgments.positive_total()
            case _ if m.info.count:
                out[m.name] = int(values.sum())
            case _:
                total = float(np.cumsum(values)[-1]) if len(values) else 0.0
                out[m.name] = total / topics if topics else 0.0
    return out


def _typed(m: Measure, value: float) -> float | int:
    return int(value) if m.info.count else float(value)
