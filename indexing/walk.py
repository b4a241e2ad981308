"""Walk a folder tree for image files without leaving it, looping, or blocking on special files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from features.imaging import IMAGE_SUFFIXES
from indexing.docids import display_path
from indexing.skipped import SkipReport


@dataclass(frozen=True)
class FoundFile:
    """An image file found under the root: `relpath` is POSIX, relative to the root; size and
    mtime (ns) as the walk saw them."""

    relpath: str
    abspath: Path
    size: int = 0
    mtime_ns: int = 0


def walk_images(root: Path, report: SkipReport) -> Iterator[FoundFile]:
    """Yield image files under `root` in sorted order.

    Symbolic links are followed only while they stay inside `root`; each directory is
    visited once (by device and inode), so link cycles end. FIFOs, sockets and devices
    are reported and skipped, as are files without an image suffix and hidden entries
    (names starting with '.'; a hidden folder is one entry, its contents are not walked). `relpath` keeps names that are not UTF-8 as
    surrogateescape; the report gets them printable (indexing.docids.display_path).
    """
    real_root = Path(os.path.realpath(root))
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(Path(root), "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            st = directory.stat()
        except OSError as exc:
            report.add(display_path(rel_dir) or ".", f"cannot read directory ({exc.strerror})")
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            report.add(display_path(rel_dir) or ".", f"cannot list directory ({exc.strerror})")
            continue
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name.startswith("."):
                report.add(display_path(rel), "hidden (name starts with '.'), not walked")
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(path))
                if not _inside(target, real_root):
                    report.add(display_path(rel), "symbolic link points outside the dataset root")
                    continue
                if not target.exists():
                    report.add(display_path(rel), "broken symbolic link")
                    continue
            try:
                st = path.stat()
                mode = st.st_mode
            except OSError as exc:
                report.add(display_path(rel), f"cannot stat ({exc.strerror})")
                continue
            if stat.S_ISDIR(mode):
                subdirs.append((path, rel))
            elif not stat.S_ISREG(mode):
                report.add(display_path(rel), f"not a regular file ({_kind(mode)})")
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                yield FoundFile(rel, path, st.st_size, st.st_mtime_ns)
            else:
                report.add(display_path(rel), f"not an image file suffix ({path.suffix or 'none'})")
        # Reversed so the stack pops sub-directories in sorted order.
        stack.extend(reversed(subdirs))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"
