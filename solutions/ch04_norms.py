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

# %% [markdown]
# # Chapter 4 exercises: LayerNorm and RMSNorm
#
# The normalisations of book chapter 4 (`book/04_norms.md`). Both normalise over the last
# axis (the channels of one token). Write each function, run its cell, then its check cell.
#
# Exercises 4.1 and 4.3 are backward passes. Book chapter 8 (`book/08_backprop.md`) derives
# them; the formulas are given below, so you can write them now from the formulas, or come back
# after chapter 8.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 4.1: LayerNorm backward
#
# (Derived in book chapter 8.)
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
    """dout (..., C) -> dx (..., C), dw (C,), db (C,) or None (the backward derived in chapter 8)."""
    # BEGIN SOLUTION 4.1
    xhat, rstd, w, has_bias = cache
    C = xhat.shape[-1]
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    db = dout.reshape(-1, C).sum(axis=0) if has_bias else None  # (C,)
    dxhat = dout * w  # (..., C)
    dx = dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)
    return dx * rstd, dw, db
    # END SOLUTION


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
    # BEGIN SOLUTION 4.2
    rrms = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # (..., 1)
    xhat = x * rrms  # (..., C)
    return xhat * w, (xhat, rrms, w)
    # END SOLUTION


# %%
check("4.2")

# %% [markdown]
# ## Exercise 4.3: RMSNorm backward
#
# (Derived in book chapter 8.) From the cache `(xhat, rrms, w)`, return `(dx, dw)`. It is
# LayerNorm's backward without the centring term: $dx = rrms\,(dxhat - xhat \cdot \mathrm{mean}(dxhat \cdot xhat))$.


# %%
def rmsnorm_backward(dout, cache):
    """dout (..., C) -> dx (..., C), dw (C,) (the backward derived in chapter 8)."""
    # BEGIN SOLUTION 4.3
    xhat, rrms, w = cache
    C = xhat.shape[-1]
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)  # (C,)
    dxhat = dout * w  # (..., C)
    dx = (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)) * rrms  # (..., C)
    return dx, dw
    # END SOLUTION


# %%
check("4.3")

# %% [markdown]
# ## Exercise 4.4: what 2·n_layer branches add to the residual stream
#
# In a pre-norm stack every block adds two branch outputs to the stream, and at initialisation
# they are close to independent with mean zero, so their variances add (book chapter 4, "A sum
# of 2·n_layer branches"). Each unscaled branch writes a signal of variance `branch_var`. GPT-2
# draws the last matrix of every branch with standard deviation multiplied by
# $1/\sqrt{2\,n_\text{layer}}$, which multiplies that branch's variance by $1/(2\,n_\text{layer})$.
# Return the variance the `n_layer` blocks add together (a float), with the scaling
# (`scaled=True`) or without it.


# %%
def added_variance(n_layer, branch_var, scaled):
    """n_layer (int >= 1), branch_var (float >= 0), scaled (bool) -> the variance the blocks add (float)."""
    # BEGIN SOLUTION 4.4
    n_branches = 2 * n_layer
    per_branch = branch_var / n_branches if scaled else branch_var
    return float(n_branches * per_branch)
    # END SOLUTION


# %%
check("4.4")
