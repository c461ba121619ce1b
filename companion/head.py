"""The output head: one score (logit) per vocabulary entry at every position.

    logits = x @ w_head               w_head (C, vocab_size)

With weight tying (Press & Wolf 2017) there is no w_head: the head reuses the token
embedding, logits = x @ wte.T. The same matrix then gets two gradients, one from the
lookup at the bottom and one from the head at the top; because every backward *adds*
into ``grads``, the embedding's gradient ends up as their sum with no special code.
"""

from __future__ import annotations

from .backend import Array
from .embedding import Embedding
from .kernels import plugged
from .linear import Linear, linear_backward, linear_forward
from .module import Module


class OutputHead(Module):
    def __init__(self, config, rng, dtype, tied_embedding: Embedding | None = None):
        super().__init__()
        # a leading underscore: the tied embedding is not a child, so its matrix is counted once
        self._tied = tied_embedding
        self.proj = None if tied_embedding is not None else Linear(config.n_embd, config.vocab_size, False, rng, dtype)

    def forward(self, x: Array) -> Array:
        """x (B, T, C) -> logits (B, T, vocab_size)."""
        if self.proj is not None:
            return self.proj(x)
        logits, self.cache = plugged(linear_forward)(x, self._tied.params["w"].T, None)  # (B, T, V)
        return logits

    def backward(self, dlogits: Array) -> Array:
        if self.proj is not None:
            return self.proj.backward(dlogits)
        dx, dw, _ = plugged(linear_backward)(dlogits, self.cache)  # dw (C, V)
        self._tied.grads["w"] += dw.T  # the second use of the shared matrix
        return dx
