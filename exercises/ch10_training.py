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
# # Chapter 10 exercises: training
#
# Book chapter 10 (`book/10_training.md`): batches, and the loop that trains the model. Write
# each function, run its cell, then its check cell. The graded task is small on purpose: a
# token stream in which each token determines the next one, which a tiny model learns in a
# few seconds if, and only if, the loop is right.

# %%
import numpy as np

import companion
from companion.grading import check

# %% [markdown]
# ## Exercise 10.1: a batch of windows
#
# `data` is a 1-D integer array (a long token stream). Return `(x, y)`, each of shape
# `(batch_size, block_size)`: for each row pick a random start `i` with
# `rng.integers(0, len(data) - block_size, size=batch_size)` and take `x = data[i : i + block_size]`,
# `y = data[i + 1 : i + block_size + 1]` (the next token at every position).


# %%
def get_batch(data, block_size, batch_size, rng):
    """data (N,) ints -> x, y (batch_size, block_size) ints."""
    raise NotImplementedError("Exercise 10.1: get_batch")


# %%
check("10.1")

# %% [markdown]
# ## Exercise 10.2: the training loop
#
# Train `model` (a `companion.Transformer`) for `steps` steps on batches from your
# `get_batch`, and return the list of the `steps` training losses (floats). Each step:
# forward pass, `companion.cross_entropy_forward`, zero the gradients, `model.backward` of
# `companion.cross_entropy_backward`, clip the gradient norm at 1.0, set the learning rate
# from `companion.lr_schedule` (warm-up of `steps // 10`, cosine to `lr / 10`), and take one
# `companion.AdamW` step (weight decay 0.01). The check trains a tiny model with your loop and
# requires its next-token accuracy on fresh batches to come within 5% of the best possible.


# %%
def train(model, data, steps, batch_size, block_size, lr, rng):
    """-> list of the training loss at each step."""
    raise NotImplementedError("Exercise 10.2: train")


# %%
check("10.2")
