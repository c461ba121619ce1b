"""Softmax cross-entropy, the language-modelling loss, with a mask over targets.

For logits z (N, V) and target ids y (N,):
    loss_n = logsumexp(z_n) - z_n[y_n]              (the negative log-probability of y_n)
    loss   = sum(mask * loss_n) / sum(mask)          (padding and prompt tokens masked out)

logsumexp is computed as m + log(sum(exp(z - m))) with m = max(z): exp never overflows,
even for logits of 1000. The gradient is the softmax minus the one-hot target:
    dz_n = mask_n * (softmax(z_n) - onehot(y_n)) / sum(mask)
"""

from __future__ import annotations

from .backend import Array, xp


def log_softmax(z: Array) -> Array:
    """Numerically stable log-softmax over the last axis."""
    m = z.max(axis=-1, keepdims=True)  # (..., 1)
    shifted = z - m  # (..., V), all <= 0
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy_forward(logits: Array, targets: Array, mask: Array | None = None) -> tuple[float, tuple]:
    """logits (B, T, V), targets (B, T) ints, mask (B, T) (1 = counts) -> mean loss."""
    V = logits.shape[-1]
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets shape {tuple(targets.shape)} must match logits shape {tuple(logits.shape[:-1])} (B, T)")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer token ids, got {targets.dtype.name}")
    if mask is None:
        mask = xp.ones(targets.shape, dtype=logits.dtype)
    if mask.shape != targets.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} must match targets shape {tuple(targets.shape)}")
    mask = mask.astype(logits.dtype)
    picked = xp.where(mask > 0, targets, 0)  # masked targets (e.g. -1 padding) are never read
    if picked.size and (int(picked.min()) < 0 or int(picked.max()) >= V):
        raise ValueError(f"target id outside the vocabulary [0, {V}) at an unmasked position")
    count = mask.sum()
    if count == 0:
        raise ValueError("the mask leaves no target to score: every position is masked out")
    logp = log_softmax(logits)  # (B, T, V)
    nll = -xp.take_along_axis(logp, picked[..., None], axis=-1)[..., 0]  # (B, T)
    loss = float((nll * mask).sum() / count)
    return loss, (logp, picked, mask, count)


def cross_entropy_backward(cache: tuple) -> Array:
    """-> dlogits (B, T, V), the gradient of the mean loss."""
    logp, picked, mask, count = cache
    dlogits = xp.exp(logp)  # softmax, (B, T, V)
    flat = dlogits.reshape(-1, dlogits.shape[-1])  # a view: (B*T, V)
    flat[xp.arange(flat.shape[0]), picked.reshape(-1)] -= 1.0
    dlogits *= (mask / count)[..., None]
    return dlogits
