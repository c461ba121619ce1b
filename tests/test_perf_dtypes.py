"""A float32 run stays float32: no layer's cache, gradient or optimizer state is silently
promoted to float64 (a float64 temporary doubles the memory traffic of every pass over it)."""

import numpy as np
import pytest

from companion import AdamW, Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.optim import clip_grad_norm


def arrays_in(obj):
    """Every NumPy array inside a (nested) cache tuple."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from arrays_in(item)


@pytest.mark.parametrize("overrides", [{}, {"family": "llama"}, {"norm_placement": "post"}])
def test_a_float32_step_keeps_every_array_float32(overrides):
    model = Transformer(preset("tiny", dtype="float32", **overrides), np.random.default_rng(0))
    opt = AdamW(model.parameters(), model.gradients(), lr=1e-3, weight_decay=0.1)
    idx = np.random.default_rng(1).integers(0, model.config.vocab_size, size=(2, model.config.block_size + 1))
    pad = np.ones((2, model.config.block_size), dtype=bool)
    pad[0, -3:] = False  # the padding path too
    logits = model.forward(idx[:, :-1], pad_mask=pad)
    assert logits.dtype == np.float32
    caches = [a for _, m in model.named_modules() for a in arrays_in(m.cache) if a.dtype.kind == "f"]
    assert caches, "the forward pass cached nothing"
    assert {a.dtype for a in caches} == {np.dtype(np.float32)}, sorted({a.dtype.name for a in caches})
    loss, cache = cross_entropy_forward(logits, idx[:, 1:])
    model.zero_grad()
    dlogits = cross_entropy_backward(cache)
    assert dlogits.dtype == np.float32
    model.backward(dlogits)
    clip_grad_norm(model.gradients(), 0.1)
    opt.step()
    for name, a in {**model.parameters(), **model.gradients()}.items():
        assert a.dtype == np.float32, name
    assert {a.dtype for k, a in opt.state_dict().items() if k != "t"} == {np.dtype(np.float32)}
