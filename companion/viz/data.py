"""What every attention view shows, computed once: token labels, weights, next-token probabilities.

One forward pass of a model on one input gives everything a view needs:

    weights[l, h, i, j] = softmax_j(q_i . k_j / sqrt(head_size) + mask_ij)   (n_layer, n_head, T, T)
    probs[i, v]         = softmax_v(logits[i, v])                            (T, vocab_size)

Row i of ``weights[l, h]`` says how much query token i reads from each key token j; the causal
mask puts exact zeros above the diagonal and every row sums to 1. ``probs[i]`` is the model's
prediction of the token that follows position i.

Snapshots are plain parameter dicts (the names of ``model.parameters()``), for example collected
during training with ``snapshot_callback``; ``load_snapshot`` copies one into a model, so a view can
replay how attention formed. Views work on a private copy of the learner's model and never change it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy, xp

# Tokens such as " " or "\n" would be invisible on an axis: show a visible stand-in instead.
_VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5", "": "\u2205"}


def token_label(text: str) -> str:
    """A printable axis label for one token's text (spaces, newlines and tabs made visible)."""
    if text in _VISIBLE:
        return _VISIBLE[text]
    return "".join(_VISIBLE.get(ch, ch) if ch in " \n\t" else ch for ch in text)


def token_text(tokenizer, token_id: int) -> str:
    """The text of one token id, from ``id_to_token`` if the tokenizer has it, else ``decode``."""
    if hasattr(tokenizer, "id_to_token"):
        tok = tokenizer.id_to_token(int(token_id))
        if isinstance(tok, bytes):  # a byte-level BPE token may be raw bytes
            tok = tok.decode("utf-8", errors="replace")
        return str(tok)
    return tokenizer.decode([int(token_id)])


def encode_text(tokenizer, text: str, block_size: int, encode=None) -> list[int]:
    """Token ids of ``text``, with a clear error when it is empty or longer than the model allows.

    ``encode`` (text -> ids) replaces ``tokenizer.encode`` where a task frames its inputs, e.g.
    ``lambda s: [tok.bos_id] + task.encode_text(s)`` for a model trained on <bos>-led problems."""
    if not isinstance(text, str):
        raise TypeError(f"input text must be a str, got {type(text).__name__}")
    ids = [int(i) for i in (encode or tokenizer.encode)(text)]
    if not ids:
        raise ValueError("the input text is empty: type at least one token")
    if len(ids) > block_size:
        raise ValueError(f"the input has {len(ids)} tokens but the model's block_size is {block_size}: shorten it")
    return ids


@dataclass(frozen=True)
class AttentionRecord:
    """One forward pass, ready to show: ids and labels (T,), weights (n_layer, n_head, T, T), probs (T, V)."""

    ids: tuple[int, ...]
    labels: tuple[str, ...]
    weights: np.ndarray
    probs: np.ndarray


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, max subtracted first so that large logits cannot overflow."""
    z = logits - logits.max(axis=-1, keepdims=True)  # (T, V)
    e = np.exp(z)  # (T, V)
    return e / e.sum(axis=-1, keepdims=True)  # (T, V)


def run_model(model, tokenizer, ids: Sequence[int]) -> AttentionRecord:
    """One forward pass on a single sequence; returns every layer's weights and the next-token probabilities."""
    idx = xp.asarray([list(ids)], dtype=xp.int64)  # (1, T)
    logits = model.forward(idx)  # (1, T, V)
    weights = np.stack([to_numpy(block.attn.weights)[0] for block in model.blocks])  # (n_layer, n_head, T, T)
    probs = softmax(to_numpy(logits)[0].astype(np.float64))  # (T, V)
    labels = tuple(token_label(token_text(tokenizer, i)) for i in ids)
    return AttentionRecord(tuple(int(i) for i in ids), labels, weights.astype(np.float64), probs)


def top_predictions(tokenizer, probs_row: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
    """The k most likely next tokens at one position, as (label, probability), most likely first."""
    k = min(k, probs_row.shape[0])
    order = np.argsort(-probs_row, kind="stable")[:k]  # (k,)
    return [(token_label(token_text(tokenizer, int(i))), float(probs_row[i])) for i in order]


def check_snapshots(model, snapshots: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Every snapshot must name exactly the model's parameters, with the same shapes."""
    params = model.parameters()
    for n, snap in enumerate(snapshots):
        if not isinstance(snap, Mapping):
            raise TypeError(f"snapshot {n} must be a dict of parameter arrays, got {type(snap).__name__}")
        missing, extra = sorted(set(params) - set(snap)), sorted(set(snap) - set(params))
        if missing or extra:
            raise ValueError(f"snapshot {n} does not match the model: missing {missing[:3]}, unexpected {extra[:3]}")
        for name, p in params.items():
            if tuple(np.shape(snap[name])) != tuple(p.shape):
                raise ValueError(f"snapshot {n}: {name} has shape {tuple(np.shape(snap[name]))}, "
                                 f"the model has {tuple(p.shape)}")


def load_snapshot(model, snapshot: Mapping[str, np.ndarray]) -> None:
    """Copy a snapshot's arrays into the model's parameters in place (the optimizer keeps its references)."""
    for name, p in model.parameters().items():
        p[...] = xp.asarray(snapshot[name], dtype=p.dtype)


def private_copy(model):
    """A deep copy, so that loading snapshots into a view never changes the learner's model."""
    return copy.deepcopy(model)


def take_snapshot(model) -> dict[str, np.ndarray]:
    """The model's parameters right now, copied (later training steps must not change them)."""
    return {name: to_numpy(p).copy() for name, p in model.parameters().items()}


def snapshot_callback(snapshots: list, steps: list, every: int):
    """A ``train(..., callback=...)`` hook that appends a snapshot (and its step) every ``every`` steps.

    The two lists are the caller's: the hook keeps no state of its own."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")

    def callback(step, model, optimizer=None, rng=None, history=None):
        if step % every == 0:
            snapshots.append(take_snapshot(model))
            steps.append(int(step))

    return callback


def snapshots_from_checkpoints(paths) -> tuple[list[dict[str, np.ndarray]], list[int]]:
    """Snapshots (and their steps) read from saved checkpoints, e.g. those a training run wrote."""
    from ..checkpoint import load_checkpoint

    snapshots, steps = [], []
    for path in paths:
        ckpt = load_checkpoint(path, load_optimizer=False)
        snapshots.append(take_snapshot(ckpt.model))
        steps.append(int(ckpt.step))
    return snapshots, steps
