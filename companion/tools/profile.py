"""Where does a training step's time go? A per-operation timer for the companion.

``python -m companion bench --profile`` runs a few training steps of the bench's model with
every module's ``forward`` and ``backward`` timed, and reports each kind of operation's
*self* time (its own work, its children's excluded) per step, forward and backward apart:

    linear (matmuls)     every Linear layer: x @ w (+ b), and its backward's two matmuls
    attention core       q k^T, mask, softmax, att @ v, the head reshapes (c_attn/c_proj excluded)
    norm                 LayerNorm / RMSNorm
    activation           GELU / ReLU / SwiGLU between the MLP's two Linear layers
    ...                  and the head, embeddings, residual adds, the loss, zero_grad, the optimizer

The timer wraps the *instances* of one model for the duration of a ``with`` block (nothing
global is patched, and the model is as before afterwards). Each wrapped call costs about a
microsecond, so the profile's total is a little above an unprofiled step.

With ``--vs-torch`` the PyTorch twin runs the same steps under ``torch.profiler`` and its own
table (operators by self CPU time) is printed beside ours.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from ..loss import cross_entropy_backward, cross_entropy_forward

# module class -> the row its self time is reported under
LABELS = {
    "Linear": "linear (matmuls)",
    "CausalSelfAttention": "attention core (scores, mask, softmax, mix)",
    "LayerNorm": "norm", "RMSNorm": "norm",
    "MLP": "activation (GELU / ReLU)", "SwiGLU": "activation (SwiGLU)",
    "OutputHead": "head (tied: x @ wte.T)",
    "Embedding": "embeddings", "LearnedPositions": "embeddings", "SinusoidalPositions": "embeddings",
    "Block": "residual adds",
    "Transformer": "model (checks, glue)",
}


class StepProfile:
    """Self time of each labelled operation, accumulated over the profiled steps."""

    def __init__(self):
        self.seconds: dict[tuple[str, str], float] = {}  # (label, "forward" | "backward") -> s
        self._children: list[float] = []  # a stack: time spent in children of each open call

    def add(self, label: str, phase: str, seconds: float) -> None:
        key = (label, phase)
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def timed(self, label: str, phase: str, fn):
        """fn, wrapped to record its self time under (label, phase)."""
        def wrapper(*args, **kwargs):
            self._children.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                children = self._children.pop()
                self.add(label, phase, elapsed - children)
                if self._children:
                    self._children[-1] += elapsed
        return wrapper

    def per_step(self, steps: int) -> list[dict]:
        """Rows sorted by total time: label, forward_ms, backward_ms, total_ms (per step)."""
        labels = sorted({label for label, _ in self.seconds})
        rows = []
        for label in labels:
            f = self.seconds.get((label, "forward"), 0.0) * 1e3 / steps
            b = self.seconds.get((label, "backward"), 0.0) * 1e3 / steps
            rows.append({"op": label, "forward_ms": f, "backward_ms": b, "total_ms": f + b})
        return sorted(rows, key=lambda r: -r["total_ms"])


@contextmanager
def profiled(model, optimizer, profile: StepProfile):
    """Inside the block, every module of ``model`` and the optimizer's step report to ``profile``."""
    patched = []
    for _, module in model.named_modules():
        label = LABELS.get(type(module).__name__, type(module).__name__)
        for phase in ("forward", "backward"):
            patched.append((module, phase))
            setattr(module, phase, profile.timed(label, phase, getattr(module, phase)))
    patched.append((model, "zero_grad"))
    model.zero_grad = profile.timed("zero_grad", "backward", model.zero_grad)
    patched.append((optimizer, "step"))
    optimizer.step = profile.timed("optimizer (AdamW)", "backward", optimizer.step)
    try:
        yield profile
    finally:
        for obj, name in patched:
            del obj.__dict__[name]  # the instance attribute goes; the class's method shows again


def profile_companion(model, optimizer, idx: np.ndarray, targets: np.ndarray) -> dict:
    """Profile one training step per batch in idx (n, B, T); -> {"rows": [...], "step_ms": ...}."""
    profile = StepProfile()
    loss_forward = profile.timed("cross-entropy", "forward", cross_entropy_forward)
    loss_backward = profile.timed("cross-entropy", "backward", cross_entropy_backward)
    n = len(idx)
    with profiled(model, optimizer, profile):
        t0 = time.perf_counter()
        for i in range(n):
            logits = model.forward(idx[i])  # (B, T, V)
            _, cache = loss_forward(logits, targets[i])
            model.zero_grad()
            model.backward(loss_backward(cache))
            optimizer.step()
        step_ms = (time.perf_counter() - t0) * 1e3 / n
    rows = profile.per_step(n)
    return {"rows": rows, "step_ms": step_ms, "steps": n}


def profile_torch(twin, optimizer, idx, targets, row_limit: int = 18) -> dict:
    """The same steps under torch.profiler: its table (self CPU time) and the per-step rows."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from .bench import torch_step

    n = len(idx)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for i in range(n):
            torch_step(twin, optimizer, idx[i], targets[i])
        step_ms = (time.perf_counter() - t0) * 1e3 / n
    averages = prof.key_averages()
    rows = sorted(({"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / n, "calls": e.count / n}
                   for e in averages), key=lambda r: -r["self_ms"])
    table = averages.table(sort_by="self_cpu_time_total", row_limit=row_limit)
    return {"rows": rows[:row_limit], "step_ms": step_ms, "steps": n, "table": table,
            "version": torch.__version__}


def format_profile(result: dict) -> str:
    """Our per-operation table, then (if present) the torch twin's."""
    c = result["companion"]
    lines = [f"companion: {c['steps']} profiled steps, {c['step_ms']:.1f} ms/step (timers included); "
             f"self time per step:",
             f"  {'operation':<46}{'forward ms':>11}{'backward ms':>12}{'total ms':>10}{'share':>7}"]
    total = sum(r["total_ms"] for r in c["rows"])
    for r in c["rows"]:
        lines.append(f"  {r['op']:<46}{r['forward_ms']:>11.2f}{r['backward_ms']:>12.2f}{r['total_ms']:>10.2f}"
                     f"{100 * r['total_ms'] / total:>6.0f}%")
    lines.append(f"  {'(sum of the rows)':<46}{'':>11}{'':>12}{total:>10.2f}")
    if "torch" in result:
        t = result["torch"]
        lines += ["", f"torch {t['version']} (torch.profiler, {t['steps']} steps, {t['step_ms']:.1f} ms/step with the "
                  f"profiler on; times below are totals over the {t['steps']} steps):", t["table"]]
    return "\n".join(lines)
