"""Interpretability tools: pattern scores on known patterns, exact ablation, the logit lens, probes."""

from __future__ import annotations

import numpy as np
import pytest

from companion.config import preset
from companion.interpret import (ablate, fit_probe, induction_scores, logit_lens, previous_token_scores,
                                 probe_accuracy)
from companion.model import Transformer


def model64(**changes):
    return Transformer(preset("tiny", dtype="float64", **changes), np.random.default_rng(0))


def test_scores_on_hand_made_patterns():
    T, n = 8, 4
    prev = np.zeros((1, 2, T, T))
    prev[0, 0, 0, 0] = 1
    prev[0, 0, np.arange(1, T), np.arange(T - 1)] = 1  # head 0 looks one back
    prev[0, 1] = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]  # head 1 averages
    assert previous_token_scores(prev)[0] == 1.0
    assert previous_token_scores(prev)[1] == pytest.approx(np.mean(1 / np.arange(2, T + 1)))
    ind = np.zeros((1, 1, T, T))
    ind[0, 0, np.arange(n, T), np.arange(1, T - n + 1)] = 1  # query i looks at i - n + 1
    assert induction_scores(ind, n)[0] == 1.0 and previous_token_scores(ind)[0] == 0.0
    with pytest.raises(ValueError, match="period"):
        induction_scores(ind, T)


def test_induction_scores_at_other_offsets_find_a_shifted_head():
    T, n = 12, 4
    shifted = np.zeros((1, 1, T, T))
    shifted[0, 0, 0, 0] = 1
    i = np.arange(1, T)
    shifted[0, 0, i, np.maximum(i - n + 2, 0)] = 1  # query i looks at i - n + 2, one place late
    assert induction_scores(shifted, n, offset=2)[0] == 1.0
    assert induction_scores(shifted, n)[0] == 0.0  # the default offset 1 misses it
    back = np.zeros((1, 1, T, T))
    back[0, 0, np.arange(T), np.maximum(np.arange(T) - n - 1, 0)] = 1  # query i looks at i - n - 1
    assert induction_scores(back, n, offset=-1)[0] == 1.0  # scored from query n + 1, whose key exists
    with pytest.raises(ValueError, match="offset"):
        induction_scores(shifted, n, offset=n + 1)  # a key in the future
    with pytest.raises(ValueError, match="offset"):
        induction_scores(shifted, n, offset=-n)


def test_zero_ablation_through_the_output_rows_equals_zeroing_the_heads_values():
    model = model64()
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 10))
    base = model.forward(idx).copy()
    layer, head, hs, C = 1, 1, model.config.head_size, model.config.n_embd
    with ablate(model, layer, head):
        ablated = model.forward(idx).copy()
    assert np.array_equal(model.forward(idx), base)  # weights restored exactly
    c_attn = model.blocks[layer].attn.c_attn.params
    cols = slice(2 * C + head * hs, 2 * C + (head + 1) * hs)  # this head's value channels
    saved_w, saved_b = c_attn["w"][:, cols].copy(), c_attn["b"][cols].copy()
    c_attn["w"][:, cols], c_attn["b"][cols] = 0.0, 0.0
    np.testing.assert_allclose(model.forward(idx), ablated, rtol=0, atol=1e-12)
    c_attn["w"][:, cols], c_attn["b"][cols] = saved_w, saved_b
    assert np.abs(ablated - base).max() > 1e-6  # the head mattered


def test_mean_ablation_of_a_head_whose_output_never_varies_changes_nothing():
    model = model64()
    idx = np.random.default_rng(2).integers(0, 16, size=(3, 12))
    C, hs = model.config.n_embd, model.config.head_size
    c_attn = model.blocks[0].attn.c_attn.params
    c_attn["w"][:, 2 * C : 2 * C + hs] = 0.0  # head 0's values are its bias alone, at every position,
    c_attn["b"][2 * C : 2 * C + hs] = np.random.default_rng(5).standard_normal(hs)  # so its output is constant
    base = model.forward(idx).copy()
    with ablate(model, 0, 0, mean_over=idx):
        np.testing.assert_allclose(model.forward(idx), base, rtol=0, atol=1e-12)  # its mean is itself
    with ablate(model, 0, 0):
        assert np.abs(model.forward(idx) - base).max() > 1e-6  # while removing it does change the logits
    with pytest.raises(ValueError, match="bias"):
        with ablate(model64(bias=False), 0, 0, mean_over=idx):
            pass


def test_the_logit_lens_ends_at_the_models_logits():
    model = model64()
    idx = np.random.default_rng(3).integers(0, 16, size=(2, 9))
    lens = logit_lens(model, idx)
    assert len(lens) == model.config.n_layer + 1
    np.testing.assert_allclose(lens[-1], model.forward(idx), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="post-norm"):
        logit_lens(model64(norm_placement="post"), idx)


def test_a_probe_reads_a_linear_label_and_not_a_shuffled_one():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((600, 16))
    y = (X[:, :3].argmax(axis=1))  # a label linearly readable from 3 directions
    w = fit_probe(X[:400], y[:400], 3)
    assert probe_accuracy(w, X[400:], y[400:]) >= 0.9
    shuffled = rng.permutation(y[:400])
    w_shuffled = fit_probe(X[:400], shuffled, 3)
    assert probe_accuracy(w_shuffled, X[400:], y[400:]) <= 0.5  # chance is 1/3
    with pytest.raises(ValueError, match="features"):
        fit_probe(X, y[:10], 3)


def test_standardising_makes_the_probe_blind_to_the_streams_scale():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((600, 16))
    y = X[:, :3].argmax(axis=1)
    tiny = 1e-3 * X + 5.0  # a small stream with an offset, like a random model's
    majority = np.bincount(y[400:]).max() / 200
    # without standardising, ridge 1 swamps X^T X and the probe falls back to its bias: the majority class
    assert probe_accuracy(fit_probe(tiny[:400], y[:400], 3, ridge=1.0), tiny[400:], y[400:]) <= majority + 0.05
    w = fit_probe(tiny[:400], y[:400], 3, ridge=1.0, standardize=True)
    assert probe_accuracy(w, tiny[400:], y[400:]) >= 0.8  # the same as on the unscaled stream
    # the returned weights apply to raw features: the same predictions as a probe fitted on standardised ones
    mu, sd = tiny[:400].mean(0), tiny[:400].std(0)
    w_std = fit_probe((tiny[:400] - mu) / sd, y[:400], 3, ridge=1.0)
    raw = np.hstack([tiny[400:], np.ones((200, 1))]) @ w
    std = np.hstack([(tiny[400:] - mu) / sd, np.ones((200, 1))]) @ w_std
    np.testing.assert_allclose(raw, std, atol=1e-8)


def test_the_probes_bias_is_not_shrunk():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((500, 4))
    y = rng.integers(0, 3, size=500)
    w = fit_probe(X, y, 3, ridge=1e12)  # the weights shrink to zero; the bias must not
    np.testing.assert_allclose(w[:-1], 0.0, atol=1e-6)
    np.testing.assert_allclose(w[-1], np.bincount(y, minlength=3) / len(y), atol=1e-6)  # the class frequencies
