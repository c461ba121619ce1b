"""Three ways to tell the model where a token sits.

- learned:    a trainable table wpe (block_size, C), added to the token embeddings (GPT-2).
- sinusoidal: a fixed table, PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(...),
              added to the token embeddings (Vaswani et al. 2017). No parameters.
- rotary:     RoPE (Su et al. 2021) adds nothing to the embeddings. It rotates each pair of
              query/key channels (x[2i], x[2i+1]) by the angle t * theta_i, theta_i =
              base^(-2i/hs), inside attention. A rotation by angle a on the query and b on the
              key leaves q.k depending only on a - b: the score sees relative position.

Rotation is orthogonal, so RoPE's backward is the rotation by the opposite angle.
"""

from __future__ import annotations

import numpy as np

from .backend import Array, xp
from .embedding import embedding_backward, embedding_forward
from .kernels import plugged
from .module import Module


def sinusoidal_table(block_size: int, n_embd: int, dtype) -> Array:
    """PE (block_size, n_embd): sin on even channels, cos on odd ones."""
    t = np.arange(block_size)[:, None]  # (T, 1)
    freq = 10000.0 ** (-np.arange(0, n_embd, 2) / n_embd)  # (C/2,)
    table = np.zeros((block_size, n_embd))
    table[:, 0::2] = np.sin(t * freq)
    table[:, 1::2] = np.cos(t * freq)[:, : n_embd // 2]
    return xp.asarray(table, dtype=dtype)


class LearnedPositions(Module):
    """wpe: one trainable vector per position 0 .. block_size-1."""

    def __init__(self, block_size: int, n_embd: int, rng, dtype):
        super().__init__()
        self.add_param("w", xp.asarray(rng.normal(0.0, 0.02, size=(block_size, n_embd)), dtype=dtype))

    def forward(self, T: int, start: int = 0) -> Array:
        pos = xp.arange(start, start + T)[None, :]  # (1, T)
        out, self.cache = plugged(embedding_forward)(pos, self.params["w"])  # (1, T, C)
        return out

    def backward(self, dout: Array) -> None:
        """dout (B, T, C): every sequence in the batch used the same rows."""
        self.grads["w"] += plugged(embedding_backward)(dout.sum(axis=0, keepdims=True), self.cache)


class SinusoidalPositions(Module):
    """The fixed table of Vaswani et al.; nothing to learn, so backward does nothing."""

    def __init__(self, block_size: int, n_embd: int, dtype):
        super().__init__()
        self.table = plugged(sinusoidal_table)(block_size, n_embd, dtype)  # (block_size, C)

    def forward(self, T: int, start: int = 0) -> Array:
        return self.table[None, start : start + T]  # (1, T, C)

    def backward(self, dout: Array) -> None:
        pass


def rope_tables(block_size: int, head_size: int, base: float, dtype) -> tuple[Array, Array]:
    """cos, sin, each (block_size, head_size // 2): angle t * base^(-2i/hs) for pair i."""
    theta = base ** (-np.arange(0, head_size, 2) / head_size)  # (hs/2,)
    angles = np.arange(block_size)[:, None] * theta[None, :]  # (T, hs/2)
    return xp.asarray(np.cos(angles), dtype=dtype), xp.asarray(np.sin(angles), dtype=dtype)


def rope_forward(x: Array, cos: Array, sin: Array) -> Array:
    """Rotate channel pairs (2i, 2i+1) of x (B, nh, T, hs) by the angles in cos/sin (T, hs/2)."""
    x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, nh, T, hs/2) each
    out = xp.empty_like(x)  # (B, nh, T, hs)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def rope_backward(dout: Array, cos: Array, sin: Array) -> Array:
    """The transpose of a rotation is the rotation by minus the angle."""
    return rope_forward(dout, cos, -sin)
