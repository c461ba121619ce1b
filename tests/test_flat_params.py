"""One parameter buffer: every parameter and gradient of a Transformer is a view of one array,
and stays one through a checkpoint load, a resume and training; clipping and the optimizer
act on the model's real arrays, and the whole-buffer AdamW computes exactly what the
array-by-array AdamW computes."""

import numpy as np
import pytest

from companion import AdamW, Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.checkpoint import load_checkpoint, save_checkpoint
from companion.module import flat_layout
from companion.optim import Adam, clip_grad_norm

CFG = preset("tiny", dtype="float64")


def assert_packed(model):
    """Every parameter and gradient is a view of the model's two buffers, which they tile."""
    params, grads = model.parameters(), model.gradients()
    for name, p in params.items():
        assert np.shares_memory(p, model._flat_params), f"{name} is not a view of the parameter buffer"
        assert np.shares_memory(grads[name], model._flat_grads), f"{name}'s gradient is not a view of the buffer"
    for arrays, buffer in ((params, model._flat_params), (grads, model._flat_grads)):
        layout = flat_layout(arrays)
        assert layout is not None and layout[0] is buffer
    assert model._flat_params.size == model.num_params()


def one_step(model, opt, seed, clip=None):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, model.config.vocab_size, size=(3, model.config.block_size + 1))  # (B, T + 1)
    loss, cache = cross_entropy_forward(model.forward(idx[:, :-1]), idx[:, 1:])
    model.zero_grad()
    model.backward(cross_entropy_backward(cache))
    if clip is not None:
        clip_grad_norm(model.gradients(), clip)
    opt.step()
    return loss


@pytest.mark.parametrize("overrides", [{}, {"family": "llama"}, {"tie_weights": False, "positions": "sinusoidal"}])
def test_a_new_model_keeps_every_parameter_in_one_buffer(overrides):
    model = Transformer(preset("tiny", **overrides), np.random.default_rng(0))
    assert_packed(model)
    # matrices first: AdamW's decay is one slice
    _, slices = flat_layout(model.parameters())
    matrices = [s for n, s in slices.items() if model.parameters()[n].ndim >= 2]
    assert max(s.stop for s in matrices) == sum(s.stop - s.start for s in matrices)


def test_writing_a_parameter_writes_the_buffer_and_zero_grad_clears_every_gradient():
    model = Transformer(CFG, np.random.default_rng(0))
    w = model.parameters()["blocks.0.attn.c_attn.w"]
    w[0, 0] = 123.0
    assert (model._flat_params == 123.0).sum() == 1
    for g in model.gradients().values():
        g += 1.0
    model.zero_grad()
    assert all(not g.any() for g in model.gradients().values())


def test_whole_buffer_adamw_equals_array_by_array_adamw():
    """The same AdamW on the model (one buffer) and on standalone copies (separate arrays)."""
    model = Transformer(CFG, np.random.default_rng(0))
    opt = AdamW(model.parameters(), model.gradients(), lr=1e-2, weight_decay=0.1)
    assert opt._flat() is not None  # the vectorised path is taken
    copies = {n: p.copy() for n, p in model.parameters().items()}
    grads = {n: np.zeros_like(p) for n, p in copies.items()}
    ref = AdamW(copies, grads, lr=1e-2, weight_decay=0.1)
    assert ref._flat() is None  # separate arrays: the per-array path
    for step in range(3):
        one_step(model, opt, seed=step, clip=0.5)
        for n, g in model.gradients().items():
            grads[n][...] = g  # the same (clipped) gradients
        ref.step()
        for n, p in model.parameters().items():
            np.testing.assert_allclose(p, copies[n], rtol=1e-13, atol=1e-15, err_msg=n)
    for key, a in ref.state_dict().items():
        np.testing.assert_allclose(opt.state_dict()[key], a, rtol=1e-13, atol=1e-15, err_msg=key)
    # Adam (L2 weight decay in the gradient) takes the same path and agrees too
    model2 = Transformer(CFG, np.random.default_rng(0))
    opt2 = Adam(model2.parameters(), model2.gradients(), lr=1e-2, weight_decay=0.1)
    copies2 = {n: p.copy() for n, p in model2.parameters().items()}
    grads2 = {n: np.zeros_like(p) for n, p in copies2.items()}
    ref2 = Adam(copies2, grads2, lr=1e-2, weight_decay=0.1)
    one_step(model2, opt2, seed=0)
    for n, g in model2.gradients().items():
        grads2[n][...] = g
    ref2.step()
    for n, p in model2.parameters().items():
        np.testing.assert_allclose(p, copies2[n], rtol=1e-13, atol=1e-15, err_msg=n)


def test_clipping_and_the_optimizer_change_the_model_itself():
    model = Transformer(CFG, np.random.default_rng(0))
    opt = AdamW(model.parameters(), model.gradients(), lr=1e-2)
    one_step(model, opt, seed=0)  # gradients now set
    grads = model.gradients()
    norm = np.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    before = {n: g.copy() for n, g in grads.items()}
    clip_grad_norm(model.gradients(), norm / 4)
    for n, g in model.gradients().items():  # the model's own gradient arrays were scaled
        np.testing.assert_allclose(g, before[n] * (norm / 4) / (norm + 1e-6), rtol=1e-12, err_msg=n)
    params_before = {n: p.copy() for n, p in model.parameters().items()}
    opt.step()
    changed = [n for n, p in model.parameters().items() if not np.array_equal(p, params_before[n])]
    assert sorted(changed) == sorted(model.parameters())  # every parameter moved, through its view


def test_a_loaded_checkpoint_and_a_resumed_run_stay_in_one_buffer(tmp_path):
    model = Transformer(CFG, np.random.default_rng(0))
    opt = AdamW(model.parameters(), model.gradients(), lr=1e-2, weight_decay=0.1)
    for step in range(2):
        one_step(model, opt, seed=step)
    save_checkpoint(tmp_path / "ck", model, opt, step=2)
    ck = load_checkpoint(tmp_path / "ck")
    assert_packed(ck.model)
    for n, p in model.parameters().items():
        assert np.array_equal(ck.model.parameters()[n], p), n
    # the resumed optimizer holds the loaded model's arrays, and continues exactly
    assert all(ck.optimizer.params[n] is p for n, p in ck.model.parameters().items())
    a = one_step(model, opt, seed=7)
    b = one_step(ck.model, ck.optimizer, seed=7)
    assert a == b
    assert_packed(ck.model)
    for n, p in model.parameters().items():
        assert np.array_equal(ck.model.parameters()[n], p), n
    for key, s in opt.state_dict().items():
        assert np.array_equal(ck.optimizer.state_dict()[key], s), key
    # after the resumed step, its Adam moments are views of one buffer as well
    assert flat_layout({n: s["m"] for n, s in ck.optimizer.state.items()}) is not None


def test_training_keeps_the_buffer():
    from companion.tasks import make_task
    from companion.train import TrainConfig, train

    task = make_task("listops", seed=0)
    model = Transformer(preset("listops", dtype="float64", vocab_size=task.vocab_size, block_size=task.block_size, n_layer=1, n_embd=16, n_head=2, ffn_hidden=32),
                        np.random.default_rng(0))
    train(model, task, TrainConfig(steps=2, batch_size=4, eval_every=0, eval_size=8), np.random.default_rng(0), progress=False)
    assert_packed(model)


def test_a_deep_copy_has_its_own_buffer():
    import copy

    model = Transformer(CFG.replace(tie_weights=True), np.random.default_rng(0))
    twin = copy.deepcopy(model)
    assert_packed(twin)
    assert not np.shares_memory(twin._flat_params, model._flat_params)
    for n, p in model.parameters().items():
        assert np.array_equal(twin.parameters()[n], p), n
    assert twin.head._tied is twin.wte  # the tied head still reads the copy's own embedding
    for g in twin.gradients().values():
        g += 1.0
    twin.zero_grad()
    assert all(not g.any() for g in twin.gradients().values())
