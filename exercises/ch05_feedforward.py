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
# # Chapter 5 exercises: the feed-forward network
#
# Book chapter 5 (`book/05_feedforward.md`): GPT-2's GELU and LLaMA's SwiGLU. Write each
# function, run its cell, then its check cell.

# %%
import math

import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 5.1: GELU (tanh approximation)
#
# GPT-2 uses the tanh approximation of GELU:
#
# $$\mathrm{gelu}(x) = \tfrac12 x\,(1 + \tanh u),\qquad u = \sqrt{2/\pi}\,(x + 0.044715\,x^3)$$
#
# Return `(out, cache)` with `cache = (x, tanh(u))`.


# %%
def gelu_forward(x):
    """x (...) -> (gelu(x) (...), cache)."""
    raise NotImplementedError("Exercise 5.1: gelu_forward")


# %%
def gelu_backward(dout, cache):
    """Given: dout (...) and the cache (x, tanh(u)) of your gelu_forward -> dx (...)."""
    x, t = cache
    du = math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * x * x)  # du/dx
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


# %%
check("5.1")

# %% [markdown]
# ## Exercise 5.2: SwiGLU forward
#
# SwiGLU (Shazeer 2020) gates one projection of the token with another:
# `h = silu(gate) * up`, with `silu(a) = a * sigmoid(a)`. Return `(h, cache)` with
# `cache = (gate, up, sigmoid(gate), silu(gate))`. (Compute the sigmoid as
# `0.5 * (1 + tanh(a / 2))`: it never overflows.)


# %%
def swiglu_forward(gate, up):
    """gate, up (..., H) -> (h (..., H), cache)."""
    raise NotImplementedError("Exercise 5.2: swiglu_forward")


# %%
check("5.2")

# %% [markdown]
# ## Exercise 5.3: SwiGLU backward
#
# From `dh` and the cache of 5.2, return `(dgate, dup)`. `up` enters as a plain factor; for
# the gate you need the derivative of silu, by the product rule
# $\mathrm{silu}'(a) = \sigma(a) + a\,\sigma(a)(1 - \sigma(a))$.


# %%
def swiglu_backward(dh, cache):
    """dh (..., H) -> dgate (..., H), dup (..., H)."""
    raise NotImplementedError("Exercise 5.3: swiglu_backward")


# %%
check("5.3")
