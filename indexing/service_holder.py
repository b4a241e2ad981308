"""One SearchService per process for a long-running server, opened on first use.

A server starts before its index may exist: `get()` raises the opening error (e.g.
IndexMissingError, which names the command that builds the index) and tries again on a
later call, at most once per `retry_seconds`, so an index built after the start is picked
up without a restart. An open service is checked as rarely: when `cbir index` has added a
method or rebuilt a field with another model since, it is reopened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cbir.core.errors import CbirError
from indexing.search import SearchService

log = logging.getLogger(__name__)


class ServiceHolder:
    """Thread-safe lazy holder of a SearchService built by `opener`."""

    def __init__(
        self,
        opener: Callable[[], SearchService],
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._opener = opener
        self._retry = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._service: SearchService | None = None
        self._error: CbirError | None = None
        self._last_try = float("-inf")

    def get(self) -> SearchService:
        """The open service; raises the CbirError that opening it gave (tried again later)."""
        with self._lock:
            now = self._clock()
            due = now - self._last_try >= self._retry
            if self._service is not None:
                if due:
                    self._last_try = now
                    self._reopen_if_stale()
                if self._service is not None:
                    return self._service
            elif not due and self._error is not None:
                raise self._error
            self._last_try = now
            try:
                self._service = self._opener()
            except CbirError as exc:
                self._error = exc
                raise
            self._error = None
            return self._service

    def peek(self) -> SearchService | None:
        """The service when it can be had now, else None (never raises a CbirError)."""
        try:
            return self.get()
        except CbirError:
            return None

    @property
    def error(self) -> CbirError | None:
        """Why the last attempt to open failed (None when open or not tried yet)."""
        return self._error

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
                self._service = None

    def _reopen_if_stale(self) -> None:
        try:
            current = self._service.is_current()
        except CbirError as exc:  # e.g. Elasticsearch unreachable: keep serving what we have
            log.warning("cannot check whether the index changed: %s", exc)
            return
        if not current:
            # Not closed here: requests still running may hold it; it goes with its last reference.
            log.info("the index changed since it was opened; reopening it")
            self._service = None
