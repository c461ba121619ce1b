"""Grouped-query and multi-query attention (``n_kv_head``): gradients against float64 finite
differences, parity with PyTorch (repeat_interleave of the k/v heads), the KV cache, the
accounting, validation and old checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from model_helpers import perturb, save_without_config_field

import companion
from companion import Transformer, accounting, check_layer, check_model, cross_entropy_backward, cross_entropy_forward
from companion import gradcheck, load_checkpoint, preset, save_checkpoint
from companion.attention import CausalSelfAttention
from companion.grouped_query import repeat_kv, repeat_kv_backward

F64 = np.float64


def gqa_config(n_kv_head, **kw):
    """The tiny preset as a LLaMA with 4 query heads of size 4 (even, for RoPE)."""
    return preset("tiny", family="llama", n_head=4, n_kv_head=n_kv_head, dtype="float64", **kw)


def gqa_model(n_kv_head, seed=0, **kw):
    rng = np.random.default_rng(seed)
    model = Transformer(gqa_config(n_kv_head, **kw), rng)
    perturb(model, rng)
    return model


def test_repeat_kv_puts_head_h_of_the_result_on_shared_head_h_over_g():
    x = np.arange(2 * 3 * 1 * 1, dtype=F64).reshape(2, 3, 1, 1)  # (B, nkv=3, T, hs)
    out = repeat_kv(x, 2)  # (B, 6, T, hs)
    assert out.shape == (2, 6, 1, 1)
    np.testing.assert_array_equal(out[:, :, 0, 0], [[0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5]])
    assert repeat_kv(x, 1) is x  # multi-head attention copies nothing


def test_repeat_kv_backward_sums_each_group_against_finite_differences(rng):
    x = rng.standard_normal((2, 2, 3, 4))
    dout = rng.standard_normal((2, 6, 3, 4))
    errors = gradcheck(lambda: float((repeat_kv(x, 3) * dout).sum()), {"x": x}, {"x": repeat_kv_backward(dout, 3)})
    assert errors["x"] < 1e-8, errors


@pytest.mark.parametrize("n_kv_head", [1, 2])
@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_attention_layer_gradients(rng, n_kv_head, positions):
    attn = CausalSelfAttention(gqa_config(n_kv_head, positions=positions), rng, F64)
    perturb(attn, rng)
    assert attn.c_attn.params["w"].shape == (16, 16 + 2 * n_kv_head * 4)  # q: C; k, v: n_kv_head heads of 4
    errors = check_layer(attn, rng.standard_normal((2, 5, 16)), rng, max_entries=80)
    assert errors and max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_whole_model_gradients(n_kv_head):
    model = gqa_model(n_kv_head)
    rng = np.random.default_rng(1)
    idx, targets = rng.integers(0, 16, size=(2, 6)), rng.integers(0, 16, size=(2, 6))
    errors = check_model(model, idx, targets, max_entries=24, rng=rng)
    assert max(errors.values()) < 1e-6, {k: e for k, e in errors.items() if not e < 1e-6}


def test_n_kv_head_equal_to_n_head_is_the_plain_model():
    a = Transformer(preset("tiny", family="llama", n_head=4, dtype="float64"), np.random.default_rng(0))
    b = Transformer(gqa_config(4), np.random.default_rng(0))
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 7))
    np.testing.assert_array_equal(a.forward(idx), b.forward(idx))


@pytest.mark.parametrize("n_kv_head", [1, 2, 4])
def test_kv_cache_holds_n_kv_head_heads_and_decodes_like_a_full_pass(n_kv_head):
    model = gqa_model(n_kv_head)
    idx = np.random.default_rng(2).integers(0, 16, size=(2, 9))
    full = model.forward(idx)  # (B, T, V)
    cache = model.new_kv_cache(2)
    assert cache.k[0].shape == (2, n_kv_head, 16, 4)  # (B, n_kv_head, block_size, hs)
    steps = [model.forward(idx[:, :5], kv_cache=cache)]
    steps += [model.forward(idx[:, t : t + 1], kv_cache=cache) for t in range(5, 9)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-10, atol=1e-12)
    held = sum(a.nbytes for a in cache.k + cache.v)
    assert accounting.kv_cache_bytes(model.config, 2, dtype="float64") == held


@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_parameter_and_flop_counts_follow_n_kv_head(n_kv_head):
    config = gqa_config(n_kv_head, bias=True)
    assert accounting.parameter_counts(config)["total"] == Transformer(config, np.random.default_rng(0)).num_params()
    mha = gqa_config(4, bias=True)
    K, C = n_kv_head * 4, 16
    assert (accounting.forward_flops(mha, 1, 8)["qkv"] - accounting.forward_flops(config, 1, 8)["qkv"]
            == config.n_layer * 2 * 8 * C * 2 * (C - K))


@pytest.mark.parametrize("bad", [3, 0, -2, 2.0, True])
def test_n_kv_head_must_divide_n_head(bad):
    with pytest.raises(ValueError, match="n_kv_head must be a positive integer that divides n_head"):
        gqa_config(bad)


def test_grouped_query_attention_is_refused_for_the_gpt_family():
    with pytest.raises(ValueError, match="grouped-query attention is for the llama family"):
        preset("tiny", family="gpt", n_head=4, n_kv_head=2)
    assert preset("tiny", family="gpt").n_kv_head == 2  # n_head: GPT-2's multi-head attention


def test_a_checkpoint_written_before_n_kv_head_loads_as_multi_head(tmp_path):
    model = Transformer(preset("tiny", family="llama"), np.random.default_rng(0))
    save_without_config_field(tmp_path / "ck", model, "n_kv_head")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.n_kv_head == ck.config.n_head
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 8))
    np.testing.assert_array_equal(ck.model.forward(idx), model.forward(idx))


def test_a_grouped_query_checkpoint_round_trips(tmp_path):
    model = gqa_model(1)
    save_checkpoint(tmp_path / "ck", model)
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.n_kv_head == 1
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 8))
    np.testing.assert_array_equal(ck.model.forward(idx), model.forward(idx))


@pytest.mark.torch
@pytest.mark.parametrize("n_kv_head", [1, 2])
def test_logits_loss_and_gradients_match_pytorch(n_kv_head):
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for parity tests")
    from companion.tools.torch_twin import build_torch_model, copy_weights, torch_gradients, torch_num_params

    model = gqa_model(n_kv_head)
    twin = build_torch_model(model.config)
    copy_weights(model, twin)
    assert torch_num_params(twin) == model.num_params()
    rng = np.random.default_rng(3)
    idx, targets = rng.integers(0, 16, size=(3, 7)), rng.integers(0, 16, size=(3, 7))
    model.zero_grad()
    logits = model.forward(idx)
    loss, cache = cross_entropy_forward(logits, targets)
    model.backward(cross_entropy_backward(cache))
    t_logits, t_loss = twin(torch.from_numpy(idx), torch.from_numpy(targets))
    t_loss.backward()
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), rtol=1e-6, atol=1e-9)
    assert loss == pytest.approx(t_loss.item(), rel=1e-9)
    ours, theirs = model.gradients(), torch_gradients(twin)
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-9, err_msg=name)


def test_chapter_3s_attention_exercise_runs_a_grouped_query_model_unchanged():
    # The kernel contract is q, k, v with n_head heads each: the layer repeats the shared k/v heads
    # before the kernel, so the learner's chapter-3 pair needs no change for grouped-query attention.
    from pathlib import Path

    from companion.grading.adapter import chapter_file, import_by_path

    ch03 = import_by_path(chapter_file(Path(__file__).resolve().parents[1] / "solutions", "ch03"))
    model = gqa_model(1)
    rng = np.random.default_rng(4)
    idx, targets = rng.integers(0, 16, size=(2, 7)), rng.integers(0, 16, size=(2, 7))

    def step():
        model.zero_grad()
        loss, cache = cross_entropy_forward(model.forward(idx), targets)
        model.backward(cross_entropy_backward(cache))
        return loss, {k: g.copy() for k, g in model.gradients().items()}

    want_loss, want = step()
    with companion.use(attention_forward=ch03.attention_forward, attention_backward=ch03.attention_backward):
        got_loss, got = step()
    assert got_loss == pytest.approx(want_loss, rel=1e-12)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
