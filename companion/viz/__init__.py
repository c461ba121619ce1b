"""Attention visualizers: the real weights of your own model, in Jupyter, in the static book, in tests.

    heatmaps.py   matplotlib Figures: one head (plot_attention), every layer x head (plot_attention_grid)
    data.py       one forward pass -> AttentionRecord (token labels, weights, next-token probabilities);
                  training snapshots (snapshot_callback, snapshots_from_checkpoints, load_snapshot)
    explorer.py   AttentionExplorer: a live ipywidgets explorer (needs a running kernel)
    static.py     StaticExplorer: the same views precomputed into one self-contained HTML/JS block,
                  interactive in the published book with no kernel and no external JavaScript
"""

from .data import (AttentionRecord, load_snapshot, run_model, snapshot_callback, snapshots_from_checkpoints,
                   take_snapshot, token_label, top_predictions)
from .heatmaps import figure_png, plot_attention, plot_attention_grid, plot_record

__all__ = [
    "AttentionRecord", "run_model", "top_predictions", "token_label",
    "snapshot_callback", "snapshots_from_checkpoints", "take_snapshot", "load_snapshot",
    "plot_attention", "plot_attention_grid", "plot_record", "figure_png",
    "AttentionExplorer", "StaticExplorer",
]


def __getattr__(name):
    # ipywidgets is imported only when an explorer is asked for, so plotting works without it
    if name == "AttentionExplorer":
        from .explorer import AttentionExplorer
        return AttentionExplorer
    if name == "StaticExplorer":
        from .static import StaticExplorer
        return StaticExplorer
    raise AttributeError(f"module 'companion.viz' has no attribute {name!r}")
