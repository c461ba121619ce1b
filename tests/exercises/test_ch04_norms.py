"""Graded tests, chapter 4: LayerNorm backward, RMSNorm forward and backward.

References: the companion's norms (gradient-checked, PyTorch parity) and finite differences.
The caches given to the learner's backward passes are built here in the exercises' layouts,
not taken from the companion's forwards; the shapes are drawn from seeded Generators
(odd channel counts included).
"""

import numpy as np
import pytest

from companion import norms as ref
from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array, expect_tuple

CHAPTER = "ch04"
pytestmark = pytest.mark.ch04
FD_TOL = 1e-6


def inputs(rng, shape=None):
    if shape is None:  # (B, T, C) drawn: odd sizes too
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.choice([3, 5, 6, 7, 9])))
    x = rng.standard_normal(shape) * 2 + 0.5  # (B, T, C), not centred
    w = rng.standard_normal(shape[-1])  # (C,)
    b = rng.standard_normal(shape[-1])  # (C,)
    return x, w, b, rng.standard_normal(shape)


def ln_cache(x, w, b, eps=1e-5):
    """The cache the exercise promises layernorm_backward: (xhat, rstd, w, has_bias)."""
    xc = x - x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    return xc * rstd, rstd, w, b is not None


def rms_cache(x, w, eps=1e-5):
    """The cache the exercise promises rmsnorm_backward: (xhat, rrms, w)."""
    rrms = 1 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return x * rrms, rrms, w


def expect_fd(name, analytic, numeric, shape):
    analytic = expect_array(analytic, name, shape).reshape(-1)
    err = relative_error(analytic, numeric)
    expect(err < FD_TOL, f"{name} disagrees with finite differences: relative error {err:.2e} "
                         f"(tolerance {FD_TOL:g}, central differences h=1e-6, float64)")


# ------------------------------------------------------------------ 4.1 LayerNorm backward


@pytest.mark.exercise("4.1", "layernorm_backward")
@pytest.mark.points(2)
def test_layernorm_backward_matches_reference(impl):
    x, w, b, dout = inputs(np.random.default_rng(0))
    cache = ln_cache(x, w, b)
    got = expect_tuple(impl.layernorm_backward(dout, cache), 3, "layernorm_backward must return (dx, dw, db)")
    dx, dw, db = ref.layernorm_backward(dout, ref.layernorm_forward(x, w, b)[1])
    xhat, rstd = cache[0], cache[1]
    dxhat = dout * w
    bugs = {"the - mean(dxhat) term is missing": rstd * (dxhat - xhat * (dxhat * xhat).mean(-1, keepdims=True)),
            "the - xhat * mean(dxhat * xhat) term is missing": rstd * (dxhat - dxhat.mean(-1, keepdims=True)),
            "dx is not multiplied by rstd": dx / rstd,
            "dout is not multiplied by w before the normalisation's backward (dxhat = dout * w)":
                rstd * (dout - dout.mean(-1, keepdims=True) - xhat * (dout * xhat).mean(-1, keepdims=True))}
    expect_close(got[0], dx, "dx", bugs)
    expect_close(got[1], dw, "dw", {"dw is missing the factor xhat (dw = sum of dout * xhat)": db,
                                    "dw and db are swapped": db})
    expect_close(got[2], db, "db", {"dw and db are swapped": dw})


@pytest.mark.exercise("4.1", "layernorm_backward")
@pytest.mark.points(1)
def test_layernorm_backward_finite_differences(impl):
    x, w, b, dout = inputs(np.random.default_rng(1), (2, 5))
    dx, dw, db = expect_tuple(impl.layernorm_backward(dout, ln_cache(x, w, b)), 3,
                              "layernorm_backward must return (dx, dw, db)")

    def loss():
        return float((ref.layernorm_forward(x, w, b)[0] * dout).sum())

    for name, a, g in (("dx", x, dx), ("dw", w, dw), ("db", b, db)):
        expect_fd(name, g, numeric_gradient(loss, a)[1], a.shape)


@pytest.mark.exercise("4.1", "layernorm_backward")
@pytest.mark.points(1)
def test_layernorm_backward_without_bias(impl):
    x, w, _, dout = inputs(np.random.default_rng(2))
    got = expect_tuple(impl.layernorm_backward(dout, ln_cache(x, w, None)), 3, "layernorm_backward must return (dx, dw, db)")
    expect(got[2] is None,
           "with has_bias False (no bias), layernorm_backward must return (dx, dw, None)")


# ------------------------------------------------------------------ 4.2 RMSNorm forward


@pytest.mark.exercise("4.2", "rmsnorm_forward")
@pytest.mark.points(2)
def test_rmsnorm_forward_matches_reference(impl):
    rng = np.random.default_rng(3)
    C = int(rng.choice([5, 7, 8]))
    x = rng.standard_normal((2, int(rng.integers(1, 5)), C)) * 0.05 + 0.02  # small values, so that eps matters
    w = rng.standard_normal(C)
    eps = 1e-2
    got = expect_tuple(impl.rmsnorm_forward(x, w, eps), 2, "rmsnorm_forward must return (out, cache)")
    want, _ = ref.rmsnorm_forward(x, w, eps)
    cache = rms_cache(x, w, eps)
    ms = (x * x).mean(-1, keepdims=True)
    bugs = {"eps is outside the square root: use 1 / sqrt(mean(x^2) + eps)": x / (np.sqrt(ms) + eps) * w,
            "eps is missing": x / np.sqrt(ms) * w,
            "it uses the sum of squares, not their mean": x / np.sqrt((x * x).sum(-1, keepdims=True) + eps) * w,
            "it subtracts the mean (that is LayerNorm; RMSNorm does not centre)": ref.layernorm_forward(x, w, None, eps)[0],
            "w is not applied": x / np.sqrt(ms + eps)}
    expect_close(got[0], want, "RMSNorm output", bugs)
    c = expect_tuple(got[1], 3, "the cache must be (xhat, rrms, w)")
    expect_close(c[0], cache[0], "xhat in the cache")
    rrms = expect_array(c[1], "rrms in the cache")
    expect(rrms.size == cache[1].size, f"rrms in the cache should have shape {cache[1].shape} (one per row), got {rrms.shape}")
    expect_close(rrms.reshape(cache[1].shape), cache[1], "rrms in the cache (1 / sqrt(mean(x^2) + eps))")


@pytest.mark.exercise("4.2", "rmsnorm_forward")
@pytest.mark.points(1)
def test_rmsnorm_forward_unit_rms(impl):
    x = np.random.default_rng(4).standard_normal((4, 16)) * 7
    out, _ = expect_tuple(impl.rmsnorm_forward(x, np.ones(16), 1e-12), 2, "rmsnorm_forward must return (out, cache)")
    rms = np.sqrt((expect_array(out, "the RMSNorm output", x.shape) ** 2).mean(-1))
    expect(np.allclose(rms, 1.0, atol=1e-6), f"with w = 1, each row of the output should have RMS 1, got {np.round(rms, 4)} (atol 1e-6)")


# ------------------------------------------------------------------ 4.3 RMSNorm backward


@pytest.mark.exercise("4.3", "rmsnorm_backward")
@pytest.mark.points(2)
def test_rmsnorm_backward_matches_reference(impl):
    x, w, _, dout = inputs(np.random.default_rng(5))
    cache = rms_cache(x, w)
    got = expect_tuple(impl.rmsnorm_backward(dout, cache), 2, "rmsnorm_backward must return (dx, dw)")
    dx, dw = ref.rmsnorm_backward(dout, ref.rmsnorm_forward(x, w)[1])
    xhat, rrms = cache[0], cache[1]
    dxhat = dout * w
    bugs = {"the - xhat * mean(dxhat * xhat) term is missing": dxhat * rrms,
            "dx is not multiplied by rrms": dx / rrms,
            "it has LayerNorm's centring term - mean(dxhat): RMSNorm has none":
                rrms * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))}
    expect_close(got[0], dx, "dx", bugs)
    expect_close(got[1], dw, "dw", {"dw is missing the factor xhat": dout.reshape(-1, dout.shape[-1]).sum(0)})


@pytest.mark.exercise("4.3", "rmsnorm_backward")
@pytest.mark.points(1)
def test_rmsnorm_backward_finite_differences(impl):
    x, w, _, dout = inputs(np.random.default_rng(6), (3, 5))
    dx, dw = expect_tuple(impl.rmsnorm_backward(dout, rms_cache(x, w)), 2, "rmsnorm_backward must return (dx, dw)")

    def loss():
        return float((ref.rmsnorm_forward(x, w)[0] * dout).sum())

    expect_fd("dx", dx, numeric_gradient(loss, x)[1], x.shape)
    expect_fd("dw", dw, numeric_gradient(loss, w)[1], w.shape)
