"""companion.init_stats (chapter 4's measurements) and companion.viz.block_diagram.

depth_profile unrolls Transformer.forward to read the stream, so its loss and its gradients are
checked against the model's own forward and backward; rescale_init is checked by the standard
deviations it leaves behind.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from companion import Transformer, cross_entropy_backward, cross_entropy_forward, preset  # noqa: E402
from companion.init_stats import depth_profile, rescale_init  # noqa: E402
from companion.viz.block_diagram import draw_block, plot_block_placements  # noqa: E402


def build(placement="pre", n_layer=3, **overrides):
    cfg = preset("tiny", n_layer=n_layer, n_embd=16, norm_placement=placement, dtype="float64",
                 tie_weights=False, **overrides)
    return Transformer(cfg, np.random.default_rng(0))


def batch(vocab_size=16, B=3, T=10):
    idx = np.random.default_rng(1).integers(0, vocab_size, size=(B, T))
    return idx, np.roll(idx, -1, axis=1)


@pytest.mark.parametrize("placement", ["pre", "post"])
@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_depth_profile_matches_the_models_own_forward_and_backward(placement, family):
    idx, targets = batch()
    model = build(placement, family=family)
    profile = depth_profile(model, idx, targets)
    ours = {n: g.copy() for n, g in model.gradients().items()}
    loss, cache = cross_entropy_forward(model.forward(idx), targets)
    model.zero_grad()
    model.backward(cross_entropy_backward(cache))
    assert profile["loss"] == pytest.approx(float(loss), rel=1e-12)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(ours[name], g, rtol=1e-12, atol=1e-15, err_msg=name)
    assert profile["stream_rms"].shape == (4,) and profile["grad_norm"].shape == (3,)
    block1 = math.sqrt(sum(float((g ** 2).sum()) for n, g in ours.items() if n.startswith("blocks.1.")))
    assert profile["grad_norm"][1] == pytest.approx(block1, rel=1e-12)
    if model.wpe is not None:  # learned positions (gpt); llama's RoPE adds nothing to the stream
        x0 = model.wte.params["w"][idx] + model.wpe.params["w"][None, : idx.shape[1]]  # (B, T, C)
        assert profile["stream_rms"][0] == pytest.approx(math.sqrt(float((x0 ** 2).mean())), rel=1e-12)


def test_post_norm_stream_has_unit_scale_after_every_block():
    idx, targets = batch()
    rms = depth_profile(build("post"), idx, targets)["stream_rms"]
    np.testing.assert_allclose(rms[1:], 1.0, atol=1e-3)


def test_rescale_init_sets_the_scales_it_names():
    model = build(n_layer=4)
    before = {n: p.copy() for n, p in model.parameters().items()}
    rescale_init(model, embedding_std=1.0, weight_factor=10.0, residual_factor=2.0, head_factor=3.0)
    after = model.parameters()
    np.testing.assert_allclose(after["wte.w"], before["wte.w"] * 50.0)
    np.testing.assert_allclose(after["blocks.0.attn.c_attn.w"], before["blocks.0.attn.c_attn.w"] * 10.0)
    np.testing.assert_allclose(after["blocks.2.attn.c_proj.w"], before["blocks.2.attn.c_proj.w"] * 20.0)
    np.testing.assert_allclose(after["blocks.3.ffn.c_proj.w"], before["blocks.3.ffn.c_proj.w"] * 20.0)
    np.testing.assert_allclose(after["head.proj.w"], before["head.proj.w"] * 3.0)  # head_factor only
    for name in ("blocks.0.norm1.w", "blocks.0.attn.c_attn.b", "blocks.1.ffn.c_proj.b"):
        np.testing.assert_array_equal(after[name], before[name])


def test_weight_factor_leaves_the_head_alone():
    model = build(n_layer=2)
    head = model.parameters()["head.proj.w"].copy()
    rescale_init(model, weight_factor=0.1)
    np.testing.assert_array_equal(model.parameters()["head.proj.w"], head)


def test_depth_profile_without_residuals_matches_finite_differences():
    """residual=False is a different network (no x + f(x)): its backward is checked numerically."""
    idx, targets = batch()
    for placement in ("pre", "post"):
        model = build(placement, n_layer=3)
        depth_profile(model, idx, targets, residual=False)
        grads = {n: g.copy() for n, g in model.gradients().items()}
        params = model.parameters()
        rng = np.random.default_rng(2)
        for name in ("blocks.0.attn.c_attn.w", "blocks.1.ffn.c_fc.b", "blocks.2.norm1.w", "wte.w"):
            p = params[name]
            for flat in rng.choice(p.size, size=3, replace=False):
                i = np.unravel_index(flat, p.shape)
                old = p[i]
                p[i] = old + 1e-6
                up = depth_profile(model, idx, targets, residual=False)["loss"]
                p[i] = old - 1e-6
                down = depth_profile(model, idx, targets, residual=False)["loss"]
                p[i] = old
                numeric = (up - down) / 2e-6
                assert grads[name][i] == pytest.approx(numeric, rel=1e-5, abs=1e-9), (placement, name, i)


def test_depth_profile_without_residuals_differs_and_its_gradient_vanishes_with_depth():
    idx, targets = batch()
    with_res = depth_profile(build("pre", n_layer=8), idx, targets)
    without = depth_profile(build("pre", n_layer=8), idx, targets, residual=False)
    assert not np.allclose(with_res["stream_rms"][1:], without["stream_rms"][1:])
    assert without["grad_norm"][-1] > 100 * without["grad_norm"][0]
    assert with_res["grad_norm"].max() < 3 * with_res["grad_norm"].min()


def test_rescale_init_undoes_the_depth_scaling_of_swiglu_too():
    model = build(n_layer=8, family="llama")
    rescale_init(model, residual_factor=math.sqrt(16))
    w_down = np.concatenate([p.ravel() for n, p in model.parameters().items() if n.endswith("ffn.w_down.w")])
    assert w_down.std() == pytest.approx(0.02, rel=0.05)


def test_rescale_init_refuses_a_tied_embedding_and_a_bad_scale():
    tied = Transformer(preset("tiny", tie_weights=True), np.random.default_rng(0))
    with pytest.raises(ValueError, match="tie_weights=False"):
        rescale_init(tied, embedding_std=1.0)
    with pytest.raises(ValueError, match="tie_weights=False"):
        rescale_init(tied, head_factor=2.0)
    with pytest.raises(ValueError, match="embedding_std must be positive"):
        rescale_init(build(), embedding_std=0.0)


def test_depth_profile_names_mismatched_shapes():
    idx, targets = batch()
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        depth_profile(build(), idx, targets[:, :-1])


def test_block_diagram_draws_both_placements_and_names_a_bad_one():
    fig = plot_block_placements()
    labels = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert len(fig.axes) == 2
    for texts in labels:
        assert {"LayerNorm 1", "LayerNorm 2", "attention", "FFN"} <= set(texts)
    assert "pre-norm" in fig.axes[0].get_title() and "post-norm" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="placement"):
        draw_block(fig.axes[0], "middle")
