"""The report of files a run skipped: never a crash, never silently dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a run: its path (relative to the dataset root) and why."""

    path: str
    reason: str


class SkipReport:
    """Collects skipped files during a run, warns once per file, and writes them as JSON."""

    def __init__(self, items: Iterable[SkippedFile] = ()):
        self._items: dict[str, SkippedFile] = {}
        self.extend(items)

    def add(self, path: str, reason: str) -> None:
        if path not in self._items:
            shown = path if path.isprintable() else repr(path)  # a newline in a name: one line
            log.warning("skipped %s: %s", shown, reason)
            self._items[path] = SkippedFile(path, reason)

    def extend(self, items: Iterable[SkippedFile]) -> None:
        for item in items:
            self.add(item.path, item.reason)

    @property
    def items(self) -> list[SkippedFile]:
        return sorted(self._items.values(), key=lambda s: s.path)

    def __len__(self) -> int:
        return len(self._items)

    def to_json(self) -> dict:
        return {"count": len(self), "skipped": [asdict(s) for s in self.items]}

    def write(self, path: Path) -> Path:
        """Write the report atomically to `path` and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> SkipReport:
        data = json.loads(Path(path).read_text())
        return cls(SkippedFile(**item) for item in data.get("skipped", []))
