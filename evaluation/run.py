"""Runs: retrieved documents with scores per topic, as dicts (any run) or numpy arrays (ours).

The rank a run file states is never used: like trec_eval, documents are ranked by score,
highest first, ties broken by docno in *descending* byte order (`strcmp(b, a)`). `trec_order`
is that rule; the writer uses it too, so the rank column and trec_eval always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.errors import EvaluationError

DEFAULT_TAG = "cbir"


def trec_order(docnos: Sequence[str], scores: Sequence[float]) -> list[int]:
    """Positions of the documents in trec_eval order: score descending, then docno descending.

    Python compares str by code point, which is the byte order of their UTF-8 encoding.
    """
    return [
        i for _, _, i in sorted(zip(scores, docnos, range(len(docnos)), strict=True), reverse=True)
    ]


class Run(Mapping[str, Mapping[str, float]]):
    """A run `topic -> {docno: score}` plus its tag, e.g. as read from a TREC run file."""

    def __init__(self, topics: Mapping[str, Mapping[str, float]], tag: str = DEFAULT_TAG) -> None:
        self._topics = {str(t): dict(docs) for t, docs in topics.items()}
        self.tag = tag

    @classmethod
    def from_mapping(
        cls,
        run: Mapping[str, Mapping[str, float] | Sequence[tuple[str, float]]],
        tag: str = DEFAULT_TAG,
    ) -> Run:
        """A run from `{topic: {docno: score}}` or `{topic: [(docno, score), ...]}`.

        Raises EvaluationError on a docno listed twice for a topic or a score that is NaN.
        """
        topics: dict[str, dict[str, float]] = {}
        for topic, docs in run.items():
            pairs = docs.items() if isinstance(docs, Mapping) else docs
            scored: dict[str, float] = {}
            for docno, score in pairs:
                value = float(score)
                if math.isnan(value):
                    raise EvaluationError(f"run topic {topic!r} docno {docno!r}: score is NaN")
                if str(docno) in scored:
                    raise EvaluationError(f"run topic {topic!r} lists docno {docno!r} twice")
                scored[str(docno)] = value
            topics[str(topic)] = scored
        return cls(topics, tag)

    def __getitem__(self, topic: str) -> Mapping[str, float]:
        return self._topics[topic]

    def __iter__(self) -> Iterator[str]:
        return iter(self._topics)

    def __len__(self) -> int:
        return len(self._topics)

    def ranked(self, topic: str) -> tuple[list[str], list[float]]:
        """Docnos and scores of `topic` in trec_eval order."""
        docs = self._topics[topic]
        docnos, scores = list(docs), list(docs.values())
        order = trec_order(docnos, scores)
        return [docnos[i] for i in order], [scores[i] for i in order]


@dataclass
class ArrayRun:
    """A run held as arrays: row i is topic `topics[i]`, its documents and scores.

    doc_index: int (n, k), index into `docnos` (-1 marks an empty slot);
    scores: float (n, k), similarity of each document (higher is better; float32 is fine).
    Rows may come in any order: ranking uses trec_order, tie-breaking on the docno strings.
    """

    topics: Sequence[str]
    doc_index: np.ndarray
    scores: np.ndarray
    docnos: Sequence[str]
    tag: str = DEFAULT_TAG
    _docno_rank: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.doc_index = np.asarray(self.doc_index)
        self.scores = np.asarray(self.scores)
        n = len(self.topics)
        if self.doc_index.ndim != 2 or self.doc_index.shape != self.scores.shape:
            raise EvaluationError(
                f"ArrayRun: doc_index {self.doc_index.shape} and scores {self.scores.shape} "
                "must be 2-d arrays of the same shape"
            )
        if self.doc_index.shape[0] != n:
            raise EvaluationError(f"ArrayRun: {n} topics but {self.doc_index.shape[0]} rows")
        if len(set(map(str, self.topics))) != n:
            raise EvaluationError("ArrayRun: a topic appears in two rows")
        valid = self.doc_index >= 0
        if np.any(self.doc_index >= len(self.docnos)):
            raise EvaluationError(f"ArrayRun: doc_index beyond the {len(self.docnos)} docnos")
        if np.any(np.isnan(self.scores[valid])):
            raise EvaluationError("ArrayRun: a retrieved document has a NaN score")
        ordered = np.sort(np.where(valid, self.doc_index, -1), axis=1)
        if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
            raise EvaluationError("ArrayRun: a row lists the same document twice")

    @property
    def docno_rank(self) -> np.ndarray:
        """int64 (len(docnos),): position of each docno in byte order."""
        if self._docno_rank is None:
            order = sorted(range(len(self.docnos)), key=self.docnos.__getitem__)
            rank = np.empty(len(self.docnos), dtype=np.int64)
            rank[order] = np.arange(len(order))
            self._docno_rank = rank
        return self._docno_rank

    def ranked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows in trec_eval order: doc_index (n, k), scores (n, k), documents per row (n,)."""
        valid = self.doc_index >= 0
        safe = np.where(valid, self.doc_index, 0)
        scores = np.where(valid, self.scores, 0).astype(np.float64)
        # lexsort: last key is primary; ascending, then reversed = valid first, score and
        # docno descending.
        order = np.lexsort((self.docno_rank[safe], scores, valid), axis=1)[:, ::-1]
        taken = np.take_along_axis
        index = np.where(taken(valid, order, 1), taken(self.doc_index, order, 1), -1)
        return index, taken(self.scores, order, 1), valid.sum(axis=1)

    def to_run(self) -> Run:
        """The same run as a `Run` of dicts (for pytrec_eval or small tests)."""
        topics = {}
        for topic, row, scores in zip(self.topics, self.doc_index, self.scores, strict=True):
            keep = row >= 0
            topics[str(topic)] = {
                self.docnos[i]: float(s)
                for i, s in zip(row[keep].tolist(), scores[keep].tolist(), strict=True)
            }
        return Run(topics, self.tag)


AnyRun = Run | ArrayRun
