"""A transformer block: attention then feed-forward, each inside a residual connection.

pre-norm  (GPT-2, LLaMA):         x = x + attn(norm1(x));   x = x + ffn(norm2(x))
post-norm (Vaswani et al. 2017):  x = norm1(x + attn(x));   x = norm2(x + ffn(x))

In pre-norm the residual stream x is never normalised on its way through, so the gradient
reaches early layers along an identity path; post-norm puts a norm on that path in every
block, which is why it needs a learning-rate warm-up to train deep stacks.

The backward of x + f(x) is dout + f'(dout): the gradient forks, and adds where paths join.

With dropout (training only), each branch is x + dropout(attn(...)), as in GPT-2 and in the
2017 paper ("dropout to the output of each sub-layer, before it is added").
"""

from __future__ import annotations

from .attention import CausalSelfAttention
from .backend import Array
from .dropout import Dropout
from .feedforward import make_ffn
from .module import Module
from .norms import make_norm


class Block(Module):
    def __init__(self, config, rng, dtype, layer: int):
        super().__init__()
        self.layer, self.pre_norm = layer, config.norm_placement == "pre"
        self.norm1 = make_norm(config, dtype)
        self.attn = CausalSelfAttention(config, rng, dtype)
        self.norm2 = make_norm(config, dtype)
        self.ffn = make_ffn(config, rng, dtype)
        # each branch's output is dropped (in training) before it joins the residual stream
        self.drop1, self.drop2 = Dropout(config.dropout), Dropout(config.dropout)

    def forward(self, x: Array, pad_mask=None, kv_cache=None) -> Array:
        """x (B, T, C) -> (B, T, C)."""
        if self.pre_norm:
            x = x + self.drop1(self.attn(self.norm1(x), pad_mask, kv_cache, self.layer))
            return x + self.drop2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x, pad_mask, kv_cache, self.layer)))
        return self.norm2(x + self.drop2(self.ffn(x)))

    def backward(self, dout: Array) -> Array:
        if self.pre_norm:
            dx = self.norm2.backward(self.ffn.backward(self.drop2.backward(dout)))
            dx += dout  # the residual path: in place, into the fresh array the branch returned
            dx_branch = self.norm1.backward(self.attn.backward(self.drop1.backward(dx)))
            dx_branch += dx
            return dx_branch
        dx = self.norm2.backward(dout)
        dx = dx + self.ffn.backward(self.drop2.backward(dx))
        dx = self.norm1.backward(dx)
        return dx + self.attn.backward(self.drop1.backward(dx))
