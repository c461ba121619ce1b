"""Batching: turn token sequences into the arrays one training step eats.

A language model learns "predict the next token", so a sequence s_0 s_1 ... s_L becomes

    idx     = s_0 ... s_{L-1}        (what the model reads)
    targets = s_1 ... s_L            (what it should say at each position)

Two masks say which positions count:

- ``loss_mask`` (B, T) is 1 where the loss is taken. For a question-answer task
  (``<bos> Max ( 5 3 9 ) = 9 <eos>``) only the answer and its ``<eos>`` are scored: the
  question is random, and asking the model to predict it would only add noise.
- ``pad_mask`` (B, T) is True at real tokens. Sequences of different lengths are padded
  on the *right* with ``<pad>`` up to the longest one in the batch. Because attention is
  causal, a real token never sees the padding after it, so right-padding changes no real
  position's output; the padded positions are simply left out of the loss.

Everything random (which problems, which windows) comes from the ``rng`` passed in, so the
same generator state always gives the same batch: that is what makes a resumed run exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_ID = 0


@dataclass(frozen=True)
class Batch:
    idx: np.ndarray  # (B, T) int64 input token ids
    targets: np.ndarray  # (B, T) int64 next-token ids (PAD_ID where nothing is predicted)
    loss_mask: np.ndarray  # (B, T) float32, 1.0 where the loss counts
    pad_mask: np.ndarray  # (B, T) bool, True at real (non-padding) input tokens


def pack_rows(rows: np.ndarray, prompt_lens: np.ndarray, seq_lens: np.ndarray) -> Batch:
    """Right-padded sequences -> a Batch: rows (B, L) hold ``prompt + answer`` (with ``<bos>`` and
    ``<eos>``), each row's prompt length (where the answer starts) and whole length. The target at
    input position t is rows[i, t + 1], so the answer tokens are the targets at t >= prompt_len - 1."""
    T = int(seq_lens.max()) - 1  # inputs drop the last token
    t = np.arange(T)[None, :]  # (1, T) input positions
    pad_mask = t < (seq_lens[:, None] - 1)  # (B, T) real inputs
    idx = np.where(pad_mask, rows[:, :T], PAD_ID)  # (B, T) a short row's <eos> is a target, not an input
    targets = np.ascontiguousarray(rows[:, 1 : T + 1])  # (B, T)
    loss_mask = (pad_mask & (t >= prompt_lens[:, None] - 1)).astype(np.float32)  # (B, T) answer targets
    return Batch(idx, targets, loss_mask, pad_mask)


def random_windows(ids: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator) -> Batch:
    """B random windows of block_size + 1 consecutive tokens of a long text (language
    modelling: every position is scored, nothing is padded)."""
    if ids.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {ids.shape}")
    if len(ids) < block_size + 1:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than block_size + 1 = {block_size + 1}")
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)  # (B,)
    offsets = np.arange(block_size + 1)  # (T + 1,)
    windows = ids[starts[:, None] + offsets[None, :]].astype(np.int64)  # (B, T + 1)
    return full_batch(windows)


def full_batch(windows: np.ndarray) -> Batch:
    """(B, T + 1) windows -> a Batch that scores every position."""
    idx, targets = windows[:, :-1], windows[:, 1:]  # (B, T) each
    return Batch(np.ascontiguousarray(idx), np.ascontiguousarray(targets),
                 np.ones(idx.shape, dtype=np.float32), np.ones(idx.shape, dtype=bool))


def consecutive_windows(ids: np.ndarray, block_size: int, max_windows: int | None = None) -> np.ndarray:
    """Non-overlapping windows of block_size + 1 tokens (each shares its last token with the
    next window's first), in order: a deterministic evaluation set. -> (N, block_size + 1)."""
    n = (len(ids) - 1) // block_size
    if n < 1:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than block_size + 1 = {block_size + 1}")
    if max_windows is not None:
        n = min(n, max_windows)
    starts = np.arange(n) * block_size  # (N,)
    return ids[starts[:, None] + np.arange(block_size + 1)[None, :]].astype(np.int64)  # (N, T + 1)
