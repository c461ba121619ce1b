"""Grouped-query attention (Ainslie et al. 2023): fewer key/value heads than query heads.

With n_head query heads and n_kv_head key/value heads (n_kv_head divides n_head), query head
h reads key/value head h // g, where g = n_head // n_kv_head is the group size. n_kv_head =
n_head is ordinary multi-head attention; n_kv_head = 1 is multi-query attention (Shazeer 2019).
The KV cache holds n_kv_head heads, so it shrinks by g; the projections to k and v shrink by g.

The attention kernel (``attention_forward`` / ``attention_backward``, chapter 3's exercise)
keeps its contract, q, k, v all (B, n_head, T, hs): the shared heads are repeated *outside* it,

    k_rep = repeat_kv(k, g)        (B, n_kv_head, T, hs) -> (B, n_head, T, hs)

and since one head's k feeds g query heads, its gradient is the sum of theirs:

    dk = repeat_kv_backward(dk_rep, g)     sum over each group of g consecutive heads
"""

from __future__ import annotations

from .backend import Array, xp


def repeat_kv(x: Array, groups: int) -> Array:
    """x (B, n_kv_head, T, hs) -> (B, n_kv_head * groups, T, hs), each head repeated ``groups``
    times in place (head h of the result is head h // groups of x, as torch.repeat_interleave)."""
    if groups == 1:
        return x  # multi-head attention: nothing to share, nothing to copy
    return xp.repeat(x, groups, axis=1)  # (B, nh, T, hs)


def repeat_kv_backward(dout: Array, groups: int) -> Array:
    """dout (B, n_kv_head * groups, T, hs) -> (B, n_kv_head, T, hs): each shared head's gradient
    is the sum over the query heads that read it."""
    if groups == 1:
        return dout
    B, nh, T, hs = dout.shape
    return dout.reshape(B, nh // groups, groups, T, hs).sum(axis=2)  # (B, n_kv_head, T, hs)
