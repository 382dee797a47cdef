"""Plots used across the chapters. Every function returns a matplotlib Figure.

Figures are made without pyplot, so a notebook shows each one exactly once (when it is
the cell's value or is glued) and no global pyplot state leaks between cells.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib.figure
import numpy as np


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that renders itself as PNG in Jupyter.

    A Figure made without pyplot has no display hook unless pyplot's inline backend was
    activated; ``_repr_png_`` makes it show (and glue) as an image in any kernel.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        return buffer.getvalue()


def plot_digit_grid(
    X: np.ndarray,
    y: Sequence[int] | None = None,
    *,
    ncols: int = 10,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 0.8,
) -> Figure:
    """Show images in a grid, optionally with their labels.

    Parameters
    ----------
    X : np.ndarray
        Images ``(N, H, W)`` with values in ``[0, 1]``.
    y : sequence of int, optional
        Labels, written above each image.
    ncols : int, default 10
    title : str, optional
    row_labels : sequence of str, optional
        One label per row, written at the left (e.g. the domain's name).
    cell_size : float, default 0.8
        Inches per image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"Expected images of shape (N, H, W), got {X.shape}.")
    nrows = int(np.ceil(len(X) / ncols))
    fig = Figure(figsize=(ncols * cell_size, nrows * cell_size * 1.15 + (0.4 if title else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < len(X):
            ax.imshow(X[i], cmap="gray", vmin=0.0, vmax=1.0)
            if y is not None:
                ax.set_title(str(int(y[i])), fontsize=8, pad=2)
    if row_labels is not None:
        for ax, label in zip(axes[:, 0], row_labels, strict=False):
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    metrics: Sequence[str] = ("loss", "accuracy"),
    title: str | None = None,
) -> Figure:
    """Plot learning curves, one panel per metric, one line per run.

    Parameters
    ----------
    histories : mapping
        Run name -> history dict as returned by ``fit`` (``loss``, ``accuracy``, and
        optionally ``val_loss``, ``val_accuracy``; validation curves are dashed).
    metrics : sequence of str, default ("loss", "accuracy")
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(4.2 * len(metrics), 3.2))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (name, history) in enumerate(histories.items()):
            color = f"C{i}"
            for key, style, suffix in ((metric, "-", "train"), (f"val_{metric}", "--", "val")):
                if key in history:
                    values = history[key]
                    ax.plot(
                        range(1, len(values) + 1),
                        values,
                        style,
                        color=color,
                        label=f"{name} ({suffix})",
                        marker="o",
                        markersize=3,
                    )
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_matrix(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    fmt: str = "{:.1%}",
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> Figure:
    """Draw a small annotated heat map, e.g. accuracy by (train domain, test domain).

    Parameters
    ----------
    values : np.ndarray
        2-D array, shape ``(len(row_labels), len(col_labels))``.
    row_labels, col_labels : sequence of str
    xlabel, ylabel : str
    title : str, optional
    fmt : str, default "{:.1%}"
        Format of the number written in each cell.
    vmin, vmax : float
        Colour scale limits.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values = np.asarray(values, dtype=float)
    if values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"values has shape {values.shape}, labels need ({len(row_labels)}, {len(col_labels)})."
        )
    fig = Figure(figsize=(1.3 * len(col_labels) + 2.0, 0.7 * len(row_labels) + 1.4))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for (i, j), v in np.ndenumerate(values):
        light = (v - vmin) / (vmax - vmin) < 0.6
        ax.text(
            j,
            i,
            fmt.format(v),
            ha="center",
            va="center",
            color="white" if light else "black",
            fontsize=9,
        )
    fig.colorbar(image, ax=ax)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
