"""Graded tests, chapter 7: targets, stable cross-entropy, its gradient.

Reference: the companion's cross_entropy_forward/backward (checked against PyTorch). The cache
given to the learner's cross_entropy_backward is built here in the exercise's layout
(probs, targets, mask); sizes and masks are drawn from seeded Generators.
"""

import numpy as np
import pytest

from companion.gradcheck import numeric_gradient, relative_error
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array, expect_tuple
from companion.loss import cross_entropy_backward, cross_entropy_forward

CHAPTER = "ch07"
pytestmark = pytest.mark.ch07


def data(rng, B=None, T=None, V=None, scale=1.0):
    B, T, V = (int(rng.integers(2, 6)) if n is None else n for n in (B, T, V))
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
    x, y = (expect_array(a, name, tokens[:, 1:].shape, dtype=None) for a, name in zip(got, ("inputs", "targets")))
    expect_close(x, tokens[:, :-1], "inputs", {"inputs and targets are swapped": tokens[:, 1:]}, rtol=0, atol=0)
    bugs = {"targets off by one: the targets are the inputs themselves (the model would learn to copy)": tokens[:, :-1],
            "inputs and targets are swapped": tokens[:, :-1],
            "targets off by one: shifted by two positions": tokens[:, 2:]}
    expect_close(y, tokens[:, 1:], "targets", bugs, rtol=0, atol=0)


# ------------------------------------------------------------------ 7.2 cross-entropy


def contract_cache(logits, targets, mask):
    """The cache the exercise promises cross_entropy_backward: (probs, targets, mask)."""
    e = np.exp(logits - logits.max(-1, keepdims=True))
    mask = np.ones(targets.shape) if mask is None else mask.astype(float)
    return e / e.sum(-1, keepdims=True), targets, mask


def loss_of(impl, logits, targets, mask):
    loss, _ = expect_tuple(impl.cross_entropy_forward(logits, targets, mask), 2,
                           "cross_entropy_forward must return (loss, cache)")
    return loss


@pytest.mark.exercise("7.2", "cross_entropy_forward")
@pytest.mark.points(2)
def test_cross_entropy_matches_reference(impl):
    logits, targets, mask = data(np.random.default_rng(0))
    got = loss_of(impl, logits, targets, mask)
    want = cross_entropy_forward(logits, targets, mask)[0]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    bugs = {"the sum is divided by B*T, not by the number of unmasked positions": (nll * mask).sum() / mask.size,
            "the mask is ignored": nll.mean(),
            "the sign is flipped (the loss is minus the log-probability)": -want,
            "targets off by one (scored against the previous position's target)":
                cross_entropy_forward(logits[:, 1:], targets[:, :-1], mask[:, 1:])[0]}
    expect_close(got, want, "the loss", bugs)
    expect_close(loss_of(impl, logits, targets, None), cross_entropy_forward(logits, targets)[0],
                 "the loss with mask=None (every position counts)")


@pytest.mark.exercise("7.2", "cross_entropy_forward")
@pytest.mark.points(1)
def test_cross_entropy_large_logits(impl):
    logits, targets, mask = data(np.random.default_rng(1), scale=1000.0)
    got = loss_of(impl, logits, targets, mask)
    expect_close(got, cross_entropy_forward(logits, targets, mask)[0],
                 "the loss for logits of order 1000 (exp overflows unless you subtract the max)")


@pytest.mark.exercise("7.2", "cross_entropy_forward")
@pytest.mark.points(1)
def test_cross_entropy_cache(impl):
    logits, targets, mask = data(np.random.default_rng(5))
    _, cache = expect_tuple(impl.cross_entropy_forward(logits, targets, mask), 2,
                            "cross_entropy_forward must return (loss, cache)")
    probs, _, m = expect_tuple(cache, 3, "the cache must be the tuple (probs, targets, mask)")
    want = contract_cache(logits, targets, mask)
    expect_close(probs, want[0], "probs in the cache (the softmax of the logits)")
    expect_close(m, want[2], "mask in the cache (0/1 floats)")
    _, cache = expect_tuple(impl.cross_entropy_forward(logits, targets, None), 2,
                            "cross_entropy_forward must return (loss, cache)")
    expect_close(expect_tuple(cache, 3, "the cache must be the tuple (probs, targets, mask)")[2], np.ones(targets.shape),
                 "mask in the cache when mask=None (all ones)")


# ------------------------------------------------------------------ 7.3 gradient


@pytest.mark.exercise("7.3", "cross_entropy_backward")
@pytest.mark.points(2)
def test_cross_entropy_grad_matches_reference(impl):
    logits, targets, mask = data(np.random.default_rng(2))
    cache = contract_cache(logits, targets, mask)
    probs_before = cache[0].copy()
    got = impl.cross_entropy_backward(cache)
    expect(np.array_equal(cache[0], probs_before), "cross_entropy_backward changed probs in the cache: work on a copy")
    want = cross_entropy_backward(cross_entropy_forward(logits, targets, mask)[1])
    count = mask.sum()
    soft = probs_before
    bugs = {"dlogits is not divided by the number of unmasked positions": want * count,
            "dlogits is divided by B*T, not by the number of unmasked positions": want * count / mask.size,
            "the one-hot target is not subtracted (softmax - onehot)": soft * (mask / count)[..., None],
            "masked positions get a gradient (multiply by the mask)":
                cross_entropy_backward(cross_entropy_forward(logits, targets)[1]) * mask.size / count}
    expect_close(got, want, "dlogits", bugs)


@pytest.mark.exercise("7.3", "cross_entropy_backward")
@pytest.mark.points(1)
def test_cross_entropy_grad_finite_differences(impl):
    logits, targets, mask = data(np.random.default_rng(3), B=1, T=4, V=5)
    got = expect_array(impl.cross_entropy_backward(contract_cache(logits, targets, mask)), "dlogits", logits.shape)
    _, numeric = numeric_gradient(lambda: cross_entropy_forward(logits, targets, mask)[0], logits)
    err = relative_error(got.reshape(-1), numeric)
    expect(err < 1e-6, f"dlogits disagrees with finite differences: relative error {err:.2e} (tolerance 1e-6, h=1e-6, float64)")
