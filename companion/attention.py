"""Multi-head causal self-attention (Vaswani et al. 2017), all heads in one batched matmul.

For each head, with q, k, v of shape (T, hs):

    att = softmax(q @ k.T / sqrt(hs) + mask)      out = att @ v

The mask puts -inf where a query may not look: at future positions (causal), and at
padding keys when a padding mask is given. Dividing by sqrt(hs) keeps the scores' variance
near 1 whatever the head size when q and k have entries of variance about 1 (Vaswani et al.'s
assumption: true during training and in wide models), so the softmax does not saturate. At a
std-0.02 initialisation q and k are tiny and every score is near 0 with or without the scale.

Heads are not a Python loop: q, k, v are reshaped to (B, nh, T, hs) and one matmul
serves every batch element and every head at once. The last product, att @ v, writes its result
straight into (B, T, nh, hs) memory (``matmul``'s ``out=``, seen as (B, nh, T, hs)), where the
layer reads each token's heads side by side as (B, T, C) without a copy.

Dropout (training only, ``config.dropout`` > 0) zeroes attention weights after the softmax, as
GPT-2 does. It is applied outside the kernel: ``attention_forward`` keeps its contract, and
the layer drops the weights it returns and multiplies by v again (out = dropout(att) @ v);
backward goes through that product and the dropout, then ``attention_weights_backward``.

Backward, with s the scaled scores and a = softmax(s):
    dv = a.T @ dout      da = dout @ v.T      ds = a * (da - sum(da * a, axis=-1))
    dq = ds @ k / sqrt(hs)      dk = ds.T @ q / sqrt(hs)
"""

from __future__ import annotations

import math

from .backend import Array, xp
from .dropout import Dropout
from .grouped_query import repeat_kv, repeat_kv_backward
from .kernels import plugged
from .kv_cache import KVCache
from .linear import Linear
from .module import Module, check_input
from .positions import rope_backward, rope_forward, rope_tables


def causal_mask(T_q: int, T_k: int) -> Array:
    """(T_q, T_k) bool, True where query i may attend to key j. The queries are the
    last T_q of T_k positions, so query i sits at position T_k - T_q + i."""
    offset = T_k - T_q
    return xp.arange(T_k)[None, :] <= xp.arange(offset, offset + T_q)[:, None]  # (T_q, T_k)


def softmax_rows(s: Array) -> Array:
    """Softmax over the last axis. A row that is all -inf (a query that may see nothing,
    only possible with padding) comes out all zeros rather than NaN.

    Speed ("Making NumPy fast"): the rows are short (T_k numbers) and there are many of them,
    and NumPy's ``max`` and ``sum`` along a short last axis pay a fixed cost per row. So the row
    max is read at the row's ``argmax`` (the cheaper of the two per short row on the NumPy 2.4
    this was written with; chapter 11 measures both wherever it runs), and the row sum is a
    matrix-vector product with a vector of ones, which BLAS does a matrix of rows at a time.
    Each row is then scaled by the reciprocal of its sum: one division per row and a
    multiplication per number, where ``e /= z`` divides every number. Same mathematics, other
    rounding: the float32 additions come in another order than in ``sum``, and ``e * (1 / z)``
    rounds twice where ``e / z`` rounds once, so the results agree to rounding, not bit for bit."""
    m = xp.take_along_axis(s, s.argmax(axis=-1)[..., None], axis=-1)  # (..., 1), each row's max
    m = xp.where(xp.isfinite(m), m, 0.0)  # (..., 1)
    e = s - m  # (..., T_k): the one new array; exp and the division then work in place
    xp.exp(e, out=e)
    z = (e @ xp.ones(e.shape[-1], dtype=e.dtype))[..., None]  # (..., 1), each row's sum
    e *= 1.0 / xp.where(z > 0, z, 1.0)  # one division per row, then a multiplication per number
    return e


def additive_mask(mask: Array, dtype) -> Array:
    """The boolean mask as numbers to add to the scores: 0 where allowed, -inf elsewhere.
    Built on the mask's own small shape ((T_q, T_k), or (B, 1, T_q, T_k) with padding), then
    added to the (B, nh, T_q, T_k) scores in place: one pass, where ``where(mask, s, -inf)``
    would read both and write a new array."""
    return xp.where(mask, 0.0, -xp.inf).astype(dtype)  # shape of mask


def attention_forward(q: Array, k: Array, v: Array, mask: Array) -> tuple[Array, tuple]:
    """q (B, nh, T_q, hs), k and v (B, nh, T_k, hs), mask broadcastable to (B, nh, T_q, T_k),
    True where attending is allowed -> out (B, nh, T_q, hs)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.swapaxes(-2, -1)  # (B, nh, T_q, T_k)
    s *= scale  # in place: no second (B, nh, T_q, T_k) array
    s += additive_mask(mask, s.dtype)  # -inf where masked: exp(-inf) = 0 weight
    att = plugged(softmax_rows)(s)  # (B, nh, T_q, T_k)
    B, nh, T_q, hs = q.shape
    # the product goes straight where the layer reads it, each token's heads side by side in memory:
    # (B, T_q, nh, hs) seen as (B, nh, T_q, hs), so the layer's reshape to (B, T_q, C) copies nothing
    out = xp.empty((B, T_q, nh, v.shape[-1]), dtype=v.dtype).transpose(0, 2, 1, 3)  # (B, nh, T_q, hs)
    xp.matmul(att, v, out=out)
    return out, (q, k, v, att, scale)


def attention_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """dout (B, nh, T_q, hs) -> dq, dk, dv with the shapes of q, k, v."""
    q, k, v, att, scale = cache
    dv = att.swapaxes(-2, -1) @ dout  # (B, nh, T_k, hs)
    datt = dout @ v.swapaxes(-2, -1)  # (B, nh, T_q, T_k)
    dq, dk = attention_weights_backward(datt, cache)
    return dq, dk, dv


def attention_weights_backward(datt: Array, cache: tuple) -> tuple[Array, Array]:
    """The part of attention's backward before the weights: datt (B, nh, T_q, T_k), the gradient
    of the softmax weights (overwritten) -> dq, dk. Used on its own when dropout sits between the
    weights and the product with v."""
    q, k, v, att, scale = cache
    ds = datt  # softmax backward, in place: ds = att * (datt - sum(datt * att)) * scale
    ds -= xp.einsum("...ij,...ij->...i", datt, att)[..., None]  # (B, nh, T_q, 1): each row's datt . att
    ds *= att
    ds *= scale
    dq = ds @ k  # (B, nh, T_q, hs)
    dk = ds.swapaxes(-2, -1) @ q  # (B, nh, T_k, hs)
    return dq, dk


class CausalSelfAttention(Module):
    """Projects x to q, k, v with one (C, 3C) matrix, attends per head, projects back.
    With n_kv_head < n_head, k and v have fewer heads: (C, C + 2 n_kv_head hs) (grouped_query.py)."""

    def __init__(self, config, rng, dtype):
        super().__init__()
        C, self.n_head, self.n_kv_head = config.n_embd, config.n_head, config.n_kv_head
        # q gets n_head heads, k and v n_kv_head each (grouped-query attention: grouped_query.py)
        self.c_attn = Linear(C, C + 2 * self.n_kv_head * config.head_size, config.bias, rng, dtype)
        # the projection back into the residual stream is scaled down (GPT-2), one per layer
        self.c_proj = Linear(C, C, config.bias, rng, dtype, std=0.02 / math.sqrt(2 * config.n_layer))
        self.attn_drop = Dropout(config.dropout)  # on the weights after the softmax (GPT-2's attn_dropout)
        self.rope = None
        if config.positions == "rope":
            self.rope = rope_tables(config.block_size, config.head_size, config.rope_base, dtype)

    def forward(self, x: Array, pad_mask: Array | None = None, kv_cache: KVCache | None = None,
                layer: int = 0) -> Array:
        """x (B, T, C); pad_mask (B, T_k) bool, True at real tokens; kv_cache for decoding."""
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        nkv = self.n_kv_head
        start = kv_cache.length if kv_cache is not None else 0
        qkv = self.c_attn(x)  # (B, T, C + 2 nkv hs): 3C when nkv = nh
        q, k, v = xp.split(qkv, [C, C + nkv * hs], axis=-1)  # (B, T, C), (B, T, nkv hs), (B, T, nkv hs)
        q = q.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
        k, v = (a.reshape(B, T, nkv, hs).transpose(0, 2, 1, 3) for a in (k, v))  # (B, nkv, T, hs)
        if self.rope is not None:
            cos, sin = (a[start : start + T] for a in self.rope)  # (T, hs/2)
            q, k = plugged(rope_forward)(q, cos, sin), plugged(rope_forward)(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.append(layer, k, v)  # (B, nkv, start + T, hs)
        k, v = repeat_kv(k, nh // nkv), repeat_kv(v, nh // nkv)  # (B, nh, T_k, hs): the kernel sees n_head heads
        mask = plugged(causal_mask)(T, k.shape[2])  # (T, T_k)
        if pad_mask is not None:
            check_input(pad_mask, "pad_mask", 2)
            if pad_mask.shape != (B, k.shape[2]):
                raise ValueError(f"pad_mask must have shape (B, T_k) = {(B, k.shape[2])}, got {pad_mask.shape}")
            mask = mask & pad_mask[:, None, None, :].astype(bool)  # (B, 1, T, T_k)
        y, att_cache = plugged(attention_forward)(q, k, v, mask)  # (B, nh, T, hs)
        att_dropped = None
        if self.attn_drop.active:  # training with dropout: drop weights after the kernel, mix v again
            att_dropped = self.attn_drop(att_cache[3])  # (B, nh, T, T_k)
            y = att_dropped @ v  # (B, nh, T, hs)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # heads side by side: a view if they already lie so in memory
        self.cache = (att_cache, start, T, att_dropped)
        return self.c_proj(y)

    def backward(self, dout: Array) -> Array:
        (att_cache, start, T, att_dropped) = self.cache
        dy = self.c_proj.backward(dout)  # (B, T, C)
        B, _, C = dy.shape
        nh, hs = self.n_head, C // self.n_head
        dy = dy.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
        if att_dropped is None:
            dq, dk, dv = plugged(attention_backward)(dy, att_cache)
        else:  # y = dropout(att) @ v: back through the product, the dropout, then the softmax
            v = att_cache[2]
            dv = att_dropped.swapaxes(-2, -1) @ dy  # (B, nh, T_k, hs)
            datt = self.attn_drop.backward(dy @ v.swapaxes(-2, -1))  # (B, nh, T, T_k)
            dq, dk = attention_weights_backward(datt, att_cache)
        dk, dv = repeat_kv_backward(dk, nh // self.n_kv_head), repeat_kv_backward(dv, nh // self.n_kv_head)  # (B, nkv, T, hs)
        if self.rope is not None:
            cos, sin = (a[start : start + T] for a in self.rope)
            dq, dk = plugged(rope_backward)(dq, cos, sin), plugged(rope_backward)(dk, cos, sin)
        # the heads go back side by side, each gradient copied once, straight into its part of dqkv
        nkv = self.n_kv_head
        dqkv = xp.empty((B, T, nh + 2 * nkv, hs), dtype=dq.dtype)  # (B, T, nh + 2 nkv, hs)
        dqkv[:, :, :nh] = dq.transpose(0, 2, 1, 3)  # (B, T, nh, hs)
        dqkv[:, :, nh : nh + nkv] = dk.transpose(0, 2, 1, 3)  # (B, T, nkv, hs)
        dqkv[:, :, nh + nkv :] = dv.transpose(0, 2, 1, 3)  # (B, T, nkv, hs)
        return self.c_attn.backward(dqkv.reshape(B, T, (nh + 2 * nkv) * hs))  # (B, T, C + 2 nkv hs)

    @property
    def weights(self) -> Array:
        """The attention weights of the last forward pass, (B, nh, T_q, T_k) (before any dropout)."""
        if self.cache is None:
            raise RuntimeError("run a forward pass first: attention weights exist only after one")
        return self.cache[0][3]
