"""Graded tests, chapter 6: temperature and top-k, sampling, generation.

The reference probabilities are written here; sampling is tested statistically with a fixed
seed (frequencies within 5 standard deviations of the probabilities, so a correct sampler
never fails and a wrong one nearly always does).
"""

import numpy as np
import pytest

from companion import Transformer, preset
from companion.grading.adapter import expect, expect_close
from companion.grading.messages import expect_array

CHAPTER = "ch06"
pytestmark = pytest.mark.ch06


def ref_probs(logits, temperature=1.0, top_k=None, renorm=True):
    z = np.asarray(logits, dtype=float) / temperature
    if top_k is not None:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        keep = z >= kth
    else:
        keep = np.ones_like(z, dtype=bool)
    e = np.exp(z - z.max(-1, keepdims=True))
    if renorm:
        e = np.where(keep, e, 0)
        return e / e.sum(-1, keepdims=True)
    return np.where(keep, e / e.sum(-1, keepdims=True), 0)


LOGITS = np.random.default_rng(0).standard_normal((3, 10)) * 2  # (B, V), no ties


# ------------------------------------------------------------------ 6.1 next_token_probs


@pytest.mark.exercise("6.1", "next_token_probs")
@pytest.mark.points(1)
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature(impl, temperature):
    got = impl.next_token_probs(LOGITS, temperature, None)
    bugs = {"the logits are multiplied by the temperature (divide them)": ref_probs(LOGITS, 1 / temperature),
            "the temperature is ignored": ref_probs(LOGITS)}
    expect_close(got, ref_probs(LOGITS, temperature), f"probabilities at temperature {temperature}", bugs)


@pytest.mark.exercise("6.1", "next_token_probs")
@pytest.mark.points(1)
@pytest.mark.parametrize("top_k", [1, 3])
def test_top_k(impl, top_k):
    got = impl.next_token_probs(LOGITS, 0.8, top_k)
    bugs = {"top-k keeps one token too many": ref_probs(LOGITS, 0.8, top_k + 1),
            "top-k keeps the k smallest logits instead of the largest": _smallest(LOGITS, 0.8, top_k),
            "the probabilities are not renormalised after top-k (softmax first, cut after: rows sum below 1)":
                ref_probs(LOGITS, 0.8, top_k, renorm=False)}
    expect_close(got, ref_probs(LOGITS, 0.8, top_k), f"probabilities with top_k={top_k}", bugs)


def _smallest(logits, t, k):
    z = logits / t
    kth = np.sort(z, axis=-1)[:, k - 1][:, None]  # the k-th smallest
    e = np.where(z <= kth, np.exp(z - z.max(-1, keepdims=True)), 0)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.exercise("6.1", "next_token_probs")
@pytest.mark.points(1)
def test_top_k_drawn_sizes(impl):
    rng = np.random.default_rng(61)
    for _ in range(4):
        B, V = int(rng.integers(1, 5)), int(rng.integers(2, 40))
        logits = rng.standard_normal((B, V)) * 3  # (B, V), continuous: no ties
        top_k, temperature = int(rng.integers(1, V + 1)), float(rng.uniform(0.3, 3.0))
        got = impl.next_token_probs(logits, temperature, top_k)
        bugs = {"top-k keeps one token too many": ref_probs(logits, temperature, min(V, top_k + 1)),
                "the probabilities are not renormalised after top-k":
                    ref_probs(logits, temperature, top_k, renorm=False)}
        expect_close(got, ref_probs(logits, temperature, top_k),
                     f"probabilities for logits ({B}, {V}) with temperature {temperature:.3g}, top_k={top_k}", bugs)


@pytest.mark.exercise("6.1", "next_token_probs")
@pytest.mark.points(1)
def test_large_logits(impl):
    logits = LOGITS * 500
    got = impl.next_token_probs(logits, 1.0, None)
    expect_close(got, ref_probs(logits), "probabilities for logits in the thousands (subtract the max before exp)")


# ------------------------------------------------------------------ 6.2 pick_next


def frequencies(ids, V):
    ids = np.asarray(ids)
    return np.bincount(ids.reshape(-1), minlength=V) / ids.size


@pytest.mark.exercise("6.2", "pick_next")
@pytest.mark.points(2)
def test_sample_distribution(impl):
    rng = np.random.default_rng(1)
    logits = np.tile(LOGITS[:1], (4000, 1))  # the same row 4000 times: 4000 draws
    ids = expect_array(impl.pick_next(logits, rng, 1.5, 5), "pick_next's result (one id per row)", (4000,), dtype=None)
    expect(ids.dtype.kind in "iu", f"pick_next should return integer ids, got {ids.dtype}")
    expect(ids.min() >= 0 and ids.max() < 10, f"pick_next returned ids outside [0, V=10): {ids.min()} .. {ids.max()}")
    p = ref_probs(LOGITS[:1], 1.5, 5)[0]
    freq = frequencies(ids, 10)
    expect(np.all(freq[p == 0] == 0), "a token outside the top k was sampled")
    sd = np.sqrt(p * (1 - p) / 4000)
    worst = np.max(np.abs(freq - p) / np.maximum(sd, 1e-12))
    expect(worst < 5, f"sampled frequencies {np.round(freq, 3)} do not follow the probabilities {np.round(p, 3)} "
                      f"(off by {worst:.1f} standard deviations; tolerance 5)")


@pytest.mark.exercise("6.2", "pick_next")
@pytest.mark.points(1)
def test_sample_uses_rng(impl):
    a, b = (expect_array(impl.pick_next(LOGITS, np.random.default_rng(7), 1.0, None), "pick_next(logits (3, V))", (3,),
                         dtype=None) for _ in range(2))
    expect(np.array_equal(a, b), "two calls with generators of the same seed drew different tokens: use the rng you are given")
    greedy = expect_array(impl.pick_next(LOGITS, np.random.default_rng(8), 1.0, 1), "pick_next(logits (3, V))", (3,), dtype=None)
    expect(np.array_equal(greedy, LOGITS.argmax(-1)), "with top_k=1, sampling must pick the largest logit")


# ------------------------------------------------------------------ 6.3 generate


def tiny_model():
    model = Transformer(preset("tiny", dtype="float64", block_size=8), np.random.default_rng(0))
    for p in model.parameters().values():
        p += np.random.default_rng(1).normal(0, 0.5, p.shape)  # sharper, varied predictions
    return model


def ref_generate(model, idx, n, last=True, crop=True):
    for _ in range(n):
        ctx = idx[:, -model.config.block_size:] if crop else idx
        logits = model.forward(ctx)
        nxt = logits[:, -1 if last else 0].argmax(-1)
        idx = np.concatenate([idx, nxt[:, None]], axis=1)
    return idx


@pytest.mark.exercise("6.3", "generate")
@pytest.mark.points(2)
def test_generate_greedy(impl):
    model = tiny_model()
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    got = impl.generate(model, idx.copy(), 10, np.random.default_rng(0), 1.0, 1)  # top_k=1: greedy
    want = ref_generate(model, idx, 10)
    expect_close(got, want, "the generated ids (greedy: top_k=1)",
                 {"the next token is sampled from the first position's logits, not the last": ref_generate(model, idx, 10, last=False)},
                 rtol=0, atol=0, hint="generate must run past block_size (8) by cropping the context to the last block_size tokens")


@pytest.mark.exercise("6.3", "generate")
@pytest.mark.points(1)
def test_generate_shape_and_prompt(impl):
    model = tiny_model()
    idx = np.array([[3, 1]])
    got = expect_array(impl.generate(model, idx.copy(), 4, np.random.default_rng(0), 1.0, None),
                       "generate(idx (1, 2), 4 new tokens)", (1, 6), dtype=None)
    expect(np.array_equal(got[:, :2], idx), "the prompt must come back unchanged at the start of the result")
    expect(got.dtype.kind in "iu" and got.min() >= 0 and got.max() < 16, "generated ids must be integers in [0, vocab_size)")
