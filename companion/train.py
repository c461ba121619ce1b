"""The training loop: batches in, a History of honest metrics out.

One step (with lr from ``lr_schedule``: linear warm-up, then cosine decay):

    batch  = task.batch("train", batch_size, rng)           # all randomness from rng
    logits = model.forward(batch.idx)                        # (B, T, vocab_size)
    loss   = cross_entropy(logits, batch.targets, batch.loss_mask)
    model.zero_grad(); model.backward(dlogits)
    clip_grad_norm(grads, grad_clip); optimizer.step()

The model is in training mode (``model.train(rng)``: dropout on, masks drawn from rng after the
batch) only for the forward and backward pass of a step, and in evaluation mode otherwise.
With ``workers`` > 1 the forward and backward pass run on shares of the batch in that many
processes at once, and their gradients are summed (``companion/data_parallel.py``).

Every ``eval_every`` steps the model is scored on the validation split (``evaluate``)
and a record is added to the History. Evaluation draws no random numbers, so it cannot
change what training sees: a run resumed at step k from a checkpoint (weights, optimizer
state, the rng's state and the History) computes exactly the losses of the run that never
stopped. Nothing else may carry state between steps; nothing here does.

On a GPU backend (companion/backend.py) the batch is moved to the device once per step
(``xp.asarray``) and a step copies back to the host only scalars: the loss (logged, and checked
for divergence), the gradient norm (one copy, for the clipping and the same check), and the
input checks that token ids lie inside the vocabulary and the loss mask is not empty (CuPy would
wrap an out-of-range index around silently). tests/test_strict_backend.py counts them.

A loss or gradient that is NaN or infinite stops training at once with a
``FloatingPointError`` that names the step and suggests a cure, rather than letting the
NaN silently spread through every weight.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from .backend import xp
from .config import from_dict_checked
from .data_parallel import DataParallel, check_data_parallel
from .evaluate import check_fits, evaluate
from .history import History
from .kernels import plugged
from .loss import cross_entropy_backward, cross_entropy_forward
from .optim import AdamW, clip_grad_norm, lr_schedule


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3  # peak learning rate, reached after warm-up
    min_lr: float = 3e-4  # where the cosine decay ends
    warmup_steps: int = 100
    weight_decay: float = 0.01  # AdamW, weight matrices only
    grad_clip: float | None = 1.0  # global-norm clipping; None turns it off
    betas: tuple[float, float] = (0.9, 0.99)
    eval_every: int = 250  # 0: evaluate only at the end
    eval_size: int | None = 500  # validation problems (text: windows) per evaluation; None: all

    def __post_init__(self):
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))  # from JSON
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("warmup_steps", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.min_lr, (int, float)) and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"min_lr must be between 0 and the peak lr={self.lr}, got {self.min_lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive number or None, got {self.grad_clip!r}")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.eval_size is not None and (not isinstance(self.eval_size, int) or self.eval_size < 1):
            raise ValueError(f"eval_size must be a positive integer or None, got {self.eval_size!r}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return from_dict_checked(cls, d)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


# Per-task defaults, tuned on the 2-core machine (see tests/test_learning.py and the report).
DEFAULT_TRAIN_CONFIGS = {
    "listops": dict(steps=1000, batch_size=64, lr=3e-3, min_lr=3e-4, warmup_steps=100, weight_decay=0.01),
    "addition": dict(steps=3000, batch_size=128, lr=1e-2, min_lr=1e-3, warmup_steps=200, weight_decay=0.01,
                     eval_every=500, eval_size=1000),
    # values 0-99: a 112-token vocabulary and 5 million problems need more steps and bigger batches
    "listops-99": dict(steps=3000, batch_size=128, lr=5e-3, min_lr=5e-4, warmup_steps=100, weight_decay=0.01,
                       eval_every=500, eval_size=1000),
    "text": dict(steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_steps=100, weight_decay=0.1,
                 eval_every=250, eval_size=50),
}


def default_train_config(task, **overrides) -> TrainConfig:
    """The tuned defaults of a task, with any field overridden (unknown fields are named).

    ``task`` is a task's name or the task itself; a task object picks the settings of its
    size (ListOps with values up to 99 gets "listops-99")."""
    task_name = task if isinstance(task, str) else task.name
    if task_name == "listops" and getattr(task, "max_value", 9) > 9:
        task_name = "listops-99"
    if task_name not in DEFAULT_TRAIN_CONFIGS:
        raise ValueError(f"no default training config for task {task_name!r}; "
                         f"tasks are {sorted(DEFAULT_TRAIN_CONFIGS)}")
    return TrainConfig.from_dict({**DEFAULT_TRAIN_CONFIGS[task_name], **overrides})


def diverged(what: str, value: float, step: int, cfg: TrainConfig) -> FloatingPointError:
    return FloatingPointError(
        f"{what} is {value} at step {step}: training diverged. Try a lower learning rate "
        f"(lr={cfg.lr:g} now, e.g. lr={cfg.lr / 3:.2g})"
        + (" or gradient clipping (grad_clip=1.0)" if cfg.grad_clip is None else
           f" or tighter gradient clipping (grad_clip={cfg.grad_clip:g} now)"))


def train(model, task, cfg: TrainConfig, rng: np.random.Generator, optimizer=None, start_step: int = 0,
          history: History | None = None, progress: bool = True, callback=None, workers: int = 1) -> History:
    """Train ``model`` on ``task`` from ``start_step`` to ``cfg.steps``; -> the History.

    optimizer: defaults to AdamW(lr, betas, weight_decay) over the model's parameters.
    callback(step, model, optimizer, rng, history) runs after each step (step = steps done),
    e.g. to save a checkpoint.
    workers > 1 splits each batch across that many processes, one BLAS thread each
    (companion/data_parallel.py): the same numbers up to float rounding. It is not part of the
    TrainConfig (a checkpoint's run may resume with any number of workers)."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass an explicit numpy.random.Generator, e.g. np.random.default_rng(0)")
    if not isinstance(start_step, int) or not 0 <= start_step <= cfg.steps:
        raise ValueError(f"start_step must be an integer in [0, steps={cfg.steps}], got {start_step!r}")
    check_fits(model, task)
    check_data_parallel(model, workers, cfg.batch_size)
    if optimizer is None:
        optimizer = AdamW(model.parameters(), model.gradients(), lr=cfg.lr, betas=cfg.betas,
                          weight_decay=cfg.weight_decay)
    history = History() if history is None else history
    grads = model.gradients()
    t0 = time.perf_counter() - history.seconds  # a resumed run continues the clock

    from tqdm.auto import tqdm  # terminal or Jupyter widget, whichever fits

    bar = tqdm(total=cfg.steps, initial=start_step, disable=not progress, desc=f"train {task.name}",
               unit="step", dynamic_ncols=True, leave=True)
    pool = None
    try:
        if workers > 1 and start_step < cfg.steps:
            pool = DataParallel(model, workers, cfg.batch_size)  # started once for the whole run
        for step in range(start_step, cfg.steps):
            lr = lr_schedule(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr)
            optimizer.lr = lr
            batch = task.batch("train", cfg.batch_size, rng)
            model.train(rng)  # dropout (if any) draws its masks after the batch, from the same generator
            if pool is not None:  # the batch's shares run in parallel processes; their gradients summed
                loss = pool.forward_backward(batch.idx, batch.targets, batch.loss_mask)
                if not math.isfinite(loss):
                    raise diverged("the training loss", loss, step, cfg)
            else:
                logits = model.forward(xp.asarray(batch.idx))  # (B, T, vocab_size)
                loss, cache = plugged(cross_entropy_forward)(logits, xp.asarray(batch.targets),
                                                             xp.asarray(batch.loss_mask))
                if not math.isfinite(loss):
                    raise diverged("the training loss", loss, step, cfg)
                model.zero_grad()
                model.backward(plugged(cross_entropy_backward)(cache))
            if cfg.grad_clip is not None:
                norm = clip_grad_norm(grads, cfg.grad_clip)
                if not math.isfinite(norm):
                    raise diverged("the gradient norm", norm, step, cfg)
            optimizer.step()
            history.add_step(loss, lr)
            history.seconds = time.perf_counter() - t0
            done = step + 1
            model.eval()  # between steps, and for evaluation and callbacks: no dropout
            if (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps:
                metrics = evaluate(model, task, "val", max_problems=cfg.eval_size)
                previous = history.last["step"] if history.last else 0
                recent = history.train_losses[-(done - previous):]  # the steps since the last evaluation
                history.add_eval(step=done, train_loss=float(np.mean(recent)), metrics=metrics, lr=lr,
                                 seconds=time.perf_counter() - t0)
                bar.set_postfix(loss=f"{loss:.4f}", val=f"{metrics['loss']:.4f}",
                                **({"acc": f"{metrics['exact_match']:.3f}"} if "exact_match" in metrics else {}))
            elif done % 25 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            if callback is not None:
                callback(done, model, optimizer, rng, history)
    finally:
        model.eval()  # the model leaves training in evaluation mode, even after an error
        bar.close()
        if pool is not None:
            pool.close()  # the workers stop and the shared memory is freed, even after an error
    return history
