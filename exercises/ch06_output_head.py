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
# # Chapter 6 exercises: from logits to text
#
# Book chapter 6 (`book/06_output_head.md`): the model gives one logit per vocabulary entry;
# decoding turns them into the next token. Write each function, run its cell, then its check
# cell. All randomness comes from the `rng` you are given (a `numpy.random.Generator`).

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 6.1: temperature and top-k
#
# `next_token_probs`: `logits` has shape `(B, V)`. Return the sampling probabilities `(B, V)`:
# divide the logits by `temperature`; if `top_k` is not None keep only the `top_k` largest
# logits of each row (the others get probability exactly 0); then softmax each row (stably:
# subtract the row max). Temperature below 1 sharpens the distribution, above 1 flattens it.


# %%
def next_token_probs(logits, temperature=1.0, top_k=None):
    """logits (B, V) -> probabilities (B, V), each row summing to 1."""
    raise NotImplementedError("Exercise 6.1: next_token_probs")


# %%
check("6.1")

# %% [markdown]
# ## Exercise 6.2: sampling
#
# `pick_next` returns one token id per row, shape `(B,)` (integers), drawn from
# `next_token_probs(logits, temperature, top_k)` with `rng`. (`rng.choice(V, p=row)` draws
# one id from a row.)


# %%
def pick_next(logits, rng, temperature=1.0, top_k=None):
    """logits (B, V) -> token ids (B,)."""
    raise NotImplementedError("Exercise 6.2: pick_next")


# %%
check("6.2")

# %% [markdown]
# ## Exercise 6.3: generation
#
# `generate(model, idx, max_new_tokens, rng, temperature, top_k)` extends `idx (B, T)` by
# `max_new_tokens` tokens, one at a time: run `model.forward` on the last `block_size` tokens
# at most (`model.config.block_size`: the model accepts no more), take the logits at the
# **last** position, pick the next token with your `pick_next`, append it. Return `(B, T +
# max_new_tokens)`.


# %%
def generate(model, idx, max_new_tokens, rng, temperature=1.0, top_k=None):
    """idx (B, T) int -> (B, T + max_new_tokens) int."""
    raise NotImplementedError("Exercise 6.3: generate")


# %%
check("6.3")
