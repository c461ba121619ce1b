"""The whole model drawn as a stack of boxes, each labelled with the shape of what it outputs
(book chapter 11). One column per config, so the ``gpt`` and ``llama`` families stand side by side:

    idx (B, T) -> token embedding (+ positions) -> n_layer x [norm -> attention -> +, norm -> FFN -> +]
               -> final norm -> head -> logits (B, T, vocab_size)

Each "+" box receives a residual skip path, drawn beside the stack from the sub-block's input;
SwiGLU's gate and up products are drawn side by side, since both read the same input.

The shapes come from the config (``architecture_stages``), in the course's vocabulary (B, T, C,
nh, hs, H, V), with the numbers of the given batch beside them. Colours are the Okabe-Ito palette
of ``companion.viz.diagrams`` (safe for the common kinds of colour blindness); every box also
carries its name, so nothing depends on colour alone.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, Rectangle

from .diagrams import OKABE_ITO

KIND_COLOUR = {"data": "white", "embed": OKABE_ITO["yellow"], "norm": OKABE_ITO["orange"],
               "attn": OKABE_ITO["sky"], "ffn": OKABE_ITO["green"], "gate": OKABE_ITO["green"],
               "head": OKABE_ITO["purple"], "add": "white"}
BOX_W, BOX_H, GAP = 4.4, 0.62, 0.28


def architecture_stages(config, batch_size: int, seq_len: int | None = None) -> list[tuple[str, str, str, str]]:
    """The model's pipeline as (kind, label, symbolic shape, numeric shape), bottom to top.
    Stages between 'block start' and 'block end' repeat n_layer times."""
    B, T = batch_size, seq_len or config.block_size
    C, nh, hs, H, V = config.n_embd, config.n_head, config.head_size, config.ffn_hidden, config.vocab_size
    norm = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}[config.norm]
    btc = ("(B, T, C)", f"({B}, {T}, {C})")
    stages = [("data", "token ids idx", "(B, T)", f"({B}, {T})"),
              ("embed", f"token embedding wte (V, C) = ({V}, {C})", *btc)]
    if config.positions == "learned":
        stages.append(("embed", f"+ learned positions wpe (block_size, C) = ({config.block_size}, {C})", *btc))
    elif config.positions == "sinusoidal":
        stages.append(("embed", "+ sinusoidal positions (fixed table)", *btc))
    rope = " + RoPE on q, k" if config.positions == "rope" else ""
    ffn = {"gelu": "MLP, GELU", "relu": "MLP, ReLU", "swiglu": "SwiGLU"}[config.ffn]
    hidden = ("(B, T, H)", f"({B}, {T}, {H})")
    pre = config.norm_placement == "pre"
    stages += [("block", "block start", "", "")]
    stages += [("norm", f"{norm} 1", *btc)] if pre else []
    stages += [("attn", f"q, k, v = x W_qkv{rope}", "(B, nh, T, hs) x 3", f"({B}, {nh}, {T}, {hs}) x 3"),
               ("attn", "softmax(q kᵀ / √hs + mask)", "(B, nh, T, T)", f"({B}, {nh}, {T}, {T})"),
               ("attn", "att v, heads joined, W_o", *btc),
               ("add", "x + attention" if pre else f"{norm} 1 (x + attention)", *btc)]
    stages += [("norm", f"{norm} 2", *btc)] if pre else []
    if config.ffn == "swiglu":  # drawn beside the up product: both read the normed x
        stages.append(("gate", "SwiGLU gate, SiLU(x W_gate)", *hidden))
    stages += [("ffn", f"{ffn} up" + (", x W_up" if config.ffn == "swiglu" else ""), *hidden),
               ("ffn", f"{ffn} down" + (" of gate ⊙ up" if config.ffn == "swiglu" else ""), *btc),
               ("add", "x + FFN" if pre else f"{norm} 2 (x + FFN)", *btc),
               ("block", "block end", "", "")]
    if pre:
        stages.append(("norm", f"final {norm}", *btc))
    head = "tied: x wteᵀ" if config.tie_weights else f"W_head (C, V) = ({C}, {V})"
    stages += [("head", f"head, {head}", "(B, T, V)", f"({B}, {T}, {V})")]
    return stages


def _box(ax, x, y, w, kind, label, sym, num):
    ax.add_patch(FancyBboxPatch((x - w / 2, y), w, BOX_H, boxstyle="round,pad=0.04",
                                facecolor=KIND_COLOUR[kind], edgecolor="black", linewidth=0.9, zorder=3))
    ax.text(x, y + BOX_H * 0.66, label, ha="center", va="center", fontsize=7.2 if w == BOX_W else 6.4, zorder=4)
    ax.text(x, y + BOX_H * 0.27, f"{sym} = {num}", ha="center", va="center", fontsize=6.8 if w == BOX_W else 6.0,
            family="monospace", zorder=4)


def _arrow(ax, x0, y0, x1, y1):
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                arrowprops=dict(arrowstyle="-|>", color="black", linewidth=0.9, shrinkA=0, shrinkB=0))


def draw_architecture(ax, config, batch_size: int, seq_len: int | None = None, title: str | None = None) -> None:
    """Draw one config's pipeline on a matplotlib Axes, bottom (token ids) to top (logits), with the
    residual skip paths on the left of the stack."""
    stages = architecture_stages(config, batch_size, seq_len)
    boxes = [s for s in stages if s[0] != "block"]
    y, block_ys, skip_from, gate, i = 0.0, [], None, None, 0
    half, x_skip = BOX_W / 2 - 0.08, -BOX_W / 2 - 0.13
    for kind, label, sym, num in stages:
        if kind == "block":
            block_ys.append(y - GAP / 2)
            skip_from = y - GAP / 2 if len(block_ys) == 1 else None
            continue
        i += 1
        if kind == "gate":  # drawn on the left half; the next stage (up) takes the right half, same row
            gate = (kind, label, sym, num)
            continue
        if gate is not None:
            _box(ax, -BOX_W / 4 - 0.02, y, half, *gate)
            _box(ax, BOX_W / 4 + 0.02, y, half, kind, label, sym, num)
            ax.text(0, y + BOX_H / 2, "⊙", ha="center", va="center", fontsize=9, zorder=4)
        else:
            _box(ax, 0, y, BOX_W, kind, label, sym, num)
        if kind == "add" and skip_from is not None:  # residual path: the sub-block's input, around it
            y_mid = y + BOX_H / 2
            ax.plot([-0.35, x_skip, x_skip], [skip_from, skip_from, y_mid], color="black", linewidth=0.9,
                    zorder=2, gid="residual")
            _arrow(ax, x_skip, y_mid, -BOX_W / 2, y_mid)
        y_next = y + BOX_H + GAP
        if i < len(boxes):
            nxt = boxes[i]
            xs_from = (-BOX_W / 4, BOX_W / 4) if gate is not None else (0,)
            xs_to = (-BOX_W / 4, BOX_W / 4) if nxt[0] == "gate" else (0,)
            for x0 in xs_from:
                for x1 in xs_to:
                    _arrow(ax, x0 if len(xs_to) == 1 else x1, y + BOX_H + 0.02,
                           x1 if len(xs_from) == 1 else x0 / 2, y_next - 0.02)
        if kind == "add":
            skip_from = y_next - GAP / 2
        gate = None
        y = y_next
    lo, hi = block_ys
    ax.add_patch(Rectangle((-BOX_W / 2 - 0.25, lo), BOX_W + 0.5, hi - lo, fill=False, edgecolor="black",
                           linestyle="--", linewidth=0.9, zorder=1))
    ax.text(BOX_W / 2 + 0.35, (lo + hi) / 2, f"× n_layer\n= {config.n_layer}", ha="left", va="center", fontsize=8)
    ax.text(0, y + 0.05, "logits: a score for every vocabulary entry", ha="center", va="bottom", fontsize=7.5)
    ax.set_title(title or f"{config.family}", fontsize=9.5)
    ax.set_xlim(-BOX_W / 2 - 0.45, BOX_W / 2 + 1.6)
    ax.set_ylim(-0.3, y + 0.5)
    ax.axis("off")


def plot_architecture(configs: dict, batch_size: int, seq_len: int | None = None, figsize=(10.0, 7.6)):
    """A Figure with one column per config: ``{"gpt, characters": cfg_a, "llama, BPE": cfg_b}``."""
    if not configs:
        raise ValueError("pass at least one config to draw")
    fig, axes = plt.subplots(1, len(configs), figsize=figsize, squeeze=False)
    for ax, (name, config) in zip(axes[0], configs.items()):
        draw_architecture(ax, config, batch_size, seq_len, title=name)
    fig.tight_layout()
    return fig
