"""Attention heatmaps with matplotlib: one head, or a grid of every layer x head.

A heatmap of one head draws its (T, T) weight matrix: row i is query token i, column j is key
token j, and the colour of cell (i, j) is how much of token j's value vector flows into position i.
Under the causal mask the upper triangle is exactly zero, so the picture is lower-triangular.

The functions take arrays and labels (or an ``AttentionRecord``) and return a new Figure; the model
holds no plotting state, and nothing here draws on a global "current figure".
"""

from __future__ import annotations

from collections.abc import Sequence

import sys

import numpy as np
from matplotlib.figure import Figure

CMAP = "viridis"


def _new_figure(**kwargs) -> Figure:
    """A Figure outside pyplot (no global figure list), that Jupyter still shows as an image."""
    _load_inline_backend()
    return Figure(**kwargs)


def _load_inline_backend() -> None:
    # Jupyter shows a Figure as an image once matplotlib's inline backend module is loaded; pyplot
    # loads it on its first figure, but our figures bypass pyplot, so load it here. Outside IPython,
    # or with another backend, this does nothing.
    if "IPython" not in sys.modules or "matplotlib_inline.backend_inline" in sys.modules:
        return
    import matplotlib

    if "inline" in str(matplotlib.rcParams._get("backend")):
        import matplotlib_inline.backend_inline  # noqa: F401  (registers the image formatter on import)


def _check_matrix(weights: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"one head's attention weights must be a square (T, T) matrix, got shape {w.shape}")
    if len(labels) != w.shape[0]:
        raise ValueError(f"{len(labels)} token labels for a {w.shape[0]}x{w.shape[0]} matrix: give one label per token")
    return w


def draw_attention(ax, weights: np.ndarray, labels: Sequence[str], title: str | None = None,
                   highlight: int | None = None, ticks: bool = True):
    """Draw one head's (T, T) weights on an existing Axes; returns the image (for a colorbar)."""
    w = _check_matrix(weights, labels)
    T = w.shape[0]
    im = ax.imshow(w, cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    if ticks:
        ax.set_xticks(range(T), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(T), labels, fontsize=8)
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if highlight is not None:  # a box around the chosen query's row
        ax.add_patch(_row_box(highlight, T))
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _row_box(row: int, T: int):
    from matplotlib.patches import Rectangle

    return Rectangle((-0.5, row - 0.5), T, 1, fill=False, edgecolor="red", linewidth=1.5)


def plot_attention(weights: np.ndarray, labels: Sequence[str], title: str | None = None,
                   highlight: int | None = None, size: float = 4.5) -> Figure:
    """One head's (T, T) attention matrix, token labels on both axes. Returns a new Figure."""
    fig = _new_figure(figsize=(size + 0.8, size), layout="constrained")
    ax = fig.add_subplot()
    im = draw_attention(ax, weights, labels, title, highlight)
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight")
    return fig


def plot_attention_grid(weights: np.ndarray, labels: Sequence[str], title: str | None = None,
                        cell: float = 2.2, layers: Sequence[int] | None = None) -> Figure:
    """Every layer x head of ``weights`` (n_layer, n_head, T, T) in one grid; rows are layers.

    Labels go on the outer axes only (the left column and the bottom row) to keep the grid legible."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 3:  # one layer's heads
        w = w[None]
    if w.ndim != 4:
        raise ValueError(f"expected weights of shape (n_layer, n_head, T, T), got {w.shape}")
    n_layer, n_head, T, _ = w.shape
    layers = list(range(n_layer)) if layers is None else list(layers)
    fig = _new_figure(figsize=(cell * n_head + 0.8, cell * n_layer + 0.6), layout="constrained")
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    im = None
    for l in range(n_layer):
        for h in range(n_head):
            ax = axes[l, h]
            im = draw_attention(ax, w[l, h], labels, f"layer {layers[l]}, head {h}", ticks=False)
            if h == 0:
                ax.set_yticks(range(T), labels, fontsize=6)
            if l == n_layer - 1:
                ax.set_xticks(range(T), labels, rotation=90, fontsize=6)
    fig.colorbar(im, ax=axes, shrink=0.6, label="weight")
    if title:
        fig.suptitle(title)
    return fig


def plot_record(record, layer: int | None = None, head: int | None = None, title: str | None = None) -> Figure:
    """Plot an ``AttentionRecord``: one head if ``layer`` and ``head`` are given, else the whole grid."""
    if layer is not None and head is not None:
        return plot_attention(record.weights[layer, head], record.labels, title or f"layer {layer}, head {head}")
    if layer is not None:
        return plot_attention_grid(record.weights[layer], record.labels, title, layers=[layer])
    return plot_attention_grid(record.weights, record.labels, title)


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """A Figure as PNG bytes (for an ipywidgets Image, or to embed in HTML)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # a Figure made without pyplot needs a canvas to draw on
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
