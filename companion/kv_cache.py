"""KV cache: decode one token at a time without recomputing the past.

At step t the new token's query must meet the keys and values of every earlier token.
Those never change (the model is causal), so each layer keeps them here and the new
token's k, v are written after them. Decoding n tokens costs O(n) projections instead
of O(n^2), and the logits are those of a full recomputation.
"""

from __future__ import annotations

from .backend import Array, xp


class KVCache:
    def __init__(self, n_layer: int, batch_size: int, n_head: int, block_size: int, head_size: int, dtype):
        shape = (batch_size, n_head, block_size, head_size)
        self.k = [xp.zeros(shape, dtype=dtype) for _ in range(n_layer)]  # (B, nh, block_size, hs) each
        self.v = [xp.zeros(shape, dtype=dtype) for _ in range(n_layer)]
        self.block_size = block_size
        self.batch_size = batch_size  # the model refuses a batch of another size
        self.length = 0  # tokens stored so far (the same in every layer)
        self._pending = 0  # tokens being added by the forward pass under way

    def append(self, layer: int, k: Array, v: Array) -> tuple[Array, Array]:
        """Store k, v (B, nh, T, hs) after the cached ones; return all keys and values so far."""
        T = k.shape[2]
        end = self.length + T
        if end > self.block_size:
            raise ValueError(f"sequence too long: {end} tokens exceed block_size {self.block_size}")
        self.k[layer][:, :, self.length : end] = k
        self.v[layer][:, :, self.length : end] = v
        self._pending = T
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # (B, nh, end, hs)

    def advance(self) -> None:
        """Called once per forward pass, after the last layer has appended."""
        self.length += self._pending
        self._pending = 0
