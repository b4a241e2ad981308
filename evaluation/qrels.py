"""Relevance judgments: explicit qrels (topic -> docno -> grade) and class-label relevance.

Both kinds answer the three questions the measures ask, so 50 million CIFAR-10 judgments
never have to exist as Python objects:

- `topics()`: every judged topic (for `-c` and `num_q`);
- `grade_counts(topics)`: how many documents of each grade >= 0 a topic has (gives R and the
  ideal ranking of nDCG);
- `grades(topic, docnos)`: the grade of each retrieved document, -1 when it was not judged
  (trec_eval's RELVALUE_NONPOOL) and -2 when it was judged with a negative grade
  (RELVALUE_UNJUDGED).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import chain, repeat

import numpy as np

from evaluation.errors import EvaluationError

NOT_JUDGED = -1
JUDGED_NEGATIVE = -2
_ABSENT = -(1 << 40)  # lookup default: no grade is this small


class Qrels(Mapping[str, Mapping[str, int]]):
    """Explicit judgments `topic -> {docno: grade}` as in a TREC qrels file.

    A reader may keep only the judgments of the documents a run retrieved (`complete=False`);
    the per-topic grade counts are always complete, so every measure stays exact.
    """

    def __init__(
        self,
        judgments: Mapping[str, Mapping[str, int]],
        *,
        counts: Mapping[str, Mapping[int, int]] | None = None,
        complete: bool = True,
    ) -> None:
        self._judgments = {str(t): dict(docs) for t, docs in judgments.items()}
        if counts is None:
            counts = {t: _count_grades(docs.values()) for t, docs in self._judgments.items()}
        self._counts = {t: dict(c) for t, c in counts.items()}
        for topic in self._counts:
            self._judgments.setdefault(topic, {})
        self.complete = complete

    @classmethod
    def from_mapping(cls, judgments: Mapping[str, Mapping[str, int]]) -> Qrels:
        """Qrels from `{topic: {docno: grade}}` (pytrec_eval's shape); grades must be integers."""
        checked: dict[str, dict[str, int]] = {}
        for topic, docs in judgments.items():
            checked[str(topic)] = {}
            for docno, grade in docs.items():
                if isinstance(grade, bool) or not isinstance(grade, int | np.integer):
                    raise EvaluationError(
                        f"qrels topic {topic!r} docno {docno!r}: grade {grade!r} is not an integer"
                    )
                checked[str(topic)][str(docno)] = int(grade)
        return cls(checked)

    def __getitem__(self, topic: str) -> Mapping[str, int]:
        return self._judgments[topic]

    def __iter__(self) -> Iterator[str]:
        return iter(self._judgments)

    def __len__(self) -> int:
        return len(self._judgments)

    def topics(self) -> list[str]:
        return list(self._judgments)

    def grade_counts(self, topics: Sequence[str]) -> np.ndarray:
        """int64 (len(topics), max grade + 1): documents of each grade >= 0 per topic."""
        top = max((g for t in topics for g in self._counts.get(t, {})), default=0)
        out = np.zeros((len(topics), max(top, 0) + 1), dtype=np.int64)
        for row, topic in enumerate(topics):
            for grade, n in self._counts.get(topic, {}).items():
                if grade >= 0:
                    out[row, grade] = n
        return out

    def positive_total(self) -> int:
        """Judgments with grade > 0 over all topics: trec_eval's `num_rel` under `-c`."""
        return sum(n for c in self._counts.values() for g, n in c.items() if g > 0)

    def grades(self, topic: str, docnos: Sequence[str]) -> np.ndarray:
        """int32 (len(docnos),): grade of each document, -1 not judged, -2 judged negative."""
        return self.lookup([topic], [docnos], len(docnos))

    def lookup(
        self, topics: Sequence[str], docnos: Sequence[Collection[str]], total: int
    ) -> np.ndarray:
        """int32 (total,): grades of `docnos[i]` for `topics[i]`, all topics concatenated.

        One C-level pass of `dict.get` over every (judgments of the topic, docno) pair.
        """
        judged = [self._judgments.get(t, {}) for t in topics]
        per_doc = chain.from_iterable(map(repeat, judged, map(len, docnos)))
        found = np.fromiter(
            map(dict.get, per_doc, chain.from_iterable(docnos), repeat(_ABSENT)), np.int64, total
        )
        out = np.where(found < 0, JUDGED_NEGATIVE, found)
        out[found == _ABSENT] = NOT_JUDGED
        return out.astype(np.int32)


class LabelQrels:
    """Relevance by class label: a document is relevant (grade 1) to a topic with its label.

    `topic_labels` maps each topic to its label; `docnos[i]` has label `doc_labels[i]`.
    Documents of another label are not judged (they are absent from the qrels file this
    writes), which every supported measure treats as non-relevant. A topic whose label no
    document has is not a judged topic (`topics()` leaves it out), exactly as trec_eval sees
    the written qrels file, where such a topic has no line.
    """

    def __init__(
        self,
        topic_labels: Mapping[str, Hashable],
        docnos: Sequence[str],
        doc_labels: Sequence[Hashable] | np.ndarray,
    ) -> None:
        if len(docnos) != len(doc_labels):
            raise EvaluationError(
                f"LabelQrels: {len(docnos)} docnos but {len(doc_labels)} document labels"
            )
        self.docnos = list(docnos)
        # Labels in order of first appearance (topics first): any hashable works, no sorting.
        labels = list(dict.fromkeys([*topic_labels.values(), *list(doc_labels)]))
        self.labels = labels
        code = {label: i for i, label in enumerate(labels)}
        self.doc_codes = np.fromiter((code[x] for x in doc_labels), np.int64, len(self.docnos))
        self.topic_codes = {str(t): code[x] for t, x in topic_labels.items()}
        self.label_sizes = np.bincount(self.doc_codes, minlength=len(labels)).astype(np.int64)
        self._index: dict[str, int] | None = None

    def topics(self) -> list[str]:
        return [t for t, code in self.topic_codes.items() if self.label_sizes[code] > 0]

    def topic_label(self, topic: str) -> Hashable:
        return self.labels[self.topic_codes[topic]]

    def grade_counts(self, topics: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(topics), 2), dtype=np.int64)
        out[:, 1] = [self.label_sizes[self.topic_codes[t]] for t in topics]
        return out

    def positive_total(self) -> int:
        return int(sum(self.label_sizes[c] for c in self.topic_codes.values()))

    def grades(self, topic: str, docnos: Sequence[str]) -> np.ndarray:
        return self.lookup([topic], [docnos], len(docnos))

    def lookup(
        self, topics: Sequence[str], docnos: Sequence[Collection[str]], total: int
    ) -> np.ndarray:
        """int32 (total,): 1 where a docno has its topic's label, else -1 (not judged)."""
        if self._index is None:
            self._index = {d: i for i, d in enumerate(self.docnos)}
        rows = np.fromiter(
            map(self._index.get, chain.from_iterable(docnos), repeat(-1)), np.int64, total
        )
        codes = np.repeat([self.topic_codes[t] for t in topics], [len(d) for d in docnos])
        same = (rows >= 0) & (self.doc_codes[np.maximum(rows, 0)] == codes)
        return np.where(same, 1, NOT_JUDGED).astype(np.int32)

    def grades_of_indices(self, topics: Sequence[str], doc_index: np.ndarray) -> np.ndarray:
        """int32 (n, k) grades for `doc_index` (int, (n, k), -1 = no document) of n topics."""
        codes = np.array([self.topic_codes[str(t)] for t in topics], dtype=np.int64)
        valid = doc_index >= 0
        same = self.doc_codes[np.where(valid, doc_index, 0)] == codes[:, None]
        return np.where(valid & same, 1, NOT_JUDGED).astype(np.int32)

    def relevant_docnos(self, topic: str) -> list[str]:
        """The docnos judged relevant to `topic`, in collection order."""
        members = np.flatnonzero(self.doc_codes == self.topic_codes[topic])
        return [self.docnos[i] for i in members]


def _count_grades(grades: Iterable[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for g in grades:
        counts[g] = counts.get(g, 0) + 1
    return counts


Judgments = Qrels | LabelQrels  # LeaveOneOutQrels is a LabelQrels


class LeaveOneOutQrels(LabelQrels):
    """Label relevance for queries drawn from the collection itself (validation queries).

    A topic that is also a document is not relevant to itself: its R leaves it out and, if a
    run retrieved it, it counts as not judged. Topics with no other document of their label
    are not judged topics.
    """

    def _self_rows(self, topics: Sequence[str]) -> np.ndarray:
        """int64 (len(topics),): each topic's own row among the documents, -1 when it is none."""
        if self._index is None:
            self._index = {d: i for i, d in enumerate(self.docnos)}
        return np.fromiter((self._index.get(str(t), -1) for t in topics), np.int64, len(topics))

    def _own_label(self, topics: Sequence[str]) -> np.ndarray:
        rows = self._self_rows(topics)
        codes = np.array([self.topic_codes[str(t)] for t in topics], dtype=np.int64)
        return (rows >= 0) & (self.doc_codes[np.maximum(rows, 0)] == codes)

    def topics(self) -> list[str]:
        candidates = super().topics()
        counts = self.grade_counts(candidates)
        return [t for t, n in zip(candidates, counts[:, 1].tolist(), strict=True) if n > 0]

    def grade_counts(self, topics: Sequence[str]) -> np.ndarray:
        out = super().grade_counts(topics)
        out[:, 1] -= self._own_label(topics)
        return out

    def positive_total(self) -> int:
        topics = list(self.topic_codes)
        return int(self.grade_counts(topics)[:, 1].sum())

    def grades_of_indices(self, topics: Sequence[str], doc_index: np.ndarray) -> np.ndarray:
        grades = super().grades_of_indices(topics, doc_index)
        grades[doc_index == self._self_rows(topics)[:, None]] = NOT_JUDGED
        return grades

    def lookup(
        self, topics: Sequence[str], docnos: Sequence[Collection[str]], total: int
    ) -> np.ndarray:
        grades = super().lookup(topics, docnos, total)
        own = np.fromiter(
            (d == t for t, ds in zip(topics, docnos, strict=True) for d in ds), bool, total
        )
        grades[own] = NOT_JUDGED
        return grades

    def relevant_docnos(self, topic: str) -> list[str]:
        return [d for d in super().relevant_docnos(topic) if d != topic]
