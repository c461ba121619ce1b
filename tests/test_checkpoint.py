"""Checkpoints: a round trip is exact, resuming is bit-for-bit, a checkpoint of the previous format
version loads with identical numbers, and every kind of bad file (truncated, tampered, mismatched,
not a checkpoint) fails with an error that names the problem."""

import io
import json

import numpy as np
import pytest

from companion import AdamW, SGD, Transformer, cross_entropy_backward, cross_entropy_forward, preset
from companion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from companion.history import History
from companion.tasks import make_task
from companion.train import TrainConfig, train
from model_helpers import save_without_config_field

CFG = preset("tiny", dtype="float64", tie_weights=False)  # the untied head these tests were written for


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
    before = ck.model.parameters()["wte.w"].copy()
    ck.model.gradients()["wte.w"][...] = 1.0
    ck.optimizer.step()
    assert not np.array_equal(before, ck.model.parameters()["wte.w"])


def test_tied_weights_stay_tied_after_load(tmp_path):
    cfg = preset("tiny", tie_weights=True)
    model = Transformer(cfg, np.random.default_rng(0))
    save_checkpoint(tmp_path / "ck", model)
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.model.head._tied is ck.model.wte
    assert ck.optimizer is None and ck.rng is None


def train_and_checkpoint_midway(make, path):
    """Ten steps straight; then, from the same start, four steps and a checkpoint at ``path``
    -> (that model, its optimizer, its generator, the ten losses, the four losses)."""
    model, opt = make()
    whole = []
    train_steps(model, opt, np.random.default_rng(7), 0, 10, whole)
    model, opt = make()
    rng, first = np.random.default_rng(7), []
    train_steps(model, opt, rng, 0, 4, first)
    save_checkpoint(path, model, opt, step=4, rng=rng)
    return model, opt, rng, whole, first


@pytest.mark.parametrize("opt_kind", ["AdamW", "SGD"])
def test_resume_reproduces_uninterrupted_run_bit_for_bit(tmp_path, opt_kind):
    def make(seed=0):
        model = Transformer(CFG, np.random.default_rng(seed))
        if opt_kind == "SGD":
            return model, SGD(model.parameters(), model.gradients(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        return model, AdamW(model.parameters(), model.gradients(), lr=1e-2, weight_decay=0.1)

    model, opt, rng, whole, first = train_and_checkpoint_midway(make, tmp_path / "ck")
    del model, opt, rng  # nothing survives but the files
    ck = load_checkpoint(tmp_path / "ck")
    rest = []
    train_steps(ck.model, ck.optimizer, ck.rng, ck.step, 10, rest)
    assert first + rest == whole  # exact float equality, step by step
    assert len(whole) == 10 and whole[-1] < whole[0]  # and it did train


def test_resume_through_train_callback_is_bit_for_bit(tmp_path):
    task = make_task("listops", seed=0)
    config = preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size)
    cfg = TrainConfig(steps=16, batch_size=16, warmup_steps=4, eval_every=8, eval_size=50)

    whole = train(Transformer(config, np.random.default_rng(0)), task, cfg, np.random.default_rng(0), progress=False)

    def save_at_6(step, model, optimizer, rng, history):
        if step == 6:
            save_checkpoint(tmp_path / "ck", model, optimizer, step, rng, task=task, train_config=cfg, history=history)
            raise StopIteration  # stop the run here; nothing but the files carries on

    with pytest.raises(StopIteration):
        train(Transformer(config, np.random.default_rng(0)), task, cfg, np.random.default_rng(0), progress=False,
              callback=save_at_6)
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.step == 6 and ck.history.steps == 6
    rest = train(ck.model, task, cfg, ck.rng, optimizer=ck.optimizer, start_step=ck.step, history=ck.history,
                 progress=False)
    assert rest.train_losses == whole.train_losses  # bit for bit, all 16 steps
    assert [r["val_loss"] for r in rest.records] == [r["val_loss"] for r in whole.records]


def data_file(ckdir, role):
    """The file the manifest names for a role ('state', 'tokenizer', 'history')."""
    return ckdir / json.loads((ckdir / "checkpoint.json").read_text())["files"][role]["name"]


def test_save_overwrites_and_cleans_up(tmp_path):
    model, opt = fresh()
    save_checkpoint(tmp_path / "ck", model, opt, step=1, rng=np.random.default_rng(0), history=a_history())
    first_state = data_file(tmp_path / "ck", "state").name
    opt.step()  # change the state, so the next save writes a new state file
    save_checkpoint(tmp_path / "ck", model, opt, step=2)  # no history this time
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert len(names) == 2 and names[0] == "checkpoint.json" and names[1].startswith("state-")  # no temp files
    assert names[1] != first_state  # the old state file was removed after the new manifest was written
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.step == 2 and ck.history is None and ck.rng is None


def test_interrupted_save_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch):
    model, opt = fresh()
    save_checkpoint(tmp_path / "ck", model, opt, step=1, history=a_history(1))
    import companion.checkpoint as checkpoint

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C after the new data files, before the new manifest

    monkeypatch.setattr(checkpoint, "write_json", crash)
    opt.step()
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ck", model, opt, step=2, history=a_history(2))
    ck = load_checkpoint(tmp_path / "ck")  # the old manifest still names the old, untouched files
    assert ck.step == 1 and ck.history == a_history(1)
    monkeypatch.undo()
    save_checkpoint(tmp_path / "ck", model, opt, step=2, history=a_history(2))  # and the next save tidies up
    assert len(list((tmp_path / "ck").iterdir())) == 3 and load_checkpoint(tmp_path / "ck").step == 2


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


def fix_checksum(ckdir, role):
    import hashlib

    digest = hashlib.sha256(data_file(ckdir, role).read_bytes()).hexdigest()
    rewrite_manifest(ckdir, lambda m: m["files"][role].__setitem__("sha256", digest))


def resave_state(ckdir, change):
    """Edit the state file and fix its checksum, so the content checks (not the checksum) must catch it."""
    state = data_file(ckdir, "state")
    with np.load(state) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(state, "wb") as f:
        np.savez(f, **arrays)
    fix_checksum(ckdir, "state")


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
    state = data_file(ckdir, "state")
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"checksum mismatch for .*state-[0-9a-f]+\.npz"):
        load_checkpoint(ckdir)
    fix_checksum(ckdir, "state")  # a truncated file with a matching checksum is still caught
    with pytest.raises(CheckpointError, match="not a readable .npz file"):
        load_checkpoint(ckdir)


def test_missing_data_file(ckdir):
    data_file(ckdir, "history").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint file .*history-[0-9a-f]+\.json is missing"):
        load_checkpoint(ckdir)


def test_truncated_manifest(ckdir):
    text = (ckdir / "checkpoint.json").read_text()
    (ckdir / "checkpoint.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(ckdir)


def test_tampered_weights(ckdir):
    state = data_file(ckdir, "state")
    with np.load(state) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["param/wte.w"][0, 0] += 1.0
    with open(state, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(ckdir)


def test_tampered_history(ckdir):
    data_file(ckdir, "history").write_text(json.dumps(a_history(4).to_dict()))
    with pytest.raises(CheckpointError, match=r"checksum mismatch for .*history-[0-9a-f]+\.json"):
        load_checkpoint(ckdir)


def test_invalid_history_with_valid_checksum(ckdir):
    data_file(ckdir, "history").write_text('{"x": [2]}')
    fix_checksum(ckdir, "history")
    with pytest.raises(CheckpointError, match="not a valid training history: .*missing"):
        load_checkpoint(ckdir)


def test_invalid_tokenizer_with_valid_checksum(tmp_path):
    from companion.tokenizers import CharTokenizer

    model, _ = fresh()
    ckdir = save_checkpoint(tmp_path / "ck", model, tokenizer=CharTokenizer.from_text("abc"))
    assert load_checkpoint(ckdir).tokenizer.encode("cab") == CharTokenizer.from_text("abc").encode("cab")
    tok = json.loads(data_file(ckdir, "tokenizer").read_text())
    tok.pop("type")
    data_file(ckdir, "tokenizer").write_text(json.dumps(tok))
    fix_checksum(ckdir, "tokenizer")
    with pytest.raises(CheckpointError, match=r"tokenizer is invalid: .*tokenizer-[0-9a-f]+\.json: .*missing the "
                                              "field 'type'"):
        load_checkpoint(ckdir)
    data_file(ckdir, "tokenizer").write_text("{not json")
    fix_checksum(ckdir, "tokenizer")
    with pytest.raises(CheckpointError, match="tokenizer is invalid: .*not valid JSON"):
        load_checkpoint(ckdir)


def test_manifest_cannot_point_outside_the_folder(ckdir):
    rewrite_manifest(ckdir, lambda m: m["files"]["state"].__setitem__("name", "../../etc/passwd"))
    with pytest.raises(CheckpointError, match="unexpected file '../../etc/passwd'"):
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
    resave_state(ckdir, lambda a: a.__setitem__("param/wte.w", a["param/wte.w"].astype(np.float32)))
    with pytest.raises(CheckpointError, match="wte.w has dtype float32 .* says float64"):
        load_checkpoint(ckdir)


def test_wrong_optimizer_state_shape(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("optim/m.wte.w", np.zeros((2, 2))))
    with pytest.raises(CheckpointError, match="optimizer state .*m.wte.w has shape"):
        load_checkpoint(ckdir)


def test_missing_adam_moment(ckdir):
    resave_state(ckdir, lambda a: a.pop("optim/v.wte.w"))
    with pytest.raises(CheckpointError, match="missing Adam moments for \\['wte.w'\\]"):
        load_checkpoint(ckdir)


def test_pickled_array_is_refused(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("step", np.array([{"evil": 1}], dtype=object)))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(ckdir)


def test_unsupported_version(ckdir):
    rewrite_manifest(ckdir, lambda m: m.__setitem__("version", 99))
    with pytest.raises(CheckpointError, match=r"version 99 is not supported \(this companion reads versions 1, 2\); "
                                              "it was written by a newer companion"):
        load_checkpoint(ckdir)
    for odd in ("1", True, 1.0):  # JSON's true, a float or a string is not version 1
        rewrite_manifest(ckdir, lambda m: m.__setitem__("version", odd))
        with pytest.raises(CheckpointError, match=f"version {odd!r} is not supported"):
            load_checkpoint(ckdir)


def test_bad_arguments_to_save(tmp_path):
    model, opt = fresh()
    with pytest.raises(ValueError, match="step must be a non-negative integer"):
        save_checkpoint(tmp_path / "ck", model, opt, step=-1)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        save_checkpoint(tmp_path / "ck", model, opt, step=0, rng=42)
    with pytest.raises(TypeError, match="history cannot be stored as JSON"):
        save_checkpoint(tmp_path / "ck", model, opt, step=0, history={"f": object()})


@pytest.mark.parametrize("family, trained_tied", [("gpt", False), ("llama", True)])
def test_checkpoint_from_before_the_tying_defaults_flipped_loads_as_trained(tmp_path, family, trained_tied):
    # Before, gpt defaulted to an untied head and llama to a tied one; now it is the other way round.
    # A manifest whose config does not name tie_weights was written under the old defaults, so it
    # must load with the head it was trained with, not with today's family default.
    model = Transformer(preset("tiny", family=family, tie_weights=trained_tied), np.random.default_rng(0))
    save_checkpoint(tmp_path / "ck", model)
    manifest_path = tmp_path / "ck" / "checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    c = model.config
    manifest["config"] = {  # the old format's config, written by hand, without tie_weights
        "vocab_size": c.vocab_size, "block_size": c.block_size, "n_layer": c.n_layer, "n_head": c.n_head,
        "n_embd": c.n_embd, "family": family, "ffn_hidden": c.ffn_hidden, "norm": None, "positions": None,
        "ffn": None, "bias": None, "norm_placement": "pre", "norm_eps": 1e-5, "rope_base": 10000.0,
        "dtype": "float32"}
    manifest_path.write_text(json.dumps(manifest))
    assert preset("tiny", family=family).tie_weights is not trained_tied  # today's default differs
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.tie_weights is trained_tied
    assert (ck.model.head._tied is ck.model.wte) is trained_tied
    idx = np.random.default_rng(1).integers(0, c.vocab_size, size=(2, 8))
    np.testing.assert_array_equal(ck.model.forward(idx), model.forward(idx))


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_a_stored_tie_choice_wins_over_the_family_default(tmp_path, family):
    for tied in (True, False):
        model = Transformer(preset("tiny", family=family, tie_weights=tied), np.random.default_rng(0))
        save_checkpoint(tmp_path / f"ck{tied}", model)
        assert json.loads((tmp_path / f"ck{tied}" / "checkpoint.json").read_text())["config"]["tie_weights"] is tied
        assert load_checkpoint(tmp_path / f"ck{tied}").config.tie_weights is tied


def test_attn_only_is_stored_and_an_older_checkpoint_without_it_loads_with_its_feed_forward(tmp_path):
    model = Transformer(preset("tiny", attn_only=True), np.random.default_rng(0))
    save_checkpoint(tmp_path / "ao", model)
    assert json.loads((tmp_path / "ao" / "checkpoint.json").read_text())["config"]["attn_only"] is True
    ck = load_checkpoint(tmp_path / "ao")
    assert ck.config.attn_only is True and ck.model.blocks[0].ffn is None
    idx = np.random.default_rng(1).integers(0, 16, size=(2, 8))
    np.testing.assert_array_equal(ck.model.forward(idx), model.forward(idx))
    full = Transformer(preset("tiny"), np.random.default_rng(0))
    save_without_config_field(tmp_path / "old", full, "attn_only")
    old = load_checkpoint(tmp_path / "old")
    assert old.config.attn_only is False and old.model.blocks[0].ffn is not None
    np.testing.assert_array_equal(old.model.forward(idx), full.forward(idx))


# --- checkpoints of format version 1 (embedding tables named 'weight') ------------------------

# What the version-1 writer called the two parameters that version 2 renamed. Written out here,
# not imported from companion.checkpoint, so that the test holds the loader to the old files.
VERSION_1_NAMES = {"wte.w": "wte.weight", "wpe.w": "wpe.weight"}


def as_version_1(ckdir):
    """Rewrite a checkpoint as the version-1 writer wrote it: the same arrays in the same order,
    the embedding tables named 'wte.weight' and 'wpe.weight' among the weights (param/wte.weight)
    and in the optimizer state (optim/m.wte.weight, optim/v.wte.weight, optim/buf.wpe.weight),
    the state file named by its checksum, and "version": 1 in the manifest. Nothing else in the
    format differed (checked once against files the version-1 code wrote for the same runs)."""
    from companion.tools.checkpoint_files import write_data

    def old_key(key):
        group, _, rest = key.partition("/")
        if group == "param":
            return f"param/{VERSION_1_NAMES.get(rest, rest)}"
        if group == "optim" and "." in rest:
            state, name = rest.split(".", 1)
            return f"optim/{state}.{VERSION_1_NAMES.get(name, name)}"
        return key

    state = data_file(ckdir, "state")
    with np.load(state) as f:
        arrays = {old_key(k): f[k] for k in f.files}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    state.unlink()
    m = json.loads((ckdir / "checkpoint.json").read_text())
    m["version"] = 1
    m["files"]["state"] = write_data(ckdir, "state", buf.getvalue())
    (ckdir / "checkpoint.json").write_text(json.dumps(m, indent=2) + "\n")
    return sorted(arrays)


@pytest.mark.parametrize("family, tied, opt_kind", [("gpt", False, "AdamW"), ("gpt", True, "SGD"), ("llama", True, "Adam")])
def test_a_version_1_checkpoint_loads_with_identical_numbers_and_resumes_bit_for_bit(tmp_path, family, tied, opt_kind):
    from companion import Adam

    cfg = preset("tiny", family=family, tie_weights=tied, dtype="float64")

    def make():
        model = Transformer(cfg, np.random.default_rng(0))
        if opt_kind == "SGD":
            return model, SGD(model.parameters(), model.gradients(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        return model, {"Adam": Adam, "AdamW": AdamW}[opt_kind](model.parameters(), model.gradients(), lr=1e-2,
                                                               weight_decay=0.1)

    model, opt, rng, whole, first = train_and_checkpoint_midway(make, tmp_path / "ck")
    keys = as_version_1(tmp_path / "ck")
    # the fixture really is in the old format: old names in weights and optimizer state, no new ones
    state = {"SGD": "buf", "Adam": "m", "AdamW": "m"}[opt_kind]
    assert {"param/wte.weight", f"optim/{state}.wte.weight"} <= set(keys)
    assert ("param/wpe.weight" in keys) is (family == "gpt") and not [k for k in keys if k.endswith(("wte.w", "wpe.w"))]
    assert json.loads((tmp_path / "ck" / "checkpoint.json").read_text())["version"] == 1

    ck = load_checkpoint(tmp_path / "ck")
    assert set(ck.model.parameters()) == set(model.parameters()) and "wte.w" in ck.model.parameters()
    for name, p in model.parameters().items():  # identical numbers, under today's names
        assert np.array_equal(ck.model.parameters()[name], p), name
    assert set(ck.optimizer.state_dict()) == set(opt.state_dict())
    for key, a in opt.state_dict().items():
        assert np.array_equal(ck.optimizer.state_dict()[key], a), key
    idx = np.random.default_rng(3).integers(0, cfg.vocab_size, size=(2, cfg.block_size))
    np.testing.assert_array_equal(ck.model.forward(idx), model.forward(idx))  # the same forward, bit for bit
    assert (ck.model.head._tied is ck.model.wte) is tied
    del model, opt, rng
    loaded_wte, rest = ck.model.parameters()["wte.w"].copy(), []
    train_steps(ck.model, ck.optimizer, ck.rng, ck.step, 10, rest)
    assert first + rest == whole  # resumed training equals the uninterrupted run, step by step
    assert not np.array_equal(ck.model.parameters()["wte.w"], loaded_wte)  # and the optimizer moved the table

    save_checkpoint(tmp_path / "ck", ck.model, ck.optimizer, step=10, rng=ck.rng)  # saved again: version 2
    assert json.loads((tmp_path / "ck" / "checkpoint.json").read_text())["version"] == 2
    with np.load(data_file(tmp_path / "ck", "state")) as f:
        assert "param/wte.w" in f.files and not any("weight" in k for k in f.files)


def test_a_version_1_checkpoint_with_an_unknown_name_fails_naming_it(tmp_path):
    model, opt = fresh()
    train_steps(model, opt, np.random.default_rng(0), 0, 1, [])
    save_checkpoint(tmp_path / "ck", model, opt, step=1)
    as_version_1(tmp_path / "ck")
    load_checkpoint(tmp_path / "ck")  # loads as it is...
    ckdir = tmp_path / "ck"
    resave_state(ckdir, lambda a: a.__setitem__("param/wte.weights", a.pop("param/wte.weight")))
    with pytest.raises(CheckpointError, match=r"missing parameter\(s\) \['wte.w'\]"):
        load_checkpoint(ckdir)
    resave_state(ckdir, lambda a: a.__setitem__("param/wte.weight", a["param/wte.weights"]))
    with pytest.raises(CheckpointError, match=r"parameter\(s\) \['wte.weights'\] that the config does not have"):
        load_checkpoint(ckdir)
    resave_state(ckdir, lambda a: a.pop("param/wte.weights"))
    load_checkpoint(ckdir)  # ...and again once the stray name is gone
    resave_state(ckdir, lambda a: a.__setitem__("optim/m.wte.wieght", a["optim/m.wte.weight"]))
    with pytest.raises(CheckpointError, match="names a parameter the model does not have: wte.wieght"):
        load_checkpoint(ckdir)


def test_an_old_name_in_a_version_2_file_says_it_was_renamed(ckdir):
    resave_state(ckdir, lambda a: a.__setitem__("param/wte.weight", a.pop("param/wte.w")))
    with pytest.raises(CheckpointError, match=r"\['wte.weight'\] that the config does not have: 'wte.weight' was "
                                              r"renamed 'wte.w' in format version 2, and this file says it is version 2"):
        load_checkpoint(ckdir)


def test_a_version_1_file_with_both_names_is_refused(ckdir):
    as_version_1(ckdir)
    resave_state(ckdir, lambda a: a.__setitem__("param/wte.w", a["param/wte.weight"]))
    with pytest.raises(CheckpointError, match="holds both param/wte.weight and param/wte.w"):
        load_checkpoint(ckdir)
