# ---
# jupyter:
#   course:
#     budget_s: 30
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
# This file is generated from solutions/ by `python -m companion.grading.build`: edit the solution.

# %% [markdown]
# # Chapter 4 exercises: LayerNorm and RMSNorm
#
# The normalisations of book chapter 4 (`book/04_norms.md`). Both normalise over the last
# axis (the channels of one token). Write each function, run its cell, then its check cell.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 4.1: LayerNorm backward
#
# The forward pass computes `xhat = (x - mean) * rstd` with `rstd = 1 / sqrt(var + eps)` and
# `out = xhat * w + b`, and caches `(xhat, rstd, w, has_bias)`. Return `(dx, dw, db)`
# (`db` is `None` when `has_bias` is False). With `dxhat = dout * w`, per row:
#
# $$dx = rstd\,\big(dxhat - \mathrm{mean}(dxhat) - xhat \cdot \mathrm{mean}(dxhat \cdot xhat)\big)$$
#
# `dw` and `db` sum over every axis but the last. (The forward pass is given below: plug
# the pair into the model with `companion.use(layernorm_forward=..., layernorm_backward=...)`.)


# %%
def layernorm_forward(x, w, b, eps=1e-5):
    """Given: x (..., C), w (C,), b (C,) or None -> (out (..., C), cache)."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = (x - mean) * rstd  # (..., C)
    out = xhat * w if b is None else xhat * w + b  # (..., C)
    return out, (xhat, rstd, w, b is not None)


def layernorm_backward(dout, cache):
    """dout (..., C) -> dx (..., C), dw (C,), db (C,) or None."""
    raise NotImplementedError("Exercise 4.1: layernorm_backward")


# %%
check("4.1")

# %% [markdown]
# ## Exercise 4.2: RMSNorm forward
#
# RMSNorm (Zhang & Sennrich 2019) drops LayerNorm's centring and bias:
#
# $$rrms = 1/\sqrt{\mathrm{mean}(x^2) + \epsilon},\qquad xhat = x \cdot rrms,\qquad out = xhat \cdot w$$
#
# `eps` goes **inside** the square root. Return `(out, cache)` with `cache = (xhat, rrms, w)`,
# `rrms` of shape `(..., 1)`.


# %%
def rmsnorm_forward(x, w, eps=1e-5):
    """x (..., C), w (C,) -> (out (..., C), cache)."""
    raise NotImplementedError("Exercise 4.2: rmsnorm_forward")


# %%
check("4.2")

# %% [markdown]
# ## Exercise 4.3: RMSNorm backward
#
# From the cache `(xhat, rrms, w)`, return `(dx, dw)`. It is LayerNorm's backward without the
# centring term: $dx = rrms\,(dxhat - xhat \cdot \mathrm{mean}(dxhat \cdot xhat))$.


# %%
def rmsnorm_backward(dout, cache):
    """dout (..., C) -> dx (..., C), dw (C,)."""
    raise NotImplementedError("Exercise 4.3: rmsnorm_backward")


# %%
check("4.3")
