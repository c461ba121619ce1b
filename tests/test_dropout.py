"""Dropout: the forward/backward pair (statistics, finite differences with a fixed mask), the
model's train/eval switch, bit-identical results at dropout=0, PyTorch parity with the same
masks, the training loop's modes, the CLI flag and checkpoints."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from companion import Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.checkpoint import load_checkpoint
from companion.tools.cli import main
from companion.dropout import Dropout, dropout_backward, dropout_forward
from companion.gradcheck import check_model, gradcheck
from companion.tasks import make_task
from companion.train import default_train_config, train
from model_helpers import save_without_config_field


def state(rng: np.random.Generator) -> dict:
    return copy.deepcopy(rng.bit_generator.state)


# ------------------------------------------------------------------------------- the pair


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, True, "0.1", float("nan")])
def test_a_bad_probability_is_named(p):
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        preset("tiny", dropout=p)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        dropout_forward(np.ones(3), p, np.random.default_rng(0))


def test_p_zero_or_no_generator_returns_the_input_and_draws_nothing():
    x = np.random.default_rng(0).standard_normal((4, 5))
    rng = np.random.default_rng(1)
    before = state(rng)
    for p, g in ((0.0, rng), (0.5, None)):
        out, cache = dropout_forward(x, p, g)
        assert out is x and cache is None
        assert dropout_backward(x, cache) is x
    assert state(rng) == before


def test_inverted_dropout_drops_a_fraction_p_and_keeps_the_mean():
    p = 0.25
    x = np.ones((400, 500))
    out, mask = dropout_forward(x, p, np.random.default_rng(0))
    dropped = float((out == 0).mean())
    assert abs(dropped - p) < 0.01  # 200,000 draws: the standard error is 0.001
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p))  # the kept units are scaled up
    assert abs(float(out.mean()) - 1.0) < 0.02  # so the expected value stays x
    np.testing.assert_array_equal(dropout_backward(np.ones_like(x), mask), mask)


def test_same_generator_state_same_mask_and_dtype_kept():
    x = np.random.default_rng(0).standard_normal((3, 7)).astype(np.float32)
    a, _ = dropout_forward(x, 0.5, np.random.default_rng(4))
    b, _ = dropout_forward(x, 0.5, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


def test_dropout_backward_matches_finite_differences_with_a_fixed_mask():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5))
    dout = rng.standard_normal((3, 4, 5))

    def loss():  # the same seed each call: the same mask, so the function is differentiable
        return float((dropout_forward(x, 0.3, np.random.default_rng(9))[0] * dout).sum())

    _, cache = dropout_forward(x, 0.3, np.random.default_rng(9))
    assert (cache == 0).any() and (cache != 0).any()
    errors = gradcheck(loss, {"x": x}, {"x": dropout_backward(dout, cache)})
    assert errors["x"] < 1e-7, errors


# ------------------------------------------------------------------------------ the model


def fixed_mask_forward(model, seed=7):
    """Make every model.forward draw the same masks (a fresh generator of one seed each time),
    so that finite differences see one function."""
    forward = model.forward

    def forward_with_fixed_masks(*args, **kwargs):
        model.train(np.random.default_rng(seed))
        return forward(*args, **kwargs)

    model.forward = forward_with_fixed_masks


@pytest.mark.parametrize("overrides", [dict(), dict(family="llama"), dict(norm_placement="post")])
def test_model_gradients_with_dropout_match_finite_differences(overrides):
    model = Transformer(preset("tiny", dtype="float64", dropout=0.3, **overrides), np.random.default_rng(0))
    fixed_mask_forward(model)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 16, size=(2, 6))
    targets = rng.integers(0, 16, size=(2, 6))
    model.forward(idx)
    assert all(d.mask is not None and (d.mask == 0).any() for d in model.dropouts())  # every site dropped units
    errors = check_model(model, idx, targets, max_entries=20, rng=np.random.default_rng(2))
    assert max(errors.values()) < 1e-5, errors


def test_new_model_is_in_eval_mode_and_train_eval_switch():
    model = Transformer(preset("tiny", dropout=0.5), np.random.default_rng(0))
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 8))
    assert not model.training
    a, b = model.forward(idx), model.forward(idx)
    np.testing.assert_array_equal(a, b)  # evaluation mode: deterministic
    assert len(model.dropouts()) == 1 + 3 * model.config.n_layer
    model.train(np.random.default_rng(2))
    assert model.training
    c, d = model.forward(idx), model.forward(idx)
    assert not np.array_equal(c, a) and not np.array_equal(c, d)  # different masks each pass
    model.eval()
    np.testing.assert_array_equal(model.forward(idx), a)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        model.train(0)


def test_evaluation_and_generation_never_drop_even_in_train_mode():
    from companion.evaluate import evaluate
    from companion.generate import generate

    task = make_task("listops", seed=0)
    model = Transformer(preset("listops", dropout=0.5), np.random.default_rng(0))
    plain = evaluate(model, task, "val", max_problems=20)
    rng = np.random.default_rng(3)
    model.train(rng)
    before = state(rng)
    assert evaluate(model, task, "val", max_problems=20) == plain
    prompt = task.encode_problem(int(task.split("val").codes[0]))[0]
    model.eval()
    greedy = generate(model, prompt, 4, greedy=True)
    model.train(rng)
    assert generate(model, prompt, 4, greedy=True) == greedy
    assert state(rng) == before and model.training  # nothing drawn, and the mode is restored


def without_dropout_modules(monkeypatch):
    """The model as it was before dropout existed: every Dropout a plain pass-through."""
    monkeypatch.setattr(Dropout, "forward", lambda self, x: x)
    monkeypatch.setattr(Dropout, "backward", lambda self, dout: dout)


def short_run(config, seed=1, steps=12):
    task = make_task("listops", seed=0)
    model = Transformer(config, np.random.default_rng(0))
    rng = np.random.default_rng(seed)
    history = train(model, task, default_train_config(task, steps=steps, eval_every=6, eval_size=30), rng,
                    progress=False)
    return history, model, state(rng)


def test_dropout_zero_trains_bit_identically_to_the_model_without_dropout(monkeypatch):
    config = preset("listops")
    assert config.dropout == 0.0  # the default
    history, model, rng_after = short_run(config)
    with monkeypatch.context() as m:
        without_dropout_modules(m)
        ref_history, ref_model, ref_rng_after = short_run(config)
    assert history.train_losses == ref_history.train_losses  # bit for bit, every step
    assert [e["val_loss"] for e in history.records] == [e["val_loss"] for e in ref_history.records]
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p, ref_model.parameters()[name], err_msg=name)
    assert rng_after == ref_rng_after  # dropout=0 drew no random number
    assert not model.training  # training leaves the model in evaluation mode


def test_dropout_changes_training_but_not_evaluation_and_is_reproducible():
    history, model, _ = short_run(preset("listops", dropout=0.2))
    again, _, _ = short_run(preset("listops", dropout=0.2))
    plain, _, _ = short_run(preset("listops"))
    assert history.train_losses == again.train_losses  # same seed, same masks, same numbers
    assert history.train_losses[0] != plain.train_losses[0]  # the first step already drops units
    assert not model.training


# --------------------------------------------------------------------------- PyTorch parity


@pytest.mark.torch
@pytest.mark.parametrize("overrides", [dict(), dict(family="llama"), dict(norm_placement="post")])
def test_torch_twin_with_the_same_masks_matches_logits_loss_and_gradients(overrides):
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for parity: pip install torch==2.13.0")
    from companion.tools.torch_twin import build_torch_model, copy_weights, torch_gradients

    model = Transformer(preset("tiny", dtype="float64", dropout=0.3, **overrides), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 16, size=(3, 7))
    targets = rng.integers(0, 16, size=(3, 7))
    model.train(np.random.default_rng(5))
    logits = model.forward(idx)
    loss, cache = cross_entropy_forward(logits, targets)
    model.zero_grad()
    model.backward(cross_entropy_backward(cache))
    masks = [d.mask for d in model.dropouts()]
    assert all(m is not None for m in masks)
    twin = build_torch_model(model.config)
    copy_weights(model, twin)
    t_logits, t_loss = twin(torch.from_numpy(idx), torch.from_numpy(targets), dropout_masks=masks)
    t_loss.backward()
    np.testing.assert_allclose(t_logits.detach().numpy(), logits, rtol=1e-6, atol=1e-9)
    assert abs(t_loss.item() - loss) < 1e-9
    theirs = torch_gradients(twin)
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, theirs[name], rtol=1e-6, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------------------- CLI, checkpoints


def test_cli_dropout_flag_reaches_the_checkpoint_and_a_bad_one_is_a_usage_error(tmp_path, capsys):
    argv = ["train", "--task", "listops", "--steps", "6", "--eval-every", "3", "--batch-size", "8",
            "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--no-progress", "--threads", "1", "--json"]
    assert main([*argv, "--out", str(tmp_path / "ck"), "--dropout", "0.2"]) == 0
    assert load_checkpoint(tmp_path / "ck").config.dropout == 0.2
    assert json.loads((tmp_path / "ck" / "checkpoint.json").read_text())["config"]["dropout"] == 0.2
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "bad"), "--dropout", "1.0"]) == 2
    assert "dropout must be a probability in [0, 1)" in capsys.readouterr().err


def test_a_checkpoint_from_before_dropout_loads_with_dropout_zero(tmp_path):
    model = Transformer(preset("tiny"), np.random.default_rng(0))
    save_without_config_field(tmp_path / "ck", model, "dropout")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.dropout == 0.0
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 8))
    np.testing.assert_array_equal(ck.model.forward(idx), model.forward(idx))


def test_attention_dropout_sits_outside_a_plugged_attention_kernel():
    # attention_forward keeps its exercise contract: a learner's kernel is called as before, and the
    # layer drops the weights it returns
    from companion import use
    from companion.attention import attention_forward

    calls = []

    def learners_attention_forward(q, k, v, mask):
        calls.append(q.shape)
        return attention_forward(q, k, v, mask)

    model = Transformer(preset("tiny", dtype="float64", dropout=0.3), np.random.default_rng(0))
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 6))
    model.train(np.random.default_rng(4))
    expected = model.forward(idx)
    model.train(np.random.default_rng(4))
    with use(attention_forward=learners_attention_forward):
        got = model.forward(idx)
    assert len(calls) == model.config.n_layer
    np.testing.assert_array_equal(got, expected)
