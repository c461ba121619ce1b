"""Graded tests, chapter 7: targets, stable cross-entropy, its gradient.

Reference: the companion's cross_entropy_forward/backward (checked against PyTorch).
"""

import numpy as np
import pytest

from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close
from companion.loss import cross_entropy_backward, cross_entropy_forward

CHAPTER = "ch07"
pytestmark = pytest.mark.ch07


def data(rng, B=2, T=5, V=7, scale=1.0):
    logits = rng.standard_normal((B, T, V)) * scale  # (B, T, V)
    targets = rng.integers(0, V, size=(B, T))  # (B, T)
    mask = (rng.random((B, T)) < 0.7).astype(float)  # (B, T)
    mask[0, 0] = 1
    return logits, targets, mask


# ------------------------------------------------------------------ 7.1 targets


@pytest.mark.exercise("7.1", "make_targets")
@pytest.mark.points(2)
def test_make_targets(impl):
    tokens = np.arange(2 * 7).reshape(2, 7)
    got = impl.make_targets(tokens)
    expect(isinstance(got, tuple) and len(got) == 2, "make_targets must return (inputs, targets)")
    x, y = (np.asarray(a) for a in got)
    expect_close(x, tokens[:, :-1], "inputs", {"inputs and targets are swapped": tokens[:, 1:]}, rtol=0, atol=0)
    bugs = {"targets off by one: the targets are the inputs themselves (the model would learn to copy)": tokens[:, :-1],
            "inputs and targets are swapped": tokens[:, :-1],
            "targets off by one: shifted by two positions": tokens[:, 2:]}
    expect_close(y, tokens[:, 1:], "targets", bugs, rtol=0, atol=0)


# ------------------------------------------------------------------ 7.2 cross-entropy


@pytest.mark.exercise("7.2", "cross_entropy")
@pytest.mark.points(2)
def test_cross_entropy_matches_reference(impl):
    logits, targets, mask = data(np.random.default_rng(0))
    got = impl.cross_entropy(logits, targets, mask)
    want = cross_entropy_forward(logits, targets, mask)[0]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    bugs = {"the sum is divided by B*T, not by the number of unmasked positions": (nll * mask).sum() / mask.size,
            "the mask is ignored": nll.mean(),
            "the sign is flipped (the loss is minus the log-probability)": -want,
            "targets off by one (scored against the previous position's target)":
                cross_entropy_forward(logits[:, 1:], targets[:, :-1], mask[:, 1:])[0]}
    expect_close(got, want, "the loss", bugs)
    expect_close(impl.cross_entropy(logits, targets, None), cross_entropy_forward(logits, targets)[0],
                 "the loss with mask=None (every position counts)")


@pytest.mark.exercise("7.2", "cross_entropy")
@pytest.mark.points(1)
def test_cross_entropy_large_logits(impl):
    logits, targets, mask = data(np.random.default_rng(1), scale=1000.0)
    got = impl.cross_entropy(logits, targets, mask)
    expect_close(got, cross_entropy_forward(logits, targets, mask)[0],
                 "the loss for logits of order 1000 (exp overflows unless you subtract the max)")


# ------------------------------------------------------------------ 7.3 gradient


@pytest.mark.exercise("7.3", "cross_entropy_grad")
@pytest.mark.points(2)
def test_cross_entropy_grad_matches_reference(impl):
    logits, targets, mask = data(np.random.default_rng(2))
    got = impl.cross_entropy_grad(logits, targets, mask)
    want = cross_entropy_backward(cross_entropy_forward(logits, targets, mask)[1])
    count = mask.sum()
    e = np.exp(logits - logits.max(-1, keepdims=True))
    soft = e / e.sum(-1, keepdims=True)
    bugs = {"dlogits is not divided by the number of unmasked positions": want * count,
            "dlogits is divided by B*T, not by the number of unmasked positions": want * count / mask.size,
            "the one-hot target is not subtracted (softmax - onehot)": soft * (mask / count)[..., None],
            "masked positions get a gradient (multiply by the mask)":
                cross_entropy_backward(cross_entropy_forward(logits, targets)[1]) * mask.size / count}
    expect_close(got, want, "dlogits", bugs)


@pytest.mark.exercise("7.3", "cross_entropy_grad")
@pytest.mark.points(1)
def test_cross_entropy_grad_finite_differences(impl):
    logits, targets, mask = data(np.random.default_rng(3), B=1, T=4, V=5)
    got = np.asarray(impl.cross_entropy_grad(logits, targets, mask), dtype=float)
    _, numeric = numeric_gradient(lambda: cross_entropy_forward(logits, targets, mask)[0], logits)
    expect(got.shape == logits.shape, f"dlogits has shape {got.shape}, expected {logits.shape}")
    err = relative_error(got.reshape(-1), numeric)
    expect(err < 1e-6, f"dlogits disagrees with finite differences: relative error {err:.2e} (tolerance 1e-6, h=1e-6, float64)")
