# ---
# jupyter:
#   course:
#     budget_s: 20
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
# # Chapter 13 exercises: what the model learned
#
# Book chapter 13 (`book/13_interpretability.md`): two tools for reading a trained model, each a
# few lines of NumPy on arrays the model already exposes. Write each function, run its cell, then
# its check cell.

# %%
import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 13.1: the induction score
#
# `att` holds one layer's attention weights, shape `(B, n_head, T, T)`: `att[b, h, i, j]` is how much
# query `i` of sequence `b` reads from key `j`. Sequence `b` repeats with period `periods[b]`: its
# token at position `i >= p` equals the one at `i - p`. An induction head, at query `i`, looks at the
# token that *followed* the current token's previous occurrence: key `i - p + 1`.
#
# Return, for every head, the weight on that key, averaged first over the queries of the *first
# repeat* of each sequence, `i = p .. min(2p, T) - 1`, and then over the sequences: an array of shape
# `(n_head,)`. (Later repeats give a query several earlier occurrences to split its attention over;
# on the first repeat each has exactly one. The chapter scores its heads the same way.)


# %%
def induction_scores(att, periods):
    """att (B, n_head, T, T), periods (B,) ints -> (n_head,)."""
    # BEGIN SOLUTION 13.1
    B, T = att.shape[0], att.shape[-1]
    per_sequence = []
    for b in range(B):
        p = int(periods[b])
        i = np.arange(p, min(2 * p, T))  # the first repeat: each query's token occurred once before, p back
        per_sequence.append(att[b, :, i, i - p + 1].mean(axis=0))  # (n_head,)
    return np.mean(per_sequence, axis=0)
    # END SOLUTION


# %%
check("13.1")

# %% [markdown]
# ## Exercise 13.2: removing one head through W_O
#
# The heads' outputs, each `head_size = C // n_head` numbers, are concatenated into `(B, T, C)` and
# multiplied by the output projection `w_proj` of shape `(C, C)` (the companion stores a linear
# layer's weight as `(in, out)`). So head `h` reaches the residual stream only through rows
# `h * head_size` to `(h + 1) * head_size` of `w_proj`. Return a *copy* of `w_proj` with those rows
# set to zero (leave `w_proj` itself unchanged): loading it into the model removes head `h` exactly.


# %%
def zero_head_rows(w_proj, head, n_head):
    """w_proj (C, C) -> a copy (C, C) in which head ``head``'s rows are zero."""
    # BEGIN SOLUTION 13.2
    hs = w_proj.shape[0] // n_head
    out = w_proj.copy()
    out[head * hs:(head + 1) * hs] = 0.0  # (hs, C): this head's only path to the output
    return out
    # END SOLUTION


# %%
check("13.2")
