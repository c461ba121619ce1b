"""The decoder-only transformer language model, both families in one class.

    idx (B, T) --embed--> x (B, T, C) --n_layer blocks--> norm --head--> logits (B, T, vocab_size)

``forward`` runs the pipeline and keeps each layer's cache; ``backward(dlogits)`` walks it in
reverse and leaves every parameter's gradient in ``gradients()``. A training step is

    logits = model.forward(idx)
    loss, cache = cross_entropy_forward(logits, targets, mask)
    model.zero_grad(); model.backward(cross_entropy_backward(cache)); optimizer.step()

Dropout (``config.dropout`` > 0) acts only in training mode: ``model.train(rng)`` hands the
generator that draws the masks to every Dropout module, ``model.eval()`` takes it back. A new
model is in evaluation mode; the training loop switches to training for its steps and back to
evaluation to score the model, and evaluation and generation always run without dropout.
"""

from __future__ import annotations

import copy

import numpy as np

from .backend import Array, dtype_of
from .block import Block
from .config import ModelConfig
from .dropout import Dropout
from .embedding import Embedding, check_token_ids
from .head import OutputHead
from .kv_cache import KVCache
from .module import Module, pack_parameters
from .norms import make_norm
from .positions import LearnedPositions, SinusoidalPositions


class Transformer(Module):
    def __init__(self, config: ModelConfig, rng: np.random.Generator):
        super().__init__()
        if not isinstance(rng, np.random.Generator):
            raise TypeError("pass an explicit numpy.random.Generator, e.g. np.random.default_rng(0)")
        self.config = config
        dtype = dtype_of(config.dtype)
        self.wte = Embedding(config.vocab_size, config.n_embd, rng, dtype)
        self.wpe = None
        if config.positions == "learned":
            self.wpe = LearnedPositions(config.block_size, config.n_embd, rng, dtype)
        elif config.positions == "sinusoidal":
            self.wpe = SinusoidalPositions(config.block_size, config.n_embd, dtype)
        self.drop = Dropout(config.dropout)  # on the embeddings' sum; off until model.train(rng)
        self.blocks = [Block(config, rng, dtype, layer) for layer in range(config.n_layer)]
        # post-norm blocks already end in a norm; pre-norm needs one before the head
        self.norm_f = make_norm(config, dtype) if config.norm_placement == "pre" else None
        self.head = OutputHead(config, rng, dtype, self.wte if config.tie_weights else None)
        # every parameter (and gradient) becomes a view of one buffer: the optimizer updates it whole
        self._flat_params, self._flat_grads = pack_parameters(self)

    def zero_grad(self) -> None:
        self._flat_grads.fill(0)  # every gradient array is a view of this buffer

    def __deepcopy__(self, memo):
        """A deep copy that owns one buffer again: ``copy.deepcopy`` copies every view on its own,
        which would leave the copy's parameters outside its buffer (and zero_grad clearing nothing)."""
        twin = type(self).__new__(type(self))
        memo[id(self)] = twin
        for name, value in vars(self).items():
            setattr(twin, name, copy.deepcopy(value, memo))
        twin._flat_params, twin._flat_grads = pack_parameters(twin)
        return twin

    def forward(self, idx: Array, pad_mask: Array | None = None, kv_cache: KVCache | None = None) -> Array:
        """idx (B, T) token ids -> logits (B, T, vocab_size).

        pad_mask (B, T_total) marks real tokens (True) so that no query attends to padding;
        kv_cache (from ``new_kv_cache``) makes this call process only the new tokens."""
        check_token_ids(idx, self.config.vocab_size)
        if idx.ndim != 2:
            raise ValueError(f"token ids must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        if B == 0 or T == 0:
            raise ValueError(f"the batch is empty: token ids of shape {tuple(idx.shape)} (B, T) hold no token; "
                             f"give at least one sequence of at least one token")
        if kv_cache is not None and kv_cache.batch_size != B:
            raise ValueError(f"the KV cache was made for batch size {kv_cache.batch_size} but this batch has "
                             f"{B} sequences; make one with model.new_kv_cache({B})")
        self.cache = None if kv_cache is not None else (B, T)  # what backward may be asked for
        start = kv_cache.length if kv_cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence too long: {start + T} tokens exceed block_size {self.config.block_size}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(T, start)  # (B, T, C)
        x = self.drop(x)  # dropout on the embeddings' sum (training only)
        for block in self.blocks:
            x = block(x, pad_mask, kv_cache)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.advance(T)
        if self.norm_f is not None:
            x = self.norm_f(x)
        return self.head(x)  # (B, T, vocab_size)

    def backward(self, dlogits: Array) -> None:
        """dlogits (B, T, vocab_size): adds every parameter's gradient into ``gradients()``."""
        if self.cache is None:
            raise RuntimeError("backward needs the caches of a forward pass: call model.forward(idx) first "
                               "(without a KV cache: a decoding pass keeps nothing to differentiate)")
        want = (*self.cache, self.config.vocab_size)
        if tuple(dlogits.shape) != want:
            raise ValueError(f"dlogits has shape {tuple(dlogits.shape)} but the last forward pass made logits "
                             f"of shape {want} (B, T, vocab_size)")
        dx = self.head.backward(dlogits)  # (B, T, C)
        if self.norm_f is not None:
            dx = self.norm_f.backward(dx)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        if self.wpe is not None:
            self.wpe.backward(dx)
        self.wte.backward(dx)

    def train(self, rng: np.random.Generator) -> "Transformer":
        """Training mode: every Dropout in the model draws its masks from ``rng`` (pass the training
        loop's generator, so that a run resumed from a checkpoint draws the same masks)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError("train mode needs an explicit numpy.random.Generator for the dropout masks, "
                            "e.g. model.train(np.random.default_rng(0))")
        for module in self.dropouts():
            module.rng = rng
        return self

    def eval(self) -> "Transformer":
        """Evaluation mode (a new model's mode): no dropout, no random numbers drawn."""
        for module in self.dropouts():
            module.rng = None
        return self

    @property
    def training(self) -> bool:
        return any(module.rng is not None for module in self.dropouts())

    def dropouts(self) -> list[Dropout]:
        """Every Dropout module, in the order a forward pass applies them: the embeddings', then
        per block the attention weights', the attention branch's and the feed-forward branch's."""
        return [m for _, m in self.named_modules() if isinstance(m, Dropout)]

    def new_kv_cache(self, batch_size: int) -> KVCache:
        c = self.config
        return KVCache(c.n_layer, batch_size, c.n_kv_head, c.block_size, c.head_size, dtype_of(c.dtype))

    def attention_weights(self, idx: Array, pad_mask: Array | None = None) -> list[Array]:
        """Run a forward pass and return each layer's attention weights, (B, nh, T, T) each."""
        self.forward(idx, pad_mask)
        return [block.attn.weights for block in self.blocks]
