"""Parity with PyTorch autograd: the same weights in companion.tools.torch_twin give the same
logits, loss and gradients (float64, 1e-6), and the optimizers follow torch.optim's
trajectories. A mismatch names the parameter, so the failing layer is obvious.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from model_helpers import MODEL_VARIANTS, small_model

from companion import (SGD, Adam, AdamW, Transformer, clip_grad_norm, cross_entropy_backward, cross_entropy_forward,
                       lr_schedule, preset)

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for these tests: pip install torch==2.13.0")
from companion.tools.torch_twin import build_torch_model, copy_weights, torch_gradients, torch_num_params, torch_parameters  # noqa: E402

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-6, atol=1e-9)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These tensors are tiny: torch's thread pool only adds contention on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def twin_of(model):
    twin = build_torch_model(model.config)
    copy_weights(model, twin)
    return twin


def batch(config, seed=3, B=3, T=7):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, config.vocab_size, size=(B, T))
    targets = rng.integers(0, config.vocab_size, size=(B, T))
    mask = (rng.random((B, T)) > 0.3).astype(np.float64)
    mask[:, -1] = 1.0
    return idx, targets, mask


def companion_step(model, idx, targets, mask=None, pad_mask=None):
    model.zero_grad()
    logits = model.forward(idx, pad_mask)
    loss, cache = cross_entropy_forward(logits, targets, mask)
    model.backward(cross_entropy_backward(cache))
    return logits, loss


def torch_step(twin, idx, targets, mask=None, pad_mask=None):
    twin.zero_grad(set_to_none=True)
    args = {k: torch.from_numpy(v) for k, v in dict(mask=mask, pad_mask=pad_mask).items() if v is not None}
    logits, loss = twin(torch.from_numpy(idx), torch.from_numpy(targets), **args)
    loss.backward()
    return logits.detach().numpy(), loss.item()


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("variant", sorted(MODEL_VARIANTS) + ["gpt-rmsnorm-rope-swiglu", "llama-layernorm-learned-gelu"])
def test_logits_loss_and_every_gradient(variant, use_mask):
    overrides = MODEL_VARIANTS.get(variant) or {
        "gpt-rmsnorm-rope-swiglu": dict(family="gpt", norm="rmsnorm", positions="rope", ffn="swiglu"),
        "llama-layernorm-learned-gelu": dict(family="llama", norm="layernorm", positions="learned", ffn="gelu"),
    }[variant]
    model = small_model(**overrides)
    twin = twin_of(model)
    idx, targets, mask = batch(model.config)
    mask = mask if use_mask else None
    logits, loss = companion_step(model, idx, targets, mask)
    t_logits, t_loss = torch_step(twin, idx, targets, mask)
    np.testing.assert_allclose(logits, t_logits, **TOL, err_msg="logits")
    assert loss == pytest.approx(t_loss, rel=1e-9)
    ours, theirs = model.gradients(), torch_gradients(twin)
    assert set(ours) == set(theirs)
    for name in ours:
        assert np.abs(ours[name]).max() > 0, f"{name}: zero gradient, the comparison would be empty"
        np.testing.assert_allclose(ours[name], theirs[name], **TOL, err_msg=name)


@pytest.mark.parametrize("family", ["gpt", "llama"])
@pytest.mark.parametrize("placement", ["pre", "post"])
def test_attn_only_model_matches_torch(family, placement):
    model = small_model(family, attn_only=True, norm_placement=placement)
    twin = twin_of(model)
    assert torch_num_params(twin) == model.num_params()
    idx, targets, mask = batch(model.config)
    logits, loss = companion_step(model, idx, targets, mask)
    t_logits, t_loss = torch_step(twin, idx, targets, mask)
    np.testing.assert_allclose(logits, t_logits, **TOL, err_msg="logits")
    assert loss == pytest.approx(t_loss, rel=1e-9)
    ours, theirs = model.gradients(), torch_gradients(twin)
    assert set(ours) == set(theirs) and not any(".ffn." in name for name in ours)
    for name in ours:
        assert np.abs(ours[name]).max() > 0, f"{name}: zero gradient, the comparison would be empty"
        np.testing.assert_allclose(ours[name], theirs[name], **TOL, err_msg=name)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_padding_mask_matches_torch(family):
    model = small_model(family)
    twin = twin_of(model)
    idx, targets, _ = batch(model.config)
    pad = np.ones(idx.shape, dtype=bool)
    pad[0, :3] = False
    pad[2, :1] = False
    logits, loss = companion_step(model, idx, targets, pad.astype(np.float64), pad)
    t_logits, t_loss = torch_step(twin, idx, targets, pad.astype(np.float64), pad)
    np.testing.assert_allclose(logits, t_logits, **TOL)
    assert loss == pytest.approx(t_loss, rel=1e-9)
    ours, theirs = model.gradients(), torch_gradients(twin)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], **TOL, err_msg=name)


@pytest.mark.parametrize("name", ["listops", "llama-2m", "baby", "tiny"])
def test_twin_parameter_count_equals_ours(name):
    config = preset(name)
    model = Transformer(config, np.random.default_rng(0))
    assert torch_num_params(build_torch_model(config)) == model.num_params()


def test_float32_twin_matches_within_float32_tolerance():
    model = small_model("gpt", dtype="float32")
    twin = twin_of(model)
    assert next(twin.parameters()).dtype == torch.float32
    idx, targets, _ = batch(model.config)
    logits, loss = companion_step(model, idx, targets)
    t_logits, t_loss = torch_step(twin, idx, targets)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, t_logits, rtol=1e-4, atol=1e-4)
    assert loss == pytest.approx(t_loss, rel=1e-5)


# -- cross-entropy, also far outside softmax's comfortable range ---------------------------

@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy_matches_torch(scale):
    rng = np.random.default_rng(5)
    logits = scale * rng.standard_normal((4, 6, 9))
    targets = rng.integers(0, 9, size=(4, 6))
    mask = (rng.random((4, 6)) > 0.3).astype(np.float64)
    for m in (None, mask):
        loss, cache = cross_entropy_forward(logits, targets, m)
        dlogits = cross_entropy_backward(cache)
        assert np.isfinite(loss) and np.all(np.isfinite(dlogits)), "overflow in softmax"
        t = torch.from_numpy(logits).requires_grad_()
        w = torch.ones(4, 6, dtype=torch.float64) if m is None else torch.from_numpy(m)
        nll = torch.nn.functional.cross_entropy(t.reshape(-1, 9), torch.from_numpy(targets).reshape(-1), reduction="none")
        t_loss = (nll * w.reshape(-1)).sum() / w.sum()
        t_loss.backward()
        assert loss == pytest.approx(t_loss.item(), rel=1e-12)
        np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_entropy_1000x_float32_stays_finite():
    rng = np.random.default_rng(6)
    logits = (1000.0 * rng.standard_normal((2, 5, 7))).astype(np.float32)
    targets = rng.integers(0, 7, size=(2, 5))
    loss, cache = cross_entropy_forward(logits, targets)
    t_loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits).reshape(-1, 7), torch.from_numpy(targets).reshape(-1))
    assert np.isfinite(loss) and np.all(np.isfinite(cross_entropy_backward(cache)))
    assert loss == pytest.approx(t_loss.item(), rel=1e-5)


# -- optimizers: 20 steps of the same model, the same data, side by side --------------------

def torch_optimizer(kind, twin, lr):
    params = list(twin.parameters())
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=0.01)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    decay = [p for p in params if p.ndim >= 2]  # AdamW: weight matrices only, as nanoGPT's groups
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def companion_optimizer(kind, model, lr):
    p, g = model.parameters(), model.gradients()
    if kind == "sgd":
        return SGD(p, g, lr=lr, momentum=0.9, weight_decay=0.01)
    if kind == "adam":
        return Adam(p, g, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.01)
    return AdamW(p, g, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


@pytest.mark.parametrize("family", ["gpt", "llama"])
@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_optimizer_trajectory_20_steps(kind, family):
    """Each side computes its own gradients and takes its own steps, with a warm-up + cosine
    schedule and gradient clipping; after every step the parameters must agree."""
    model = small_model(family, scale=0.1)
    twin = twin_of(model)
    max_lr = 0.05 if kind == "sgd" else 3e-3
    opt, t_opt = companion_optimizer(kind, model, max_lr), torch_optimizer(kind, twin, max_lr)
    rng = np.random.default_rng(11)
    start = {k: v.copy() for k, v in model.parameters().items()}
    for step in range(20):
        idx = rng.integers(0, model.config.vocab_size, size=(2, 8))
        targets = np.roll(idx, -1, axis=1)
        lr = lr_schedule(step, max_lr, warmup_steps=3, total_steps=20, min_lr=max_lr / 10)
        companion_step(model, idx, targets)
        torch_step(twin, idx, targets)
        norm = clip_grad_norm(model.gradients(), 1.0)
        t_norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0).item()
        assert norm == pytest.approx(t_norm, rel=1e-9)
        opt.lr = lr
        for group in t_opt.param_groups:
            group["lr"] = lr
        opt.step()
        t_opt.step()
        theirs = torch_parameters(twin)
        for name, p in model.parameters().items():
            np.testing.assert_allclose(p, theirs[name], rtol=1e-7, atol=1e-10, err_msg=f"step {step}: {name}")
    moved = max(float(np.abs(model.parameters()[k] - start[k]).max()) for k in start)
    assert moved > 1e-3, "the optimizer barely moved: the comparison proves little"


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    rng = np.random.default_rng(2)
    grads = {"a": rng.standard_normal((4, 3)), "b": rng.standard_normal(5)}
    t_params = [torch.zeros(4, 3, dtype=torch.float64, requires_grad=True), torch.zeros(5, dtype=torch.float64, requires_grad=True)]
    for p, g in zip(t_params, grads.values()):
        p.grad = torch.from_numpy(g.copy())
    expected_norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    norm = clip_grad_norm(grads, max_norm)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, max_norm).item()
    assert norm == pytest.approx(expected_norm, rel=1e-12) and norm == pytest.approx(t_norm, rel=1e-12)
    for p, g in zip(t_params, grads.values()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    new_norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
    assert new_norm == pytest.approx(min(expected_norm, max_norm), rel=1e-5)


def test_lr_schedule_matches_torch_cosine():
    """Warm-up is linear to max_lr; after it the curve is torch's CosineAnnealingLR."""
    max_lr, min_lr, warmup, total = 1.0, 0.1, 5, 25
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=max_lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)
    for step in range(warmup):
        assert lr_schedule(step, max_lr, warmup, total, min_lr) == pytest.approx(max_lr * (step + 1) / warmup)
    for step in range(warmup, total + 1):
        assert lr_schedule(step, max_lr, warmup, total, min_lr) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        cosine.step()
    assert lr_schedule(total + 10, max_lr, warmup, total, min_lr) == min_lr
