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
# # Chapter 12 exercises: from the toy to the real thing
#
# Book chapter 12 (`book/12_toy_to_real.md`): attention without the (T, T) matrix, and what a
# model costs in parameters and in KV-cache bytes. Write each function, run its cell, then its
# check cell.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 12.1: attention with the online softmax
#
# `q` is `(T_q, hs)`, `k` and `v` are `(T_k, hs)` (one head, no mask). Return
# `softmax(q @ k.T / sqrt(hs)) @ v`, shape `(T_q, hs)`, **without** building the `(T_q, T_k)`
# score matrix: walk the keys in blocks of `block_k` and keep, for every query, a running
# maximum `m`, a running sum `l` of `exp(score - m)` and a running sum `o` of
# `exp(score - m) * v`. When a block raises the maximum from `m` to `m_new`, multiply what was
# summed so far (`l` and `o`) by `exp(m - m_new)`. At the end, `out = o / l`. The check compares
# with the plain formula (also on scores of size 1000, which overflow a naive `exp`) and
# measures that no array of `T_q * T_k` numbers was allocated.


# %%
def online_softmax_attention(q, k, v, block_k):
    """q (T_q, hs), k and v (T_k, hs) -> out (T_q, hs), one block of keys at a time."""
    raise NotImplementedError("Exercise 12.1: online_softmax_attention")


# %%
check("12.1")

# %% [markdown]
# ## Exercise 12.2: the parameters of a GPT-2
#
# Count the parameters of a GPT-2 with these sizes, as `Transformer(preset(...))` builds it:
# a token embedding (`vocab_size` x `n_embd`), learned positions (`block_size` x `n_embd`),
# `n_layer` blocks of [LayerNorm, attention (a `(C, 3C)` matrix for q, k, v and a `(C, C)`
# projection), LayerNorm, MLP (`(C, 4C)` then `(4C, C)`)], a final LayerNorm, and the output
# head tied to the token embedding (it adds nothing). Every linear layer has a bias and every
# LayerNorm a weight and a bias. GPT-2 small (50257, 1024, 12, 768) has 124,439,808.


# %%
def gpt2_parameter_count(vocab_size, block_size, n_layer, n_embd):
    """-> the number of parameters (an int)."""
    raise NotImplementedError("Exercise 12.2: gpt2_parameter_count")


# %%
check("12.2")

# %% [markdown]
# ## Exercise 12.3: the bytes of a KV cache
#
# While generating, each layer keeps a key and a value vector for every position of every
# sequence in the batch. With grouped-query attention only `n_kv_head` heads of `head_size`
# numbers are stored (the `n_head` query heads share them). Return the cache's size in bytes for
# `seq_len` positions of `batch_size` sequences, `bytes_per_number` bytes each (4 for float32,
# 2 for bfloat16).


# %%
def kv_cache_bytes(n_layer, n_head, n_kv_head, head_size, seq_len, batch_size, bytes_per_number):
    """-> bytes (an int)."""
    raise NotImplementedError("Exercise 12.3: kv_cache_bytes")


# %%
check("12.3")
