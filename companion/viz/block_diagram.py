"""A transformer block drawn as boxes and arrows: pre-norm beside post-norm (book chapter 4).

    pre-norm  (GPT-2, LLaMA):         x = x + attn(norm1(x));   x = x + ffn(norm2(x))
    post-norm (Vaswani et al. 2017):  x = norm1(x + attn(x));   x = norm2(x + ffn(x))

The residual stream runs straight up the left of each panel; a branch leaves it, passes through
its boxes on the right and is added back at a circled plus. Colours are from the Okabe-Ito palette,
which stays distinguishable with the common kinds of colour blindness, and every box is also labelled.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch

# Okabe & Ito (2008), colour-blind-safe
NORM_COLOUR, ATTN_COLOUR, FFN_COLOUR, STREAM_COLOUR = "#E69F00", "#56B4E9", "#009E73", "#000000"
STREAM_X, BRANCH_X, BOX_W, BOX_H = 0.0, 2.1, 2.2, 0.7


def _box(ax, x, y, text, colour):
    ax.add_patch(FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.05",
                                facecolor=colour, edgecolor="black", linewidth=1.0, zorder=3))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, zorder=4)


def _arrow(ax, start, end):
    ax.annotate("", xy=end, xytext=start, zorder=2,
                arrowprops=dict(arrowstyle="-|>", color=STREAM_COLOUR, linewidth=1.2, shrinkA=0, shrinkB=0))


def _add(ax, y):
    ax.add_patch(Circle((STREAM_X, y), 0.22, facecolor="white", edgecolor="black", linewidth=1.2, zorder=3))
    ax.text(STREAM_X, y, "+", ha="center", va="center", fontsize=12, zorder=4)


def _branch(ax, y_from, y_to, boxes):
    """A residual branch: leaves the stream at y_from, passes through boxes [(y, text, colour)], adds at y_to."""
    ax.plot([STREAM_X, BRANCH_X], [y_from, y_from], color=STREAM_COLOUR, linewidth=1.2, zorder=1)
    _arrow(ax, (BRANCH_X, y_from), (BRANCH_X, boxes[0][0] - BOX_H / 2 - 0.05))
    for (y, text, colour), nxt in zip(boxes, boxes[1:] + [None]):
        _box(ax, BRANCH_X, y, text, colour)
        if nxt is not None:
            _arrow(ax, (BRANCH_X, y + BOX_H / 2 + 0.05), (BRANCH_X, nxt[0] - BOX_H / 2 - 0.05))
    top = boxes[-1][0] + BOX_H / 2 + 0.05
    ax.plot([BRANCH_X, BRANCH_X], [top, y_to], color=STREAM_COLOUR, linewidth=1.2, zorder=1)
    _arrow(ax, (BRANCH_X, y_to), (STREAM_X + 0.22, y_to))


def _stream(ax, stops):
    """The residual stream: arrows up the left edge between the given heights."""
    for a, b in zip(stops, stops[1:]):
        _arrow(ax, (STREAM_X, a), (STREAM_X, b))


def draw_block(ax, placement: str) -> None:
    """Draw one block in 'pre' or 'post' norm placement on a matplotlib Axes."""
    if placement == "pre":
        _stream(ax, [0.0, 4.78])
        _branch(ax, 0.8, 5.0, [(2.0, "LayerNorm 1", NORM_COLOUR), (3.3, "attention", ATTN_COLOUR)])
        _add(ax, 5.0)
        _stream(ax, [5.22, 9.78])
        _branch(ax, 5.8, 10.0, [(7.0, "LayerNorm 2", NORM_COLOUR), (8.3, "FFN", FFN_COLOUR)])
        _add(ax, 10.0)
        _stream(ax, [10.22, 11.3])
        title = "pre-norm: x + f(norm(x))"
    elif placement == "post":
        _stream(ax, [0.0, 3.78])
        _branch(ax, 0.8, 4.0, [(2.3, "attention", ATTN_COLOUR)])
        _add(ax, 4.0)
        _stream(ax, [4.22, 4.6])
        _box(ax, STREAM_X, 5.0, "LayerNorm 1", NORM_COLOUR)
        _stream(ax, [5.4, 8.78])
        _branch(ax, 5.8, 9.0, [(7.3, "FFN", FFN_COLOUR)])
        _add(ax, 9.0)
        _stream(ax, [9.22, 9.6])
        _box(ax, STREAM_X, 10.0, "LayerNorm 2", NORM_COLOUR)
        _stream(ax, [10.4, 11.3])
        title = "post-norm: norm(x + f(x))"
    else:
        raise ValueError(f"placement must be 'pre' or 'post', got {placement!r}")
    ax.text(STREAM_X, -0.35, "x in (residual stream)", ha="center", va="top", fontsize=9)
    ax.text(STREAM_X, 11.45, "x out", ha="center", va="bottom", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-1.6, 3.4)
    ax.set_ylim(-1.0, 12.0)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_block_placements(figsize=(7.0, 5.2)):
    """A Figure with a pre-norm block (left) and a post-norm block (right)."""
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    for ax, placement in zip(axes, ("pre", "post")):
        draw_block(ax, placement)
    fig.tight_layout()
    return fig
