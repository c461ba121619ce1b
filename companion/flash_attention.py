"""FlashAttention's idea in NumPy: exact attention without the (T, T) matrix (Dao et al. 2022).

Standard attention builds all T_q x T_k scores, softmaxes each row, then mixes the values.
The softmax of a row can instead be built up one block of keys at a time, keeping three
running quantities per query (Milakov & Gimelshein 2018, "online softmax"):

    m   the largest score seen so far
    l   the sum of exp(score - m) so far
    o   the sum of exp(score - m) * v so far

When a new block raises the maximum from m to m', everything accumulated so far is rescaled
by exp(m - m'), so the result is exactly softmax(s) @ v once the last block is in: out = o / l.
Only a (block_q, block_k) tile of scores exists at any time.

On a GPU this is fast because the tile lives in on-chip memory and the T x T matrix never
travels to and from the slow main memory. In NumPy nothing lives on-chip: each tile is a
separate small array and a Python loop walks the tiles, so this is slower than the plain
version. It is here to show that the arithmetic is exact, and how little memory it needs.
"""

from __future__ import annotations

import math

import numpy as np


def flash_attention_forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = True,
                            block_q: int = 16, block_k: int = 16) -> np.ndarray:
    """q (B, nh, T_q, hs), k and v (B, nh, T_k, hs) -> out (B, nh, T_q, hs).

    With ``causal`` the queries are the last T_q of the T_k positions (as in
    ``companion.attention.causal_mask``), and key blocks entirely in a query block's future
    are skipped."""
    if q.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (B, nh, T_q, hs) and k, v (B, nh, T_k, hs), got {q.shape}, {k.shape}, {v.shape}")
    if block_q < 1 or block_k < 1:
        raise ValueError(f"block sizes must be positive, got block_q={block_q}, block_k={block_k}")
    B, nh, T_q, hs = q.shape
    T_k = k.shape[2]
    if causal and T_q > T_k:
        raise ValueError(f"causal attention needs T_q <= T_k, got T_q={T_q}, T_k={T_k}")
    scale = 1.0 / math.sqrt(hs)
    offset = T_k - T_q  # query i sits at position offset + i
    out = np.empty_like(q)  # (B, nh, T_q, hs)
    for i0 in range(0, T_q, block_q):
        qi = q[:, :, i0 : i0 + block_q] * scale  # (B, nh, bq, hs)
        bq = qi.shape[2]
        m = np.full((B, nh, bq, 1), -np.inf, dtype=q.dtype)  # running max
        l = np.zeros((B, nh, bq, 1), dtype=q.dtype)  # running sum of exp
        o = np.zeros((B, nh, bq, hs), dtype=q.dtype)  # running sum of exp * v
        last_key = offset + i0 + bq - 1 if causal else T_k - 1  # the furthest key any query here may see
        for j0 in range(0, last_key + 1, block_k):
            s = qi @ k[:, :, j0 : j0 + block_k].swapaxes(-2, -1)  # (B, nh, bq, bk): the only scores in memory
            if causal:
                rows = offset + i0 + np.arange(bq)[:, None]  # (bq, 1) query positions
                cols = j0 + np.arange(s.shape[-1])[None, :]  # (1, bk) key positions
                s = np.where(cols <= rows, s, -np.inf)
            m_new = np.maximum(m, s.max(axis=-1, keepdims=True))  # (B, nh, bq, 1)
            p = np.exp(s - m_new)  # (B, nh, bq, bk)
            correction = np.exp(m - m_new)  # rescales what was summed under the old max
            l = l * correction + p.sum(axis=-1, keepdims=True)
            o = o * correction + p @ v[:, :, j0 : j0 + block_k]  # (B, nh, bq, hs)
            m = m_new
        out[:, :, i0 : i0 + bq] = o / l
    return out


def peak_score_bytes(T_q: int, T_k: int, B: int, n_head: int, itemsize: int, block_q: int | None = None,
                     block_k: int | None = None) -> int:
    """Bytes of the largest score array alive at once: the full (T_q, T_k) matrix per head for
    standard attention (no blocks given), one (block_q, block_k) tile per head for the tiled one."""
    rows = T_q if block_q is None else min(block_q, T_q)
    cols = T_k if block_k is None else min(block_k, T_k)
    return B * n_head * rows * cols * itemsize
