"""Follow a folder with watchdog: file events are debounced into batches for a sync callback.

Native events (inotify, FSEvents, ReadDirectoryChangesW) by default; a polling observer with
`poll` seconds, chosen by itself for network file systems, where native events do not
arrive for changes made by other machines. Each batch is the set of paths that changed; the
callback decides what to do (cbir syncs the whole folder: cheap when nothing else changed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from cbir.core.errors import CbirError

# Event kinds that can change what the index holds; opening or reading a file cannot.
CHANGE_EVENTS = frozenset(("created", "deleted", "modified", "moved", "closed"))
NETWORK_FS = frozenset(
    ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "davfs")
)
DEFAULT_POLL_SECONDS = 5.0


class ChangeQueue:
    """Paths changed since the last batch; `next_batch` waits until they settle."""

    def __init__(self, ignore: Path | None = None):
        self._cond = threading.Condition()
        self._paths: set[str] = set()
        self._first = self._last = 0.0
        self._stopped = False
        self._ignore = str(ignore) if ignore is not None else None

    def dispatch(self, event) -> None:
        """watchdog's handler entry point: queue the event's paths if it can change the index."""
        if event.event_type not in CHANGE_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's mtime moves with every file event inside it
        paths = [p for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        self.add(*(p.decode() if isinstance(p, bytes) else p for p in paths))

    def add(self, *paths: str) -> None:
        kept = [p for p in paths if not (self._ignore and p.startswith(self._ignore))]
        if not kept:
            return
        with self._cond:
            now = time.monotonic()
            if not self._paths:
                self._first = now
            self._paths.update(kept)
            self._last = now
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def next_batch(self, quiet: float, max_delay: float) -> set[str] | None:
        """The next batch: once `quiet` seconds pass without an event (or `max_delay` after the
        first); None once stopped."""
        with self._cond:
            while not self._paths and not self._stopped:
                self._cond.wait()
            while not self._stopped:
                now = time.monotonic()
                due = min(self._last + quiet, self._first + max_delay)
                if now >= due:
                    break
                self._cond.wait(due - now)
            if self._stopped:
                return None
            batch, self._paths = self._paths, set()
            return batch


def mount_type(path: Path) -> str | None:
    """The file-system type of the mount holding `path` (Linux /proc/mounts), or None."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    real = str(path.resolve())
    best, kind = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def needs_polling(path: Path) -> bool:
    """Whether `path` is on a network file system (or FUSE mount), where events are unreliable."""
    kind = mount_type(path) or ""
    return kind in NETWORK_FS or kind.startswith("fuse.")


class FolderWatcher:
    """Watch `root` recursively and call `on_batch(paths)` for each debounced batch."""

    def __init__(
        self,
        root: Path,
        on_batch: Callable[[set[str]], object],
        *,
        poll: float | None = None,
        quiet: float = 0.5,
        max_delay: float = 10.0,
        ignore: Path | None = None,
    ):
        self.root = Path(root)
        self.on_batch = on_batch
        self.poll = DEFAULT_POLL_SECONDS if poll is None and needs_polling(self.root) else poll
        self.quiet, self.max_delay = quiet, max_delay
        self.queue = ChangeQueue(ignore)
        self.batches = 0
        self._observer = None
        self._expected: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @property
    def polling(self) -> bool:
        return self.poll is not None

    def start(self) -> None:
        """Start receiving events (before the catch-up sync, so nothing falls between)."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if self.poll is not None and self.poll <= 0:
            raise CbirError(f"--poll must be a positive number of seconds, got {self.poll}")
        observer = PollingObserver(timeout=self.poll) if self.poll is not None else Observer()
        observer.schedule(self.queue, str(self.root), recursive=True)
        try:
            observer.start()
        except OSError as exc:
            raise CbirError(
                f"cannot watch {self.root} ({exc.strerror}); on Linux raise "
                "fs.inotify.max_user_watches, or poll instead with --poll SECONDS"
            ) from None
        self._observer = observer

    def run(self) -> None:
        """Hand batches to `on_batch` until `stop` (or Ctrl-C in the calling thread)."""
        while (batch := self.queue.next_batch(self.quiet, self.max_delay)) is not None:
            self.on_batch(batch)
            self.batches += 1
            with self._lock:
                for path in batch & self._expected.keys():
                    self._expected.pop(path).set()

    def expect(self, path: Path | str) -> threading.Event:
        """An event set once a batch holding `path` has been handled (call before changing it)."""
        key = str(Path(path).resolve())
        with self._lock:
            return self._expected.setdefault(key, threading.Event())

    def stop(self) -> None:
        """Stop events and the batch loop; safe to call twice and from any thread."""
        self.queue.stop()
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=10)
