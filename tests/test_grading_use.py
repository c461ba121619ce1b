"""use(): the companion model running on a learner's functions (here, the solutions').

A model built on solutions/ must train exactly like the reference (same losses, float64), every
swapped function must really be called, and nothing may stay swapped after the with-block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import companion
from companion.grading import use
from companion.grading.adapter import chapter_file, import_by_path

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"

KERNELS = {
    "ch02": ("embedding_backward", "rope_forward", "sinusoidal_table"),
    "ch03": ("causal_mask", "attention_forward", "attention_backward"),
    "ch04": ("layernorm_backward", "rmsnorm_forward", "rmsnorm_backward"),
    "ch05": ("gelu_forward", "swiglu_forward", "swiglu_backward"),
    "ch08": ("linear_backward",),
}


def solution_kernels() -> dict:
    found = {}
    for chapter, names in KERNELS.items():
        module = import_by_path(chapter_file(SOLUTIONS, chapter))
        found.update({n: getattr(module, n) for n in names})
    return found


def train_losses(config, steps=8) -> list[float]:
    rng = np.random.default_rng(0)
    model = companion.Transformer(config, rng)
    opt = companion.AdamW(model.parameters(), model.gradients(), lr=1e-2)
    idx = rng.integers(0, config.vocab_size, size=(4, config.block_size + 1))  # one batch, learned by heart
    losses = []
    for _ in range(steps):
        loss, cache = companion.cross_entropy_forward(model.forward(idx[:, :-1]), idx[:, 1:])
        model.zero_grad()
        model.backward(companion.cross_entropy_backward(cache))
        opt.step()
        losses.append(loss)
    return losses


@pytest.mark.parametrize("overrides", [dict(family="gpt"), dict(family="llama"), dict(family="gpt", positions="sinusoidal")])
def test_model_on_the_solutions_trains_like_the_reference(overrides):
    config = companion.preset("tiny", dtype="float64", **overrides)
    reference = train_losses(config)
    kernels = solution_kernels()
    calls = {name: 0 for name in kernels}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    with use(**{name: counted(name, fn) for name, fn in kernels.items()}):
        mine = train_losses(config)
    np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-12)
    assert reference[-1] < reference[0]  # it trains
    used = {"attention_forward", "attention_backward", "causal_mask", "linear_backward", "embedding_backward"}
    used |= {"rope_forward", "rmsnorm_forward", "rmsnorm_backward", "swiglu_forward", "swiglu_backward"} \
        if overrides["family"] == "llama" else {"layernorm_backward", "gelu_forward"}
    if overrides.get("positions") == "sinusoidal":
        used.add("sinusoidal_table")
    assert all(calls[n] > 0 for n in used), {n: calls[n] for n in used}


def test_use_restores_everything_even_after_an_error():
    from companion import attention, positions

    original_fwd, original_rope = attention.attention_forward, attention.rope_forward

    def broken(*args):
        raise RuntimeError("learner bug")

    with pytest.raises(RuntimeError, match="learner bug"):
        with use(attention_forward=broken, rope_forward=broken):
            assert attention.attention_forward is broken and attention.rope_forward is broken
            assert positions.rope_forward is broken  # the defining module and the importing one
            companion.Transformer(companion.preset("tiny"), np.random.default_rng(0)).forward(np.zeros((1, 3), dtype=np.int64))
    assert attention.attention_forward is original_fwd and attention.rope_forward is original_rope
    assert positions.rope_forward is original_rope
    from companion import feedforward
    with use(gelu_forward=broken):
        assert feedforward.ACTIVATIONS["gelu"][0] is broken
    assert feedforward.ACTIVATIONS["gelu"][0] is feedforward.gelu_forward
    with pytest.raises(ValueError, match="pluggable functions"):
        with use(attention_fwd=broken):
            pass
    with pytest.raises(TypeError, match="needs a function"):
        with use(attention_forward=3):
            pass
