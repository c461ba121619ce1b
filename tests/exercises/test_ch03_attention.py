"""Graded tests, chapter 3: causal mask, attention forward, attention backward.

The reference is the companion's own attention (gradient-checked, PyTorch-parity tested);
each buggy variant below is computed here so that a failure can name the bug it matches.
Beyond the square causal mask, the masks are those the model really passes: a KV-cache step
(T_q < T_k), a padding mask, and a left-padded batch whose padding queries may see no key.
Sizes are drawn from a seeded Generator, so a solution cannot special-case them. The cache
given to attention_backward is built here in the exercise's layout (q, k, v, att, scale),
not taken from the companion's forward, whose cache is its own business.
"""

import math

import numpy as np
import pytest

from companion import attention as ref
from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array, expect_tuple

CHAPTER = "ch03"
pytestmark = pytest.mark.ch03


def qkv(rng, B=2, nh=3, T_q=5, T_k=5, hs=4, scale=1.0):
    q = rng.standard_normal((B, nh, T_q, hs)) * scale  # (B, nh, T_q, hs)
    k = rng.standard_normal((B, nh, T_k, hs)) * scale  # (B, nh, T_k, hs)
    v = rng.standard_normal((B, nh, T_k, hs))  # (B, nh, T_k, hs)
    return q, k, v


def softmax(s, axis=-1):
    """Softmax that leaves a row with no allowed entry (all -inf) all zeros."""
    m = s.max(axis=axis, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    z = e.sum(axis=axis, keepdims=True)
    return e / np.where(z > 0, z, 1.0)


def att_of(q, k, mask):
    """The attention weights (B, nh, T_q, T_k), written here independently of the companion."""
    s = (q @ k.swapaxes(-2, -1)) / math.sqrt(q.shape[-1])  # (B, nh, T_q, T_k)
    return softmax(np.where(mask, s, -np.inf))


def contract_cache(q, k, v, mask):
    """The cache the exercise promises attention_backward: (q, k, v, att, scale)."""
    return (q, k, v, att_of(q, k, mask), 1.0 / math.sqrt(q.shape[-1]))


def drawn_sizes(seed):
    """B, nh, T_q, T_k, hs drawn from a seeded Generator: odd and unequal sizes included."""
    rng = np.random.default_rng(seed)
    T_k = int(rng.integers(5, 12))
    return rng, dict(B=int(rng.integers(2, 4)), nh=int(rng.integers(1, 4)), T_q=int(rng.integers(1, T_k)),
                     T_k=T_k, hs=int(rng.choice([3, 5, 6, 7])))


def left_padded_mask(B, T, pads):
    """The mask the model builds for a left-padded batch: causal and padding together,
    (B, 1, T, T). Row b has pads[b] padding tokens first; a padding query sees no key."""
    real = np.arange(T)[None, :] >= np.asarray(pads)[:, None]  # (B, T) True at real tokens
    return ref.causal_mask(T, T) & real[:, None, None, :]  # (B, 1, T, T)


# ------------------------------------------------------------------ 3.1 causal mask


def mask_bugs(T_q, T_k):
    want = ref.causal_mask(T_q, T_k)  # (T_q, T_k)
    i, j = np.arange(T_q)[:, None], np.arange(T_k)[None, :]
    return want, {
        "future tokens leak through the mask (True above the diagonal)": np.ones_like(want),
        "a token is not allowed to see itself (< where <= is needed)": j < (T_k - T_q + i),
        "the queries were placed at positions 0..T_q-1 instead of the last T_q positions": j <= i,
        "the mask is inverted (True where attending is forbidden)": ~want,
    }


def expect_mask(impl, T_q, T_k):
    mask = impl.causal_mask(T_q, T_k)
    expect(hasattr(mask, "dtype") and mask.dtype == bool,
           f"causal_mask should return a boolean array, got {getattr(mask, 'dtype', type(mask).__name__)}")
    want, bugs = mask_bugs(T_q, T_k)
    expect_close(mask, want, f"causal_mask({T_q}, {T_k})", bugs, rtol=0, atol=0)


@pytest.mark.exercise("3.1", "causal_mask")
@pytest.mark.points(1)
@pytest.mark.parametrize("T_q,T_k", [(6, 6), (2, 6), (1, 4)])
def test_causal_mask(impl, T_q, T_k):
    expect_mask(impl, T_q, T_k)


@pytest.mark.exercise("3.1", "causal_mask")
@pytest.mark.points(1)
def test_causal_mask_drawn_sizes(impl):
    rng = np.random.default_rng(31)
    for _ in range(6):
        T_k = int(rng.integers(1, 17))
        expect_mask(impl, int(rng.integers(1, T_k + 1)), T_k)


# ------------------------------------------------------------------ 3.2 attention forward


def buggy_forwards(q, k, v, mask):
    hs, T_q, T_k = q.shape[-1], q.shape[-2], k.shape[-2]
    s = q @ k.swapaxes(-2, -1)  # (B, nh, T_q, T_k)
    neg = np.where(mask, 0.0, -np.inf)
    with np.errstate(all="ignore"):
        bugs = {
            "the scores are not divided by sqrt(hs)": softmax(s + neg) @ v,
            "the scores are divided by hs instead of sqrt(hs)": softmax(s / hs + neg) @ v,
            "the softmax runs over the wrong axis (queries, not keys)": np.nan_to_num(softmax(s / math.sqrt(hs) + neg, axis=-2)) @ v,
            "the mask argument is ignored: future tokens (and padding) leak into the output": softmax(s / math.sqrt(hs)) @ v,
            "the mask is applied after the softmax (rows no longer sum to 1)": (softmax(s / math.sqrt(hs)) * mask) @ v,
            "the mask argument is ignored and a causal mask is rebuilt inside: padding keys leak into the output "
            "(use the mask you are given)": softmax(np.where(ref.causal_mask(T_q, T_k), s / math.sqrt(hs), -np.inf)) @ v,
        }
        if T_q < T_k:  # a KV-cache step: a mask rebuilt with the queries first is wrong even without padding
            bugs["the mask argument is ignored and a causal mask is rebuilt inside, with the queries at positions "
                 "0..T_q-1 (with a KV cache they are the last T_q of T_k positions; use the mask you are given)"] = \
                softmax(np.where(np.tri(T_q, T_k, dtype=bool), s / math.sqrt(hs), -np.inf)) @ v
    return bugs


def expect_forward(impl, q, k, v, mask, what):
    """The learner's (out, cache) against the reference, naming the bug it matches."""
    out, cache = expect_tuple(impl.attention_forward(q, k, v, mask), 2, "attention_forward must return (out, cache)")
    want, _ = ref.attention_forward(q, k, v, mask)
    out = expect_array(out, f"the attention output for {what}", want.shape)
    empty = ~np.broadcast_to(mask, q.shape[:-1] + (k.shape[-2],)).any(-1)  # (B, nh, T_q) queries that see no key
    expect(not (empty.any() and np.isnan(out[empty]).any()),
           f"the attention output for {what} is NaN where a query may see no key (a padding position in a "
           "left-padded batch): give such a row all-zero weights (do not divide by a zero sum)")
    expect_close(out, want, f"the attention output for {what}", buggy_forwards(q, k, v, mask))
    cache = expect_tuple(cache, 5, "the cache must be the tuple (q, k, v, att, scale)")
    expect_close(cache[3], att_of(q, k, mask), f"att in the cache (the softmax weights) for {what}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    expect_close(cache[4], scale, "scale in the cache", {"scale is sqrt(hs), not 1/sqrt(hs)": 1 / scale})


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(2)
def test_attention_forward_matches_reference(impl):
    rng = np.random.default_rng(0)
    q, k, v = qkv(rng)
    expect_forward(impl, q, k, v, ref.causal_mask(5, 5), "a square causal mask")


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
@pytest.mark.parametrize("seed", [32, 33])
def test_attention_forward_kv_cache_step(impl, seed):
    """A KV-cache step: T_q new queries meet T_k > T_q keys, with the mask the model passes."""
    rng, size = drawn_sizes(seed)
    q, k, v = qkv(rng, **size)
    mask = ref.causal_mask(size["T_q"], size["T_k"])  # (T_q, T_k)
    expect_forward(impl, q, k, v, mask, f"a KV-cache step (T_q={size['T_q']}, T_k={size['T_k']})")


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_attention_forward_padding_mask(impl):
    """A padding mask (B, 1, 1, T_k) hides each sequence's trailing keys; no causal part."""
    rng, size = drawn_sizes(34)
    size["T_q"] = size["T_k"]
    q, k, v = qkv(rng, **size)
    lengths = rng.integers(1, size["T_k"] + 1, size=size["B"])  # (B,) real keys per sequence
    lengths[0] = size["T_k"] - 1  # at least one sequence with a hidden key
    mask = (np.arange(size["T_k"])[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T_k)
    expect_forward(impl, q, k, v, mask, f"a padding mask (real keys per sequence: {lengths.tolist()})")


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_attention_forward_left_padded_batch(impl):
    """Causal and padding masks together (the model's left-padded batch): the padding
    queries may see no key at all, and must give zeros, not NaN."""
    rng = np.random.default_rng(35)
    T = 7
    q, k, v = qkv(rng, B=3, nh=2, T_q=T, T_k=T, hs=5)
    mask = left_padded_mask(3, T, [0, 2, 5])  # (B, 1, T, T)
    expect_forward(impl, q, k, v, mask, "a left-padded batch (0, 2 and 5 padding tokens)")


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_attention_forward_no_future_leak(impl):
    """Changing a later token's key and value must not change any earlier output."""
    rng = np.random.default_rng(1)
    q, k, v = qkv(rng, B=1, nh=2, T_q=6, T_k=6)
    mask = ref.causal_mask(6, 6)
    out1, _ = expect_tuple(impl.attention_forward(q, k, v, mask), 2, "attention_forward must return (out, cache)")
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 4:] += 5.0
    v2[:, :, 4:] += 5.0
    out2, _ = expect_tuple(impl.attention_forward(q, k2, v2, mask), 2, "attention_forward must return (out, cache)")
    out1, out2 = (expect_array(o, "the attention output", q.shape) for o in (out1, out2))
    changed = np.abs(out2 - out1)[:, :, :4].max()
    expect(changed < 1e-9, f"future tokens leak through the mask: editing keys/values at positions 4-5 changed "
                           f"outputs at positions 0-3 by up to {changed:.3g} (tolerance 1e-9)")


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_attention_forward_large_scores(impl):
    """Scores in the thousands must not overflow exp (subtract each row's max first)."""
    rng = np.random.default_rng(2)
    q, k, v = qkv(rng, T_q=3, T_k=6, scale=40.0)  # scores of order 1000s
    mask = ref.causal_mask(3, 6)
    out, _ = expect_tuple(impl.attention_forward(q, k, v, mask), 2, "attention_forward must return (out, cache)")
    want, _ = ref.attention_forward(q, k, v, mask)
    expect_close(out, want, "attention output for large scores", rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ 3.3 attention backward


def ds_q(att, datt, scale, q):
    ds = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) * scale
    return ds @ q


def expect_backward(impl, q, k, v, mask, dout, what):
    cache = contract_cache(q, k, v, mask)
    got = expect_tuple(impl.attention_backward(dout, cache), 3, "attention_backward must return (dq, dk, dv)")
    dq, dk, dv = ref.attention_backward(dout, ref.attention_forward(q, k, v, mask)[1])
    att, scale = cache[3], cache[4]
    datt = dout @ v.swapaxes(-2, -1)
    no_sum = att * datt * scale  # softmax backward without the subtracted sum
    expect_close(got[2], dv, f"dv for {what}", {"dv is att @ dout: att must be transposed (att.T @ dout)": att @ dout}
                 if q.shape == k.shape else {})
    expect_close(got[0], dq, f"dq for {what}", {"dq is missing the 1/sqrt(hs) scale": dq / scale,
                                               "the softmax backward drops the - sum(da * a) term": no_sum @ k})
    bugs = {"dk is missing the 1/sqrt(hs) scale": dk / scale,
            "the softmax backward drops the - sum(da * a) term": no_sum.swapaxes(-2, -1) @ q}
    if q.shape == k.shape:
        bugs["dk uses ds @ q: ds must be transposed (ds.T @ q)"] = ds_q(att, datt, scale, q)
    expect_close(got[1], dk, f"dk for {what}", bugs)


@pytest.mark.exercise("3.3", "attention_backward")
@pytest.mark.points(2)
def test_attention_backward_matches_reference(impl):
    rng = np.random.default_rng(3)
    q, k, v = qkv(rng)
    expect_backward(impl, q, k, v, ref.causal_mask(5, 5), rng.standard_normal(q.shape), "a square causal mask")


@pytest.mark.exercise("3.3", "attention_backward")
@pytest.mark.points(1)
def test_attention_backward_kv_cache_step_and_padding(impl):
    """T_q < T_k (drawn sizes), then a left-padded batch whose padding queries see no key."""
    rng, size = drawn_sizes(36)
    q, k, v = qkv(rng, **size)
    expect_backward(impl, q, k, v, ref.causal_mask(size["T_q"], size["T_k"]), rng.standard_normal(q.shape),
                    f"a KV-cache step (T_q={size['T_q']}, T_k={size['T_k']})")
    q, k, v = qkv(rng, B=3, nh=2, T_q=6, T_k=6, hs=3)
    expect_backward(impl, q, k, v, left_padded_mask(3, 6, [0, 1, 4]), rng.standard_normal(q.shape),
                    "a left-padded batch")


@pytest.mark.exercise("3.3", "attention_backward")
@pytest.mark.points(1)
def test_attention_backward_finite_differences(impl):
    """Your gradients against central differences of L = sum(out * dout), in float64."""
    rng = np.random.default_rng(4)
    q, k, v = qkv(rng, B=1, nh=2, T_q=3, T_k=4, hs=4)
    mask = ref.causal_mask(3, 4)
    dout = rng.standard_normal(q.shape)
    grads = expect_tuple(impl.attention_backward(dout, contract_cache(q, k, v, mask)), 3,
                         "attention_backward must return (dq, dk, dv)")

    def loss():
        return float((ref.attention_forward(q, k, v, mask)[0] * dout).sum())

    for name, a, g in zip(("dq", "dk", "dv"), (q, k, v), grads):
        _, numeric = numeric_gradient(loss, a)
        g = expect_array(g, name, a.shape)
        err = relative_error(g.reshape(-1), numeric)
        expect(err < 1e-6, f"{name} disagrees with finite differences: relative error {err:.2e} "
                           f"(tolerance 1e-6, central differences with h=1e-6 in float64)")
