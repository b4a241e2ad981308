"""Drawing progress bars on the terminal (tqdm): the command line's side of `cbir.core.progress`."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def tqdm_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    unit: str = "img",
    total: int | None = None,
    disable: bool = False,
) -> tqdm:
    """A tqdm bar on stderr; redraws at most once a second when stderr is not a terminal."""
    interactive = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        unit=unit,
        total=total,
        disable=disable,
        mininterval=0.1 if interactive else 1.0,
        unit_scale=unit == "B",
        dynamic_ncols=interactive,
    )
