"""Figures comparing retrieval methods (matplotlib, imported when a figure is drawn).

Each function draws one figure from values the analysis functions computed and returns the
`matplotlib.figure.Figure` (the notebooks show it; tests inspect it). Nothing here computes
a measure.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from evaluation.analysis import GalleryRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RELEVANT_COLOUR = "#2ca02c"
NOT_RELEVANT_COLOUR = "#d62728"
QUERY_COLOUR = "#1f77b4"


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    markers: bool = False,
) -> Figure:
    """One line per method from `{method: (x, y)}` (float arrays of equal length)."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for method, (x, y) in curves.items():
        ax.plot(x, y, marker="o" if markers else None, markersize=3, label=method)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_per_class(
    values: Mapping[str, Mapping[Hashable, float]], *, ylabel: str, title: str
) -> Figure:
    """Grouped bars: one group per class, one bar per method, from `{method: {label: value}}`."""
    plt = _pyplot()
    methods = list(values)
    labels = list(dict.fromkeys(label for per in values.values() for label in per))
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(labels) * max(len(methods), 1)), 4))
    x = np.arange(len(labels))
    for i, method in enumerate(methods):
        heights = [values[method].get(label, 0.0) for label in labels]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width, label=method)
    ax.set_xticks(x, [str(label) for label in labels], rotation=45, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return fig


def plot_class_matrices(
    matrices: Mapping[str, np.ndarray], labels: Sequence[Hashable], *, title: str
) -> Figure:
    """One heat map per method: row = query class, column = class retrieved (float (L, L))."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(matrices), figsize=(5 * len(matrices) + 1, 5), squeeze=False, layout="constrained"
    )
    names = [str(label) for label in labels]
    image = None
    for ax, (method, matrix) in zip(axes[0], matrices.items(), strict=True):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_yticks(range(len(names)), names)
        ax.set(title=method, xlabel="class retrieved", ylabel="query class")
        for (r, c), value in np.ndenumerate(matrix):
            if value >= 0.005:
                colour = "black" if value > 0.5 else "white"
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
    fig.suptitle(title)
    return fig


def plot_gallery(
    rows: Sequence[GalleryRow],
    image_of: Callable[[str], np.ndarray],
    *,
    per_method: int = 8,
    title: str = "",
) -> Figure:
    """A grid: each query (framed blue) then its top results per method, framed green if relevant.

    `image_of(doc_id)` returns RGB uint8 (h, w, 3). Non-relevant results are framed red.
    One grid line per (query, method); the query image is repeated on each of its lines.
    """
    plt = _pyplot()
    lines = [(row, method) for row in rows for method in row.results]
    fig, axes = plt.subplots(
        max(len(lines), 1),
        per_method + 1,
        figsize=(1.2 * (per_method + 1) + 1.5, 1.35 * max(len(lines), 1) + 0.4),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for line, (row, method) in enumerate(lines):
        _framed(axes[line, 0], image_of(row.query), QUERY_COLOUR)
        axes[line, 0].set_ylabel(method, rotation=0, ha="right", va="center", fontsize=8)
        if row.caption:
            axes[line, 0].set_title(row.caption, fontsize=6)
        for col, (docno, relevant) in enumerate(row.results[method][:per_method], start=1):
            colour = RELEVANT_COLOUR if relevant else NOT_RELEVANT_COLOUR
            _framed(axes[line, col], image_of(docno), colour)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _framed(ax, image: np.ndarray, colour: str) -> None:
    ax.imshow(image, interpolation="nearest")
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)


def plot_embedding_maps(
    maps: Mapping[str, tuple[np.ndarray, Sequence[Hashable]]], *, title: str
) -> Figure:
    """Scatter plots side by side from `{name: (points float (n, 2), labels (n,))}`, one colour per class."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(maps), figsize=(5.5 * len(maps) + 1, 5), squeeze=False, layout="constrained"
    )
    classes = sorted({str(x) for _, labels in maps.values() for x in labels})
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (name, (points, labels)) in zip(axes[0], maps.items(), strict=True):
        names = np.array([str(x) for x in labels])
        for i, label in enumerate(classes):
            mask = names == label
            ax.scatter(points[mask, 0], points[mask, 1], s=6, color=cmap(i % cmap.N), label=label)
        ax.set(title=name, xticks=[], yticks=[])
    axes[0, -1].legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(title)
    return fig


def plot_word_patches(words: Sequence, *, title: str) -> Figure:
    """One row per visual word (`evaluation.visual_words.WordPatches`): its patches, most typical first."""
    plt = _pyplot()
    columns = max((len(w.patches) for w in words), default=1) or 1
    fig, axes = plt.subplots(
        max(len(words), 1),
        columns,
        figsize=(1.1 * columns + 1.2, 1.15 * max(len(words), 1) + 0.4),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for row, word in enumerate(words):
        axes[row, 0].text(
            -0.15, 0.5, f"word {word.word}\n{word.count:,}", transform=axes[row, 0].transAxes,
            ha="right", va="center", fontsize=7,
        )  # fmt: skip
        for col, patch in enumerate(word.patches):
            axes[row, col].imshow(patch, interpolation="nearest")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
