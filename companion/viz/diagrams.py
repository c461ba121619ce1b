"""Diagrams drawn by code: boxes and arrows for the book's pictures of the computation.

Each function returns a new matplotlib Figure and keeps no state, so a page (or a test) can
draw, save or close it as it likes. Colours come from the Okabe-Ito palette, which readers
with the common forms of colour blindness can tell apart; every box also carries a text
label, so no meaning rests on colour alone.

    attention_diagram(n_head, head_size)   Q K^T -> scale -> mask -> softmax -> @ V, and the
                                           split of C channels into n_head heads of head_size
    backprop_graph()                       a small computational graph: the forward pass and
                                           the reverse walk that backpropagation makes over it
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# Okabe & Ito (2008), "Color Universal Design": distinguishable under deuteranopia,
# protanopia and tritanopia.
OKABE_ITO = {
    "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "black": "#000000",
}


def _box(ax, x: float, y: float, text: str, color: str, w: float = 1.6, h: float = 0.7,
         fontsize: float = 9) -> tuple[float, float, float, float]:
    """A rounded box centred at (x, y); returns its (left, right, bottom, top)."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                facecolor=color, edgecolor="black", linewidth=1.0, alpha=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x - w / 2, x + w / 2, y - h / 2, y + h / 2


def _arrow(ax, start, end, color: str = "black", style: str = "-|>", ls: str = "-", rad: float = 0.0,
           lw: float = 1.3) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color,
                                 linestyle=ls, linewidth=lw, connectionstyle=f"arc3,rad={rad}"))


def attention_diagram(n_head: int = 4, head_size: int = 16) -> Figure:
    """Scaled dot-product attention as a pipeline, and the split of C into heads.

    Top: q (T, hs) and k (T, hs) -> q @ k^T (T, T) -> times 1/sqrt(hs) -> mask (-inf above
    the diagonal) -> softmax over keys -> @ v (T, hs). Bottom: the C = n_head * head_size
    channels of a (B, T, C) tensor cut into n_head slices, each one head's (B, T, hs)."""
    if n_head < 1 or head_size < 1:
        raise ValueError(f"n_head and head_size must be positive, got {n_head} and {head_size}")
    C = n_head * head_size
    c = OKABE_ITO
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.2), height_ratios=[1.25, 1])

    steps = [("q @ kᵀ\n(T, T)", c["sky"]), (f"× 1/√hs\n= 1/√{head_size}", c["yellow"]),
             ("mask: −∞\nabove diagonal", c["vermillion"]), ("softmax\nover keys", c["green"]),
             ("@ v\n(T, hs)", c["purple"])]
    top.set_xlim(-0.8, 2.2 * len(steps) + 2.2)
    top.set_ylim(-1.6, 1.6)
    _box(top, 0, 0.75, "q (T, hs)", c["orange"], w=1.3, h=0.55)
    _box(top, 0, -0.75, "k (T, hs)", c["orange"], w=1.3, h=0.55)
    xs = [1.6 + 2.2 * i for i in range(len(steps))]
    _arrow(top, (0.65, 0.7), (xs[0] - 0.8, 0.15))
    _arrow(top, (0.65, -0.7), (xs[0] - 0.8, -0.15))
    for i, (label, color) in enumerate(steps):
        _box(top, xs[i], 0, label, color, w=1.6, h=0.9)
        if i:
            _arrow(top, (xs[i - 1] + 0.8, 0), (xs[i] - 0.8, 0))
    _box(top, xs[-1], -1.2, "v (T, hs)", c["orange"], w=1.3, h=0.45)
    _arrow(top, (xs[-1], -0.97), (xs[-1], -0.45))
    _box(top, xs[-1] + 1.9, 0, "out\n(T, hs)", "white", w=1.1, h=0.7)
    _arrow(top, (xs[-1] + 0.8, 0), (xs[-1] + 1.35, 0))
    top.set_title("One head: softmax(q kᵀ / √hs + mask) v, for each of the B × n_head (batch, head) pairs",
                  fontsize=10)
    top.axis("off")

    # The split: channel c belongs to head c // head_size.
    palette = [c["blue"], c["orange"], c["green"], c["purple"], c["sky"], c["vermillion"], c["yellow"]]
    bottom.set_xlim(-0.5, C + 0.5)
    bottom.set_ylim(-1.4, 1.3)
    for h in range(n_head):
        x0 = h * head_size
        bottom.add_patch(FancyBboxPatch((x0, 0.2), head_size, 0.6, boxstyle="square,pad=0",
                                        facecolor=palette[h % len(palette)], edgecolor="black",
                                        hatch=["", "//", "..", "xx"][h % 4], alpha=0.85))
        bottom.text(x0 + head_size / 2, -0.3, f"head {h}\nchannels {x0}–{x0 + head_size - 1}",
                    ha="center", va="top", fontsize=8)
    bottom.text(C / 2, 1.05, f"(B, T, C) with C = n_head × hs = {n_head} × {head_size} = {C}:  "
                "reshape to (B, T, n_head, hs), transpose to (B, n_head, T, hs)",
                ha="center", va="center", fontsize=9)
    bottom.axis("off")
    fig.tight_layout()
    return fig


def backprop_graph() -> Figure:
    """The computational graph of a linear layer and a loss, forward and backward.

    Forward (solid, left to right): x, W -> z = x W -> softmax cross-entropy with the target
    y -> L. Backward (dashed, right to left): dL/dL = 1 -> dz = softmax - onehot -> dW = xᵀ dz
    and dx = dz Wᵀ. Each backward arrow is labelled with the vector-Jacobian product it applies."""
    c = OKABE_ITO
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.set_xlim(-0.6, 10.6)
    ax.set_ylim(-2.3, 2.4)
    nodes = {"x": (0.5, 1.0, "x (N, n_in)"), "W": (0.5, -1.0, "W (n_in, V)"),
             "z": (4.0, 0.0, "z = x W\n(N, V)"), "y": (4.0, -1.8, "targets y (N,)"),
             "L": (7.6, 0.0, "L = mean(lse(z) − z_y)\nscalar")}
    for name, (x, y, text) in nodes.items():
        color = c["orange"] if name in ("x", "W") else c["sky"] if name in ("z", "L") else "white"
        _box(ax, x, y, text, color, w=2.1 if name == "L" else 1.7, h=0.75)
    # forward: solid blue arrows above
    fw = c["blue"]
    _arrow(ax, (1.35, 1.0), (3.15, 0.25), color=fw)
    _arrow(ax, (1.35, -1.0), (3.15, -0.25), color=fw)
    _arrow(ax, (4.85, 0.1), (6.55, 0.1), color=fw)
    _arrow(ax, (4.85, -1.7), (6.8, -0.4), color=fw)
    # backward: dashed vermillion arrows, curved the other way
    bw = c["vermillion"]
    _arrow(ax, (8.2, 0.45), (9.7, 1.6), color=bw, ls="--", style="<|-")
    ax.text(9.75, 1.85, "dL/dL = 1", color=bw, fontsize=9, ha="center")
    _arrow(ax, (6.55, -0.15), (4.85, -0.15), color=bw, ls="--", rad=0.0)
    ax.text(5.6, -0.8, "dz = (softmax(z) − onehot(y)) / N", color=bw, fontsize=8, ha="center")
    _arrow(ax, (3.15, 0.35), (1.35, 1.25), color=bw, ls="--", rad=0.25)
    ax.text(1.9, 1.75, "dx = dz Wᵀ", color=bw, fontsize=9, ha="center")
    _arrow(ax, (3.15, -0.35), (1.35, -1.25), color=bw, ls="--", rad=-0.25)
    ax.text(1.9, -1.85, "dW = xᵀ dz", color=bw, fontsize=9, ha="center")
    ax.plot([], [], color=fw, label="forward: compute values, keep a cache")
    ax.plot([], [], color=bw, ls="--", label="backward: reverse order, one vector-Jacobian product per edge")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title("Backpropagation walks the forward graph in reverse", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    return fig
