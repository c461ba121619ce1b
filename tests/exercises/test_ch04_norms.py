"""Graded tests, chapter 4: LayerNorm backward, RMSNorm forward and backward.

References: the companion's norms (gradient-checked, PyTorch parity) and finite differences.
"""

import numpy as np
import pytest

from companion import norms as ref
from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close

CHAPTER = "ch04"
pytestmark = pytest.mark.ch04
FD_TOL = 1e-6


def inputs(rng, shape=(2, 3, 6)):
    x = rng.standard_normal(shape) * 2 + 0.5  # (B, T, C), not centred
    w = rng.standard_normal(shape[-1])  # (C,)
    b = rng.standard_normal(shape[-1])  # (C,)
    return x, w, b, rng.standard_normal(shape)


def expect_fd(name, analytic, numeric):
    analytic = np.asarray(analytic, dtype=float).reshape(-1)
    expect(analytic.shape == numeric.shape, f"{name} has {analytic.size} entries, expected {numeric.size}")
    err = relative_error(analytic, numeric)
    expect(err < FD_TOL, f"{name} disagrees with finite differences: relative error {err:.2e} "
                         f"(tolerance {FD_TOL:g}, central differences h=1e-6, float64)")


# ------------------------------------------------------------------ 4.1 LayerNorm backward


@pytest.mark.exercise("4.1", "layernorm_backward")
@pytest.mark.points(2)
def test_layernorm_backward_matches_reference(impl):
    x, w, b, dout = inputs(np.random.default_rng(0))
    _, cache = ref.layernorm_forward(x, w, b)
    got = impl.layernorm_backward(dout, cache)
    expect(isinstance(got, tuple) and len(got) == 3, "layernorm_backward must return (dx, dw, db)")
    dx, dw, db = ref.layernorm_backward(dout, cache)
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
    _, cache = ref.layernorm_forward(x, w, b)
    dx, dw, db = impl.layernorm_backward(dout, cache)

    def loss():
        return float((ref.layernorm_forward(x, w, b)[0] * dout).sum())

    for name, a, g in (("dx", x, dx), ("dw", w, dw), ("db", b, db)):
        expect_fd(name, g, numeric_gradient(loss, a)[1])


@pytest.mark.exercise("4.1", "layernorm_backward")
@pytest.mark.points(1)
def test_layernorm_backward_without_bias(impl):
    x, w, _, dout = inputs(np.random.default_rng(2))
    _, cache = ref.layernorm_forward(x, w, None)
    got = impl.layernorm_backward(dout, cache)
    expect(isinstance(got, tuple) and len(got) == 3 and got[2] is None,
           "with has_bias False (no bias), layernorm_backward must return (dx, dw, None)")


# ------------------------------------------------------------------ 4.2 RMSNorm forward


@pytest.mark.exercise("4.2", "rmsnorm_forward")
@pytest.mark.points(2)
def test_rmsnorm_forward_matches_reference(impl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8)) * 0.05 + 0.02  # small values, so that eps matters
    w = rng.standard_normal(8)
    eps = 1e-2
    got = impl.rmsnorm_forward(x, w, eps)
    expect(isinstance(got, tuple) and len(got) == 2, "rmsnorm_forward must return (out, cache)")
    want, cache = ref.rmsnorm_forward(x, w, eps)
    ms = (x * x).mean(-1, keepdims=True)
    bugs = {"eps is outside the square root: use 1 / sqrt(mean(x^2) + eps)": x / (np.sqrt(ms) + eps) * w,
            "eps is missing": x / np.sqrt(ms) * w,
            "it uses the sum of squares, not their mean": x / np.sqrt((x * x).sum(-1, keepdims=True) + eps) * w,
            "it subtracts the mean (that is LayerNorm; RMSNorm does not centre)": ref.layernorm_forward(x, w, None, eps)[0],
            "w is not applied": x / np.sqrt(ms + eps)}
    expect_close(got[0], want, "RMSNorm output", bugs)
    c = got[1]
    expect(isinstance(c, tuple) and len(c) == 3, "the cache must be (xhat, rrms, w)")
    expect_close(c[0], cache[0], "xhat in the cache")
    expect_close(np.broadcast_to(c[1], cache[1].shape), cache[1], "rrms in the cache (1 / sqrt(mean(x^2) + eps))")


@pytest.mark.exercise("4.2", "rmsnorm_forward")
@pytest.mark.points(1)
def test_rmsnorm_forward_unit_rms(impl):
    x = np.random.default_rng(4).standard_normal((4, 16)) * 7
    out, _ = impl.rmsnorm_forward(x, np.ones(16), 1e-12)
    rms = np.sqrt((np.asarray(out) ** 2).mean(-1))
    expect(np.allclose(rms, 1.0, atol=1e-6), f"with w = 1, each row of the output should have RMS 1, got {np.round(rms, 4)} (atol 1e-6)")


# ------------------------------------------------------------------ 4.3 RMSNorm backward


@pytest.mark.exercise("4.3", "rmsnorm_backward")
@pytest.mark.points(2)
def test_rmsnorm_backward_matches_reference(impl):
    x, w, _, dout = inputs(np.random.default_rng(5))
    _, cache = ref.rmsnorm_forward(x, w)
    got = impl.rmsnorm_backward(dout, cache)
    expect(isinstance(got, tuple) and len(got) == 2, "rmsnorm_backward must return (dx, dw)")
    dx, dw = ref.rmsnorm_backward(dout, cache)
    xhat, rrms = cache[0], cache[1]
    dxhat = dout * w
    bugs = {"the - xhat * mean(dxhat * xhat) term is missing": dxhat * rrms,
            "dx is not multiplied by rrms": dx / rrms,
            "it has LayerNorm's centring term - mean(dxhat): RMSNorm has none":
                rrms * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))}
    expect_close(got[0], dx, "dx", bugs)
    expect_close(got[1], dw, "dw", {"dw is missing the factor xhat": dout.reshape(-1, 6).sum(0)})


@pytest.mark.exercise("4.3", "rmsnorm_backward")
@pytest.mark.points(1)
def test_rmsnorm_backward_finite_differences(impl):
    x, w, _, dout = inputs(np.random.default_rng(6), (3, 5))
    _, cache = ref.rmsnorm_forward(x, w)
    dx, dw = impl.rmsnorm_backward(dout, cache)

    def loss():
        return float((ref.rmsnorm_forward(x, w)[0] * dout).sum())

    expect_fd("dx", dx, numeric_gradient(loss, x)[1])
    expect_fd("dw", dw, numeric_gradient(loss, w)[1])
