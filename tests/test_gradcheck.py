"""Every hand-written backward against float64 central differences (relative error < 1e-6).

A correct backward agrees with finite differences to ~1e-8 in float64; a wrong one (a
missing transpose, a dropped term, a gradient assigned instead of added) is off by O(1).
Weights are perturbed with N(0, 0.3) first so that the check exercises every term, not
just the near-identity behaviour of a freshly initialised layer.
"""

from __future__ import annotations

import numpy as np
import pytest
from model_helpers import MODEL_VARIANTS, perturb, small_model

from companion import ModelConfig, check_layer, check_model, cross_entropy_backward, cross_entropy_forward, gradcheck
from companion.attention import CausalSelfAttention, attention_backward, attention_forward, causal_mask
from companion.block import Block
from companion.embedding import Embedding
from companion.feedforward import (MLP, SwiGLU, gelu_backward, gelu_forward, relu_backward, relu_forward,
                                   swiglu_backward, swiglu_forward)
from companion.head import OutputHead
from companion.linear import Linear
from companion.module import Module
from companion.norms import LayerNorm, RMSNorm, layernorm_backward, layernorm_forward, rmsnorm_backward, rmsnorm_forward
from companion.positions import LearnedPositions, rope_backward, rope_forward, rope_tables

TOL = 1e-6
F64 = np.float64
B, T, C = 2, 5, 8


def cfg(**kw) -> ModelConfig:
    base = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=C, dtype="float64")
    return ModelConfig(**{**base, **kw})


def assert_small(errors: dict[str, float]) -> None:
    assert errors, "nothing was checked"
    bad = {k: e for k, e in errors.items() if not e < TOL}  # `not <` also catches NaN
    assert not bad, f"backward disagrees with finite differences (relative error): {bad}"


def x_of(rng, *shape):
    return rng.standard_normal(shape)  # float64


# -- layers (modules) ---------------------------------------------------------------------

class Wrap(Module):
    """Adapts a module whose forward takes extra arguments to check_layer's forward(x)."""

    def __init__(self, forward, backward, **children):
        super().__init__()
        for name, child in children.items():
            setattr(self, name, child)
        self._forward, self._backward = forward, backward

    def forward(self, x):
        return self._forward(x)

    def backward(self, dout):
        return self._backward(dout)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, bias):
    layer = Linear(C, 6, bias, rng, F64)
    perturb(layer, rng)
    errors = check_layer(layer, x_of(rng, B, T, C), rng)
    assert set(errors) == ({"x", "w", "b"} if bias else {"x", "w"})
    assert_small(errors)


def test_embedding_sums_repeated_tokens(rng):
    layer = Embedding(7, C, rng, F64)
    idx = np.array([[1, 3, 1, 1, 6], [3, 0, 1, 2, 6]])  # repeats: the scatter-add must sum them
    errors = check_layer(layer, idx, rng, max_entries=None)
    assert set(errors) == {"w"}
    assert_small(errors)


def test_learned_positions(rng):
    layer = LearnedPositions(8, C, rng, F64)
    start = 2  # a KV-cache offset: rows 2..6 are used, the others get zero gradient
    wrap = Wrap(lambda x: x + layer.forward(T, start), lambda d: (layer.backward(d), d)[1], pos=layer)
    errors = check_layer(wrap, x_of(rng, B, T, C), rng, max_entries=None)
    assert_small(errors)
    assert np.all(layer.grads["w"][:start] == 0) and np.all(layer.grads["w"][start + T:] == 0)


@pytest.mark.parametrize("norm", ["layernorm", "layernorm-nobias", "rmsnorm"])
def test_norms(rng, norm):
    layer = RMSNorm(C, F64) if norm == "rmsnorm" else LayerNorm(C, norm == "layernorm", F64)
    perturb(layer, rng)
    x = 3.0 + 2.0 * x_of(rng, B, T, C)  # a mean and a scale far from 0 and 1, so both matter
    assert_small(check_layer(layer, x, rng, max_entries=None))


@pytest.mark.parametrize("ffn", ["relu", "gelu", "swiglu"])
def test_feedforward(rng, ffn):
    config = cfg(ffn=ffn)
    layer = SwiGLU(config, rng, F64) if ffn == "swiglu" else MLP(config, rng, F64)
    perturb(layer, rng)
    assert_small(check_layer(layer, x_of(rng, B, T, C), rng, max_entries=80))


@pytest.mark.parametrize("positions,padded", [("learned", False), ("rope", False), ("rope", True), ("learned", True)])
def test_attention(rng, positions, padded):
    config = cfg(positions=positions)
    attn = CausalSelfAttention(config, rng, F64)
    perturb(attn, rng)
    pad_mask = None
    if padded:
        pad_mask = np.ones((B, T), dtype=bool)
        pad_mask[0, :2] = False  # left padding in row 0: its first queries see nothing at all
    wrap = Wrap(lambda x: attn.forward(x, pad_mask), attn.backward, attn=attn)
    errors = check_layer(wrap, x_of(rng, B, T, C), rng, max_entries=80)
    assert_small(errors)


@pytest.mark.parametrize("placement", ["pre", "post"])
@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_block(rng, placement, family):
    block = Block(cfg(family=family, norm_placement=placement), rng, F64, layer=0)
    perturb(block, rng)
    assert_small(check_layer(block, x_of(rng, B, T, C), rng, max_entries=40))


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_attn_only_block_and_model(rng, placement):
    block = Block(cfg(attn_only=True, norm_placement=placement), rng, F64, layer=0)
    assert block.ffn is None and block.norm2 is None
    perturb(block, rng)
    assert_small(check_layer(block, x_of(rng, B, T, C), rng, max_entries=40))
    model = small_model(attn_only=True, norm_placement=placement, positions="rope")
    assert not any(".ffn." in name or ".norm2." in name for name in model.parameters())
    idx, targets = rng.integers(0, 16, size=(2, 6)), rng.integers(0, 16, size=(2, 6))
    errors = check_model(model, idx, targets, np.ones((2, 6)), max_entries=24, rng=rng)
    assert set(errors) == set(model.parameters()), "every parameter must be checked"
    assert_small(errors)


@pytest.mark.parametrize("tied", [False, True])
def test_output_head(rng, tied):
    config = cfg(tie_weights=tied)
    emb = Embedding(config.vocab_size, C, rng, F64) if tied else None
    head = OutputHead(config, rng, F64, emb)
    # the tied matrix belongs to the embedding: expose it as a child so it is checked too
    layer = Wrap(head.forward, head.backward, head=head, **({"emb": emb} if tied else {}))
    perturb(layer, rng)
    errors = check_layer(layer, x_of(rng, B, T, C), rng, max_entries=None)
    assert set(errors) == ({"x", "emb.w"} if tied else {"x", "head.proj.w"})
    assert_small(errors)


# -- functional forward/backward pairs ----------------------------------------------------

def check_pair(forward, backward, inputs: dict, rng) -> dict[str, float]:
    """Fake loss sum(forward(**inputs) * dout); backward(dout, cache) returns the input grads
    in the order of ``inputs``."""
    out, cache = forward(**inputs)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    analytic = dict(zip(inputs, grads))

    def fake_loss():
        return float((forward(**inputs)[0] * dout).sum())

    return gradcheck(fake_loss, {k: inputs[k] for k in analytic if analytic[k] is not None}, analytic)


def test_rope_pair(rng):
    cos, sin = rope_tables(8, 6, 10000.0, F64)
    start = 3  # rows of the table at a KV-cache offset
    errors = check_pair(lambda x: (rope_forward(x, cos[start:start + T], sin[start:start + T]), None),
                        lambda d, _: rope_backward(d, cos[start:start + T], sin[start:start + T]),
                        {"x": x_of(rng, B, 2, T, 6)}, rng)
    assert_small(errors)


@pytest.mark.parametrize("T_q", [T, 2])  # a full sequence, and 2 new queries against 5 keys (KV cache)
def test_attention_pair(rng, T_q):
    q, k, v = x_of(rng, B, 2, T_q, 4), x_of(rng, B, 2, T, 4), x_of(rng, B, 2, T, 4)
    mask = causal_mask(T_q, T) & (rng.random((B, 1, 1, T)) > 0.2)
    errors = check_pair(lambda q, k, v: attention_forward(q, k, v, mask), attention_backward,
                        {"q": q, "k": k, "v": v}, rng)
    assert_small(errors)


def test_layernorm_rmsnorm_pairs(rng):
    x, w, b = x_of(rng, B, T, C), x_of(rng, C), x_of(rng, C)
    assert_small(check_pair(layernorm_forward, layernorm_backward, {"x": x, "w": w, "b": b}, rng))
    assert_small(check_pair(rmsnorm_forward, rmsnorm_backward, {"x": x, "w": w}, rng))


def test_activation_pairs(rng):
    x = 2.0 * x_of(rng, B, T, C)
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink at 0 away from the finite-difference step
    assert_small(check_pair(relu_forward, relu_backward, {"x": x}, rng))
    assert_small(check_pair(gelu_forward, gelu_backward, {"x": x}, rng))
    assert_small(check_pair(swiglu_forward, swiglu_backward, {"gate": x, "up": x_of(rng, B, T, C)}, rng))


@pytest.mark.parametrize("masked", [False, True])
def test_cross_entropy(rng, masked):
    logits = 3.0 * x_of(rng, B, T, 7)
    targets = rng.integers(0, 7, size=(B, T))
    mask = (rng.random((B, T)) > 0.4).astype(F64) if masked else None
    if masked:
        mask[0, 0] = 1.0
        targets[mask == 0] = -1  # masked targets may be anything (padding ids): never read
    _, cache = cross_entropy_forward(logits, targets, mask)
    dlogits = cross_entropy_backward(cache)
    errors = gradcheck(lambda: cross_entropy_forward(logits, targets, mask)[0], {"logits": logits},
                       {"logits": dlogits})
    assert_small(errors)
    if masked:  # a masked position gets exactly no gradient
        assert np.all(dlogits[mask == 0] == 0)


# -- the whole model: d(loss)/d(every parameter) ------------------------------------------

@pytest.mark.parametrize("variant", sorted(MODEL_VARIANTS))
def test_model_every_parameter(variant):
    model = small_model(**MODEL_VARIANTS[variant])
    rng = np.random.default_rng(7)
    idx = rng.integers(0, model.config.vocab_size, size=(2, 6))
    targets = rng.integers(0, model.config.vocab_size, size=(2, 6))
    mask = np.ones((2, 6))
    mask[1, :2] = 0  # prompt tokens: not scored
    errors = check_model(model, idx, targets, mask, max_entries=24, rng=rng)
    assert set(errors) == set(model.parameters()), "every parameter must be checked"
    assert_small(errors)


def test_model_with_padding_mask():
    """Gradients through a padded batch (llama: RoPE + RMSNorm + SwiGLU, tied head)."""
    model = small_model("llama")
    rng = np.random.default_rng(8)
    idx = rng.integers(0, 16, size=(2, 6))
    pad = np.ones((2, 6), dtype=bool)
    pad[0, :3] = False
    targets = rng.integers(0, 16, size=(2, 6))
    loss = lambda: cross_entropy_forward(model.forward(idx, pad_mask=pad), targets, pad)[0]  # noqa: E731
    model.zero_grad()
    _, cache = cross_entropy_forward(model.forward(idx, pad_mask=pad), targets, pad)
    model.backward(cross_entropy_backward(cache))
    analytic = {k: g.copy() for k, g in model.gradients().items()}
    assert_small(gradcheck(loss, model.parameters(), analytic, max_entries=16, rng=rng))


def test_gradcheck_catches_a_wrong_backward(rng):
    """The checker itself can fail: a backward that forgets the bias gradient is caught."""
    layer = Linear(C, 4, True, rng, F64)
    good_backward = layer.backward
    layer.backward = lambda dout: (good_backward(dout), layer.grads["b"].fill(0.0))[0]
    errors = check_layer(layer, x_of(rng, B, T, C), rng)
    assert errors["b"] > 0.5 and errors["w"] < TOL


def test_gradcheck_refuses_float32(rng):
    layer = Linear(C, 4, True, rng, np.float32)
    with pytest.raises(TypeError, match="float64"):
        check_layer(layer, x_of(rng, B, T, C).astype(np.float32), rng)
