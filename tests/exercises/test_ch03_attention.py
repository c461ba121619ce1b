"""Graded tests, chapter 3: causal mask, attention forward, attention backward.

The reference is the companion's own attention (gradient-checked, PyTorch-parity tested);
each buggy variant below is computed here so that a failure can name the bug it matches.
"""

import math

import numpy as np
import pytest

from companion import attention as ref
from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close

CHAPTER = "ch03"
pytestmark = pytest.mark.ch03


def qkv(rng, B=2, nh=3, T_q=5, T_k=5, hs=4, scale=1.0):
    q = rng.standard_normal((B, nh, T_q, hs)) * scale  # (B, nh, T_q, hs)
    k = rng.standard_normal((B, nh, T_k, hs)) * scale  # (B, nh, T_k, hs)
    v = rng.standard_normal((B, nh, T_k, hs))  # (B, nh, T_k, hs)
    return q, k, v


def softmax(s, axis=-1):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------------ 3.1 causal mask


@pytest.mark.exercise("3.1", "causal_mask")
@pytest.mark.points(1)
@pytest.mark.parametrize("T_q,T_k", [(6, 6), (2, 6), (1, 4)])
def test_causal_mask(impl, T_q, T_k):
    mask = impl.causal_mask(T_q, T_k)
    expect(hasattr(mask, "dtype") and mask.dtype == bool,
           f"causal_mask should return a boolean array, got {getattr(mask, 'dtype', type(mask).__name__)}")
    want = ref.causal_mask(T_q, T_k)  # (T_q, T_k)
    i, j = np.arange(T_q)[:, None], np.arange(T_k)[None, :]
    bugs = {
        "future tokens leak through the mask (True above the diagonal)": np.ones_like(want),
        "a token is not allowed to see itself (< where <= is needed)": j < (T_k - T_q + i),
        "the queries were placed at positions 0..T_q-1 instead of the last T_q positions": j <= i,
        "the mask is inverted (True where attending is forbidden)": ~want,
    }
    expect_close(mask, want, f"causal_mask({T_q}, {T_k})", bugs, rtol=0, atol=0)


# ------------------------------------------------------------------ 3.2 attention forward


def buggy_forwards(q, k, v, mask):
    hs = q.shape[-1]
    s = q @ k.swapaxes(-2, -1)  # (B, nh, T_q, T_k)
    neg = np.where(mask, 0.0, -np.inf)
    return {
        "the scores are not divided by sqrt(hs)": softmax(s + neg) @ v,
        "the scores are divided by hs instead of sqrt(hs)": softmax(s / hs + neg) @ v,
        "the softmax runs over the wrong axis (queries, not keys)": np.nan_to_num(softmax(s / math.sqrt(hs) + neg, axis=-2)) @ v,
        "the mask is ignored: future tokens leak into the output": softmax(s / math.sqrt(hs)) @ v,
        "the mask is applied after the softmax (rows no longer sum to 1)": (softmax(s / math.sqrt(hs)) * mask) @ v,
    }


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(2)
def test_attention_forward_matches_reference(impl):
    rng = np.random.default_rng(0)
    q, k, v = qkv(rng)
    mask = ref.causal_mask(5, 5)
    got = impl.attention_forward(q, k, v, mask)
    expect(isinstance(got, tuple) and len(got) == 2, "attention_forward must return (out, cache)")
    out, cache = got
    want, want_cache = ref.attention_forward(q, k, v, mask)
    expect_close(out, want, "attention output", buggy_forwards(q, k, v, mask))
    expect(isinstance(cache, tuple) and len(cache) == 5, "the cache must be the tuple (q, k, v, att, scale)")
    expect_close(cache[3], want_cache[3], "att in the cache (the softmax weights)")
    expect_close(cache[4], want_cache[4], "scale in the cache", {"scale is sqrt(hs), not 1/sqrt(hs)": 1 / want_cache[4]})


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_attention_forward_no_future_leak(impl):
    """Changing a later token's key and value must not change any earlier output."""
    rng = np.random.default_rng(1)
    q, k, v = qkv(rng, B=1, nh=2, T_q=6, T_k=6)
    mask = ref.causal_mask(6, 6)
    out1, _ = impl.attention_forward(q, k, v, mask)
    k2, v2 = k.copy(), v.copy()
    k2[:, :, 4:] += 5.0
    v2[:, :, 4:] += 5.0
    out2, _ = impl.attention_forward(q, k2, v2, mask)
    changed = np.abs(np.asarray(out2) - np.asarray(out1))[:, :, :4].max()
    expect(changed < 1e-9, f"future tokens leak through the mask: editing keys/values at positions 4-5 changed "
                           f"outputs at positions 0-3 by up to {changed:.3g} (tolerance 1e-9)")


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_attention_forward_large_scores(impl):
    """Scores in the thousands must not overflow exp (subtract each row's max first)."""
    rng = np.random.default_rng(2)
    q, k, v = qkv(rng, scale=40.0)  # scores of order 1000s
    mask = ref.causal_mask(5, 5)
    out, _ = impl.attention_forward(q, k, v, mask)
    want, _ = ref.attention_forward(q, k, v, mask)
    expect_close(out, want, "attention output for large scores", rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ 3.3 attention backward


@pytest.mark.exercise("3.3", "attention_backward")
@pytest.mark.points(2)
def test_attention_backward_matches_reference(impl):
    rng = np.random.default_rng(3)
    q, k, v = qkv(rng)
    _, cache = ref.attention_forward(q, k, v, ref.causal_mask(5, 5))  # the reference cache
    dout = rng.standard_normal(q.shape)  # (B, nh, T, hs)
    got = impl.attention_backward(dout, cache)
    expect(isinstance(got, tuple) and len(got) == 3, "attention_backward must return (dq, dk, dv)")
    dq, dk, dv = ref.attention_backward(dout, cache)
    att, scale = cache[3], cache[4]
    datt = dout @ v.swapaxes(-2, -1)
    no_sum = att * datt * scale  # softmax backward without the subtracted sum
    expect_close(got[2], dv, "dv", {"dv is att @ dout: att must be transposed (att.T @ dout)": att @ dout})
    expect_close(got[0], dq, "dq", {"dq is missing the 1/sqrt(hs) scale": dq / scale,
                                    "the softmax backward drops the - sum(da * a) term": no_sum @ k})
    expect_close(got[1], dk, "dk", {"dk is missing the 1/sqrt(hs) scale": dk / scale,
                                    "the softmax backward drops the - sum(da * a) term": no_sum.swapaxes(-2, -1) @ q,
                                    "dk uses ds @ q: ds must be transposed (ds.T @ q)": ds_q(att, datt, scale, q)})


def ds_q(att, datt, scale, q):
    ds = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) * scale
    return ds @ q


@pytest.mark.exercise("3.3", "attention_backward")
@pytest.mark.points(1)
def test_attention_backward_finite_differences(impl):
    """Your gradients against central differences of L = sum(out * dout), in float64."""
    rng = np.random.default_rng(4)
    q, k, v = qkv(rng, B=1, nh=2, T_q=3, T_k=4, hs=4)
    mask = ref.causal_mask(3, 4)
    dout = rng.standard_normal(q.shape)
    _, cache = ref.attention_forward(q, k, v, mask)
    grads = impl.attention_backward(dout, cache)

    def loss():
        return float((ref.attention_forward(q, k, v, mask)[0] * dout).sum())

    for name, a, g in zip(("dq", "dk", "dv"), (q, k, v), grads):
        _, numeric = numeric_gradient(loss, a)
        g = np.asarray(g, dtype=float)
        expect(g.shape == a.shape, f"{name} has shape {g.shape}, expected {a.shape}")
        err = relative_error(g.reshape(-1), numeric)
        expect(err < 1e-6, f"{name} disagrees with finite differences: relative error {err:.2e} "
                           f"(tolerance 1e-6, central differences with h=1e-6 in float64)")
