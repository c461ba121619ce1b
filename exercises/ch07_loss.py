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
# # Chapter 7 exercises: the loss
#
# Book chapter 7 (`book/07_loss.md`): a language model is trained to predict each next token;
# its loss is the cross-entropy of those predictions. Write each function, run its cell,
# then its check cell.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 7.1: inputs and targets
#
# `tokens` has shape `(B, T + 1)`. The model reads positions `0 .. T-1` and must predict, at
# each position, the token that comes **next**. Return `(inputs, targets)`, each `(B, T)`.


# %%
def make_targets(tokens):
    """tokens (B, T+1) -> inputs (B, T), targets (B, T)."""
    raise NotImplementedError("Exercise 7.1: make_targets")


# %%
check("7.1")

# %% [markdown]
# ## Exercise 7.2: stable cross-entropy
#
# `logits (B, T, V)`, `targets (B, T)` ints, `mask (B, T)` of 0/1 or None (all ones). The
# loss is the mean over unmasked positions of `-log softmax(logits)[target]`, a Python float:
#
# $$\mathrm{loss} = \frac{\sum_n m_n\,(\mathrm{logsumexp}(z_n) - z_{n, y_n})}{\sum_n m_n}$$
#
# Compute logsumexp as `max + log(sum(exp(z - max)))`, so that logits of 1000 do not overflow.
# Return `(loss, cache)` with `cache = (probs, targets, mask)`: `probs` the softmax of the
# logits `(B, T, V)`, and `mask` as an array of floats (all ones when it was None). Your
# `cross_entropy_backward` (7.3) reads exactly that.


# %%
def cross_entropy_forward(logits, targets, mask=None):
    """-> (the mean loss over unmasked positions (float), cache)."""
    raise NotImplementedError("Exercise 7.2: cross_entropy_forward")


# %%
check("7.2")

# %% [markdown]
# ## Exercise 7.3: its gradient
#
# From the cache `(probs, targets, mask)` of 7.2, return `dlogits (B, T, V)`, the gradient of
# 7.2's loss: at each unmasked position, `softmax(z) - onehot(target)`, divided by the number
# of unmasked positions; zero at masked positions. Do not change `probs` in place (copy it).


# %%
def cross_entropy_backward(cache):
    """cache from cross_entropy_forward -> dlogits (B, T, V)."""
    raise NotImplementedError("Exercise 7.3: cross_entropy_backward")


# %%
check("7.3")
