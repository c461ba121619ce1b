"""Generation: greedy decoding with the KV cache equals full recomputation, and each
sampling rule (temperature, top-k, top-p) does what its definition says."""

from __future__ import annotations

import numpy as np
import pytest

from companion import Transformer, preset
from companion.generate import generate, generate_batch, next_token_probs, pick_next
from model_helpers import perturb


def random_model(seed: int = 0, **overrides) -> Transformer:
    """A small model with weights large enough that its predictions differ by position."""
    rng = np.random.default_rng(seed)
    model = Transformer(preset("tiny", vocab_size=12, block_size=16, dtype="float64", **overrides), rng)
    perturb(model, rng, 0.5)
    return model


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_greedy_with_cache_equals_argmax_of_full_recomputation(family):
    model = random_model(family=family)
    prompt = [1, 5, 7, 3]
    got = generate(model, prompt, max_new_tokens=10, greedy=True)
    seq = list(prompt)
    for _ in range(10):  # the slow way: the whole sequence through the model, every time
        logits = model.forward(np.array([seq]))  # (1, T, V)
        seq.append(int(np.argmax(logits[0, -1])))
    assert got == seq[len(prompt):]


def test_batched_greedy_equals_one_at_a_time():
    model = random_model(seed=1)
    prompts = np.array([[1, 4, 5], [1, 6, 2], [1, 9, 9]])
    batched = generate_batch(model, prompts, 6, greedy=True)  # (3, 6)
    for row, p in zip(batched, prompts):
        assert list(row) == generate(model, list(p), 6, greedy=True)


def test_generation_slides_past_block_size():
    model = random_model(seed=2)  # block_size 16
    out = generate(model, [1, 2, 3], max_new_tokens=40, greedy=True)
    assert len(out) == 40
    # within the first window the cache gives the same tokens as recomputation
    seq = [1, 2, 3]
    for _ in range(13):
        seq.append(int(np.argmax(model.forward(np.array([seq]))[0, -1])))
    assert out[:13] == seq[3:]


def test_stops_at_eos_and_keeps_it():
    model = random_model(seed=3)
    free = generate(model, [1, 4], max_new_tokens=8, greedy=True)
    eos = free[2]  # whatever token greedy decoding emits third: call it <eos>
    first = free.index(eos)
    stopped = generate(model, [1, 4], max_new_tokens=8, greedy=True, eos_id=eos)
    assert stopped == free[: first + 1]
    assert stopped[-1] == eos


def test_batch_rows_stop_independently_at_eos():
    model = random_model(seed=4)
    prompts = np.array([[1, 4], [1, 7]])
    free = generate_batch(model, prompts, 8, greedy=True)
    eos = int(free[0, 1])
    out = generate_batch(model, prompts, 8, greedy=True, eos_id=eos)
    for r in range(2):
        row = list(free[r])
        if eos in row:
            k = row.index(eos)
            assert list(out[r, : k + 1]) == row[: k + 1] and (out[r, k:] == eos).all()
        else:
            assert list(out[r]) == row


def test_top_k_never_emits_outside_the_top_k():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 50)) * 3
    top3 = set(np.argsort(-logits[0])[:3].tolist())
    draws = pick_next(np.repeat(logits, 4000, axis=0), rng, top_k=3)  # (4000,)
    assert set(draws.tolist()) <= top3
    assert set(draws.tolist()) == top3  # and all three do occur


def test_top_p_keeps_the_smallest_nucleus():
    # probabilities 0.5, 0.3, 0.15, 0.05 (worked out by hand):
    #   top_p 0.7  -> {0.5, 0.3} (0.5 alone is short of 0.7)   -> 0.625, 0.375
    #   top_p 0.8  -> {0.5, 0.3} (exactly 0.8 reached)         -> 0.625, 0.375
    #   top_p 0.81 -> {0.5, 0.3, 0.15}                         -> 0.5/0.95, 0.3/0.95, 0.15/0.95
    #   top_p 0.4  -> {0.5}: the most likely token always stays
    p = np.array([[0.15, 0.5, 0.05, 0.3]])
    logits = np.log(p)
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.7), [[0, 0.625, 0, 0.375]], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.8 + 1e-12), [[0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95]], atol=1e-9)
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.79), [[0, 0.625, 0, 0.375]], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.81), [[0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95]], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.4), [[0, 1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(logits, top_p=1.0), p, atol=1e-12)


def test_top_p_sampling_never_leaves_the_nucleus():
    rng = np.random.default_rng(1)
    logits = np.log(np.array([[0.15, 0.5, 0.05, 0.3]]))
    draws = pick_next(np.repeat(logits, 3000, axis=0), rng, top_p=0.7)
    assert set(draws.tolist()) == {1, 3}


def test_samples_follow_the_softmax():
    rng = np.random.default_rng(2)
    logits = np.array([[2.0, 1.0, 0.0, -1.0]])
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    n = 40000
    counts = np.bincount(pick_next(np.repeat(logits, n, axis=0), rng), minlength=4)
    # each frequency within 5 standard deviations of its expectation
    assert np.all(np.abs(counts - n * p) < 5 * np.sqrt(n * p * (1 - p)))


def test_temperature_to_zero_approaches_greedy():
    logits = np.array([[1.0, 1.3, 0.2, 1.25]])  # argmax 1, but 3 is close
    top = [next_token_probs(logits, temperature=t)[0, 1] for t in (2.0, 1.0, 0.3, 0.05, 0.01)]
    assert all(a < b for a, b in zip(top, top[1:]))  # the argmax gains as the temperature falls
    assert top[-1] > 0.99
    rng = np.random.default_rng(3)
    assert (pick_next(np.repeat(logits, 500, axis=0), rng, temperature=1e-3) == 1).all()


def test_sampling_depends_only_on_rng():
    model = random_model(seed=5)
    a = generate(model, [1, 2], 12, rng=np.random.default_rng(7), temperature=1.5, top_k=5)
    b = generate(model, [1, 2], 12, rng=np.random.default_rng(7), temperature=1.5, top_k=5)
    c = generate(model, [1, 2], 12, rng=np.random.default_rng(8), temperature=1.5, top_k=5)
    assert a == b
    assert a != c


def test_bad_prompts_are_named():
    model = random_model()
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(model, [], 3, greedy=True)
    with pytest.raises(ValueError, match="more than the model's block_size 16"):
        generate(model, list(range(1, 12)) * 2, 3, greedy=True)
    with pytest.raises(ValueError, match="prompt token id 12 is outside the model's vocabulary"):
        generate(model, [1, 12], 3, greedy=True)
    with pytest.raises(ValueError, match="prompt token id -1"):
        generate(model, [1, -1], 3, greedy=True)
    with pytest.raises(TypeError, match="integers"):
        generate(model, [1.0, 2.0], 3, greedy=True)
    with pytest.raises(TypeError, match="encode the text"):
        generate(model, "hello", 3, greedy=True)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, [1], -1, greedy=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=0.0), "temperature must be a number > 0"),
    (dict(temperature=-1.0), "temperature must be a number > 0"),
    (dict(top_k=0), "top_k must be an integer >= 1"),
    (dict(top_k=2.5), "top_k must be an integer >= 1"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
])
def test_bad_sampling_parameters_are_named(kwargs, message):
    model = random_model()
    with pytest.raises(ValueError, match=message):
        generate(model, [1, 2], 3, rng=np.random.default_rng(0), **kwargs)


def test_sampling_without_rng_is_refused():
    with pytest.raises(ValueError, match="sampling needs rng"):
        generate(random_model(), [1, 2], 3)
