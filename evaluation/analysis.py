"""Per-rank analysis of runs: precision-recall and precision@k curves, per-class AP, class mixes.

The measures module gives trec_eval's single numbers; the notebooks also need the curves
behind them. Every function here starts from a `RankedRun`: a run's documents in trec_eval
order (score descending, ties by docno descending, via `ArrayRun.ranked`) with the grade of
each, so a curve and the matching trec_eval measure can never disagree on the ranking.

    from evaluation import read_qrels, read_run
    from evaluation.analysis import rank_run, precision_recall_curve, interpolated_precision
    ranked = rank_run(qrels, read_run("run.cnn.txt"))
    recall, precision = precision_recall_curve(ranked)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.errors import EvaluationError
from evaluation.evaluate import byte_key, evaluate
from evaluation.qrels import Judgments
from evaluation.ranking import array_run_grades
from evaluation.run import ArrayRun, Run
from features.sampling import stratified_rows

# trec_eval's iprec_at_recall levels: 0.0, 0.1, ..., 1.0.
ELEVEN_POINTS = tuple(i / 10 for i in range(11))


@dataclass
class RankedRun:
    """A run's documents in trec_eval order with their relevance, one row per evaluated topic.

    topics: the topics both in the run and judged, in byte order (trec_eval's);
    docnos: object (n, depth), the ranked docnos ("" after the last retrieved document);
    relevant: bool (n, depth), grade >= relevance_level;
    num_ret: int64 (n,), documents retrieved (at most depth);
    num_rel: int64 (n,), relevant documents of each topic (R, the whole collection's).
    """

    topics: list[str]
    docnos: np.ndarray
    relevant: np.ndarray
    num_ret: np.ndarray
    num_rel: np.ndarray

    @property
    def depth(self) -> int:
        return int(self.relevant.shape[1])

    def rows(self, topics: Sequence[str]) -> np.ndarray:
        """int64 (len(topics),): the row of each topic; KeyError for a topic not evaluated."""
        row_of = {t: i for i, t in enumerate(self.topics)}
        return np.array([row_of[t] for t in topics], dtype=np.int64)


def as_array_run(run: Run | ArrayRun) -> ArrayRun:
    """The same run as an `ArrayRun` (a `Run` as read from a TREC file is converted)."""
    if isinstance(run, ArrayRun):
        return run
    topics = list(run)
    width = max((len(run[t]) for t in topics), default=0) or 1
    position: dict[str, int] = {}
    index = np.full((len(topics), width), -1, dtype=np.int64)
    scores = np.zeros((len(topics), width), dtype=np.float64)
    for row, topic in enumerate(topics):
        docs = run[topic]
        index[row, : len(docs)] = [position.setdefault(d, len(position)) for d in docs]
        scores[row, : len(docs)] = list(docs.values())
    return ArrayRun(topics, index, scores, list(position), tag=run.tag)


def rank_run(
    qrels: Judgments,
    run: Run | ArrayRun,
    *,
    depth: int | None = None,
    relevance_level: int = 1,
) -> RankedRun:
    """Rank `run` as trec_eval does and judge each document against `qrels`.

    `depth` keeps the first n documents of each topic (trec_eval's `-M`); topics are those
    `evaluate` evaluates (in the run and judged). Raises EvaluationError when there are none.
    """
    arrays = as_array_run(run)
    judged = set(qrels.topics())
    topics = sorted((str(t) for t in arrays.topics if str(t) in judged), key=byte_key)
    if relevance_level < 0:
        raise EvaluationError(f"relevance_level must be >= 0, got {relevance_level}")
    if not topics:
        raise EvaluationError("the run and the qrels have no topic in common: nothing to rank")
    grades, num_ret = array_run_grades(qrels, arrays, topics, depth)
    index, _, _ = arrays.ranked()
    row_of = {str(t): i for i, t in enumerate(arrays.topics)}
    index = index[[row_of[t] for t in topics], : grades.shape[1]]
    names = np.array([*arrays.docnos, ""], dtype=object)
    counts = qrels.grade_counts(topics)
    return RankedRun(
        topics=topics,
        docnos=names[np.where(index >= 0, index, len(arrays.docnos))],
        relevant=grades >= relevance_level,  # not judged, negative and padding are all < 0
        num_ret=num_ret.astype(np.int64),
        num_rel=counts[:, relevance_level:].sum(axis=1).astype(np.int64),
    )


def precision_at(ranked: RankedRun, cutoffs: Sequence[int]) -> np.ndarray:
    """float64 (len(cutoffs),): mean P@k over topics, trec_eval's `P_k` (always divided by k)."""
    hits = np.cumsum(ranked.relevant, axis=1)
    out = []
    for k in cutoffs:
        if k <= 0:
            raise EvaluationError(f"precision cut-off must be positive, got {k}")
        found = hits[:, min(k, ranked.depth) - 1] if ranked.depth else np.zeros(len(hits))
        out.append(float(np.mean(found / k)))
    return np.array(out)


def precision_recall_curve(ranked: RankedRun) -> tuple[np.ndarray, np.ndarray]:
    """Mean recall and mean precision after each rank 1..depth: float64 (depth,) each.

    Recall divides by each topic's R (a topic with R = 0 counts 0); precision divides by the
    rank, as `P_k` does. This is the curve the run itself draws; with R much larger than the
    depth (CIFAR-10: R = 5,000, depth 100) recall stays small, which the 11-point curve hides
    as zeros.
    """
    hits = np.cumsum(ranked.relevant, axis=1, dtype=np.float64)
    ranks = np.arange(1, ranked.depth + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(ranked.num_rel[:, None] > 0, hits / ranked.num_rel[:, None], 0.0)
    return recall.mean(axis=0), (hits / ranks).mean(axis=0)


def interpolated_precision(
    ranked: RankedRun, levels: Sequence[float] = ELEVEN_POINTS
) -> np.ndarray:
    """float64 (len(levels),): trec_eval's `iprec_at_recall` at each recall level, mean over topics.

    As in trec_eval 9.0.8: level x needs c = floor(x * R + 0.9) relevant documents; its value
    is the best precision at or after the rank of the c-th relevant document (0 when fewer
    were retrieved), and level 0 takes the best precision anywhere in the ranking.
    """
    n, depth = ranked.relevant.shape
    values = np.zeros((n, len(levels)))
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    hits = np.cumsum(ranked.relevant, axis=1)
    retrieved = np.arange(depth) < ranked.num_ret[:, None]
    precision = np.where(retrieved, hits / ranks, 0.0)
    # best precision at this rank or any later one
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    num_rel_ret = hits[:, -1] if depth else np.zeros(n, dtype=np.int64)
    for row in range(n):
        at = np.flatnonzero(ranked.relevant[row])  # ranks (0-based) of the relevant documents
        for col, level in enumerate(levels):
            needed = int(np.floor(level * ranked.num_rel[row] + 0.9))
            if needed > num_rel_ret[row]:
                continue
            if needed <= 0:
                values[row, col] = best_after[row, 0] if depth else 0.0
            else:
                values[row, col] = best_after[row, at[needed - 1]]
    return values.mean(axis=0)


def average_precision(
    qrels: Judgments, run: Run | ArrayRun, k: int, *, normalised: bool = True
) -> dict[str, float]:
    """AP@k of each evaluated topic: divided by min(R, k) (`map_minRk_k`), else by R (`map_cut_k`)."""
    name = f"map_minRk_{k}" if normalised else f"map_cut_{k}"
    ev = evaluate(qrels, run, [name.replace(f"_{k}", f".{k}")])
    return dict(zip(ev.topics, ev.values[name].tolist(), strict=True))


def per_class_mean(
    per_topic: Mapping[str, float], topic_labels: Mapping[str, Hashable]
) -> dict[Hashable, float]:
    """Mean of a per-topic value over the topics of each label, labels in sorted order."""
    groups: dict[Hashable, list[float]] = {}
    for topic, value in per_topic.items():
        if topic in topic_labels:
            groups.setdefault(topic_labels[topic], []).append(value)
    return {label: float(np.mean(groups[label])) for label in sorted(groups, key=str)}


def retrieved_class_matrix(
    ranked: RankedRun,
    topic_labels: Mapping[str, Hashable],
    doc_labels: Mapping[str, Hashable],
    labels: Sequence[Hashable],
    depth: int | None = None,
) -> np.ndarray:
    """float64 (L, L): row = query class, column = class of a retrieved document, rows sum to 1.

    Each cell is the share of the top-`depth` documents (default: all retrieved) of the
    queries of one class that belong to another: the diagonal is precision@depth per class,
    the rest says what a method confuses a class with. A row with no query is all zeros.
    """
    code = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    cut = ranked.depth if depth is None else min(depth, ranked.depth)
    for row, topic in enumerate(ranked.topics):
        if topic not in topic_labels:
            continue
        q = code[topic_labels[topic]]
        for docno in ranked.docnos[row, : min(cut, int(ranked.num_ret[row]))]:
            counts[q, code[doc_labels[docno]]] += 1
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


@dataclass(frozen=True)
class Disagreement:
    topic: str
    first: float
    second: float

    @property
    def difference(self) -> float:
        return self.first - self.second


def disagreements(
    first: Mapping[str, float], second: Mapping[str, float], n: int
) -> list[Disagreement]:
    """The `n` topics (of those both have) where two per-topic values differ most.

    Ordered by absolute difference descending, ties by topic in byte order.
    """
    common = [t for t in first if t in second]
    ranked = sorted(common, key=lambda t: (-abs(first[t] - second[t]), byte_key(t)))
    return [Disagreement(t, first[t], second[t]) for t in ranked[:n]]


@dataclass(frozen=True)
class HeadToHead:
    """How often one method's per-topic value beats another's (topics both have)."""

    first_better: int
    second_better: int
    ties: int

    @property
    def topics(self) -> int:
        return self.first_better + self.second_better + self.ties


def head_to_head(first: Mapping[str, float], second: Mapping[str, float]) -> HeadToHead:
    """Count the topics where `first` is higher, where `second` is, and where they are equal."""
    common = [t for t in first if t in second]
    better = sum(first[t] > second[t] for t in common)
    worse = sum(first[t] < second[t] for t in common)
    return HeadToHead(better, worse, len(common) - better - worse)


@dataclass(frozen=True)
class GalleryRow:
    """One query and, per method, its ranked docnos with a relevance flag each."""

    query: str
    results: Mapping[str, Sequence[tuple[str, bool]]]
    caption: str = ""


def gallery_rows(
    ranked: Mapping[str, RankedRun], topics: Sequence[str], n: int = 8, captions=None
) -> list[GalleryRow]:
    """The top `n` documents of each topic under each method, with their relevance.

    `captions` optionally maps a topic to a caption (e.g. its class and APs).
    """
    rows = []
    for topic in topics:
        results = {}
        for method, run in ranked.items():
            row = int(run.rows([topic])[0])
            count = min(n, int(run.num_ret[row]))
            results[method] = list(
                zip(
                    run.docnos[row, :count].tolist(),
                    run.relevant[row, :count].tolist(),
                    strict=True,
                )
            )
        rows.append(GalleryRow(topic, results, (captions or {}).get(topic, "")))
    return rows


def stratified_sample(labels: Sequence[Hashable], per_label: int, seed: int = 0) -> np.ndarray:
    """int64 indices into `labels`: up to `per_label` of each label, drawn without replacement.

    Deterministic for a seed; returned in increasing order.
    """
    if per_label <= 0:
        raise ValueError(f"per_label must be positive, got {per_label}")
    array = np.asarray([str(x) for x in labels], dtype=object)
    return stratified_rows(array, lambda count: min(per_label, count), seed)


def embedding_map(vectors: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """float64 (n, 2): a t-SNE map (scikit-learn, PCA start, fixed seed) of float (n, dim) vectors.

    The perplexity is lowered to (n - 1) / 3 for small samples, as t-SNE needs. Raises
    ValueError for fewer than 4 vectors.
    """
    from sklearn.manifold import TSNE

    n = len(vectors)
    if n < 4:
        raise ValueError(f"a t-SNE map needs at least 4 vectors, got {n}")
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (n - 1) / 3),
        init="pca",
        random_state=seed,
        metric="cosine",
    )
    return tsne.fit_transform(np.asarray(vectors, dtype=np.float64))
