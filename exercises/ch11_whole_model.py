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
# # Chapter 11 exercises: the whole model
#
# Book chapter 11 (`book/11_whole_model.md`): what a model of a given shape costs, how to
# compare language models whose tokenizers differ, and how the shares of a batch split across
# processes add up to the whole batch's gradient. Write each function, run its cell, then its
# check cell. A config is passed as a plain dict, `companion.preset("baby").to_dict()`, with
# every family choice already filled in: `vocab_size`, `block_size`, `n_layer`, `n_head`,
# `n_embd`, `ffn_hidden`, `norm` ("layernorm" or "rmsnorm"), `positions` ("learned",
# "sinusoidal" or "rope"), `ffn` ("relu", "gelu" or "swiglu"), `bias`, `tie_weights` and
# `norm_placement` ("pre" or "post").

# %%
import math

import numpy as np

import companion
from companion.grading import check

# %% [markdown]
# ## Exercise 11.1: parameters by component
#
# Return a dict with the number of parameters of each component, all layers summed, and their
# `"total"` (C = `n_embd`, H = `ffn_hidden`, V = `vocab_size`, L = `n_layer`):
#
# - `"token_embedding"`: the (V, C) table;
# - `"positions"`: a (block_size, C) table for learned positions, nothing for sinusoidal or RoPE;
# - `"attention"`: per layer, the (C, 3C) and (C, C) matrices, plus their biases (3C and C) when `bias`;
# - `"feedforward"`: per layer, an MLP's (C, H) and (H, C) matrices plus biases (H and C) when
#   `bias`; SwiGLU has three matrices, (C, H), (C, H) and (H, C), and no biases;
# - `"norms"`: two per block, and a final one before the head in pre-norm; each has C weights,
#   and a LayerNorm with `bias` also C biases (RMSNorm never has a bias);
# - `"head"`: the (C, V) matrix, or nothing when `tie_weights` (it reuses the embedding).
#
# The check compares with the built model's `num_params()` and with GPT-2 small's
# 124,439,808 and LLaMA-7B's 6,738,415,616.


# %%
def count_parameters(config):
    """config: a dict of ModelConfig fields -> {component: int, ..., "total": int}."""
    raise NotImplementedError("Exercise 11.1: count_parameters")


# %%
check("11.1")

# %% [markdown]
# ## Exercise 11.2: forward FLOPs by component
#
# A matrix product (m, k) @ (k, n) costs 2·m·k·n FLOPs (a multiply and an add per term). Count
# only matrix products, for one forward pass over `batch_size` sequences of `seq_len` tokens
# (B, T), all layers summed, and return a dict with `"total"`:
#
# - `"qkv"`: x (B·T, C) @ W_qkv (C, 3C);
# - `"attn_scores"`: q @ kᵀ, for each batch element and each of the `n_head` heads,
#   (T, hs) @ (hs, T), where hs = C / n_head;
# - `"attn_mix"`: att @ v, per batch element and head, (T, T) @ (T, hs) (all T × T computed, then masked);
# - `"attn_proj"`: y (B·T, C) @ W_o (C, C);
# - `"ffn"`: (B·T, C) @ (C, H) and (B·T, H) @ (H, C); SwiGLU has one more (C, H) product;
# - `"head"`: (B·T, C) @ (C, V), whether or not the head is tied (a tied head still multiplies).


# %%
def count_forward_flops(config, batch_size, seq_len):
    """-> {"qkv", "attn_scores", "attn_mix", "attn_proj", "ffn", "head", "total"}: ints."""
    raise NotImplementedError("Exercise 11.2: count_forward_flops")


# %%
check("11.2")

# %% [markdown]
# ## Exercise 11.3: bits per character
#
# Two models with different tokenizers scored the same text: `logits` (N, T, V) and `targets`
# (N, T) are one model's chunks of that text, `mask` (N, T) is 1 at the positions that hold one of
# the text's tokens and 0 at padding, and `n_chars` is the number of characters the text has.
# Return the text's bits per character: the total negative log-likelihood of the target tokens
# (in nats, summed over the unmasked positions), divided by `n_chars` and by ln 2. Compute the
# log-softmax stably (subtract each row's maximum): the check also uses logits of 1000.


# %%
def bits_per_character(logits, targets, mask, n_chars):
    """logits (N, T, V), targets (N, T) ints, mask (N, T) 0/1, n_chars int -> float."""
    raise NotImplementedError("Exercise 11.3: bits_per_character")


# %%
check("11.3")


# %% [markdown]
# ## Exercise 11.4: activation memory against the context length
#
# Return the bytes that one forward pass over `batch_size` sequences of `seq_len` tokens leaves
# in the model's caches for backward, by component, all layers summed, and their `"total"`.
# Numbers take `np.dtype(dtype).itemsize` bytes; token and position ids are numpy's default
# integers, `np.dtype(np.intp).itemsize` bytes each. With B, T, C, H, L = batch_size, seq_len,
# `n_embd`, `ffn_hidden`, `n_layer`, and nh = `n_head`:
#
# - `"embedding"`: the token ids, (B, T);
# - `"positions"`: learned positions keep their position ids, (T,); sinusoidal and RoPE nothing;
# - `"norms"`: every norm (two per block, plus a final one in pre-norm) keeps its normalised
#   input (B, T, C) and one 1/std per position, (B, T, 1);
# - `"attention"`: per layer, the input (B, T, C), the q, k, v array (B, T, 3C), with RoPE also
#   the rotated copies of q and k (two more (B, T, C)), the weights (B, nh, T, T), and the
#   joined heads (B, T, C) that W_o reads;
# - `"feedforward"`: per layer, the input (B, T, C) and arrays of (B, T, H): 3 for GELU
#   (pre-activation, tanh, output), 2 for ReLU, 5 for SwiGLU (gate, up, sigmoid, silu, output);
# - `"head"`: its input (B, T, C).
#
# The check compares with the bytes a built model's caches really hold, and looks at how the
# total grows with T: only the attention weights grow as T².


# %%
def activation_bytes(config, batch_size, seq_len, dtype="float32"):
    """-> {"embedding", "positions", "norms", "attention", "feedforward", "head", "total"}: ints."""
    raise NotImplementedError("Exercise 11.4: activation_bytes")


# %%
check("11.4")


# %% [markdown]
# ## Exercise 11.5: one share of a data-parallel batch
#
# Data parallelism splits a batch's rows into shares, one per process. The loss is the mean over
# the *whole* batch's counted tokens, `n_total` of them, and the loss mask may count different
# numbers of tokens in different shares. For one share's `logits` (b, T, V), `targets` (b, T)
# and loss `mask` (b, T) (1: the position counts, 0: it does not), return `(loss_sum, dlogits)`:
#
# - `loss_sum`: a float, the share's negative log-likelihood summed over its counted tokens
#   (the caller adds the shares' sums and divides once by `n_total`);
# - `dlogits` (b, T, V): the share's rows of the gradient of the whole batch's mean loss, so that
#   the shares' `dlogits`, concatenated, are exactly `cross_entropy_backward` of the whole batch.
#
# Each counted token's row is softmax minus one-hot, as in exercise 7.3; work out what it is
# divided by. A share whose mask counts no token returns 0.0 and zeros. Compute the log-softmax
# stably (subtract each row's maximum), and leave the arrays you are given unchanged. You may
# call chapter 7's `cross_entropy_forward` and `cross_entropy_backward` (`companion.loss` has
# them): the scaling is this exercise. The check splits batches into two and three shares whose
# masks count different numbers of tokens.


# %%
def share_loss_and_dlogits(logits, targets, mask, n_total):
    """logits (b, T, V), targets (b, T) ints, mask (b, T) 0/1, n_total: the whole batch's counted
    tokens -> (loss_sum: float, dlogits (b, T, V))."""
    raise NotImplementedError("Exercise 11.5: share_loss_and_dlogits")


# %%
check("11.5")
