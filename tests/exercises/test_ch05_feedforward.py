"""Graded tests, chapter 5: GELU, SwiGLU forward and backward.

References: the companion's feed-forward functions (gradient-checked, PyTorch parity). The
caches are checked, and given to swiglu_backward, in the exercises' layouts, built here.
"""

import math

import numpy as np
import pytest

from companion import feedforward as ref
from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array, expect_tuple

CHAPTER = "ch05"
pytestmark = pytest.mark.ch05


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def swiglu_cache(gate, up):
    """The cache the exercise promises swiglu_backward: (gate, up, sigmoid(gate), silu(gate))."""
    return gate, up, sigmoid(gate), gate * sigmoid(gate)


def drawn_shape(rng):
    return tuple(int(n) for n in rng.integers(1, 6, size=int(rng.integers(1, 4)))) + (int(rng.choice([3, 5, 8])),)


# ------------------------------------------------------------------ 5.1 GELU


@pytest.mark.exercise("5.1", "gelu_forward")
@pytest.mark.points(2)
def test_gelu_forward(impl):
    x = np.linspace(-6, 6, 97).reshape(1, 97)
    got = expect_tuple(impl.gelu_forward(x), 2, "gelu_forward must return (out, cache)")
    want, _ = ref.gelu_forward(x)
    tanh_u = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
    erf = np.vectorize(math.erf)
    bugs = {"this is the exact (erf) GELU; GPT-2 uses the tanh approximation": 0.5 * x * (1 + erf(x / math.sqrt(2))),
            "the factor 1/2 is missing": 2 * want,
            "the cubic term is 0.044715 x^2 (it should be 0.044715 x^3)":
                0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x))),
            "sqrt(2/pi) is missing inside the tanh": 0.5 * x * (1 + np.tanh(x + 0.044715 * x**3))}
    expect_close(got[0], want, "gelu(x)", bugs, rtol=1e-7, atol=1e-10)
    cache = expect_tuple(got[1], 2, "the cache must be the tuple (x, tanh(u))")
    expect_close(cache[1], tanh_u, "tanh(u) in the cache")


@pytest.mark.exercise("5.1", "gelu_forward")
@pytest.mark.points(1)
def test_gelu_forward_extremes(impl):
    x = np.array([-1e3, -30.0, 0.0, 30.0, 1e3])
    out, _ = expect_tuple(impl.gelu_forward(x), 2, "gelu_forward must return (out, cache)")
    expect_close(out, [0.0, 0.0, 0.0, 30.0, 1e3], "gelu at -1000, -30, 0, 30, 1000", atol=1e-9)


# ------------------------------------------------------------------ 5.2 SwiGLU forward


@pytest.mark.exercise("5.2", "swiglu_forward")
@pytest.mark.points(2)
def test_swiglu_forward(impl):
    rng = np.random.default_rng(0)
    shape = drawn_shape(rng)
    gate, up = rng.standard_normal(shape) * 3, rng.standard_normal(shape)
    got = expect_tuple(impl.swiglu_forward(gate, up), 2, "swiglu_forward must return (h, cache)")
    want, _ = ref.swiglu_forward(gate, up)
    cache = swiglu_cache(gate, up)
    bugs = {"gate and up are swapped: silu goes on the gate, h = silu(gate) * up": up * sigmoid(up) * gate,
            "it uses sigmoid(gate) (that is GLU); SwiGLU uses silu(gate) = gate * sigmoid(gate)": sigmoid(gate) * up,
            "it uses relu(gate); SwiGLU uses silu(gate)": np.maximum(gate, 0) * up,
            "the up projection is not multiplied in": gate * sigmoid(gate)}
    expect_close(got[0], want, "h = silu(gate) * up", bugs)
    mine = expect_tuple(got[1], 4, "the cache must be (gate, up, sigmoid(gate), silu(gate))")
    expect_close(mine[2], cache[2], "sigmoid(gate) in the cache")
    expect_close(mine[3], cache[3], "silu(gate) in the cache")


@pytest.mark.exercise("5.2", "swiglu_forward")
@pytest.mark.points(1)
def test_swiglu_forward_no_overflow(impl):
    gate = np.array([-800.0, -50.0, 0.0, 50.0, 800.0])
    h, _ = expect_tuple(impl.swiglu_forward(gate, np.ones(5)), 2, "swiglu_forward must return (h, cache)")
    expect_close(h, [0.0, 0.0, 0.0, 50.0, 800.0], "silu at -800 .. 800 (does exp overflow?)", atol=1e-9)


# ------------------------------------------------------------------ 5.3 SwiGLU backward


@pytest.mark.exercise("5.3", "swiglu_backward")
@pytest.mark.points(2)
def test_swiglu_backward_matches_reference(impl):
    rng = np.random.default_rng(1)
    shape = drawn_shape(rng)
    gate, up, dh = (rng.standard_normal(shape) * 2 for _ in range(3))
    got = expect_tuple(impl.swiglu_backward(dh, swiglu_cache(gate, up)), 2, "swiglu_backward must return (dgate, dup)")
    dgate, dup = ref.swiglu_backward(dh, ref.swiglu_forward(gate, up)[1])
    sg = sigmoid(gate)
    bugs = {"silu'(a) was taken as sigmoid(a): the product rule adds a * sigmoid(a) * (1 - sigmoid(a))": dh * up * sg,
            "dgate and dup are swapped": dup,
            "dgate is missing the factor up": dh * sg * (1 + gate * (1 - sg))}
    expect_close(got[0], dgate, "dgate", bugs)
    expect_close(got[1], dup, "dup", {"dgate and dup are swapped": dgate, "dup uses sigmoid(gate), not silu(gate)": dh * sg})


@pytest.mark.exercise("5.3", "swiglu_backward")
@pytest.mark.points(1)
def test_swiglu_backward_finite_differences(impl):
    rng = np.random.default_rng(2)
    gate, up, dh = (rng.standard_normal((3, 5)) for _ in range(3))
    got = expect_tuple(impl.swiglu_backward(dh, swiglu_cache(gate, up)), 2, "swiglu_backward must return (dgate, dup)")

    def loss():
        return float((ref.swiglu_forward(gate, up)[0] * dh).sum())

    for name, a, g in (("dgate", gate, got[0]), ("dup", up, got[1])):
        err = relative_error(expect_array(g, name, a.shape).reshape(-1), numeric_gradient(loss, a)[1])
        expect(err < 1e-6, f"{name} disagrees with finite differences: relative error {err:.2e} (tolerance 1e-6, h=1e-6, float64)")
