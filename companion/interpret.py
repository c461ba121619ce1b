"""Looking inside a trained model: attention scores, head ablation, the logit lens, linear probes.

Every tool here reads a model without changing its code, using only what the model already
exposes: the attention weights its forward pass caches, its weights, and its modules.

Attention-pattern scores (Olsson et al. 2022), for weights ``att`` (B, nh, T, T):

    previous-token score   mean over queries i >= 1 of att[i, i-1]
    induction score        on a sequence whose second half repeats its first half (period n),
                           mean over queries i >= n of att[i, i-n+1]: the token that followed
                           the current token's earlier occurrence, which is what comes next;
                           with ``offset`` k, the weight on key i-n+k instead (a head that reads
                           the same token from a neighbouring position scores at its own k)

Ablation: a head's output reaches the residual stream only through its own hs rows of the
output projection c_proj (the heads' outputs are concatenated, then multiplied by W_O). So
zeroing those rows removes the head exactly (zero ablation), and putting the head's mean
output times those rows into c_proj's bias replaces it by its average (mean ablation).

Logit lens (nostalgebraist 2020): decode the residual stream after each block with the final
norm and the output head, as if the model ended there.

Linear probe: ridge-regularised least squares from the residual stream at one position to a one-hot label;
what a linear read-out can recover at each depth (with controls, since a probe can learn).

On a GPU backend (companion/backend.py) the model's arrays stay on the device: the scores index
them there and bring back only their (nh,) results; a probe is fitted on the host (its features
are copied once with ``to_numpy``: a small least-squares solve, like a plot, is an edge).
"""

from __future__ import annotations

import contextlib

import numpy as np

from .backend import to_numpy, xp
from .model import Transformer


def previous_token_scores(att: np.ndarray) -> np.ndarray:
    """att (B, nh, T, T) -> (nh,): mean weight each head puts on the previous position."""
    T = att.shape[-1]
    i = xp.arange(1, T)  # on the device, with att
    return to_numpy(att[:, :, i, i - 1].mean(axis=(0, 2)))  # (nh,) to the host


def induction_scores(att: np.ndarray, period, stop=None, offset: int = 1) -> np.ndarray:
    """att (B, nh, T, T) on sequences that repeat with ``period`` (an int, or one per sequence,
    shape (B,)) -> (nh,): mean weight on key i - period + offset, over every query i from period
    to stop - 1 (stop defaults to T) for which that key exists. ``offset`` 1 (the default) is the
    position just after the current token's previous occurrence: the induction pattern. Other
    offsets find a head that reads the same information one place early or late, e.g. from a
    copy of the previous token stored one position later (offset 2).

    A sequence that repeats more than once gives the queries of its later repeats several
    earlier occurrences to split their attention over; ``stop = 2 * period`` keeps the first
    repeat alone, whose queries have exactly one."""
    B, T = att.shape[0], att.shape[-1]
    periods = np.broadcast_to(to_numpy(period), (B,))  # host integers: they set the loop
    stops = np.broadcast_to(to_numpy(T if stop is None else stop), (B,))
    if periods.min() < 1 or periods.max() >= T:
        raise ValueError(f"period must be between 1 and T - 1 = {T - 1}, got {period}")
    if np.any(stops <= periods):
        raise ValueError(f"stop must be greater than the period, got stop {stop} for period {period}")
    if not -int(periods.min()) < offset <= int(periods.min()):
        raise ValueError(f"offset must be in -period + 1 .. period = {-int(periods.min()) + 1} .. "
                         f"{int(periods.min())} (a key that exists and is not in the future), got {offset}")
    per_sequence = []
    for b, p in enumerate(periods):
        first, stop_b = max(int(p), int(p) - offset), min(int(stops[b]), T)  # queries whose key i - p + offset >= 0
        if stop_b <= first:
            raise ValueError(f"no query between the period {int(p)} and stop {int(stops[b])} has key i - p + {offset}")
        i = xp.arange(first, stop_b)  # on the device, with att
        per_sequence.append(to_numpy(att[b, :, i, i - int(p) + offset].mean(axis=0)))  # (nh,)
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


def fit_probe(features: np.ndarray, labels: np.ndarray, n_classes: int, ridge: float = 1e-3,
              standardize: bool = False) -> np.ndarray:
    """Ridge-regularised least-squares linear probe: features (N, C), integer labels (N,) ->
    weights (C + 1, n_classes), the last row a bias, minimising |[X 1] W - onehot(y)|^2 + ridge |W|^2
    where the penalty leaves the bias row alone.

    With ``standardize``, each feature is first centred and scaled by its mean and standard deviation
    over these (training) rows, so that ``ridge`` means the same on a stream of any scale; the
    returned weights fold that in and apply to raw features, as ``probe_accuracy`` expects."""
    features, labels = to_numpy(features), to_numpy(labels)  # fitted on the host
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"expected features (N, C) and labels (N,), got {features.shape} and {labels.shape}")
    F = features.astype(np.float64)  # (N, C)
    mu, sd = np.zeros(F.shape[1]), np.ones(F.shape[1])
    if standardize:
        mu, sd = F.mean(axis=0), F.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)  # a constant feature carries nothing: leave it at zero after centring
    X = np.hstack([(F - mu) / sd, np.ones((len(F), 1))])  # (N, C + 1)
    Y = np.eye(n_classes)[labels]  # (N, n_classes)
    penalty = ridge * np.eye(X.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    w = np.linalg.solve(X.T @ X + penalty, X.T @ Y)  # (C + 1, n_classes) on standardised features
    w_raw = w[:-1] / sd[:, None]  # (C, n_classes): the same read-out applied to raw features
    return np.vstack([w_raw, w[-1:] - mu @ w_raw])


def probe_accuracy(w: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest probe output is the true label."""
    w, features, labels = to_numpy(w), to_numpy(features), to_numpy(labels)
    X = np.hstack([features.astype(np.float64), np.ones((len(features), 1))])
    return float(((X @ w).argmax(axis=1) == labels).mean())
