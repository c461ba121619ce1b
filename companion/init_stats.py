"""Signal scale at initialisation: how big the residual stream and the gradients are, block by block.

Chapter 4 measures a freshly built model with one forward and one backward pass:

    stream_rms[l]   root mean square of the residual stream entering block l (l = n_layer: after the last
                    block, before the final norm), averaged over the batch's tokens
    grad_norm[l]    the L2 norm of all of block l's parameter gradients together

``rescale_init`` changes a built model's initial scale in place, so that one config can be measured
with unit-scale embeddings, or with every block's weight matrices ten times too large, without new code
paths. ``depth_profile(..., residual=False)`` drops the residual additions (each block becomes its two
branches applied one after the other), to show what the identity path does for the gradient.
"""

from __future__ import annotations

import numpy as np

from .backend import to_numpy
from .loss import cross_entropy_backward, cross_entropy_forward


def rescale_init(model, embedding_std: float | None = None, weight_factor: float = 1.0,
                 residual_factor: float = 1.0, head_factor: float = 1.0) -> None:
    """Change a freshly built model's initial scale in place.

    embedding_std     redraw-free rescale of the token and learned position tables to this std
                      (their current std is 0.02 by construction, so they are multiplied by std / 0.02)
    weight_factor     multiplies every weight matrix in the blocks (not norms, not biases, not the head)
    residual_factor   multiplies only the projections back into the residual stream (attn.c_proj and
                      the FFN's output matrix), e.g. sqrt(2 * n_layer) to undo GPT-2's depth scaling
    head_factor       multiplies the untied output head's matrix, which sets the initial logits' scale
    """
    if embedding_std is not None and embedding_std <= 0:
        raise ValueError(f"embedding_std must be positive, got {embedding_std}")
    if head_factor != 1.0 and model.config.tie_weights:
        raise ValueError("the output head is tied to the token table: build the model with tie_weights=False "
                         "to rescale the head alone")
    if embedding_std is not None and model.config.tie_weights:
        raise ValueError("rescaling a tied embedding would rescale the output head too: build the model "
                         "with tie_weights=False to change the embedding scale alone")
    for name, p in model.parameters().items():
        if name in ("wte.w", "wpe.w"):  # tested first: the tables are 2-D ".w" too, but not in a block
            if embedding_std is not None:
                p *= embedding_std / 0.02
        elif name == "head.proj.w":
            p *= head_factor
        elif name.endswith(".w") and p.ndim == 2:  # a Linear's weight matrix in a block
            p *= weight_factor
            if name.endswith(("attn.c_proj.w", "ffn.c_proj.w", "ffn.w_down.w")):
                p *= residual_factor


def _rms(x) -> float:
    return float(np.sqrt(np.mean(to_numpy(x).astype(np.float64) ** 2)))  # a diagnostic: on the host


def _branches_forward(block, x):
    """A block without its residual additions: x (B, T, C) -> (B, T, C)."""
    if block.pre_norm:
        return block.ffn(block.norm2(block.attn(block.norm1(x), layer=block.layer)))
    return block.norm2(block.ffn(block.norm1(block.attn(x, layer=block.layer))))


def _branches_backward(block, dout):
    """The backward of _branches_forward: dout (B, T, C) -> dx (B, T, C)."""
    if block.pre_norm:
        return block.norm1.backward(block.attn.backward(block.norm2.backward(block.ffn.backward(dout))))
    return block.attn.backward(block.norm1.backward(block.ffn.backward(block.norm2.backward(dout))))


def depth_profile(model, idx, targets, residual: bool = True) -> dict[str, np.ndarray]:
    """One forward and backward pass over idx (B, T) -> targets (B, T), recording the signal by depth.

    Returns ``stream_rms`` (n_layer + 1,): the residual stream entering each block and after the
    last one; ``grad_norm`` (n_layer,): each block's parameter-gradient norm; ``loss``.
    The forward pass is Transformer.forward's own loop, unrolled so that the stream can be read.
    residual=False drops every block's two additions x + f(x) -> f(x) (a plain deep stack, no
    identity path), in the forward and the backward alike.
    """
    if idx.shape != targets.shape or idx.ndim != 2:
        raise ValueError(f"idx and targets must both have shape (B, T), got {idx.shape} and {targets.shape}")
    B, T = idx.shape
    model.cache = (B, T)  # what Transformer.backward checks its dlogits against
    x = model.wte(idx)  # (B, T, C)
    if model.wpe is not None:
        x = x + model.wpe(T)  # (B, T, C)
    x = model.drop(x)  # as in Transformer.forward (nothing happens in evaluation mode)
    stream = [_rms(x)]
    for block in model.blocks:
        x = block(x) if residual else _branches_forward(block, x)  # (B, T, C)
        stream.append(_rms(x))
    if model.norm_f is not None:
        x = model.norm_f(x)
    logits = model.head(x)  # (B, T, vocab_size)
    loss, cache = cross_entropy_forward(logits, targets)
    model.zero_grad()
    dlogits = cross_entropy_backward(cache)  # (B, T, vocab_size)
    if residual:
        model.cache = (B, T)  # the unrolled loop above is Transformer.forward's: its backward applies
        model.backward(dlogits)
    else:
        dx = model.head.backward(dlogits)  # (B, T, C)
        if model.norm_f is not None:
            dx = model.norm_f.backward(dx)
        for block in reversed(model.blocks):
            dx = _branches_backward(block, dx)
        if model.wpe is not None:
            model.wpe.backward(dx)
        model.wte.backward(dx)
    grads = model.gradients()
    grad_norm = [np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for name, g in grads.items()
                             if name.startswith(f"blocks.{layer}."))) for layer in range(len(model.blocks))]
    return {"stream_rms": np.array(stream), "grad_norm": np.array(grad_norm), "loss": float(loss)}
