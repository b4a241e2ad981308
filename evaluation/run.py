"""Runs: retrieved documents with scores per topic, as dicts (any run) or numpy arrays (ours).

The rank a run file states is never used: like trec_eval, documents are ranked by score,
highest first, ties broken by docno in *descending* byte order (`strcmp(b, a)`). `trec_order`
is that rule; the writer uses it too, so the rank column and trec_eval always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from numbers import Real

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
    """A run `topic -> {docno: score}` plus its tag, e.g. as read from a TREC run file.

    The constructor takes its dicts as they are; `Run.from_mapping` checks and converts.
    """

    def __init__(self, topics: Mapping[str, Mapping[str, float]], tag: str = DEFAULT_TAG) -> None:
        self._topics = dict(topics)
        self.tag = tag

    @classmethod
    def from_mapping(
        cls,
        run: Mapping[str, Mapping[str, float] | Sequence[tuple[str, float]]],
        tag: str = DEFAULT_TAG,
    ) -> Run:
        """A run from `{topic: {docno: score}}` or `{topic: [(docno, score), ...]}`.

        Inner dicts with str docnos are kept by reference (no copy of a million entries), so
        do not change them while the Run is in use. Raises EvaluationError on a docno listed
        twice for a topic or a score that is not a number (NaN included).
        """
        topics: dict[str, dict[str, float]] = {}
        for topic, docs in run.items():
            pairs = docs if isinstance(docs, Mapping) else list(docs)
            scored = pairs if type(pairs) is dict else dict(pairs)  # dicts are kept, not copied
            if set(map(type, scored)) - {str}:
                scored = {str(d): v for d, v in dict(pairs).items()}
            if len(scored) != len(pairs):
                raise EvaluationError(f"run topic {topic!r} lists a docno twice")
            topics[str(topic)] = scored
        # One C-level pass over every score; only on failure look for the culprit.
        every = chain.from_iterable(docs.values() for docs in topics.values())
        try:
            bad = np.isnan(np.fromiter(every, dtype=np.float64)).any()
        except (TypeError, ValueError):
            bad = True
        if bad:
            for topic, docs in topics.items():
                for docno, score in docs.items():
                    if not isinstance(score, Real) or math.isnan(score):
                        raise EvaluationError(
                            f"run topic {topic!r} docno {docno!r}: score {score!r} is not a number"
                        )
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
        scores = np.array(list(docs.values()), dtype=np.float64).tolist()
        ranked = sorted(zip(scores, docs, strict=True), reverse=True)  # see trec_order
        return [d for _, d in ranked], [s for s, _ in ranked]


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

    def ranked(self, single_precision: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows in trec_eval order: doc_index (n, k), scores (n, k), documents per row (n,).

        `single_precision`: compare scores as float32, as trec_eval 9.0.8 does.
        """
        valid = self.doc_index >= 0
        safe = np.where(valid, self.doc_index, 0)
        scores = np.where(valid, self.scores, 0)
        if single_precision and scores.dtype != np.float32:
            with np.errstate(over="ignore"):
                scores = scores.astype(np.float32)
        scores = scores.astype(np.float64)
        # lexsort: last key is primary; ascending, then reversed = valid first, score and
        # docno descending.
        order = np.lexsort((self.docno_rank[safe], scores, valid), axis=1)[:, ::-1]
        taken = np.take_along_axis
        index = np.where(taken(valid, order, 1), taken(self.doc_index, order, 1), -1)
        return index, taken(self.scores, order, 1), valid.sum(axis=1)

    @classmethod
    def from_hits(
        cls,
        topics: Sequence[str],
        hits: Sequence[Sequence],
        docnos: Sequence[str],
        tag: str = DEFAULT_TAG,
    ) -> ArrayRun:
        """A run from per-topic search hits (objects with `doc_id` and `score`, e.g. a store's
        `Hit`), row i for `topics[i]`; every hit's doc_id must be one of `docnos`."""
        position = {d: i for i, d in enumerate(docnos)}
        width = max((len(h) for h in hits), default=0) or 1
        doc_index = np.full((len(hits), width), -1, dtype=np.int64)
        scores = np.zeros((len(hits), width), dtype=np.float64)
        for row, row_hits in enumerate(hits):
            for col, hit in enumerate(row_hits):
                doc_index[row, col] = position[hit.doc_id]
                scores[row, col] = hit.score
        return cls(list(topics), doc_index, scores, docnos, tag=tag)

    @classmethod
    def from_ids(
        cls,
        topics: Sequence[str],
        doc_ids: np.ndarray,
        scores: np.ndarray,
        docnos: Sequence[str],
        tag: str = DEFAULT_TAG,
    ) -> ArrayRun:
        """`from_hits` for hits held as arrays (a store's `RankedHits`), without hit objects.

        doc_ids: object (n, k), each row's docnos first, then None; scores: float (n, k).
        The same run as `from_hits` of the same hits, arrays and all.
        """
        doc_ids = np.asarray(doc_ids, dtype=object)
        if doc_ids.ndim != 2 or np.shape(scores) != doc_ids.shape:
            raise EvaluationError(
                f"ArrayRun: doc_ids {doc_ids.shape} and scores {np.shape(scores)} "
                "must be 2-d arrays of the same shape"
            )
        position: dict[str | None, int] = {d: i for i, d in enumerate(docnos)}
        position[None] = -1
        flat = doc_ids.ravel().tolist()
        try:
            index = np.fromiter(map(position.__getitem__, flat), np.int64, len(flat))
        except KeyError as missing:
            raise EvaluationError(f"ArrayRun: retrieved docno {missing} is not a docno") from None
        index = index.reshape(doc_ids.shape)
        values = np.asarray(scores, dtype=np.float64)
        if index.shape[1] == 0:  # no columns: one empty one, as from_hits makes
            index, values = np.full((len(index), 1), -1, np.int64), np.zeros((len(index), 1))
        valid = index >= 0
        width = int(valid.sum(axis=1).max(initial=0)) or 1  # as from_hits: the longest row
        index = index[:, :width]
        values = np.where(valid[:, :width], values[:, :width], 0.0)
        return cls(list(topics), index, values, docnos, tag=tag)

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
