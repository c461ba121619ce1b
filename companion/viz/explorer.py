"""A live attention explorer for Jupyter (ipywidgets): any companion model, any tokenizer, any text.

    explorer = AttentionExplorer(model, tokenizer, "max ( 3 7 1 )", snapshots=snaps, snapshot_labels=steps)
    explorer            # shows the widget in a notebook

``encode`` (text -> ids) replaces ``tokenizer.encode`` where a task frames its inputs (a <bos> first).
Controls: the input text (type and press Enter), the layer, the head (or "all" heads of the layer),
the query token whose row is highlighted and listed, and, when training snapshots are given, a slider
that replays the model at each saved step so you can watch attention form.

Every control change recomputes through one method, ``refresh``, which runs the forward pass on a
private copy of the model (snapshots are loaded into the copy, never into yours) and updates:

    .record     the AttentionRecord of the current text and snapshot
    .matrix     what the picture shows: (T, T) for one head, (n_head, T, T) for "all"
    .image      an ipywidgets Image with the heatmap as PNG
    .details    an HTML widget: what the query token attends to and its top next-token predictions

Because the state lives in those attributes, a test (or an nbval assert cell) can set a control's
``.value`` and check the new matrix, with no browser. In the static HTML book a kernel is absent, so
the book shows ``companion.viz.static.StaticExplorer`` there, built from the same records.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as w
import numpy as np

from .data import (AttentionRecord, check_snapshots, encode_text, load_snapshot, private_copy, run_model,
                   take_snapshot, token_label, token_text, top_predictions)
from .heatmaps import figure_png, plot_attention, plot_attention_grid

ALL_HEADS = "all"


class AttentionExplorer(w.VBox):
    def __init__(self, model, tokenizer, text: str, snapshots: Sequence[Mapping] | None = None,
                 snapshot_labels: Sequence | None = None, top_k: int = 5, dpi: int = 80, encode=None):
        self._model = private_copy(model)
        self._encode = encode  # text -> ids; None means tokenizer.encode
        self._tokenizer = tokenizer
        self._top_k, self._dpi = top_k, dpi
        self._snapshots = list(snapshots) if snapshots else []
        if self._snapshots:
            check_snapshots(self._model, self._snapshots)
        labels = list(snapshot_labels) if snapshot_labels is not None else list(range(len(self._snapshots)))
        if len(labels) != len(self._snapshots):
            raise ValueError(f"{len(labels)} snapshot labels for {len(self._snapshots)} snapshots")
        self._snapshot_labels = labels
        self._quiet = False
        self._final = take_snapshot(self._model)  # the slider's "final" position: the model as given
        cfg = model.config
        self._ids = encode_text(tokenizer, text, cfg.block_size, encode)

        self.text = w.Text(value=text, description="input", continuous_update=False,
                           layout=w.Layout(width="95%"))
        self.layer = w.Dropdown(options=list(range(cfg.n_layer)), value=0, description="layer")
        self.head = w.Dropdown(options=list(range(cfg.n_head)) + [ALL_HEADS], value=0, description="head")
        self.query = w.Dropdown(options=[], description="query token")
        self.snapshot = w.SelectionSlider(options=[("final", -1)], value=-1, description="snapshot",
                                          continuous_update=False, layout=w.Layout(width="95%"))
        if self._snapshots:
            self.snapshot.options = [(f"step {s}", i) for i, s in enumerate(labels)] + [("final", -1)]
            self.snapshot.value = -1
        self.message = w.HTML()
        self.image = w.Image(format="png")
        self.details = w.HTML()
        self.record: AttentionRecord | None = None
        self.matrix: np.ndarray | None = None

        controls = [w.HBox([self.layer, self.head, self.query])]
        if self._snapshots:
            controls.append(self.snapshot)
        super().__init__([self.text, *controls, self.message, w.HBox([self.image, self.details])])

        self.text.observe(self._on_text, names="value")
        for control in (self.layer, self.head, self.query, self.snapshot):
            control.observe(lambda change: self.refresh(), names="value")
        self._set_queries()
        self.refresh()

    # --- state changes -------------------------------------------------------------------------
    def _set_queries(self) -> None:
        labels = [token_label(token_text(self._tokenizer, i)) for i in self._ids]
        options = [(f"{i}: {lab}", i) for i, lab in enumerate(labels)]
        self._quiet = True  # new options reset the value: one refresh afterwards, not one per change
        try:
            self.query.options = options
            self.query.value = len(options) - 1  # the last token: the one whose prediction comes next
        finally:
            self._quiet = False

    def _on_text(self, change) -> None:
        try:
            self._ids = encode_text(self._tokenizer, change["new"], self._model.config.block_size, self._encode)
        except (ValueError, TypeError) as err:  # keep the last good input, say what is wrong
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self.message.value = ""
        self._set_queries()
        self.refresh()

    def refresh(self) -> None:
        """Recompute the record for the current text and snapshot, then redraw picture and details."""
        if self._quiet:
            return
        model = self._model
        if self._snapshots:
            index = self.snapshot.value
            load_snapshot(model, self._snapshots[index] if index >= 0 else self._final)
        self.record = rec = run_model(model, self._tokenizer, self._ids)
        layer, head, q = self.layer.value, self.head.value, self.query.value
        if head == ALL_HEADS:
            self.matrix = rec.weights[layer]  # (n_head, T, T)
            fig = plot_attention_grid(self.matrix, rec.labels, layers=[layer], cell=2.0)
        else:
            self.matrix = rec.weights[layer, head]  # (T, T)
            fig = plot_attention(self.matrix, rec.labels, f"layer {layer}, head {head}", highlight=q)
        self.image.value = figure_png(fig, self._dpi)
        self.details.value = self._details_html(rec, layer, head, q)

    def _details_html(self, rec: AttentionRecord, layer: int, head, q: int) -> str:
        row = rec.weights[layer].mean(axis=0)[q] if head == ALL_HEADS else rec.weights[layer, head, q]  # (T,)
        who = "mean over heads" if head == ALL_HEADS else f"head {head}"
        order = np.argsort(-row, kind="stable")[: min(5, len(row))]
        attends = "".join(f"<li>{i}: <code>{html.escape(rec.labels[i])}</code> {row[i]:.3f}</li>" for i in order)
        preds = "".join(f"<li><code>{html.escape(t)}</code> {p:.3f}</li>"
                        for t, p in top_predictions(self._tokenizer, rec.probs[q], self._top_k))
        return (f"<b>query {q}: <code>{html.escape(rec.labels[q])}</code></b><br>"
                f"attends most to ({who}):<ol>{attends}</ol>next token predicted:<ol>{preds}</ol>")
