"""Looking inside a trained model: attention scores, head ablation, the logit lens, linear probes.

Every tool here reads a model without changing its code, using only what the model already
exposes: the attention weights its forward pass caches, its weights, and its modules.

Attention-pattern scores (Olsson et al. 2022), for weights ``att`` (B, nh, T, T):

    previous-token score   mean over queries i >= 1 of att[i, i-1]
    induction score        on a sequence whose second half repeats its first half (period n),
                           mean over queries i >= n of att[i, i-n+1]: the token that followed
                           the current token's earlier occurrence, which is what comes next

Ablation: a head's output reaches the residual stream only through its own hs rows of the
output projection c_proj (the heads' outputs are concatenated, then multiplied by W_O). So
zeroing those rows removes the head exactly (zero ablation), and putting the head's mean
output times those rows into c_proj's bias replaces it by its average (mean ablation).

Logit lens (nostalgebraist 2020): decode the residual stream after each block with the final
norm and the output head, as if the model ended there.

Linear probe: least squares from the residual stream at one position to a one-hot label;
what a linear read-out can recover at each depth (with controls, since a probe can learn).
"""

from __future__ import annotations

import contextlib

import numpy as np

from .model import Transformer


def previous_token_scores(att: np.ndarray) -> np.ndarray:
    """att (B, nh, T, T) -> (nh,): mean weight each head puts on the previous position."""
    T = att.shape[-1]
    i = np.arange(1, T)
    return att[:, :, i, i - 1].mean(axis=(0, 2))


def induction_scores(att: np.ndarray, period) -> np.ndarray:
    """att (B, nh, T, T) on sequences that repeat with ``period`` (an int, or one per sequence,
    shape (B,)) -> (nh,): mean weight on the position just after the current token's previous
    occurrence, over every query that has one."""
    B, T = att.shape[0], att.shape[-1]
    periods = np.broadcast_to(np.asarray(period), (B,))
    if periods.min() < 1 or periods.max() >= T:
        raise ValueError(f"period must be between 1 and T - 1 = {T - 1}, got {period}")
    per_sequence = []
    for b, p in enumerate(periods):
        i = np.arange(p, T)
        per_sequence.append(att[b, :, i, i - p + 1].mean(axis=0))  # (nh,)
    return np.mean(per_sequence, axis=0)


def head_slice(model: Transformer, head: int) -> slice:
    """The rows of c_proj's weight that carry head ``head``'s output."""
    hs = model.config.head_size
    if not 0 <= head < model.config.n_head:
        raise ValueError(f"head must be in 0..{model.config.n_head - 1}, got {head}")
    return slice(head * hs, (head + 1) * hs)


def head_outputs(model: Transformer, layer: int, idx: np.ndarray) -> np.ndarray:
    """Each head's output in ``layer`` before the projection: (B, T, n_head, hs), recomputed
    from the attention weights and values the forward pass cached."""
    model.forward(idx)
    att_cache = model.blocks[layer].attn.cache[0]
    att, v = att_cache[3], att_cache[2]  # (B, nh, T, T), (B, nh, T, hs)
    return (att @ v).transpose(0, 2, 1, 3)  # (B, T, nh, hs)


@contextlib.contextmanager
def ablate(model: Transformer, layer: int, head: int, mean_over: np.ndarray | None = None):
    """Within the block, head ``head`` of ``layer`` is removed: zeroed, or, with ``mean_over``
    (token ids), replaced by its mean output over those tokens. The weights are restored after."""
    proj = model.blocks[layer].attn.c_proj
    rows = head_slice(model, head)
    w_saved = proj.params["w"][rows].copy()
    b_saved = proj.params["b"].copy() if "b" in proj.params else None
    if mean_over is not None:
        if b_saved is None:
            raise ValueError("mean ablation adds to c_proj's bias, and this model has none: use zero ablation")
        mean = head_outputs(model, layer, mean_over)[:, :, head].reshape(-1, w_saved.shape[0]).mean(axis=0)  # (hs,)
        proj.params["b"] += (mean @ w_saved).astype(proj.params["b"].dtype)
    proj.params["w"][rows] = 0.0
    try:
        yield model
    finally:
        proj.params["w"][rows] = w_saved
        if b_saved is not None:
            proj.params["b"][...] = b_saved


def residual_stream(model: Transformer, idx: np.ndarray) -> list[np.ndarray]:
    """The residual stream (B, T, C) after the embeddings and after each block: n_layer + 1 arrays."""
    B, T = idx.shape
    x = model.wte(idx)  # (B, T, C)
    if model.wpe is not None:
        x = x + model.wpe(T, 0)
    streams = [x]
    for block in model.blocks:
        x = block(x)
        streams.append(x)
    return streams


def logit_lens(model: Transformer, idx: np.ndarray) -> list[np.ndarray]:
    """Logits (B, T, vocab_size) read from the stream after the embeddings and after each block,
    through the final norm and the head. The last entry equals ``model.forward(idx)``."""
    if model.norm_f is None:
        raise ValueError("the logit lens decodes through the final norm, which post-norm models do not have")
    return [model.head(model.norm_f(x)) for x in residual_stream(model, idx)]


def fit_probe(features: np.ndarray, labels: np.ndarray, n_classes: int, ridge: float = 1e-3) -> np.ndarray:
    """Least-squares linear probe: features (N, C), integer labels (N,) -> weights (C + 1, n_classes),
    the last row a bias, minimising |[X 1] W - onehot(y)|^2 + ridge |W|^2."""
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"expected features (N, C) and labels (N,), got {features.shape} and {labels.shape}")
    X = np.hstack([features.astype(np.float64), np.ones((len(features), 1))])  # (N, C + 1)
    Y = np.eye(n_classes)[labels]  # (N, n_classes)
    return np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ Y)


def probe_accuracy(w: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest probe output is the true label."""
    X = np.hstack([features.astype(np.float64), np.ones((len(features), 1))])
    return float(((X @ w).argmax(axis=1) == labels).mean())
