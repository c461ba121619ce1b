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
# # Chapter 3 exercises: attention
#
# Three exercises, the heart of the transformer (book chapter 3, `book/03_attention.md`).
# Write each function where it says `raise NotImplementedError`, run its cell, then run the
# check cell below it: `check("3.1")` runs the course's graded tests on your function and
# prints a verdict that names the likely bug when something is off.
#
# Your functions keep the companion's signatures, so once they pass you can run the whole
# model on them: `with companion.use(attention_forward=attention_forward): ...`.

# %%
import math

import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 3.1: the causal mask
#
# Return a boolean array of shape `(T_q, T_k)`, `True` where query `i` may attend to key `j`.
# The queries are the **last** `T_q` of `T_k` positions (with a KV cache, `T_q` new tokens
# meet `T_k` keys), so query `i` sits at position `T_k - T_q + i` and may see every key at
# that position or before it, never a later one.


# %%
def causal_mask(T_q, T_k):
    """(T_q, T_k) bool: True where query i may look at key j."""
    raise NotImplementedError("Exercise 3.1: causal_mask")


# %%
check("3.1")

# %% [markdown]
# ## Exercise 3.2: attention forward
#
# `q` has shape `(B, nh, T_q, hs)`, `k` and `v` have shape `(B, nh, T_k, hs)`, and `mask`
# broadcasts to `(B, nh, T_q, T_k)` (`True` = allowed). Compute
#
# $$\mathrm{att} = \mathrm{softmax}\!\left(\frac{q k^\top}{\sqrt{hs}} + \text{mask}\right),\qquad \text{out} = \mathrm{att}\, v$$
#
# where the mask puts $-\infty$ at forbidden places, and the softmax runs over the keys (the
# last axis). Subtract each row's maximum before `exp` so that large scores cannot overflow.
# Use the `mask` you are given, whatever its shape: with a KV cache `T_q < T_k`, and a
# padding mask hides some keys of each sequence. A query that may see no key at all (a
# padding position in a left-padded batch) gets an all-zero row of `att` (and an all-zero
# output), never NaN. Return `(out, cache)` with `cache = (q, k, v, att, scale)`,
# `scale = 1 / sqrt(hs)`: your `attention_backward` (3.3) reads exactly that.


# %%
def attention_forward(q, k, v, mask):
    """q (B, nh, T_q, hs), k and v (B, nh, T_k, hs), mask (.., T_q, T_k) -> (out, cache)."""
    raise NotImplementedError("Exercise 3.2: attention_forward")


# %%
check("3.2")

# %% [markdown]
# ## Exercise 3.3: attention backward
#
# Given `dout` (the gradient of the loss with respect to `out`) and the cache from 3.2, return
# `(dq, dk, dv)`. Work backwards through `out = att @ v`, then the softmax (for one row,
# $ds = a \odot (da - \sum_j da_j a_j)$), then the scaled product `s = q @ k.T * scale`.
# Masked places have `att = 0`, so they need no special case. The derivation is in chapter 8,
# §Attention.


# %%
def attention_backward(dout, cache):
    """dout (B, nh, T_q, hs) -> dq, dk, dv with the shapes of q, k, v.

    The derivation is in chapter 8, §Attention."""
    raise NotImplementedError("Exercise 3.3: attention_backward")


# %%
check("3.3")
