"""Errors of the evaluation module: bad TREC files, bad measure names, unusable inputs."""

from __future__ import annotations

from cbir.core.errors import CbirError


class EvaluationError(CbirError):
    """Qrels, run or options that cannot be evaluated (no topics, no overlap, bad option)."""


class MeasureError(EvaluationError):
    """A measure name or parameter list we do not know (`-m` on the command line)."""


class TrecFormatError(EvaluationError):
    """A malformed qrels or run file: names the file, the line number and the offending text."""

    def __init__(self, source: str, line: int | None, message: str, text: str | None = None):
        self.source = source
        self.line = line
        self.text = text
        where = f"{source}:{line}" if line is not None else source
        shown = f": {text.rstrip()[:200]!r}" if text is not None else ""
        super().__init__(f"{where}: {message}{shown}")
