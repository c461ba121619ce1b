"""The attention explorer for the published book: precomputed, self-contained HTML and JavaScript.

A static HTML page has no kernel to run the model when a reader picks a head. So we run it first,
here, for a few chosen inputs and every saved training snapshot, and embed the results:

    weights[snapshot][input][layer][head][i][j]   attention of query i on key j (rounded)
    preds[snapshot][input][i]                      top next-token predictions after position i

as JSON beside a small script (static_explorer.js, in this folder) that draws them as coloured
tables and wires the controls (input, layer, head or all heads, query token, training-step slider).
The output needs no external JavaScript, no CDN and no kernel: it works in Jupyter, in the built
book, and in a file saved with ``save``. What a kernel alone can do, typing a new input, is left to
``AttentionExplorer``; the book shows both, the live one for notebook readers.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from importlib.resources import files

import numpy as np

from ..tools.io import atomic_write
from .data import (AttentionRecord, check_snapshots, encode_text, load_snapshot, private_copy, run_model,
                   take_snapshot, top_predictions)
from .heatmaps import CMAP

CSS = """
.cvx-root{font-family:system-ui,sans-serif;font-size:13px;margin:.5em 0;color:#222;background:#fff;padding:6px;
  border:1px solid #ddd;border-radius:6px}
.cvx-controls{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:6px}
.cvx-control select,.cvx-control input{margin-left:4px}
.cvx-body{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
table.cvx-matrix{border-collapse:collapse;margin:0;width:auto}
table.cvx-matrix td{padding:0;border:1px solid #fff}
table.cvx-matrix th{font-weight:normal;font-family:monospace;padding:0 3px;border:none;background:none}
table.cvx-matrix th.cvx-col{writing-mode:vertical-rl;height:auto}
table.cvx-matrix th.cvx-row{cursor:pointer;text-align:right}
button.cvx-pick{font:inherit;color:inherit;background:none;border:none;padding:0;cursor:pointer}
.cvx-root button:focus-visible,.cvx-root select:focus-visible,.cvx-root input:focus-visible{outline:2px solid #0072B2;
  outline-offset:1px}
table.cvx-matrix tr.cvx-query th{color:#c00;font-weight:bold}
table.cvx-matrix tr.cvx-query td{border-top:2px solid #c00;border-bottom:2px solid #c00}
table.cvx-small td{border:none}
.cvx-grid{display:flex;flex-wrap:wrap;gap:10px}
.cvx-bars{margin-bottom:8px}.cvx-bars-title{font-weight:bold;margin:2px 0}
.cvx-bar-line{display:flex;gap:6px;align-items:center}.cvx-bar-line code{min-width:4em}
.cvx-bar{display:inline-block;height:10px;background:#3b6fb6}
"""


MAX_NUMBERS = 2_000_000  # about 12 MB of JSON: more would make a slow page


def _colormap(n: int = 64) -> list[str]:
    """The heatmaps' matplotlib colormap as n hex colours, so both views colour weights alike."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[CMAP]
    return [to_hex(cmap(i / (n - 1))) for i in range(n)]


class StaticExplorer:
    """Precomputed explorer data for ``texts`` x ``snapshots``; displays as self-contained HTML.

    ``records[s][t]`` is the AttentionRecord of text t under snapshot s (the last is the model as
    given, labelled "final"); ``encode`` (text -> ids) replaces ``tokenizer.encode`` as in
    AttentionExplorer; ``to_html()`` is the HTML; ``save(path)`` writes a standalone page."""

    def __init__(self, model, tokenizer, texts: str | Sequence[str], snapshots: Sequence[Mapping] | None = None,
                 snapshot_labels: Sequence | None = None, top_k: int = 5, decimals: int = 3, encode=None):
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("give at least one input text")
        snapshots = list(snapshots) if snapshots else []
        labels = list(snapshot_labels) if snapshot_labels is not None else list(range(len(snapshots)))
        if len(labels) != len(snapshots):
            raise ValueError(f"{len(labels)} snapshot labels for {len(snapshots)} snapshots")
        if not 1 <= decimals <= 8:
            raise ValueError(f"decimals must be between 1 and 8, got {decimals}")
        copy = private_copy(model)  # loading snapshots must not change the caller's model
        if snapshots:
            check_snapshots(copy, snapshots)
        states = [*snapshots, take_snapshot(copy)]
        self.snapshot_labels = [f"step {s}" for s in labels] + ["final"]
        self.texts = texts
        ids = [encode_text(tokenizer, t, model.config.block_size, encode) for t in texts]
        cfg = model.config
        n_numbers = (len(snapshots) + 1) * cfg.n_layer * cfg.n_head * sum(len(i) ** 2 for i in ids)
        if n_numbers > MAX_NUMBERS:  # every number goes into the page: keep pages light
            raise ValueError(f"the explorer would embed {n_numbers:,} weights (> {MAX_NUMBERS:,}): "
                             "use fewer snapshots, fewer or shorter texts")
        self.records: list[list[AttentionRecord]] = []
        for state in states:
            load_snapshot(copy, state)
            self.records.append([run_model(copy, tokenizer, i) for i in ids])
        self._data = {
            "texts": texts,
            "labels": [list(r.labels) for r in self.records[-1]],
            "layers": list(range(model.config.n_layer)),
            "n_head": model.config.n_head,
            "snapshots": self.snapshot_labels,
            "cmap": _colormap(),
            "weights": [[np.round(r.weights, decimals).tolist() for r in row] for row in self.records],
            "preds": [[[[[t, round(p, decimals)] for t, p in top_predictions(tokenizer, r.probs[i], top_k)]
                        for i in range(len(r.ids))] for r in row] for row in self.records],
        }

    def to_html(self) -> str:
        """One <div> holding the data (JSON), the styles and the script: no external resources."""
        payload = json.dumps(self._data, separators=(",", ":"))
        # No "<" inside a <script>: a token spelling "</script>" or "<!--" must not end or upset the block.
        payload = payload.replace("<", "\\u003c")
        key = hashlib.sha256(payload.encode()).hexdigest()[:12]  # same data, same HTML: builds are reproducible
        script = files("companion.viz").joinpath("static_explorer.js").read_text(encoding="utf-8")
        title = html.escape(", ".join(self.texts))
        return (f'<div class="cvx-root" data-cvx="{key}" aria-label="attention explorer: {title}">'
                f"<style>{CSS}</style>"
                f'<script type="application/json" class="cvx-data">{payload}</script>'
                f"<script>{script}</script></div>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def save(self, path) -> None:
        """A standalone HTML page with the explorer, written atomically."""
        page = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>attention</title></head>'
                f"<body>{self.to_html()}</body></html>")
        atomic_write(path, lambda f: f.write(page.encode("utf-8")))
