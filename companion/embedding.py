"""Token embedding: a lookup table, out[b, t] = w[idx[b, t]].

Backward scatters each position's gradient back into the row it read. A token that
appears several times in the batch collects the sum of all its positions' gradients,
which is why it is ``add_at`` (an unbuffered add) and not ``dw[idx] += dout``,
which would keep only the last of the repeated rows.
"""

from __future__ import annotations

from .backend import Array, add_at, xp
from .kernels import plugged
from .module import Module


def check_token_ids(idx: Array, vocab_size: int) -> None:
    """Token ids must be integers in [0, vocab_size); say which one is not."""
    if not hasattr(idx, "dtype") or idx.dtype.kind not in "iu":
        kind = getattr(getattr(idx, "dtype", None), "name", type(idx).__name__)
        raise TypeError(f"token ids must be an integer array, got {kind}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise ValueError(f"token id {bad} is outside the vocabulary [0, {vocab_size})")


def embedding_forward(idx: Array, w: Array) -> tuple[Array, tuple]:
    """idx (B, T) ints, w (vocab_size, C) -> out (B, T, C)."""
    out = w[idx]  # (B, T, C)
    return out, (idx, w.shape)


def embedding_backward(dout: Array, cache: tuple) -> Array:
    """dout (B, T, C) -> dw (vocab_size, C)."""
    idx, shape = cache
    dw = xp.zeros(shape, dtype=dout.dtype)  # (vocab_size, C)
    add_at(dw, idx.reshape(-1), dout.reshape(-1, shape[1]))
    return dw


class Embedding(Module):
    """wte: a trainable table ``w`` (num, C), one row per token id."""

    def __init__(self, num: int, n_embd: int, rng, dtype, std: float = 0.02):
        super().__init__()
        self.add_param("w", xp.asarray(rng.normal(0.0, std, size=(num, n_embd)), dtype=dtype))

    def forward(self, idx: Array) -> Array:
        check_token_ids(idx, self.params["w"].shape[0])
        out, self.cache = plugged(embedding_forward)(idx, self.params["w"])
        return out

    def backward(self, dout: Array) -> None:
        self.grads["w"] += plugged(embedding_backward)(dout, self.cache)
