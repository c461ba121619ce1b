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
# # Chapter 8 exercises: backpropagation
#
# Book chapter 8 (`book/08_backprop.md`): every layer's backward, a whole block's backward,
# and the finite-difference check that tells us a backward is right. Write each function,
# run its cell, then its check cell.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 8.1: the linear layer's backward
#
# The forward pass is `out = x @ w + b` with `x (..., n_in)` (often `(B, T, n_in)`),
# `w (n_in, n_out)`, and its cache is `(x, w, has_bias)` (it is given below). Return
# `(dx, dw, db)`; `dw` and `db` sum over **every** leading axis (batch and time), and `db`
# is None without a bias.


# %%
def linear_forward(x, w, b):
    """Given: x (..., n_in), w (n_in, n_out), b (n_out,) or None -> (out (..., n_out), cache)."""
    out = x @ w if b is None else x @ w + b  # (..., n_out)
    return out, (x, w, b is not None)


def linear_backward(dout, cache):
    """dout (..., n_out) -> dx (..., n_in), dw (n_in, n_out), db (n_out,) or None."""
    raise NotImplementedError("Exercise 8.1: linear_backward")


# %%
check("8.1")

# %% [markdown]
# ## Exercise 8.2: a whole block's backward
#
# A pre-norm block computes `x1 = x + attn(norm1(x))` then `out = x1 + ffn(norm2(x1))`.
# `block` is a companion `Block` that has run its forward pass; its sub-layers `block.norm1`,
# `block.attn`, `block.norm2`, `block.ffn` each have `.backward(dout) -> dinput` (which also
# adds their parameters' gradients). Return `dx`, the gradient for the block's input. Walk
# the graph backwards, and remember that where a path forks (the residual), gradients add.


# %%
def block_backward(block, dout):
    """dout (B, T, C) -> dx (B, T, C), through a pre-norm block."""
    raise NotImplementedError("Exercise 8.2: block_backward")


# %%
check("8.2")

# %% [markdown]
# ## Exercise 8.3: the numerical gradient
#
# `f()` is a function of no arguments that reads the array `a` and returns a float. Return
# the array of central differences, shape of `a`:
# $\partial f/\partial a_i \approx (f(a + h e_i) - f(a - h e_i)) / 2h$. Change `a` in place
# (that is the array `f` reads) one entry at a time, and put every entry back as it was.


# %%
def numeric_gradient(f, a, h=1e-6):
    """-> an array shaped like a: the central-difference gradient of f at a."""
    raise NotImplementedError("Exercise 8.3: numeric_gradient")


# %%
check("8.3")
