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
    # BEGIN SOLUTION 8.1
    x, w, has_bias = cache
    dx = dout @ w.T  # (..., n_in)
    x2 = x.reshape(-1, x.shape[-1])  # (N, n_in)
    dout2 = dout.reshape(-1, dout.shape[-1])  # (N, n_out)
    dw = x2.T @ dout2  # (n_in, n_out)
    db = dout2.sum(axis=0) if has_bias else None  # (n_out,)
    return dx, dw, db
    # END SOLUTION


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
    # BEGIN SOLUTION 8.2
    dx1 = dout + block.norm2.backward(block.ffn.backward(dout))  # (B, T, C)
    return dx1 + block.norm1.backward(block.attn.backward(dx1))
    # END SOLUTION


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
    # BEGIN SOLUTION 8.3
    grad = np.zeros(a.shape)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + h
        plus = f()
        a[i] = old - h
        minus = f()
        a[i] = old  # put it back
        grad[i] = (plus - minus) / (2 * h)
    return grad
    # END SOLUTION


# %%
check("8.3")
