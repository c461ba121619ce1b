"""History: what happened during training, as plain numbers that plot and save as JSON.

Two time series:

- ``train_losses[i]``, ``lrs[i]``: the loss and learning rate of step i (every step);
- ``records``: one dict per evaluation, ``{step, train_loss, val_loss, token_accuracy,
  exact_match, per_op_accuracy, perplexity, bits_per_char, bits_per_byte, lr, seconds}``
  (the metrics a task has: text has no exact match, and perplexity and bits per character
  (per byte, for BPE) of the validation text instead). ``train_loss`` is the mean since the
  last one.

``to_dict`` / ``from_dict`` round-trip through JSON exactly (a checkpoint stores it), and
``plot()`` draws a new matplotlib Figure each call: the History holds no plotting state
(``save_plot`` writes it as a PNG). ``MetricsLog`` keeps a run's ``metrics.jsonl`` as it goes,
and ``format_record`` is the one line the command line prints per evaluation.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from .tools.io import atomic_write

METRICS_FILE = "metrics.jsonl"  # one JSON object per evaluation, in a run's folder
PLOT_FILE = "curves.png"

RECORD_FIELDS = ("step", "train_loss", "val_loss", "token_accuracy", "exact_match", "per_op_accuracy",
                 "perplexity", "bits_per_char", "bits_per_byte", "lr", "seconds")


class History:
    def __init__(self):
        self.train_losses: list[float] = []
        self.lrs: list[float] = []
        self.records: list[dict] = []
        self.seconds = 0.0  # wall-clock seconds of training so far (continues across a resume)

    def add_step(self, loss: float, lr: float) -> None:
        self.train_losses.append(float(loss))
        self.lrs.append(float(lr))

    def add_eval(self, step: int, train_loss: float, metrics: dict, lr: float, seconds: float) -> dict:
        record = {"step": int(step), "train_loss": float(train_loss), "val_loss": float(metrics["loss"]),
                  "token_accuracy": float(metrics["token_accuracy"])}
        if "exact_match" in metrics:
            record["exact_match"] = float(metrics["exact_match"])
        if metrics.get("per_op_accuracy"):
            record["per_op_accuracy"] = {k: float(v) for k, v in metrics["per_op_accuracy"].items()}
        for key in ("perplexity", "bits_per_char", "bits_per_byte"):
            if key in metrics:
                record[key] = float(metrics[key])
        record.update(lr=float(lr), seconds=float(seconds))
        self.records.append(record)
        self.seconds = float(seconds)
        return record

    @property
    def last(self) -> dict | None:
        return self.records[-1] if self.records else None

    @property
    def steps(self) -> int:
        return len(self.train_losses)

    def to_dict(self) -> dict:
        return {"train_losses": list(self.train_losses), "lrs": list(self.lrs),
                "records": [dict(r) for r in self.records], "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        if not isinstance(d, dict):
            raise TypeError(f"a History is described by a dict, got {type(d).__name__}")
        missing = [k for k in ("train_losses", "lrs", "records") if k not in d]
        if missing:
            raise ValueError(f"history is missing the field(s) {missing}")
        h = cls()
        h.train_losses = [float(x) for x in d["train_losses"]]
        h.lrs = [float(x) for x in d["lrs"]]
        if len(h.lrs) != len(h.train_losses):
            raise ValueError(f"history has {len(h.train_losses)} losses but {len(h.lrs)} learning rates")
        for r in d["records"]:
            if not isinstance(r, dict) or "step" not in r or "val_loss" not in r:
                raise ValueError(f"history record {r!r} lacks 'step' or 'val_loss'")
            unknown = set(r) - set(RECORD_FIELDS)
            if unknown:
                raise ValueError(f"history record has unknown field(s) {sorted(unknown)}")
        h.records = [dict(r) for r in d["records"]]
        h.seconds = float(d.get("seconds", h.records[-1]["seconds"] if h.records else 0.0))
        return h

    def __eq__(self, other) -> bool:
        return isinstance(other, History) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        last = self.last
        tail = f", last eval {last}" if last else ""
        return f"History({self.steps} steps, {len(self.records)} evals{tail})"

    def plot(self, smooth: int = 25):
        """-> a matplotlib Figure: losses on the left (log scale), accuracies on the right."""
        import matplotlib.pyplot as plt
        import numpy as np

        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
        if self.train_losses:
            y = np.asarray(self.train_losses)
            k = max(1, min(smooth, len(y)))
            ys = np.convolve(y, np.ones(k) / k, mode="valid")  # moving average of k steps
            ax_loss.plot(np.arange(len(y)) + 1, y, color="C0", alpha=0.25, lw=0.8)
            ax_loss.plot(np.arange(k, len(y) + 1), ys, color="C0", label=f"train (mean of {k} steps)")
        if self.records:
            steps = [r["step"] for r in self.records]
            ax_loss.plot(steps, [r["val_loss"] for r in self.records], "o-", color="C1", label="validation")
            ax_acc.plot(steps, [r["token_accuracy"] for r in self.records], "o-", label="token accuracy")
            if "exact_match" in self.records[-1]:
                ax_acc.plot(steps, [r.get("exact_match", math.nan) for r in self.records], "o-", lw=2,
                            label="exact match")
            ops = self.records[-1].get("per_op_accuracy", {})
            for op in ops:
                ax_acc.plot(steps, [r.get("per_op_accuracy", {}).get(op, math.nan) for r in self.records],
                            ":", lw=1, label=op)
        if self.train_losses and min(self.train_losses) > 0 and max(self.train_losses) > 3 * min(self.train_losses):
            ax_loss.set_yscale("log")  # a loss that falls by a factor of several: log scale shows every stage
        ax_loss.set(xlabel="step", ylabel="cross-entropy", title="loss")
        ax_acc.set(xlabel="step", ylabel="accuracy (validation)", title="accuracy", ylim=(0, 1.02))
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def save_plot(self, path) -> Path:
        """Draw ``plot()`` and write it as a PNG at ``path`` (atomically; no window opens)."""
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:  # a script or the CLI: draw off-screen
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = self.plot()
        try:
            return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
        finally:
            plt.close(fig)


def format_record(record: dict, total_steps: int) -> str:
    """One evaluation as one line: step, losses, the task's accuracy or bits, lr and time."""
    width = len(str(total_steps))
    parts = [f"step {record['step']:>{width}}/{total_steps}", f"train {record['train_loss']:.4f}",
             f"val {record['val_loss']:.4f}"]
    if "exact_match" in record:
        parts.append(f"exact match {record['exact_match']:.3f}")
    else:
        parts.append(f"token acc {record['token_accuracy']:.3f}")
    if "perplexity" in record:
        parts.append(f"perplexity {record['perplexity']:.2f}")
    if "bits_per_char" in record:
        parts.append(f"bits/char {record['bits_per_char']:.3f}")
    if "bits_per_byte" in record:
        parts.append(f"bits/byte {record['bits_per_byte']:.3f}")
    parts += [f"lr {record['lr']:.2e}", f"{record['seconds']:.1f}s"]
    return "  ".join(parts)


class MetricsLog:
    """``metrics.jsonl`` in a run's folder: one JSON object per evaluation (the History record,
    plus a text sample for the text task), appended and flushed to disk as training goes, so
    another program can follow a run while it trains.

    ``start(history)`` first rewrites the file (atomically) to hold exactly one line per
    evaluation the History has: empty for a new run; for a resumed run, the lines up to the
    checkpoint's step (lines of evaluations after it, from a run that was cut off before it
    saved, are dropped: the resumed run writes them again)."""

    def __init__(self, folder):
        self.path = Path(folder) / METRICS_FILE

    def start(self, history: "History | None") -> None:
        records = history.records if history is not None else []
        old = {}
        if self.path.exists():
            for text in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:  # a line cut off by a crash
                    continue
                if isinstance(line, dict) and "step" in line:
                    old[line["step"]] = line
        lines = []
        for r in records:  # an old line is kept (with its sample) when it is this very evaluation
            line = old.get(r["step"])
            lines.append(line if line is not None and line.get("val_loss") == r["val_loss"] else r)
        text = "".join(json.dumps(line) + "\n" for line in lines)
        atomic_write(self.path, lambda f: f.write(text), mode="w")

    def append(self, line: dict) -> None:
        with open(self.path, "a", encoding="utf-8", newline="\n") as f:  # LF on Windows too, as start() writes
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        return [json.loads(t) for t in self.path.read_text(encoding="utf-8").splitlines() if t.strip()]
