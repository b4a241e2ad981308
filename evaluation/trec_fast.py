"""A fast reader for large qrels files in the plain layout, on Apache Arrow's CSV parser.

`cbir trec-eval` on CIFAR-10 streams 50 million qrels lines to keep the judgments of the
million documents a run retrieved; line by line in Python that is most of its time. Here
the file is read in chunks cut at topic boundaries, each parsed by pyarrow's multi-threaded
CSV reader (space-delimited, no quoting, fields as raw bytes); per-topic grade counts come
from a group-by, the kept judgments from a hash join with the run's (topic, docno) pairs,
and duplicate docnos within a topic, an error as in trec_eval, from one vectorised
comparison of each docno with the next (a topic whose docnos are strictly increasing has
none; other topics are checked exactly).

The fast path takes files whose every line is `topic SP iter SP docno SP rel LF` with
single spaces and an integer relevance: no `#` anywhere, no tabs, CR or other whitespace
(blank lines are skipped, as line by line). Anything else, and a duplicate docno, makes
`read` return False: the caller then reads the file line by line, which gives the
line-numbered error messages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import IO

CHUNK = 64 << 20
# Single bytes (memchr-fast to look for); double, leading and trailing spaces make a line of
# other than 4 columns, which the parser rejects.
_NOT_PLAIN = (b"\t", b"\r", b"\x0b", b"\x0c", b"#")


class KeptQrelsReader:
    """Streams a plain qrels file: grade counts of every topic, grades of the kept docnos."""

    def __init__(self, keep: Mapping[bytes, Collection[bytes]]) -> None:
        self.keep = keep
        self.counts: dict[bytes, dict[int, int]] = {}
        self.kept: dict[bytes, dict[bytes, int]] = {}
        self.closed: set[bytes] = set()
        self.split: set[bytes] = set()
        self.current: bytes | None = None

    def read(self, stream: IO[bytes], chunk: int = CHUNK) -> bool:
        """Read the whole stream; False when it is not in the plain layout."""
        import pyarrow as pa

        carry = b""
        buffer = bytearray(2 * chunk)  # reused: a fresh one would be zeroed each time
        try:
            while True:
                size = max(chunk, 2 * len(carry))  # a topic longer than a chunk: read more
                if len(buffer) < len(carry) + size:
                    buffer = bytearray(len(carry) + size)
                buffer[: len(carry)] = carry
                view = memoryview(buffer)[len(carry) : len(carry) + size]
                total = len(carry) + _fill(stream, view)
                if total == len(carry):  # end of the file
                    if carry:
                        self._parse(carry if carry.endswith(b"\n") else carry + b"\n")
                    return True
                cut = _last_topic_start(buffer, total)
                if cut > 0:
                    self._parse(memoryview(buffer)[:cut])
                carry = bytes(buffer[cut:total])
        except (_NotPlain, pa.ArrowInvalid):
            return False

    def _parse(self, data: bytes | memoryview) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as csv

        raw = data.obj if isinstance(data, memoryview) else data  # data starts at raw[0]
        if raw[:1] == b" " or any(raw.find(s, 0, len(data)) >= 0 for s in _NOT_PLAIN):
            raise _NotPlain
        table = csv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=csv.ReadOptions(column_names=["q", "i", "d", "r"], block_size=16 << 20),
            parse_options=csv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False),
            convert_options=csv.ConvertOptions(
                include_columns=["q", "d", "r"],
                column_types={"q": pa.binary(), "d": pa.binary(), "r": pa.int64()},
                null_values=[],
                strings_can_be_null=False,
            ),
        )
        q, d = table["q"].combine_chunks(), table["d"].combine_chunks()
        change = pc.not_equal(q[1:], q[:-1])
        starts = [0, *(pc.indices_nonzero(change).to_numpy() + 1).tolist()]
        topics = pc.take(q, starts).to_pylist()
        self._blocks(topics)
        grades = pc.min_max(table["r"]).as_py()
        if grades["min"] == grades["max"]:  # one grade (label qrels): counts are block sizes
            sizes = [b - a for a, b in zip(starts, [*starts[1:], table.num_rows], strict=True)]
            for topic, count in zip(topics, sizes, strict=True):
                per_topic = self.counts.setdefault(topic, {})
                per_topic[grades["min"]] = per_topic.get(grades["min"], 0) + count
        else:
            self._count(table)
        unsorted = pc.and_(pc.invert(change), pc.invert(pc.less(d[:-1], d[1:])))
        if pc.any(unsorted).as_py():
            self._check_duplicates(table, starts, unsorted)
        self._keep(table, topics)

    def _count(self, table) -> None:
        counts = table.group_by(["q", "r"], use_threads=False).aggregate([([], "count_all")])
        columns = (counts[c].to_pylist() for c in ("q", "r", "count_all"))
        for topic, grade, count in zip(*columns, strict=True):
            per_topic = self.counts.setdefault(topic, {})
            per_topic[grade] = per_topic.get(grade, 0) + count

    def _blocks(self, topics: list[bytes]) -> None:
        """Note topics that come back after another topic (checked across blocks later)."""
        for topic in topics:
            if topic != self.current:
                if self.current is not None:
                    self.closed.add(self.current)
                if topic in self.closed:
                    self.split.add(topic)
                self.current = topic

    def _check_duplicates(self, table, starts: list[int], unsorted) -> None:
        """Raise _NotPlain (the line reader then names the line) if a topic repeats a docno."""
        import numpy as np

        rows = np.flatnonzero(unsorted.to_numpy(zero_copy_only=False)) + 1
        bounds = [*starts, table.num_rows]
        docnos = table["d"].to_pylist()
        for b in {int(np.searchsorted(bounds, r, side="right")) - 1 for r in rows.tolist()}:
            block = docnos[bounds[b] : bounds[b + 1]]
            if len(set(block)) != len(block):
                raise _NotPlain

    def _keep(self, table, topics: list[bytes]) -> None:
        import pyarrow as pa

        wanted_q: list[bytes] = []
        wanted_d: list[bytes] = []
        for topic in dict.fromkeys(topics):
            docnos = self.keep.get(topic, ())
            wanted_q.extend([topic] * len(docnos))
            wanted_d.extend(docnos)
        if not wanted_q:
            return
        wanted = pa.table(
            {"q": pa.array(wanted_q, pa.binary()), "d": pa.array(wanted_d, pa.binary())}
        )
        found = table.select(["q", "d", "r"]).join(wanted, keys=["q", "d"], join_type="inner")
        for topic, docno, grade in zip(*(found[c].to_pylist() for c in ("q", "d", "r")), strict=True):  # fmt: skip
            self.kept.setdefault(topic, {})[docno] = grade


class _NotPlain(Exception):
    """The file is not in the plain layout: read it line by line instead."""


def _fill(stream: IO[bytes], view: memoryview) -> int:
    """Read into `view` until it is full or the stream ends; the number of bytes read."""
    done = 0
    while done < len(view):
        n = stream.readinto(view[done:])
        if not n:
            break
        done += n
    return done


def _last_topic_start(data: bytes | bytearray, size: int) -> int:
    """Byte offset of the first line of the last topic's block among the complete lines
    of `data[:size]`: 0 when they are all one topic (read more)."""
    end = data.rfind(b"\n", 0, size)
    if end < 0:
        return 0
    start = data.rfind(b"\n", 0, end) + 1
    space = data.find(b" ", start, end)
    if space < 0:
        raise _NotPlain
    prefix = bytes(data[start : space + 1])
    while start > 0:
        previous = data.rfind(b"\n", 0, start - 1) + 1
        if not data.startswith(prefix, previous):
            return start
        start = previous
    return 0


def read_plain_run(data: bytes) -> tuple[dict[str, dict[str, float]], str] | None:
    """`{topic: {docno: score}}` and the last line's tag of a plain run file, else None.

    Plain: six single-space separated fields a line, valid UTF-8, no `#`, tab or CR, numeric
    scores that are not NaN, no docno twice in a topic. None sends the caller to the line
    reader, which accepts more and names the line of an error.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    if not data.strip() or data[:1] == b" " or any(data.find(s) >= 0 for s in _NOT_PLAIN):
        return None
    names = ["q", "z", "d", "k", "s", "t"]
    types = {"q": pa.string(), "z": pa.binary(), "d": pa.string(), "k": pa.binary()}
    try:
        table = csv.read_csv(
            pa.BufferReader(data),
            read_options=csv.ReadOptions(column_names=names, block_size=16 << 20),
            parse_options=csv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False),
            convert_options=csv.ConvertOptions(
                column_types={**types, "s": pa.float64(), "t": pa.string()},
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    scores = table["s"].combine_chunks()
    if pc.any(pc.is_nan(scores)).as_py():
        return None
    q = table["q"].combine_chunks()
    change = pc.indices_nonzero(pc.not_equal(q[1:], q[:-1])).to_numpy() + 1
    bounds = [0, *change.tolist(), table.num_rows]
    topics = pc.take(q, bounds[:-1]).to_pylist()
    docnos, values = table["d"].to_pylist(), scores.to_pylist()
    run: dict[str, dict[str, float]] = {}
    for topic, start, stop in zip(topics, bounds[:-1], bounds[1:], strict=True):
        docs = dict(zip(docnos[start:stop], values[start:stop], strict=True))
        if len(docs) != stop - start:
            return None
        known = run.get(topic)
        if known is not None:
            if not known.keys().isdisjoint(docs):
                return None
            known.update(docs)
        else:
            run[topic] = docs
    return run, table["t"][-1].as_py()
