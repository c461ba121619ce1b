"""Checkpoints: a round trip is exact, resuming is bit-for-bit, and every kind of bad file
(truncated, tampered, mismatched, not a checkpoint) fails with an error that names the problem."""

import json

import numpy as np
import pytest

from companion import AdamW, SGD, Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from companion.history import History

CFG = preset("tiny", dtype="float64")


def a_history(n=3) -> History:
    h = History()
    for i in range(n):
        h.add_step(2.0 - 0.1 * i, 1e-3)
    return h


def batch(rng, cfg, B=4):
    idx = rng.integers(0, cfg.vocab_size, size=(B, cfg.block_size))  # (B, T)
    targets = np.roll(idx, -1, axis=1)  # (B, T): a learnable rule, predict the next token
    return idx, targets


def train_steps(model, opt, rng, start, stop, losses):
    """A minimal training loop whose every random draw comes from ``rng``."""
    for step in range(start, stop):
        idx, targets = batch(rng, model.config)
        loss, cache = cross_entropy_forward(model.forward(idx), targets)
        model.zero_grad()
        model.backward(cross_entropy_backward(cache))
        opt.lr = 1e-2 * (1 - step / 20)  # a schedule that depends on the step
        opt.step()
        losses.append(loss)


def fresh(seed=0, cfg=CFG):
    model = Transformer(cfg, np.random.default_rng(seed))
    return model, AdamW(model.parameters(), model.gradients(), lr=1e-2, weight_decay=0.1)


def test_round_trip_restores_everything(tmp_path):
    model, opt = fresh()
    rng = np.random.default_rng(1)
    train_steps(model, opt, rng, 0, 3, [])
    save_checkpoint(tmp_path / "ck", model, opt, step=3, rng=rng, task={"name": "listops", "n_args": 3},
                    train_config={"steps": 10, "lr": 0.01}, history=a_history())
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.step == 3 and ck.config == CFG
    for name, p in model.parameters().items():
        q = ck.model.parameters()[name]
        assert q.dtype == p.dtype and np.array_equal(q, p), name
    assert ck.optimizer.t == opt.t == 3
    for key, a in opt.state_dict().items():
        assert np.array_equal(ck.optimizer.state_dict()[key], a), key
    assert (ck.optimizer.lr, ck.optimizer.b1, ck.optimizer.b2, ck.optimizer.weight_decay) == (
        opt.lr, opt.b1, opt.b2, opt.weight_decay)
    assert ck.rng.bit_generator.state == rng.bit_generator.state
    assert ck.rng.random() == rng.random()  # the restored generator continues the same stream
    assert ck.task == {"name": "listops", "n_args": 3} and ck.train_config == {"steps": 10, "lr": 0.01}
    assert ck.history == a_history()
    # the optimizer holds the loaded model's own arrays, so a step updates that model
    before = ck.model.parameters()["wte.weight"].copy()
    ck.model.gradients()["wte.weight"][...] = 1.0
    ck.optimizer.step()
    assert not np.array_equal(before, ck.model.parameters()["wte.weight"])


def test_tied_weights_stay_tied_after_load(tmp_path):
    cfg = preset("tiny", tie_weights=True)
    model = Transformer(cfg, np.random.default_rng(0))
    save_checkpoint(tmp_path / "ck", model)
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.model.head._tied is ck.model.wte
    assert ck.optimizer is None and ck.rng is None


@pytest.mark.parametrize("opt_kind", ["AdamW", "SGD"])
def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path, opt_kind):
    def make(seed=0):
        model = Transformer(CFG, np.random.default_rng(seed))
        if opt_kind == "SGD":
            return model, SGD(model.parameters(), model.gradients(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        return model, AdamW(model.parameters(), model.gradients(), lr=1e-2, weight_decay=0.1)

    model, opt = make()
    whole = []
    train_steps(model, opt, np.random.default_rng(7), 0, 10, whole)

    model, opt = make()
    rng, first = np.random.default_rng(7), []
    train_steps(model, opt, rng, 0, 4, first)
    save_checkpoint(tmp_path / "ck", model, opt, step=4, rng=rng)
    del model, opt, rng  # nothing survives but the files
    ck = load_checkpoint(tmp_path / "ck")
    rest = []
    train_steps(ck.model, ck.optimizer, ck.rng, ck.step, 10, rest)
    assert first + rest == whole  # exact float equality, step by step
    assert len(whole) == 10 and whole[-1] < whole[0]  # and it did train


def test_save_is_atomic_and_overwrites(tmp_path):
    model, opt = fresh()
    save_checkpoint(tmp_path / "ck", model, opt, step=1, rng=np.random.default_rng(0), history=a_history())
    save_checkpoint(tmp_path / "ck", model, opt, step=2)  # no history this time
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["checkpoint.json", "state.npz"]  # no temp files
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.step == 2 and ck.history is None and ck.rng is None


# --- bad files --------------------------------------------------------------------------------


@pytest.fixture
def ckdir(tmp_path):
    model, opt = fresh()
    train_steps(model, opt, np.random.default_rng(0), 0, 1, [])
    return save_checkpoint(tmp_path / "ck", model, opt, step=1, rng=np.random.default_rng(0), history=a_history())


def rewrite_manifest(ckdir, change):
    m = json.loads((ckdir / "checkpoint.json").read_text())
    change(m)
    (ckdir / "checkpoint.json").write_text(json.dumps(m))


def resave_state(ckdir, change):
    """Edit state.npz and fix the checksum, so the content checks (not the checksum) must catch it."""
    import hashlib

    with np.load(ckdir / "state.npz") as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(ckdir / "state.npz", **arrays)
    digest = hashlib.sha256((ckdir / "state.npz").read_bytes()).hexdigest()
    rewrite_manifest(ckdir, lambda m: m["sha256"].__setitem__("state.npz", digest))


def test_missing_folder_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="checkpoint.json is missing"):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "checkpoint.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a companion checkpoint"):
        load_checkpoint(tmp_path / "other")


def test_truncated_npz(ckdir):
    data = (ckdir / "state.npz").read_bytes()
    (ckdir / "state.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="checksum mismatch for .*state.npz"):
        load_checkpoint(ckdir)


def test_truncated_manifest(ckdir):
    text = (ckdir / "checkpoint.json").read_text()
    (ckdir / "checkpoint.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(ckdir)


def test_tampered_weights(ckdir):
    with np.load(ckdir / "state.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["param/wte.weight"][0, 0] += 1.0
    np.savez(ckdir / "state.npz", **arrays)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(ckdir)


def test_tampered_history(ckdir):
    (ckdir / "history.json").write_text(json.dumps(a_history(4).to_dict()))
    with pytest.raises(CheckpointError, match="checksum mismatch for .*history.json"):
        load_checkpoint(ckdir)


def test_invalid_history_with_valid_checksum(ckdir):
    import hashlib

    (ckdir / "history.json").write_text('{"x": [2]}')
    digest = hashlib.sha256((ckdir / "history.json").read_bytes()).hexdigest()
    rewrite_manifest(ckdir, lambda m: m["sha256"].__setitem__("history.json", digest))
    with pytest.raises(CheckpointError, match="history.json is not a valid training history: .*missing"):
        load_checkpoint(ckdir)


def test_stray_file_from_another_run(ckdir):
    (ckdir / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="tokenizer.json is not part of this checkpoint"):
        load_checkpoint(ckdir)


def test_wrong_config_for_weights(ckdir):
    rewrite_manifest(ckdir, lambda m: m["config"].__setitem__("n_embd", 32))
    with pytest.raises(CheckpointError, match=r"parameter .* has shape .* config gives"):
        load_checkpoint(ckdir)


def test_config_with_more_layers_names_missing_parameters(ckdir):
    rewrite_manifest(ckdir, lambda m: m["config"].__setitem__("n_layer", 3))
    with pytest.raises(CheckpointError, match=r"missing parameter\(s\) \['blocks.2"):
        load_checkpoint(ckdir)


def test_extra_parameter(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("param/blocks.0.attn.extra", np.zeros(3)))
    with pytest.raises(CheckpointError, match=r"parameter\(s\) \['blocks.0.attn.extra'\] that the config does not"):
        load_checkpoint(ckdir)


def test_missing_parameter(ckdir):
    resave_state(ckdir, lambda a: a.pop("param/norm_f.w"))
    with pytest.raises(CheckpointError, match=r"missing parameter\(s\) \['norm_f.w'\]"):
        load_checkpoint(ckdir)


def test_wrong_dtype(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("param/wte.weight", a["param/wte.weight"].astype(np.float32)))
    with pytest.raises(CheckpointError, match="wte.weight has dtype float32 .* says float64"):
        load_checkpoint(ckdir)


def test_wrong_optimizer_state_shape(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("optim/m.wte.weight", np.zeros((2, 2))))
    with pytest.raises(CheckpointError, match="optimizer state .*m.wte.weight has shape"):
        load_checkpoint(ckdir)


def test_missing_adam_moment(ckdir):
    resave_state(ckdir, lambda a: a.pop("optim/v.wte.weight"))
    with pytest.raises(CheckpointError, match="missing Adam moments for \\['wte.weight'\\]"):
        load_checkpoint(ckdir)


def test_pickled_array_is_refused(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("step", np.array([{"evil": 1}], dtype=object)))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(ckdir)


def test_unsupported_version(ckdir):
    rewrite_manifest(ckdir, lambda m: m.__setitem__("version", 99))
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        load_checkpoint(ckdir)


def test_bad_arguments_to_save(tmp_path):
    model, opt = fresh()
    with pytest.raises(ValueError, match="step must be a non-negative integer"):
        save_checkpoint(tmp_path / "ck", model, opt, step=-1)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        save_checkpoint(tmp_path / "ck", model, opt, step=0, rng=42)
    with pytest.raises(TypeError, match="history cannot be stored as JSON"):
        save_checkpoint(tmp_path / "ck", model, opt, step=0, history={"f": object()})
