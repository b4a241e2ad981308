"""Progress reporting (drawn only by the command line) and the one-line summary every long job ends with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ProgressBar(Generic[T]):
    """Progress of one long loop as library code reports it: counts, draws nothing.

    Library code gets its bars from `progress()`; what they look like is the caller's choice:
    the command line installs drawing bars (`cbir.terminal`) with `use_progress_bars`, and
    everyone else (tests, notebooks, the web page) gets these silent ones.
    """

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        desc: str = "",
        unit: str = "img",
        total: int | None = None,
        disable: bool = False,
    ) -> None:
        self.iterable, self.desc, self.unit, self.total, self.disable = (
            iterable,
            desc,
            unit,
            total,
            disable,
        )
        self.n = 0

    def __iter__(self) -> Iterator[T]:
        for item in self.iterable or ():
            yield item
            self.n += 1

    def __enter__(self) -> ProgressBar[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def write(self, line: str) -> None:
        """Print a line above the bar (here: on standard output)."""
        print(line)

    def close(self) -> None:
        """Nothing to tear down for a silent bar."""


ProgressFactory = Callable[..., ProgressBar]
_factory: ProgressFactory = ProgressBar


def use_progress_bars(factory: ProgressFactory | None) -> None:
    """Make `progress()` hand out bars from `factory` (None: silent bars again)."""
    global _factory
    _factory = factory or ProgressBar


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    unit: str = "img",
    total: int | None = None,
    disable: bool = False,
) -> ProgressBar[T]:
    """A bar for one long loop: supports iteration, `update(n)`, `total`, `write`, `close`."""
    return _factory(iterable, desc=desc, unit=unit, total=total, disable=disable)


def summary_line(what: str, items: int, seconds: float, unit: str = "images") -> str:
    """`what: 50,000 images in 61.2 s (817 images/s)`."""
    rate = items / seconds if seconds > 0 else float("inf")
    return f"{what}: {items:,} {unit} in {seconds:.1f} s ({rate:,.0f} {unit}/s)"


class Stopwatch:
    """Wall-clock seconds since construction (time.perf_counter)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
