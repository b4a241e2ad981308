"""Read TREC qrels (`topic iter docno rel`) and runs (`topic Q0 docno rank score tag`).

Sources are paths (`.gz` is read transparently, by its magic bytes), or open file objects
in text or binary mode. Fields are split on ASCII whitespace as trec_eval's `isspace` does;
lines starting with `#` and blank lines are skipped (trec_eval rejects blank qrels lines; we
do not). What trec_eval treats as fatal is an error here too, with file, line and text:
a malformed line, a docno twice in one topic (qrels or run). We are stricter where it is
silent: a relevance that is not an integer, a score that is not a number or is NaN, and a
qrels with no judgments at all are errors.

Reading streams line by line. Given `keep`, `read_qrels` keeps only the judgments of the
documents a run retrieved plus complete per-topic grade counts, so a 50-million-line
CIFAR-10 qrels file is evaluated without holding it in memory (see the README for figures).
"""

from __future__ import annotations

import gzip
import io
import math
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from evaluation.errors import EvaluationError, TrecFormatError
from evaluation.qrels import Qrels
from evaluation.run import Run

Source = str | os.PathLike | IO[str] | IO[bytes]
Progress = Callable[[int], None]  # called with bytes read so far

_HASH = ord("#")
_GZIP_MAGIC = b"\x1f\x8b"


def read_qrels(
    source: Source,
    *,
    keep: Mapping[str, Collection[str]] | None = None,
    progress: Progress | None = None,
) -> Qrels:
    """Judgments from a qrels file.

    With `keep` (topic -> docnos, e.g. a run's), only those judgments are stored, plus the
    complete grade counts of every topic: enough to evaluate that run exactly, not another.
    """
    name = _name(source)
    if keep is None:
        with _lines(source, progress) as lines:
            qrels = _read_all_qrels(name, lines)
    else:
        keep_bytes = {
            _encode(t): {d.encode("utf-8", "surrogateescape") for d in docs}
            for t, docs in keep.items()
        }
        plain = _read_plain_qrels(name, source, keep_bytes, progress)
        if plain is not None:
            qrels, split = plain
        else:
            with _lines(source, progress) as lines:
                qrels, split = _read_kept_qrels(name, lines, keep_bytes)
        if split:  # a topic in several blocks: check its docnos across blocks too
            _check_split_topics(name, source, split)
    if not qrels.topics():
        raise TrecFormatError(name, None, "no judgments; a qrels line is 'topic 0 docno relevance'")
    return qrels


def read_run(source: Source, *, progress: Progress | None = None) -> Run:
    """A run file; an empty file is a valid run with no topics."""
    name = _name(source)
    if isinstance(source, str | os.PathLike):
        from evaluation.trec_fast import read_plain_run

        with _stream(source, progress) as stream:
            plain = read_plain_run(stream.read())
        if plain is not None:
            return Run(*plain)
    topics: dict[bytes, dict[bytes, float]] = {}
    tag = b""
    with _lines(source, progress) as numbered:
        for lineno, line in numbered:
            parts = line.split()
            if not parts or parts[0].startswith(b"#"):
                continue
            if len(parts) < 6:
                raise TrecFormatError(
                    name,
                    lineno,
                    "a run line has 6 fields: topic Q0 docno rank score tag",
                    _text(line),
                )
            qid, _, docno, _, score_text, tag = parts[:6]
            try:
                score = float(score_text)
            except ValueError:
                raise TrecFormatError(name, lineno, "score is not a number", _text(line)) from None
            if math.isnan(score):
                raise TrecFormatError(name, lineno, "score is NaN", _text(line))
            docs = topics.get(qid)
            if docs is None:
                docs = topics[qid] = {}
            if docno in docs:
                raise TrecFormatError(
                    name, lineno, f"docno {_decode(docno)} appears twice in topic {_decode(qid)}",
                    _text(line),
                )  # fmt: skip
            docs[docno] = score
    decoded = {_decode(q): {_decode(d): s for d, s in docs.items()} for q, docs in topics.items()}
    return Run(decoded, _decode(tag))


def _read_all_qrels(name: str, lines: Iterator[tuple[int, bytes]]) -> Qrels:
    judged: dict[bytes, dict[bytes, int]] = {}
    grade_of: dict[bytes, int] = {}
    for lineno, line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[0][0] == _HASH:
            _skip_or_fail(name, lineno, line, parts)
            continue
        qid, _, docno, rel = parts
        grade = grade_of.get(rel)
        if grade is None:
            grade = grade_of[rel] = _grade(name, lineno, line, rel)
        docs = judged.get(qid)
        if docs is None:
            docs = judged[qid] = {}
        if docno in docs:
            _duplicate(name, lineno, line, qid, docno)
        docs[docno] = grade
    return Qrels(
        {_decode(q): {_decode(d): g for d, g in docs.items()} for q, docs in judged.items()}
    )


def _read_kept_qrels(
    name: str, lines: Iterator[tuple[int, bytes]], keep: Mapping[bytes, Collection[bytes]]
) -> tuple[Qrels, set[bytes]]:
    """Stream judgments, keeping grade counts for every topic and only the `keep` docnos.

    Duplicates are checked within each contiguous block of a topic; topics that come back
    in a later block are returned so the caller can check them across blocks.
    """
    counts: dict[bytes, dict[int, int]] = {}
    kept: dict[bytes, dict[bytes, int]] = {}
    grade_of: dict[bytes, int] = {}
    current: bytes | None = None
    seen: set[bytes] = set()
    closed: set[bytes] = set()
    split: set[bytes] = set()
    topic_counts: dict[int, int] = {}
    wanted: Collection[bytes] = ()
    topic_kept: dict[bytes, int] = {}
    for lineno, line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[0][0] == _HASH:
            _skip_or_fail(name, lineno, line, parts)
            continue
        qid, _, docno, rel = parts
        if qid != current:
            if current is not None:
                closed.add(current)
            if qid in closed:
                split.add(qid)
            current, seen = qid, set()
            topic_counts = counts.setdefault(qid, {})
            topic_kept = kept.setdefault(qid, {})
            wanted = keep.get(qid, ())
        if docno in seen:
            _duplicate(name, lineno, line, qid, docno)
        seen.add(docno)
        grade = grade_of.get(rel)
        if grade is None:
            grade = grade_of[rel] = _grade(name, lineno, line, rel)
        topic_counts[grade] = topic_counts.get(grade, 0) + 1
        if docno in wanted:
            topic_kept[docno] = grade
    qrels = Qrels(
        {_decode(q): {_decode(d): g for d, g in docs.items()} for q, docs in kept.items()},
        counts={_decode(q): c for q, c in counts.items()},
        complete=False,
    )
    return qrels, split


def _read_plain_qrels(
    name: str, source: Source, keep: Mapping[bytes, Collection[bytes]], progress: Progress | None
) -> tuple[Qrels, set[bytes]] | None:
    """The vectorised reader (evaluation/trec_fast.py) on a path; None if the file needs ours."""
    if not isinstance(source, str | os.PathLike) or not keep:
        return None
    from evaluation.trec_fast import KeptQrelsReader

    reader = KeptQrelsReader(keep)
    with _stream(source, progress) as stream:
        if not reader.read(stream):
            return None
    qrels = Qrels(
        {_decode(q): {_decode(d): g for d, g in docs.items()} for q, docs in reader.kept.items()},
        counts={_decode(q): c for q, c in reader.counts.items()},
        complete=False,
    )
    return qrels, reader.split


def _check_split_topics(name: str, source: Source, split: set[bytes]) -> None:
    if not isinstance(source, str | os.PathLike):
        if not (hasattr(source, "seek") and source.seekable()):
            return  # cannot read twice; blocks were checked one by one
        source.seek(0)
    seen: dict[bytes, set[bytes]] = {q: set() for q in split}
    with _lines(source, None) as numbered:
        for lineno, line in numbered:
            parts = line.split()
            if len(parts) == 4 and parts[0][0] != _HASH and parts[0] in seen:
                docs = seen[parts[0]]
                if parts[2] in docs:
                    _duplicate(name, lineno, line, parts[0], parts[2])
                docs.add(parts[2])


def _skip_or_fail(name: str, lineno: int, line: bytes, parts: list[bytes]) -> None:
    if parts and not parts[0].startswith(b"#"):
        raise TrecFormatError(
            name, lineno, "a qrels line has 4 fields: topic iteration docno relevance", _text(line)
        )


def _grade(name: str, lineno: int, line: bytes, rel: bytes) -> int:
    digits = rel[1:] if rel[:1] in (b"-", b"+") else rel
    if not digits.isdigit():
        raise TrecFormatError(name, lineno, "relevance is not an integer", _text(line))
    return int(rel)


def _duplicate(name: str, lineno: int, line: bytes, qid: bytes, docno: bytes) -> None:
    raise TrecFormatError(
        name, lineno, f"docno {_decode(docno)} judged twice for topic {_decode(qid)}", _text(line)
    )


@contextmanager
def _lines(source: Source, progress: Progress | None) -> Iterator[Iterator[tuple[int, bytes]]]:
    """(line number, line as bytes) of a path, .gz path or file object.

    The iterator is a bare `enumerate` over the file: no Python frame per line. Progress is
    reported from the reads underneath, a few times per megabyte.
    """
    if isinstance(source, str | os.PathLike):
        with _stream(source, progress) as stream:
            yield enumerate(stream, 1)
    elif isinstance(source, io.TextIOBase) or "b" not in getattr(source, "mode", "b"):
        yield ((n, line.encode("utf-8", "surrogateescape")) for n, line in enumerate(source, 1))
    else:
        gzipped = _magic(source) == _GZIP_MAGIC
        yield enumerate(gzip.GzipFile(fileobj=source) if gzipped else source, 1)


@contextmanager
def _stream(path: str | os.PathLike, progress: Progress | None) -> Iterator[IO[bytes]]:
    """A file (gunzipped if it is gzip) as a buffered binary stream that reports progress."""
    try:
        with open(path, "rb", buffering=0) as unbuffered:
            raw: IO[bytes] = io.BufferedReader(_Counted(unbuffered, progress), 1 << 20)
            yield gzip.GzipFile(fileobj=raw) if _magic(raw) == _GZIP_MAGIC else raw
    except (OSError, EOFError) as exc:  # missing file, unreadable or truncated gzip
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise EvaluationError(f"{_name(path)}: cannot read ({reason})") from None


class _Counted(io.RawIOBase):
    """A raw file that reports how many bytes were read so far."""

    def __init__(self, raw: IO[bytes], progress: Progress | None) -> None:
        self.raw, self.progress, self.done = raw, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer) or 0
        self.done += n
        if self.progress is not None:
            self.progress(self.done)
        return n


def _magic(stream: IO[bytes]) -> bytes:
    """The first two bytes of a binary stream, without consuming them when possible."""
    if hasattr(stream, "peek"):
        return stream.peek(2)[:2]
    if stream.seekable():
        start = stream.tell()
        magic = stream.read(2)
        stream.seek(start)
        return magic
    return b""


def _name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return str(Path(source))
    return str(getattr(source, "name", "<stream>"))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _text(line: bytes) -> str:
    return _decode(line).rstrip("\r\n")
