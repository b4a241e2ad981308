"""Doc ids for files of a folder: any name the file system holds, escaped reversibly.

A doc id is the file's path relative to the dataset root, as the file system's bytes, with
every byte outside a small safe set %-escaped (quote): whitespace, `%`, `#`, non-ASCII and
bytes that are not UTF-8 at all (a Latin-1 `0xE9` becomes `%E9`). Ids are whitespace-free
(TREC files split on whitespace), printable, the same on every run, and map back to the path.
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote_to_bytes

# Kept as they are: ids of plain names read like the path (`cats/a_1.jpg`).
SAFE = "/-_.~()+,=@!$&'*;:"


def folder_doc_id(relpath: str) -> str:
    """The doc id of `relpath` (POSIX, relative; undecodable bytes as surrogateescape)."""
    return quote(os.fsencode(relpath), safe=SAFE)


def folder_relpath(doc_id: str) -> str:
    """The relative path `folder_doc_id` made `doc_id` from (inverse of folder_doc_id)."""
    return os.fsdecode(unquote_to_bytes(doc_id))


def display_path(relpath: str) -> str:
    """`relpath` as printable, encodable text: bytes that are not UTF-8 shown as `\\xe9`."""
    return os.fsencode(relpath).decode("utf-8", "backslashreplace")
