"""The model as a whole: KV-cache decoding, causality, weight tying, padding, dtypes,
parameter counts, seeds, and bad input that must fail at once with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
from model_helpers import small_model

from companion import PRESETS, ModelConfig, Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.linear import Linear
from companion.norms import LayerNorm, RMSNorm

FAMILIES = ["gpt", "llama"]
# KV-cache logits are the same arithmetic as a full pass, but the matmuls run on different
# shapes (1 query against t keys instead of T against T), so BLAS may sum in another order.
# That moves float64 results by a few ulps per operation (~1e-16 relative); 1e-10 leaves
# six orders of magnitude for that rounding and is still far below what any real mistake
# (a wrong position offset, a key left out) does to the logits, which is O(0.1) or more.
KV_TOL64 = dict(rtol=1e-10, atol=1e-10)
# (Measured: about 3e-15 in float64 and 4e-7 in float32 on logits of size ~1 to 5.)
KV_TOL32 = dict(rtol=1e-5, atol=1e-5)  # float32: eps 1.2e-7, accumulated over 2 layers


def tokens(config, B=2, T=None, seed=0):
    T = T or config.block_size
    return np.random.default_rng(seed).integers(0, config.vocab_size, size=(B, T))


# -- KV cache ---------------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [[1] * 16, [5, 3, 1, 7], [16]], ids=["token-by-token", "chunks", "one-chunk"])
@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_gives_full_recomputation_logits(family, chunks):
    model = small_model(family)
    idx = tokens(model.config)  # (2, 16): the whole block
    full = model.forward(idx)  # (2, 16, V)
    cache, t, pieces = model.new_kv_cache(2), 0, []
    for n in chunks:
        pieces.append(model.forward(idx[:, t:t + n], kv_cache=cache))
        t += n
    assert cache.length == 16
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, **KV_TOL64)


@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_float32(family):
    model = small_model(family, dtype="float32", scale=0.1)
    idx = tokens(model.config)
    full = model.forward(idx)
    cache = model.new_kv_cache(2)
    steps = np.concatenate([model.forward(idx[:, t:t + 1], kv_cache=cache) for t in range(16)], axis=1)
    assert steps.dtype == np.float32
    np.testing.assert_allclose(steps, full, **KV_TOL32)


@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_with_a_left_padded_batch(family):
    """Batched generation: rows padded on the left, decoded one token at a time; the mask
    passed at each step covers every key so far."""
    model = small_model(family)
    idx = tokens(model.config, T=12)
    pad = np.ones((2, 12), dtype=bool)
    pad[0, :5] = False
    full = model.forward(idx, pad_mask=pad)
    cache = model.new_kv_cache(2)
    steps = np.concatenate([model.forward(idx[:, t:t + 1], pad_mask=pad[:, :t + 1], kv_cache=cache)
                            for t in range(12)], axis=1)
    np.testing.assert_allclose(steps, full, **KV_TOL64)


def test_kv_cache_would_notice_a_wrong_offset():
    """The tolerance above is meaningful: decoding without the cache (every token at
    position 0) gives logits far outside it."""
    model = small_model("llama")
    idx = tokens(model.config)
    full = model.forward(idx)
    alone = np.concatenate([model.forward(idx[:, t:t + 1]) for t in range(16)], axis=1)
    assert np.abs(alone[:, 1:] - full[:, 1:]).max() > 1e3 * KV_TOL64["atol"]


# -- causality --------------------------------------------------------------------------

@pytest.mark.parametrize("variant", [dict(family="gpt"), dict(family="llama"), dict(family="gpt", norm_placement="post")])
def test_future_tokens_never_change_the_past(variant):
    model = small_model(**variant)
    idx = tokens(model.config, T=10)
    base = model.forward(idx)
    for j in range(1, 10):
        changed = idx.copy()
        changed[:, j] = (changed[:, j] + 1) % model.config.vocab_size
        out = model.forward(changed)
        # masked scores get weight exp(-inf) = 0 exactly, so on NumPy the past is bit-identical;
        # 1e-12 only spares another backend's summation order, and a leak is O(1e-3) or more
        np.testing.assert_allclose(out[:, :j], base[:, :j], rtol=0, atol=1e-12,
                                   err_msg=f"a change at position {j} leaked backwards")
        assert np.abs(out[:, j:] - base[:, j:]).max() > 1e-6, "the changed token itself must matter"


def test_attention_weights_are_causal_rows_that_sum_to_one():
    model = small_model("gpt")
    weights = model.attention_weights(tokens(model.config, T=9))
    assert len(weights) == model.config.n_layer
    for att in weights:
        assert att.shape == (2, model.config.n_head, 9, 9)
        assert np.all(np.triu(att, k=1) == 0)
        np.testing.assert_allclose(att.sum(axis=-1), 1.0, atol=1e-12)


# -- weight tying -----------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_tied_gradient_is_the_sum_of_both_uses(family):
    tied = small_model(family, tie_weights=True)
    # the same weights with the head as its own matrix: its two gradients are the two uses
    untied = Transformer(tied.config.replace(tie_weights=False), np.random.default_rng(99))
    for name, p in tied.parameters().items():
        untied.parameters()[name][...] = p
    untied.parameters()["head.proj.w"][...] = tied.parameters()["wte.w"].T
    idx, targets = tokens(tied.config, T=8, seed=1), tokens(tied.config, T=8, seed=2)
    for m in (tied, untied):
        m.zero_grad()
        _, cache = cross_entropy_forward(m.forward(idx), targets)
        m.backward(cross_entropy_backward(cache))
    lookup_use = untied.gradients()["wte.w"]  # (V, C)
    head_use = untied.gradients()["head.proj.w"].T  # (C, V) -> (V, C)
    assert np.abs(lookup_use).max() > 1e-3 and np.abs(head_use).max() > 1e-3, "both uses must contribute"
    np.testing.assert_allclose(tied.gradients()["wte.w"], lookup_use + head_use, rtol=1e-10, atol=1e-12)


def test_tied_matrix_is_counted_once_and_shared():
    tied = Transformer(preset("tiny", tie_weights=True), np.random.default_rng(0))
    untied = Transformer(preset("tiny", tie_weights=False), np.random.default_rng(0))
    c = tied.config
    assert "head.proj.w" not in tied.parameters()
    assert untied.num_params() - tied.num_params() == c.vocab_size * c.n_embd
    tied.parameters()["wte.w"][3] += 1.0  # the head sees the change: one array, two uses
    x = np.random.default_rng(1).standard_normal((1, 1, c.n_embd)).astype(np.float32)
    np.testing.assert_allclose(tied.head.forward(x)[0, 0], x[0, 0] @ tied.parameters()["wte.w"].T, rtol=1e-5)


# -- padding ----------------------------------------------------------------------------

def left_padded(model, real, P, pad_id=0):
    """Row 0: P padding tokens then ``real``; row 1: an unpadded sequence of the same length."""
    T = len(real) + P
    idx = np.stack([np.concatenate([np.full(P, pad_id), real]), tokens(model.config, B=1, T=T, seed=5)[0]])
    pad = np.ones((2, T), dtype=bool)
    pad[0, :P] = False
    return idx, pad


def test_left_padding_with_rope_matches_the_unpadded_sequence():
    """RoPE scores depend only on relative positions, so shifting the real tokens right by
    P (left padding) and masking the pads gives the unpadded sequence's logits."""
    model = small_model("llama")
    real = tokens(model.config, B=1, T=9, seed=3)[0]
    alone = model.forward(real[None])[0]  # (9, V)
    for P in (1, 4):
        idx, pad = left_padded(model, real, P)
        padded = model.forward(idx, pad_mask=pad)
        np.testing.assert_allclose(padded[0, P:], alone, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(padded[1], model.forward(idx[1:])[0], rtol=1e-12, atol=1e-12)
        unmasked = model.forward(idx)  # without the mask the pads are attended to
        assert np.abs(unmasked[0, P:] - alone).max() > 1e-3


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_left_padding_with_absolute_positions(positions):
    """With absolute positions a left-padded token sits at position P + i, not i, so it is
    compared with the same tokens at the same positions: what the padding *holds* must not
    matter, and the other row of the batch must be unaffected."""
    model = small_model("gpt", positions=positions)
    real = tokens(model.config, B=1, T=9, seed=3)[0]
    P = 4
    idx, pad = left_padded(model, real, P, pad_id=0)
    other, _ = left_padded(model, real, P, pad_id=7)
    other[0, :P] = [1, 9, 2, 11]  # arbitrary junk under the mask
    a, b = model.forward(idx, pad_mask=pad), model.forward(other, pad_mask=pad)
    np.testing.assert_allclose(a[0, P:], b[0, P:], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a[1], model.forward(idx[1:])[0], rtol=1e-12, atol=1e-12)
    c = model.forward(other)  # without the mask the junk shows
    assert np.abs(c[0, P:] - a[0, P:]).max() > 1e-3


# -- dtypes -----------------------------------------------------------------------------

def test_float32_is_the_default_and_float64_selectable():
    assert ModelConfig().dtype == "float32"
    m32 = Transformer(preset("tiny"), np.random.default_rng(0))
    m64 = Transformer(preset("tiny", dtype="float64"), np.random.default_rng(0))
    assert all(p.dtype == np.float32 for p in m32.parameters().values())
    assert all(p.dtype == np.float64 for p in m64.parameters().values())
    idx = tokens(m32.config, T=12)
    l32, l64 = m32.forward(idx), m64.forward(idx)
    assert l32.dtype == np.float32 and l64.dtype == np.float64
    np.testing.assert_allclose(l32, l64, rtol=1e-4, atol=1e-5)  # same weights, float32 rounding
    _, cache = cross_entropy_forward(l32, idx)
    m32.backward(cross_entropy_backward(cache))
    assert all(g.dtype == np.float32 for g in m32.gradients().values())


# -- parameter counts and seeds ---------------------------------------------------------

def nanogpt_count(vocab_size, block_size, n_layer, n_embd, **_):
    """nanoGPT's GPT (bias=True, tied lm_head), counted from its architecture: wte, wpe, and
    per block ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj; then ln_f."""
    C = n_embd
    ln = 2 * C
    block = ln + (C * 3 * C + 3 * C) + (C * C + C) + ln + (C * 4 * C + 4 * C) + (4 * C * C + C)
    return vocab_size * C + block_size * C + n_layer * block + ln


def test_baby_matches_nanogpt_count():
    config = preset("baby")
    assert (config.family, config.bias, config.tie_weights, config.ffn_hidden) == ("gpt", True, True, 4 * config.n_embd)
    model = Transformer(config, np.random.default_rng(0))
    assert model.num_params() == nanogpt_count(**config.to_dict())


def test_preset_sizes_are_the_models_they_reproduce():
    counts = {name: Transformer(preset(name), np.random.default_rng(0)).num_params() for name in PRESETS}
    assert 95_000 < counts["listops"] < 115_000  # the ListOps model: "about 106k parameters"
    assert 2_200_000 < counts["llama-2m"] < 2_400_000  # the LLaMA-style model: "about 2.3M"
    baby = preset("baby")
    assert (baby.n_layer, baby.n_head, baby.n_embd, baby.block_size, baby.vocab_size) == (4, 4, 128, 64, 65)


def test_gpt_ties_its_head_and_llama_does_not_unless_a_preset_says_so():
    # as the originals: GPT-2 and nanoGPT tie, LLaMA 7B and up keep a separate output matrix
    assert ModelConfig(family="gpt").tie_weights is True
    assert ModelConfig(family="llama").tie_weights is False
    assert ModelConfig(family="llama", tie_weights=True).tie_weights is True  # an explicit choice wins
    # presets that reproduce a particular model name their choice
    assert preset("listops").tie_weights is False and preset("llama-2m").tie_weights is True
    assert preset("baby").tie_weights is True  # nanoGPT's


def test_listops_preset_fits_the_listops_task():
    from companion.tasks import make_task
    task = make_task("listops", seed=0)
    config = preset("listops")
    assert config.vocab_size == task.vocab_size and config.block_size >= task.block_size
    b = task.batch("test", 4, np.random.default_rng(0))
    assert b.idx.max() < config.vocab_size  # every token of the task has a row in the embedding
    logits = Transformer(config, np.random.default_rng(0)).forward(b.idx)
    assert logits.shape == (*b.idx.shape, task.vocab_size)


def test_same_seed_same_model_different_seed_different_model():
    config = preset("tiny", family="llama")
    a, b = (Transformer(config, np.random.default_rng(0)) for _ in range(2))
    c = Transformer(config, np.random.default_rng(1))
    for name in a.parameters():
        np.testing.assert_array_equal(a.parameters()[name], b.parameters()[name])
    assert any(not np.array_equal(a.parameters()[n], c.parameters()[n]) for n in a.parameters())
    idx = tokens(config)
    np.testing.assert_array_equal(a.forward(idx), b.forward(idx))


# -- bad input --------------------------------------------------------------------------

def test_sequence_longer_than_block_size():
    model = small_model("gpt")
    with pytest.raises(ValueError, match="block_size"):
        model.forward(tokens(model.config, T=17))
    cache = model.new_kv_cache(2)
    model.forward(tokens(model.config, T=16), kv_cache=cache)
    with pytest.raises(ValueError, match="block_size"):
        model.forward(tokens(model.config, T=1), kv_cache=cache)


@pytest.mark.parametrize("bad,error,match", [
    (np.array([[1, 16]]), ValueError, "token id 16 is outside the vocabulary"),
    (np.array([[-1, 2]]), ValueError, "token id -1 is outside the vocabulary"),
    (np.array([[1.0, 2.0]]), TypeError, "integer"),
    ([[1, 2]], TypeError, "integer array"),
    (np.array([1, 2, 3]), ValueError, r"shape \(B, T\)"),
])
def test_bad_token_ids(bad, error, match):
    model = small_model("llama")
    with pytest.raises(error, match=match):
        model.forward(bad)


def test_bad_loss_input():
    logits = np.zeros((2, 3, 5))
    with pytest.raises(ValueError, match="targets shape"):
        cross_entropy_forward(logits, np.zeros((2, 4), dtype=int))
    with pytest.raises(TypeError, match="targets must be integer"):
        cross_entropy_forward(logits, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="target id outside the vocabulary"):
        cross_entropy_forward(logits, np.full((2, 3), 5))
    with pytest.raises(ValueError, match="every position is masked out"):
        cross_entropy_forward(logits, np.zeros((2, 3), dtype=int), np.zeros((2, 3)))


def test_bad_pad_mask_shape():
    model = small_model("gpt")
    with pytest.raises(ValueError, match="pad_mask"):
        model.forward(tokens(model.config, T=8), pad_mask=np.ones((2, 7), dtype=bool))


def test_wrong_shape_or_dtype_into_a_layer():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="Linear input: expected last dimension 8"):
        Linear(8, 4, True, rng, np.float32).forward(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(TypeError, match="LayerNorm input: expected dtype float32, got float64"):
        LayerNorm(8, True, np.float32).forward(np.zeros((2, 3, 8)))
    with pytest.raises(TypeError, match="RMSNorm input: expected dtype float64, got float32"):
        RMSNorm(8, np.float64).forward(np.zeros((2, 3, 8), np.float32))
    with pytest.raises(ValueError, match="RMSNorm input: expected last dimension 8"):
        RMSNorm(8, np.float64).forward(np.zeros((2, 3, 9)))


def test_bad_config():
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        ModelConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match=r"unknown ModelConfig field\(s\) \['n_layers'\]"):
        ModelConfig.from_dict({"n_layers": 2})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        preset("tiny", heads=2)
    with pytest.raises(ValueError, match=r"head_size \(5\) must be even"):
        ModelConfig(family="llama", n_embd=10, n_head=2)
    with pytest.raises(ValueError, match="family must be one of"):
        ModelConfig(family="bert")
    with pytest.raises(ValueError, match="n_layer must be a positive integer"):
        ModelConfig(n_layer=0)
    with pytest.raises(ValueError, match="dtype must be one of"):
        ModelConfig(dtype="float16")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        Transformer(preset("tiny"), 0)
    with pytest.raises(Exception, match="frozen|cannot assign"):
        preset("tiny").n_layer = 3
