"""A transformer block: attention then feed-forward, each inside a residual connection.

pre-norm  (GPT-2, LLaMA):         x = x + attn(norm1(x));   x = x + ffn(norm2(x))
post-norm (Vaswani et al. 2017):  x = norm1(x + attn(x));   x = norm2(x + ffn(x))

An attention-only block (``attn_only``, the toy models of Elhage et al. 2021) stops after the
first line: no feed-forward and no second norm.

In pre-norm the residual stream x is never normalised on its way through, so the gradient
reaches early layers along an identity path; post-norm puts a norm on that path in every
block, so the gradient passes through every norm's backward on its way down. Chapter 4
measures what that does: at GPT-2's init the post-norm gradients are flat except block 0's
(small embeddings feeding its first norm), and in short training runs post-norm leaves its
loss plateau later than pre-norm, and spikes, unless it gets a warm-up or a smaller learning
rate.

The backward of x + f(x) is dout + J_f(x)^T dout (J_f the Jacobian of the branch): the
gradient forks, and adds where paths join.

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
        self.norm2 = None if config.attn_only else make_norm(config, dtype)
        self.ffn = None if config.attn_only else make_ffn(config, rng, dtype)
        # each branch's output is dropped (in training) before it joins the residual stream
        self.drop1, self.drop2 = Dropout(config.dropout), Dropout(config.dropout)

    def forward(self, x: Array, pad_mask=None, kv_cache=None) -> Array:
        """x (B, T, C) -> (B, T, C)."""
        if self.pre_norm:
            x = x + self.drop1(self.attn(self.norm1(x), pad_mask, kv_cache, self.layer))
            return x if self.ffn is None else x + self.drop2(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop1(self.attn(x, pad_mask, kv_cache, self.layer)))
        return x if self.ffn is None else self.norm2(x + self.drop2(self.ffn(x)))

    def backward(self, dout: Array) -> Array:
        if self.pre_norm:
            if self.ffn is None:  # attn_only
                dx = dout
            else:
                dx = self.norm2.backward(self.ffn.backward(self.drop2.backward(dout)))
                dx += dout  # the residual path: in place, into the fresh array the branch returned
            dx_branch = self.norm1.backward(self.attn.backward(self.drop1.backward(dx)))
            dx_branch += dx
            return dx_branch
        dx = dout
        if self.ffn is not None:
            dx = self.norm2.backward(dx)
            dx = dx + self.ffn.backward(self.drop2.backward(dx))
        dx = self.norm1.backward(dx)
        return dx + self.attn.backward(self.drop1.backward(dx))
