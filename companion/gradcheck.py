"""Finite-difference gradient checks: how we know a hand-written backward is right.

For a scalar function L of an array a, the central difference
    dL/da[i] ~ (L(a + h e_i) - L(a - h e_i)) / (2h)
has error O(h^2). In float64 with h = 1e-6 it agrees with a correct analytic gradient to
about 1e-8 or better, so for gradients of healthy size a relative error above 1e-6 means a bug,
not rounding. The rounding error is about eps * |L| / h whatever the gradient, so a gradient
much smaller than the loss (a norm gain at initialisation) can exceed 1e-6 with correct code;
such a false alarm shrinks like 1/h when h grows, a bug does not (book chapter 8).

A layer's output is not a scalar, so the check uses a fake loss L = sum(out * dout) with a
fixed random dout: its gradient with respect to the output is exactly dout (llm.c, CS231n).

    relative error = max_i |analytic_i - numeric_i| / max(max_i max(|analytic_i|, |numeric_i|), 1e-12)

(the largest difference over the largest entry of either gradient; 1e-12 keeps an all-zero
gradient from dividing by zero). float32 cannot be checked this way: its rounding error
eps/h and the truncation error h^2 leave an error floor of the order of eps^(2/3), about
2.4e-5, above the 1e-6 threshold (book chapter 8 measures it).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .backend import Array, xp


def relative_error(analytic: Array, numeric: Array) -> float:
    diff = float(xp.abs(analytic - numeric).max())
    scale = float(xp.maximum(xp.abs(analytic), xp.abs(numeric)).max())
    return diff / max(scale, 1e-12)


def numeric_gradient(f: Callable[[], float], a: Array, h: float = 1e-6, max_entries: int | None = None,
                     rng: np.random.Generator | None = None) -> tuple[Array, Array]:
    """Central differences of f() with respect to a (perturbed in place, then restored).
    Checks every entry, or ``max_entries`` of them chosen with ``rng``; returns (indices, grads)."""
    if a.dtype != xp.float64:
        raise TypeError(f"gradient checks need float64 arrays (float32 rounding swamps h), got {a.dtype.name}")
    flat = a.reshape(-1)  # a view: writing flat[i] writes a
    n = flat.size
    idx = np.arange(n) if max_entries is None or max_entries >= n else np.sort(
        (rng or np.random.default_rng(0)).choice(n, size=max_entries, replace=False))
    grads = np.empty(len(idx))
    for j, i in enumerate(idx):
        old = float(flat[i])
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        grads[j] = (plus - minus) / (2 * h)
    return idx, xp.asarray(grads)


def gradcheck(f: Callable[[], float], arrays: dict[str, Array], analytic: dict[str, Array],
              h: float = 1e-6, max_entries: int | None = None, rng=None) -> dict[str, float]:
    """Relative error between ``analytic[name]`` and finite differences of f() for each array."""
    errors = {}
    for name, a in arrays.items():
        idx, numeric = numeric_gradient(f, a, h, max_entries, rng)
        errors[name] = relative_error(analytic[name].reshape(-1)[xp.asarray(idx)], numeric)  # idx: host ints
    return errors


def check_layer(layer, x: Array, rng: np.random.Generator | None = None, h: float = 1e-6,
                max_entries: int | None = 200) -> dict[str, float]:
    """Check a module's backward: the input gradient and every parameter gradient.

    ``layer`` has forward(x) and backward(dout) (any companion module); ``x`` is float64,
    or integer token ids (an Embedding), which have no gradient: then only the parameters
    are checked. Returns {'x': err, 'w': err, ...}; for gradients of healthy size all should be
    below 1e-6."""
    rng = rng or np.random.default_rng(0)
    x = x.copy()
    dout = xp.asarray(rng.standard_normal(layer.forward(x).shape))

    def fake_loss() -> float:
        return float((layer.forward(x) * dout).sum())

    layer.zero_grad()
    layer.forward(x)
    dx = layer.backward(dout)
    arrays = {**layer.parameters()}
    analytic = {k: g.copy() for k, g in layer.gradients().items()}
    if x.dtype.kind == "f":
        arrays["x"], analytic["x"] = x, dx
    return gradcheck(fake_loss, arrays, analytic, h, max_entries, rng)


def check_model(model, idx: Array, targets: Array, mask: Array | None = None, h: float = 1e-6,
                max_entries: int | None = 50, rng: np.random.Generator | None = None) -> dict[str, float]:
    """Check d(loss)/d(parameter) for every parameter of a float64 model."""
    from .loss import cross_entropy_backward, cross_entropy_forward

    def loss() -> float:
        return cross_entropy_forward(model.forward(idx), targets, mask)[0]

    model.zero_grad()
    _, cache = cross_entropy_forward(model.forward(idx), targets, mask)
    model.backward(cross_entropy_backward(cache))
    analytic = {k: g.copy() for k, g in model.gradients().items()}
    return gradcheck(loss, model.parameters(), analytic, h, max_entries, rng)
