"""Graded tests, chapter 2: embedding backward, sinusoidal table, RoPE.

References: the companion's own functions (gradient-checked) and formulas written here.
"""

import numpy as np
import pytest

from companion.embedding import embedding_backward as ref_embedding_backward
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array
from companion.positions import rope_forward as ref_rope
from companion.positions import rope_tables, sinusoidal_table as ref_table

CHAPTER = "ch02"
pytestmark = pytest.mark.ch02


# ------------------------------------------------------------------ 2.1 embedding backward


@pytest.mark.exercise("2.1", "embedding_backward")
@pytest.mark.points(2)
def test_embedding_backward_repeated_tokens(impl):
    rng = np.random.default_rng(0)
    idx = np.array([[1, 3, 1, 1], [0, 3, 5, 1]])  # token 1 appears four times, 3 twice
    dout = rng.standard_normal((2, 4, 3))  # (B, T, C)
    cache = (idx, (7, 3))
    got = impl.embedding_backward(dout, cache)
    buggy = np.zeros((7, 3))
    buggy[idx.reshape(-1)] += dout.reshape(-1, 3)  # buffered: one write per repeated row
    expect_close(got, ref_embedding_backward(dout, cache), "dw",
                 {"repeated tokens keep only one gradient (dw[idx] += dout is buffered: use np.add.at)": buggy})


@pytest.mark.exercise("2.1", "embedding_backward")
@pytest.mark.points(1)
def test_embedding_backward_unused_rows_are_zero(impl):
    idx = np.array([[2, 2]])
    got = expect_array(impl.embedding_backward(np.ones((1, 2, 4)), (idx, (5, 4))), "dw (the table's shape)", (5, 4))
    expect(np.all(got[[0, 1, 3, 4]] == 0) and np.allclose(got[2], 2.0),
           "rows of tokens that were not used must get zero gradient, and token 2 (used twice) gets 1 + 1 = 2")


@pytest.mark.exercise("2.1", "embedding_backward")
@pytest.mark.points(1)
def test_embedding_backward_drawn_sizes(impl):
    rng = np.random.default_rng(21)
    for _ in range(3):
        B, T, C, V = (int(n) for n in rng.integers(1, 9, size=4))
        idx = rng.integers(0, V, size=(B, T))  # (B, T), repeats likely
        dout = rng.standard_normal((B, T, C))  # (B, T, C)
        expect_close(impl.embedding_backward(dout, (idx, (V, C))), ref_embedding_backward(dout, (idx, (V, C))),
                     f"dw for idx {B}x{T} into a ({V}, {C}) table")


# ------------------------------------------------------------------ 2.2 sinusoidal table


@pytest.mark.exercise("2.2", "sinusoidal_table")
@pytest.mark.points(1)
@pytest.mark.parametrize("T,C", [(16, 8), (50, 32), (7, 6)])
def test_sinusoidal_table(impl, T, C):
    got = impl.sinusoidal_table(T, C, np.float64)
    want = ref_table(T, C, np.float64)
    t = np.arange(T)[:, None]
    i = np.arange(C // 2)
    f_i = 10000.0 ** (-i / C)  # exponent i/C instead of 2i/C
    halves = np.concatenate([np.sin(t * 10000.0 ** (-2 * i / C)), np.cos(t * 10000.0 ** (-2 * i / C))], axis=1)
    bugs = {"sin and cos are swapped (sin goes on even channels 0, 2, 4, ...)": np.stack([want[:, 1::2], want[:, 0::2]], -1).reshape(T, C),
            "the frequency uses 10000^(i/n_embd) where it should be 10000^(2i/n_embd)":
                np.stack([np.sin(t * f_i), np.cos(t * f_i)], -1).reshape(T, C),
            "sin fills the first half and cos the second half: they should interleave (2i, 2i+1)": halves}
    expect_close(got, want, f"sinusoidal_table({T}, {C})", bugs)


@pytest.mark.exercise("2.2", "sinusoidal_table")
@pytest.mark.points(1)
def test_sinusoidal_table_dtype(impl):
    got = impl.sinusoidal_table(8, 4, np.float32)
    expect(getattr(got, "dtype", None) == np.float32, f"sinusoidal_table(..., dtype=np.float32) returned {getattr(got, 'dtype', type(got))}")


# ------------------------------------------------------------------ 2.3 RoPE


def rope_inputs(rng, B=2, nh=2, T=7, hs=6):
    x = rng.standard_normal((B, nh, T, hs))  # (B, nh, T, hs)
    cos, sin = rope_tables(T, hs, 10000.0, np.float64)  # (T, hs/2)
    return x, cos, sin


@pytest.mark.exercise("2.3", "rope_forward")
@pytest.mark.points(2)
def test_rope_forward_matches_reference(impl):
    x, cos, sin = rope_inputs(np.random.default_rng(0))
    x_before = x.copy()
    got = impl.rope_forward(x, cos, sin)
    expect(np.array_equal(x, x_before), "rope_forward changed its input x: write into a new array")
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotate_half = np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    bugs = {"the pairs are (i, i + hs/2) (the 'rotate half' layout) where RoPE here pairs neighbours (2i, 2i+1)": rotate_half,
            "the rotation goes the wrong way (the sin terms have the wrong signs)": ref_rope(x, cos, -sin),
            "cos and sin are swapped": ref_rope(x, sin, cos)}
    expect_close(got, ref_rope(x, cos, sin), "rope_forward(x, cos, sin)", bugs)


@pytest.mark.exercise("2.3", "rope_forward")
@pytest.mark.points(1)
def test_rope_scores_depend_on_relative_position(impl):
    """The point of RoPE: q.k after rotation depends only on the distance between positions."""
    rng = np.random.default_rng(1)
    hs, T = 8, 12
    cos, sin = rope_tables(T, hs, 10000.0, np.float64)
    q, k = rng.standard_normal(hs), rng.standard_normal(hs)
    x = np.broadcast_to(q, (1, 1, T, hs)).copy()
    y = np.broadcast_to(k, (1, 1, T, hs)).copy()
    rq = expect_array(impl.rope_forward(x, cos, sin), "rope_forward(x, cos, sin)", x.shape)[0, 0]  # (T, hs)
    rk = expect_array(impl.rope_forward(y, cos, sin), "rope_forward(x, cos, sin)", y.shape)[0, 0]
    scores = rq @ rk.T  # (T, T): query at position m, key at n
    d = [scores[m, m - 3] for m in range(3, T)]  # distance 3 everywhere
    expect(np.ptp(d) < 1e-9, f"q.k at distance 3 varies with absolute position by {np.ptp(d):.3g} (tolerance 1e-9): "
                             "each pair must be rotated by exactly its angle t * theta_i")
    norms = np.linalg.norm(rq, axis=-1)
    expect(np.allclose(norms, np.linalg.norm(q), rtol=1e-12), "a rotation must keep each vector's length")
