"""Random tokens repeated: the task on which induction heads form (Olsson et al. 2022).

Each sequence draws a period p (its own, between ``min_period`` and ``max_period``) and p random
tokens, all different (drawn without replacement), then repeats them until the sequence is full:

    seq = [a b c d e | a b c d e | a b ...]      (T + 1 tokens; idx = seq[:T], targets = seq[1:])

The first p tokens are unpredictable: the best loss on them is ln(number of token ids drawn).
From position p on, every token is a copy of the token p places earlier, so a model that finds
"the token that followed the previous occurrence of the current token" predicts it exactly: the
induction mechanism. Because p changes from sequence to sequence, the offset to look back is not
a fixed position, and no purely positional head can solve it. The tokens of a period are all
different so that every token of the repeat has exactly one earlier occurrence to follow: with
repeats inside a period, "what followed this token before" would be ambiguous.

    repeated mask   targets at t >= p      (the next token repeats one seen before)
    first mask      targets at t <= p - 2  (the next token is new and random)

The target at t = p - 1 (the first token of the first repeat) belongs to neither: it repeats a
token seen before, but the current token (the last new one) has no earlier occurrence to follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interpret import induction_scores, previous_token_scores
from .loss import cross_entropy_forward


@dataclass(frozen=True)
class RepeatBatch:
    idx: np.ndarray  # (B, T) token ids
    targets: np.ndarray  # (B, T) the next token at each position
    periods: np.ndarray  # (B,) each sequence's period p
    repeated: np.ndarray  # (B, T) float 1.0 where the target repeats a token and can be found by induction
    first: np.ndarray  # (B, T) float 1.0 where the target is one of the first, random tokens


def repeated_tokens(rng: np.random.Generator, batch_size: int, seq_len: int, vocab_size: int,
                    min_period: int = 4, max_period: int | None = None, first_id: int = 0) -> RepeatBatch:
    """A batch of ``batch_size`` sequences of ``seq_len`` tokens drawn from ids first_id..vocab_size-1,
    each repeating its own random period in [min_period, max_period] (default seq_len // 2)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass an explicit numpy.random.Generator, e.g. np.random.default_rng(0)")
    max_period = seq_len // 2 if max_period is None else max_period
    if not 2 <= min_period <= max_period < seq_len:
        raise ValueError(f"periods must satisfy 2 <= min_period <= max_period < seq_len, got min_period "
                         f"{min_period}, max_period {max_period}, seq_len {seq_len}")
    if not 0 <= first_id < vocab_size - 1:
        raise ValueError(f"first_id must leave at least two token ids below vocab_size {vocab_size}, got {first_id}")
    if max_period > vocab_size - first_id:
        raise ValueError(f"a period's tokens are all different, so max_period {max_period} cannot exceed the "
                         f"{vocab_size - first_id} token ids first_id..vocab_size-1")
    B, T = batch_size, seq_len
    periods = rng.integers(min_period, max_period + 1, size=B)  # (B,)
    n_ids = vocab_size - first_id
    fresh = rng.random((B, n_ids)).argsort(axis=1)[:, :max_period] + first_id  # (B, max_period) distinct per row
    pos = np.arange(T + 1)  # (T + 1,)
    source = pos[None, :] % periods[:, None]  # (B, T + 1): position p + k copies position k < p <= max_period
    seq = np.take_along_axis(fresh, source, axis=1)  # (B, T + 1)
    t = np.arange(T)[None, :]  # (1, T): target at t is seq[t + 1]
    repeated = (t >= periods[:, None]).astype(np.float64)  # (B, T)
    first = (t <= periods[:, None] - 2).astype(np.float64)  # (B, T)
    return RepeatBatch(seq[:, :T], seq[:, 1:], periods, repeated, first)


OFFSETS = (-1, 0, 1, 2, 3)  # key i - p + k: the induction key (k = 1) and its neighbours


def measure(model, batch: RepeatBatch) -> dict:
    """One forward pass: the loss on the repeated and on the first part, and each head's
    previous-token and induction scores, (n_layer, n_head) each; ``by_offset`` holds the weight
    on key i - p + k for each k in OFFSETS, (len(OFFSETS), n_layer, n_head), of which ``induction``
    is k = 1."""
    logits = model.forward(batch.idx)  # (B, T, V)
    repeated_loss, _ = cross_entropy_forward(logits, batch.targets, batch.repeated)
    first_loss, _ = cross_entropy_forward(logits, batch.targets, batch.first)
    atts = [np.asarray(block.attn.weights, dtype=np.float64) for block in model.blocks]  # (B, nh, T, T) each
    return {
        "repeated_loss": float(repeated_loss),
        "first_loss": float(first_loss),
        "previous_token": np.array([previous_token_scores(a) for a in atts]),  # (n_layer, n_head)
        # the first repeat only: there, each query's token has exactly one earlier occurrence
        "induction": np.array([induction_scores(a, batch.periods, 2 * batch.periods) for a in atts]),
        "by_offset": np.array([[induction_scores(a, batch.periods, 2 * batch.periods, offset=k) for a in atts]
                               for k in OFFSETS]),
    }


def first_step_below(steps, values, threshold: float) -> int | None:
    """The first step whose value is below ``threshold`` (None if none is)."""
    for step, value in zip(steps, values):
        if value < threshold:
            return int(step)
    return None


def first_step_above(steps, values, threshold: float) -> int | None:
    """The first step whose value is above ``threshold`` (None if none is)."""
    return first_step_below(steps, [-v for v in values], -threshold)
