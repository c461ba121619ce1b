"""History: what happened during training, as plain numbers that plot and save as JSON.

Two time series:

- ``train_losses[i]``, ``lrs[i]``: the loss and learning rate of step i (every step);
- ``records``: one dict per evaluation, ``{step, train_loss, val_loss, token_accuracy,
  exact_match, per_op_accuracy, lr, seconds}`` (the accuracies a task has; text has
  ``val_loss`` and ``token_accuracy`` only). ``train_loss`` is the mean since the last one.

``to_dict`` / ``from_dict`` round-trip through JSON exactly (a checkpoint stores it), and
``plot()`` draws a new matplotlib Figure each call: the History holds no plotting state.
"""

from __future__ import annotations

import math

RECORD_FIELDS = ("step", "train_loss", "val_loss", "token_accuracy", "exact_match", "per_op_accuracy", "lr", "seconds")


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
        if self.train_losses and min(self.train_losses) > 0:
            ax_loss.set_yscale("log")
        ax_loss.set(xlabel="step", ylabel="cross-entropy", title="loss")
        ax_acc.set(xlabel="step", ylabel="accuracy (validation)", title="accuracy", ylim=(0, 1.02))
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=8)
        fig.tight_layout()
        return fig
