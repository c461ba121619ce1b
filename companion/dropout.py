"""Dropout (Srivastava et al. 2014), inverted: zero each unit with probability p in training,
scale the units kept by 1 / (1 - p), and do nothing at all in evaluation.

    keep ~ Bernoulli(1 - p), one draw per element      out = x * keep / (1 - p)
    backward:  dx = dout * keep / (1 - p)              (the same scaled mask)

Scaling the kept units in training (rather than scaling everything by 1 - p at test time)
keeps each unit's expected value equal to x, so the evaluation model is the plain model.

Where the model applies it (as GPT-2 does: HF ``GPT2Model`` has ``drop`` on the embeddings'
sum, ``attn_dropout`` on the softmax weights, ``resid_dropout`` after attention's ``c_proj``
and ``dropout`` after the MLP's ``c_proj``; nanoGPT the same): on the embeddings' sum, on the
attention weights after the softmax, and on each residual branch's output before it is added.

Train/eval switch: a ``Dropout`` module draws masks only while it holds a generator. The model
hands its generator to every Dropout with ``model.train(rng)`` and takes it back with
``model.eval()``; a new model is in evaluation mode, so evaluation, generation and every path
that never calls ``train`` see no dropout. With p = 0 nothing is drawn and the input comes back
unchanged (the same array), so a model with ``dropout=0.0`` computes bit for bit what it did
before dropout existed, in either mode.
"""

from __future__ import annotations

import contextlib
import functools
import numbers

import numpy as np

from .backend import Array, xp
from .module import Module


def check_dropout_p(p) -> None:
    """p is the probability of *dropping* a unit: 0 <= p < 1 (p = 1 would drop everything and
    divide by zero)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"dropout must be a probability in [0, 1): the chance of zeroing a unit, got {p!r}")


def dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> Array:
    """The scaled mask keep / (1 - p) of the given shape: 0 with probability p, else 1 / (1 - p)."""
    keep = rng.random(shape) >= p  # numpy bool, shape
    return xp.asarray(keep.astype(dtype) * dtype.type(1.0 / (1.0 - p)))  # shape, x's dtype


def dropout_forward(x: Array, p: float, rng: np.random.Generator | None) -> tuple[Array, Array | None]:
    """x (any shape) -> out (same shape), cache (the scaled mask, or None when nothing was dropped).

    rng None or p == 0: out is x itself and no random number is drawn."""
    check_dropout_p(p)
    if rng is None or p == 0:
        return x, None
    mask = dropout_mask(x.shape, p, rng, xp.dtype(x.dtype))  # same shape as x
    return x * mask, mask


def dropout_backward(dout: Array, cache: Array | None) -> Array:
    """dout (same shape as x) -> dx: the gradient flows only through the kept units, scaled alike."""
    if cache is None:
        return dout
    return dout * cache


class Dropout(Module):
    """Inverted dropout with probability p; active only while ``rng`` is a generator (training)."""

    def __init__(self, p: float):
        super().__init__()
        check_dropout_p(p)
        self.p = float(p)
        self.rng: np.random.Generator | None = None  # set by model.train(rng), cleared by model.eval()

    @property
    def active(self) -> bool:
        """True in training mode with p > 0: the next forward pass will draw a mask."""
        return self.rng is not None and self.p > 0

    def forward(self, x: Array) -> Array:
        out, self.cache = dropout_forward(x, self.p, self.rng)
        return out

    def backward(self, dout: Array) -> Array:
        return dropout_backward(dout, self.cache)

    @property
    def mask(self) -> Array | None:
        """The scaled mask of the last forward pass (None: nothing was dropped)."""
        return self.cache


@contextlib.contextmanager
def dropout_off(model):
    """Within the block every Dropout of ``model`` is off; afterwards each has its generator back
    (so evaluating in the middle of training leaves the model in training mode)."""
    modules = [m for _, m in model.named_modules() if isinstance(m, Dropout)] if hasattr(model, "named_modules") else []
    saved = [m.rng for m in modules]
    for m in modules:
        m.rng = None
    try:
        yield
    finally:
        for m, rng in zip(modules, saved):
            m.rng = rng


def without_dropout(fn):
    """Decorator: ``fn(model, ...)`` runs with the model's dropout off (evaluation, generation)."""
    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with dropout_off(model):
            return fn(model, *args, **kwargs)
    return wrapper
