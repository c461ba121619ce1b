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
# # Chapter 2 exercises: embeddings and positions
#
# Three pieces of the model's input (book chapter 2, `book/02_embeddings.md`): the token
# embedding's backward pass, the sinusoidal position table, and rotary positions (RoPE).
# Write each function, run its cell, then its check cell.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 2.1: the embedding's backward pass
#
# The forward pass is `out = w[idx]` with `idx (B, T)` and the table `w (vocab_size, C)`; its
# cache is `(idx, w.shape)` (it is given below). Return `dw`, shape
# `(vocab_size, C)`: each position's gradient `dout[b, t]` is added to row `idx[b, t]`. A
# token that appears several times collects the sum of all its gradients. (Careful:
# `dw[idx] += dout` keeps only one of the repeated rows. Look at `np.add.at`.)


# %%
def embedding_forward(idx, w):
    """Given: idx (B, T) ints, w (vocab_size, C) -> (out (B, T, C), cache)."""
    return w[idx], (idx, w.shape)


def embedding_backward(dout, cache):
    """dout (B, T, C), cache (idx, w_shape) -> dw (vocab_size, C)."""
    raise NotImplementedError("Exercise 2.1: embedding_backward")


# %%
check("2.1")

# %% [markdown]
# ## Exercise 2.2: the sinusoidal position table
#
# Return `PE`, shape `(block_size, n_embd)`, with (Vaswani et al. 2017), for position `t`
# and channel pair `i = 0 .. n_embd/2 - 1`:
#
# $$PE[t, 2i] = \sin(t / 10000^{2i/n_{embd}}),\qquad PE[t, 2i+1] = \cos(t / 10000^{2i/n_{embd}})$$
#
# `n_embd` is even here. Return it in `dtype`.


# %%
def sinusoidal_table(block_size, n_embd, dtype=np.float64):
    """-> PE (block_size, n_embd): sin on even channels, cos on odd channels."""
    raise NotImplementedError("Exercise 2.2: sinusoidal_table")


# %%
check("2.2")

# %% [markdown]
# ## Exercise 2.3: rotary positions (RoPE)
#
# `x` has shape `(B, nh, T, hs)`; `cos` and `sin` have shape `(T, hs/2)` and hold
# `cos(t * theta_i)`, `sin(t * theta_i)`. RoPE rotates each channel **pair** `(x[2i], x[2i+1])`
# (neighbouring channels) by its angle:
#
# $$out[2i] = x[2i] \cos - x[2i+1] \sin,\qquad out[2i+1] = x[2i] \sin + x[2i+1] \cos$$
#
# Return the rotated array (same shape as `x`); do not change `x` itself.


# %%
def rope_forward(x, cos, sin):
    """x (B, nh, T, hs), cos and sin (T, hs/2) -> out (B, nh, T, hs)."""
    raise NotImplementedError("Exercise 2.3: rope_forward")


# %%
check("2.3")
