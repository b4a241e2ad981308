"""The `cbir index --watch` stage: sync a folder, then keep syncing it as files change.

Events start before the catch-up sync, so a change made during it is in the first batch; a
restart catches up with what changed while the watcher was down, because that first sync
compares the whole folder with the index. Each batch is one more sync of the folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from cbir.core.progress import Stopwatch
from cbir.stages.index import IndexReport, index_dataset
from indexing.encoding import RayOptions
from indexing.local_store import LocalOptions
from indexing.sync import SyncCounts
from indexing.watch import FolderWatcher


@dataclass
class WatchSummary:
    """Totals of a watch session: the catch-up sync and every batch after it."""

    batches: int = 0
    encoded: int = 0
    documents: int = 0
    seconds: float = 0.0
    counts: SyncCounts = field(default_factory=SyncCounts)

    def line(self) -> str:
        return (
            f"watch: {self.batches:,} batches in {self.seconds:.1f} s, {self.encoded:,} images "
            f"encoded, {self.documents:,} documents; {self.counts.line()}"
        )


def watch_folder(
    settings: Settings,
    *,
    data: str,
    methods: Sequence[str],
    models: Mapping[str, str | Path] | None = None,
    ray: RayOptions | None = None,
    batch_size: int = 1000,
    poll: float | None = None,
    quiet: float = 0.5,
    max_delay: float = 10.0,
    on_sync: Callable[[IndexReport], None] = lambda report: None,
    on_ready: Callable[[FolderWatcher], None] = lambda watcher: None,
    local: LocalOptions | None = None,
) -> WatchSummary:
    """Sync `data`, then sync again after each debounced batch of changes until stopped.

    Stops when `on_ready`'s watcher is stopped (from another thread) or on Ctrl-C; returns
    the totals either way. `on_sync` sees every sync's report.
    """
    root = Path(data)
    if not root.is_dir():
        raise CbirError(f"--watch needs a folder: {data} is not a directory (pass --data FOLDER)")
    clock = Stopwatch()
    summary = WatchSummary()
    resolved = root.resolve()

    def one_sync(paths: set[str] | None = None) -> None:
        report = index_dataset(
            settings,
            dataset="folder",
            data=data,
            methods=methods,
            models=models,
            ray=ray,
            batch_size=batch_size,
            show_progress=paths is None,
            only=None if paths is None else relative_paths(paths, resolved),
            local=local,
        )
        summary.batches += paths is not None
        summary.encoded += report.encoded
        summary.documents = report.documents
        if report.sync is not None:
            now = SyncCounts(**report.sync)
            totals = summary.counts
            for name in ("added", "changed", "removed", "renamed"):
                setattr(totals, name, getattr(totals, name) + getattr(now, name))
            if paths is None:  # a state, not a sum: as the last whole-folder sync saw it
                totals.unchanged, totals.skipped = now.unchanged, now.skipped
        on_sync(report)

    watcher = FolderWatcher(
        resolved,
        one_sync,
        poll=poll,
        quiet=quiet,
        max_delay=max_delay,
        ignore=settings.home.resolve(),
    )
    watcher.start()
    try:
        one_sync()
        on_ready(watcher)
        watcher.run()
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        summary.seconds = round(clock.seconds, 3)
    return summary


def relative_paths(paths: set[str], root: Path) -> list[str]:
    """Event paths as POSIX paths relative to `root` (the root itself and outsiders left out)."""
    out = []
    for path in paths:
        try:
            rel = Path(path).relative_to(root)
        except ValueError:
            continue
        if rel.parts:
            out.append(rel.as_posix())
    return out
