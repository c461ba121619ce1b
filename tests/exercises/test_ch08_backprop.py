"""Graded tests, chapter 8: linear backward, a block's backward, finite differences.

References: the companion's linear_backward and Block.backward (gradient-checked, PyTorch
parity); the numerical gradient is compared with an analytic derivative.
"""

import numpy as np
import pytest

from companion import preset
from companion.block import Block
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array, expect_tuple
from companion.linear import linear_backward as ref_linear_backward

CHAPTER = "ch08"
pytestmark = pytest.mark.ch08


# ------------------------------------------------------------------ 8.1 linear backward


@pytest.mark.exercise("8.1", "linear_backward")
@pytest.mark.points(2)
def test_linear_backward_3d(impl):
    rng = np.random.default_rng(0)
    x, w, _ = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    dout = rng.standard_normal((2, 3, 5))
    cache = (x, w, True)
    got = expect_tuple(impl.linear_backward(dout, cache), 3, "linear_backward must return (dx, dw, db)")
    dx, dw, db = ref_linear_backward(dout, cache)
    expect_close(got[0], dx, "dx", hint="dx = dout @ w.T")
    expect_close(got[1], dw, "dw", {"dw sums over the batch only (use every leading axis: flatten B and T)": (x[0].T @ dout[0]),
                                    "dw is transposed (it must be (n_in, n_out) like w)": dw.T})
    expect_close(got[2], db, "db", {"db sums over one axis only (sum over batch and time)": dout.sum(0),
                                    "db is the mean, not the sum": dout.reshape(-1, 5).mean(0)})


@pytest.mark.exercise("8.1", "linear_backward")
@pytest.mark.points(1)
def test_linear_backward_no_bias(impl):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 3)), rng.standard_normal((3, 2))
    dout = rng.standard_normal((6, 2))
    got = expect_tuple(impl.linear_backward(dout, (x, w, False)), 3, "linear_backward must return (dx, dw, db)")
    expect(got[2] is None, "without a bias, linear_backward must return (dx, dw, None)")
    dx, dw, _ = ref_linear_backward(dout, (x, w, False))
    expect_close(got[0], dx, "dx (2-D input)")
    expect_close(got[1], dw, "dw (2-D input)")


@pytest.mark.exercise("8.1", "linear_backward")
@pytest.mark.points(1)
def test_linear_backward_drawn_sizes(impl):
    """Any number of leading axes (here 1 to 3, drawn), odd feature counts."""
    rng = np.random.default_rng(81)
    for _ in range(3):
        lead = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 4))))
        n_in, n_out = (int(n) for n in rng.integers(1, 8, size=2))
        x, w, _ = rng.standard_normal(lead + (n_in,)), rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
        dout = rng.standard_normal(lead + (n_out,))
        got = expect_tuple(impl.linear_backward(dout, (x, w, True)), 3, "linear_backward must return (dx, dw, db)")
        for name, g, want in zip(("dx", "dw", "db"), got, ref_linear_backward(dout, (x, w, True))):
            expect_close(g, want, f"{name} for x of shape {x.shape} and w of shape {w.shape}")


# ------------------------------------------------------------------ 8.2 block backward


def make_block(x):
    config = preset("tiny", dtype="float64")
    rng = np.random.default_rng(0)
    block = Block(config, rng, np.float64, 0)
    for p in block.parameters().values():
        p += rng.normal(0, 0.3, p.shape)  # away from the initial ones and zeros
    block.forward(x)
    return block


def no_residual(block, dout):
    d = block.norm2.backward(block.ffn.backward(dout))
    return block.norm1.backward(block.attn.backward(d))


def forward_order(block, dout):
    d = dout + block.norm1.backward(block.attn.backward(dout))
    return d + block.norm2.backward(block.ffn.backward(d))


@pytest.mark.exercise("8.2", "block_backward")
@pytest.mark.points(3)
def test_block_backward(impl):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 16))  # (B, T, C)
    dout = rng.standard_normal((2, 5, 16))
    mine, ref = make_block(x), make_block(x)
    got = impl.block_backward(mine, dout)
    want = ref.backward(dout)
    bugs = {"the residual path is missing: x + f(x) passes dout straight through as well (dx = dout + ...)":
                no_residual(make_block(x), dout),
            "the sub-layers are walked in forward order: go back through the FFN first, then attention":
                forward_order(make_block(x), dout)}
    expect_close(got, want, "dx through the block", bugs)
    for name, g in ref.gradients().items():
        expect_close(mine.gradients()[name], g, f"the gradient of {name} after your block_backward",
                     hint="call each sub-layer's backward exactly once")


# ------------------------------------------------------------------ 8.3 numerical gradient


def f_of(a):
    return lambda: float((a**3).sum() + np.sin(a).sum())


@pytest.mark.exercise("8.3", "numeric_gradient")
@pytest.mark.points(2)
def test_numeric_gradient(impl):
    a = np.random.default_rng(2).standard_normal((3, 4))
    before = a.copy()
    h = 1e-3
    got = impl.numeric_gradient(f_of(a), a, h)
    expect(np.array_equal(a, before), "a was not put back exactly as it was after perturbing it")
    exact = 3 * a**2 + np.cos(a)  # the analytic derivative
    forward = np.array([(f_of(a + h * e.reshape(a.shape))() - f_of(a)()) / h for e in np.eye(a.size)]).reshape(a.shape)
    bugs = {"this is the forward difference (f(a+h) - f(a)) / h: its error is O(h), the central one's O(h^2)": forward,
            "the gradient is all zero: perturb the array f reads (a itself, in place), not a copy": np.zeros_like(a),
            "the difference is not divided by 2h": exact * 2 * h,
            "it is divided by h, not 2h": 2 * exact}
    expect_close(got, exact, "the numerical gradient of sum(a^3 + sin a) with h=1e-3", bugs, rtol=1e-5, atol=1e-5)


@pytest.mark.exercise("8.3", "numeric_gradient")
@pytest.mark.points(1)
def test_numeric_gradient_finds_a_wrong_backward(impl):
    """Used as the course uses it: it must expose a backward that is off by a factor."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    dout = rng.standard_normal((4, 2))
    numeric = expect_array(impl.numeric_gradient(lambda: float(((x @ w) * dout).sum()), w, 1e-5),
                           "numeric_gradient's result", w.shape)
    right, wrong = x.T @ dout, 2 * x.T @ dout
    expect(np.allclose(numeric, right, rtol=1e-6, atol=1e-8) and not np.allclose(numeric, wrong),
           "the numerical gradient of sum((x @ w) * dout) with respect to w should be x.T @ dout (rtol 1e-6)")
