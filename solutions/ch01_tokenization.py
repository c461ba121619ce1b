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
# # Chapter 1 exercises: byte-pair encoding
#
# Byte-level BPE (book chapter 1, `book/01_tokenization.md`) starts from the UTF-8 bytes of
# a text (ids 0-255) and repeatedly replaces the most frequent adjacent pair with a new id.
# Write each function where it says `raise NotImplementedError`, run its cell, then run the
# check cell under it: `check("1.1")` grades it with the course's tests and names the likely
# bug when something is off.

# %%
from companion.grading import check

# %% [markdown]
# ## Exercise 1.1: the merge step
#
# `merge(ids, pair, new_id)` returns a new list in which every occurrence of `pair` (two
# adjacent ids) is replaced by `new_id`, scanning left to right. Occurrences do not overlap:
# merging `(5, 5)` in `[5, 5, 5]` gives `[new_id, 5]`.


# %%
def merge(ids, pair, new_id):
    """ids: list of ints; pair: (a, b); -> a new list with each a, b replaced by new_id."""
    # BEGIN SOLUTION 1.1
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both halves of the pair are used up
        else:
            out.append(ids[i])
            i += 1
    return out
    # END SOLUTION


# %%
check("1.1")

# %% [markdown]
# ## Exercise 1.2: learning the merges
#
# `train_bpe(text, num_merges)` starts from `list(text.encode("utf-8"))` and, `num_merges`
# times: counts every adjacent pair of the current ids (overlapping pairs count: `[5, 5, 5]`
# has `(5, 5)` twice), picks the most frequent (on a tie, the smallest pair: compare `a`
# first, then `b`, as the book and the companion's `BPETokenizer.train` do), and merges it
# with the next new id, 256, 257, ... Return the merges in order, as a list of
# `((a, b), new_id)`. Stop early if fewer than two ids remain. Use your `merge`.
#
# The ids here have no special tokens: byte b is id b and merges start at 256. The
# companion reserves ids 0-3 for `<pad> <bos> <eos> <unk>`, so there byte b is id 4 + b and
# merges start at 260: every id is 4 higher, and the merges learned are the same.


# %%
def train_bpe(text, num_merges):
    """text: str -> list of ((a, b), new_id), in the order learned."""
    # BEGIN SOLUTION 1.2
    ids = list(text.encode("utf-8"))
    merges = []
    for n in range(num_merges):
        counts = {}
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # most frequent; tie: smallest
        ids = merge(ids, pair, 256 + n)
        merges.append((pair, 256 + n))
    return merges
    # END SOLUTION


# %%
check("1.2")

# %% [markdown]
# ## Exercise 1.3: the encoder
#
# `encode(text, merges)` turns a text into ids: start from its UTF-8 bytes and apply the
# merges **in the order they were learned** (a later merge may use an id an earlier one made).


# %%
def encode(text, merges):
    """text: str, merges from train_bpe -> list of ids."""
    # BEGIN SOLUTION 1.3
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges:
        ids = merge(ids, pair, new_id)
    return ids
    # END SOLUTION


# %%
check("1.3")
