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
    # BEGIN SOLUTION 5.1
    t = np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))  # (...)
    return 0.5 * x * (1.0 + t), (x, t)
    # END SOLUTION


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
    # BEGIN SOLUTION 5.2
    sg = 0.5 * (1.0 + np.tanh(0.5 * gate))  # (..., H) sigmoid(gate)
    silu = gate * sg  # (..., H)
    return silu * up, (gate, up, sg, silu)
    # END SOLUTION


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
    # BEGIN SOLUTION 5.3
    gate, up, sg, silu = cache
    dup = dh * silu  # (..., H)
    dgate = dh * up * sg * (1.0 + gate * (1.0 - sg))  # (..., H)
    return dgate, dup
    # END SOLUTION


# %%
check("5.3")
