"""`python -m companion`: every subcommand runs, --json's last line is the metrics, every
ModelConfig/TrainConfig field is a flag, mistakes exit 2 with one line, and a run interrupted
after a checkpoint resumes bit for bit."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from companion import ModelConfig
from companion.checkpoint import load_checkpoint
from companion.cli import build_parser, main
from companion.tasks import make_task
from companion.train import TrainConfig

# a model small enough that a CLI run takes a second or two
SMALL = ["--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--no-progress", "--threads", "1"]


def last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def run_train(tmp_path, capsys, *extra, out="ck"):
    argv = ["train", "--task", "listops", "--steps", "20", "--eval-every", "10", "--batch-size", "16",
            "--out", str(tmp_path / out), "--json", *SMALL, *extra]
    assert main(argv) == 0
    return last_json(capsys)


def test_every_config_field_is_a_flag():
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train_parser._actions for opt in action.option_strings}
    for cls in (ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in flags, f"{cls.__name__}.{f.name} has no flag"
    for flag in ("--task", "--preset", "--seed", "--out", "--threads", "--json", "--n-args", "--max-value",
                 "--digits", "--corpus", "--tokenizer"):
        assert flag in flags


def test_flags_reach_the_config(tmp_path, capsys):
    run_train(tmp_path, capsys, "--family", "llama", "--tie-weights", "--lr", "0.002", "--betas", "0.8", "0.9",
              "--grad-clip", "none")
    ck = load_checkpoint(tmp_path / "ck")
    c = ck.config
    assert (c.family, c.n_layer, c.n_embd, c.n_head, c.tie_weights, c.norm) == ("llama", 1, 16, 2, True, "rmsnorm")
    assert ck.train_config["lr"] == 0.002 and ck.train_config["betas"] == [0.8, 0.9]
    assert ck.train_config["grad_clip"] is None and ck.train_config["steps"] == 20


@pytest.mark.parametrize("flags, tied", [
    ([], False),  # the ListOps model keeps its head untied
    (["--tie-weights"], True),
    (["--preset", "baby"], True),  # nanoGPT's model ties
    (["--preset", "baby", "--no-tie-weights"], False),
    (["--preset", "llama-2m"], True),  # the LLaMA-style 2.3M model ties
    (["--preset", "llama-2m", "--no-tie-weights"], False),
])
def test_tie_weights_flags_override_the_preset(flags, tied):
    from companion.cli_flags import build_config, build_task
    parser = build_parser()
    args = parser.parse_args(["train", "--task", "listops", *flags])
    task = build_task(args)
    config = build_config(args, task)
    assert config.tie_weights is tied and config.vocab_size == task.vocab_size


def test_train_json_eval_generate(tmp_path, capsys):
    metrics = run_train(tmp_path, capsys)
    for key in ("test_accuracy", "per_op_accuracy", "val_loss", "seconds", "params", "tokens_per_second"):
        assert key in metrics, key
    assert set(metrics["per_op_accuracy"]) == {"First", "Second", "Last", "Max", "Min"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.step == 20 and metrics["params"] == ck.model.num_params()

    assert main(["eval", "--ckpt", str(tmp_path / "ck"), "--json"]) == 0
    ev = last_json(capsys)
    assert ev["exact_match"] == metrics["test_accuracy"]  # the same model, the same test split

    assert main(["generate", "--ckpt", str(tmp_path / "ck"), "--prompt", "Max ( 5 3 9 ) =", "--greedy", "--json"]) == 0
    gen = last_json(capsys)
    assert gen["prompt"] == "Max ( 5 3 9 ) =" and gen["tokens"]
    task = make_task("listops", seed=0)
    assert all(0 <= t < task.vocab_size for t in gen["tokens"])
    # greedy output is the argmax of the model's own next-token prediction
    ids = np.array([[task.tokenizer.bos_id] + task.encode_text("Max ( 5 3 9 ) =")])
    assert gen["tokens"][0] == int(ck.model.forward(ids)[0, -1].argmax())


def test_resume_from_an_interrupted_cli_run(tmp_path, capsys, monkeypatch):
    whole = run_train(tmp_path, capsys, out="whole")
    import companion.checkpoint as checkpoint

    real_save = checkpoint.save_checkpoint

    def save_then_stop(path, model, optimizer, step, *args, **kwargs):
        real_save(path, model, optimizer, step, *args, **kwargs)
        if step == 10:
            raise KeyboardInterrupt  # as if Ctrl-C arrived right after the first save

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_stop)
    argv = ["train", "--task", "listops", "--steps", "20", "--eval-every", "10", "--batch-size", "16",
            "--out", str(tmp_path / "cut"), "--json", *SMALL]
    assert main(argv) == 130
    assert load_checkpoint(tmp_path / "cut").step == 10
    assert main(argv) == 2  # refuses to overwrite a run without --resume
    assert "add --resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0
    resumed = last_json(capsys)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "cut")
    assert b.history.train_losses == a.history.train_losses  # every step's loss, exactly
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    for name, p in a.model.parameters().items():
        assert np.array_equal(p, b.model.parameters()[name]), name


@pytest.mark.parametrize("argv, message", [
    (["train", "--digits", "3"], "--digits is an option of --task addition"),
    (["train", "--n-layer", "two"], "invalid int value: 'two'"),
    (["train", "--vocab-size", "5"], "--vocab-size 5 is too small"),
    (["train", "--n-embd", "30", "--n-head", "4"], "must be divisible by n_head"),
    (["train", "--lr", "-1"], "lr must be a positive number"),
    (["train", "--resume"], "--resume continues the checkpoint in --out"),
    (["eval", "--ckpt", "/nonexistent/ck"], "no checkpoint at /nonexistent/ck"),
    (["generate", "--ckpt", "x", "--prompt", "a", "--greedy", "--top-k", "3"], "cannot be combined"),
    (["bench", "--threads", "0"], "--threads must be a positive integer"),
    ([], "give a command"),
])
def test_mistakes_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_generate_rejects_unknown_symbols(tmp_path, capsys):
    run_train(tmp_path, capsys)
    assert main(["generate", "--ckpt", str(tmp_path / "ck"), "--prompt", "Max ( 5 3 X ) ="]) == 2
    assert "'X' is not a ListOps symbol" in capsys.readouterr().err


def test_text_task_with_a_corpus_file(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 60, encoding="utf-8")
    argv = ["train", "--task", "text", "--corpus", str(corpus), "--block-size", "16", "--steps", "30",
            "--eval-every", "15", "--batch-size", "8", "--lr", "0.01", "--warmup-steps", "3",
            "--out", str(tmp_path / "ck"), "--json", *SMALL]
    assert main(argv) == 0
    m = last_json(capsys)
    assert m["task"] == "text" and "test_accuracy" not in m and m["val_loss"] > 0 and isinstance(m["sample"], str)
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.block_size == 16 and ck.tokenizer.vocab_size == ck.config.vocab_size
    assert ck.history.train_losses[-1] < ck.history.train_losses[0]  # it learned something
    assert main(["generate", "--ckpt", str(tmp_path / "ck"), "--prompt", "to be", "--max-new-tokens", "5",
                 "--top-k", "3", "--json"]) == 0
    gen = last_json(capsys)
    assert len(gen["tokens"]) == 5 and all(0 <= t < ck.config.vocab_size for t in gen["tokens"])
    assert main(["generate", "--ckpt", str(tmp_path / "ck"), "--prompt", "to bZ"]) == 2
    assert "symbols the model never saw: ['Z']" in capsys.readouterr().err
    assert main(["train", "--task", "text", "--corpus", str(tmp_path / "missing.txt"), *SMALL]) == 2


def test_broken_checkpoint_exits_2(tmp_path, capsys):
    run_train(tmp_path, capsys)
    npz = next((tmp_path / "ck").glob("state-*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])
    assert main(["eval", "--ckpt", str(tmp_path / "ck")]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


@pytest.mark.parametrize("command, expected", [("train", "--warmup-steps"), ("eval", "--ckpt"),
                                               ("generate", "--top-p"), ("bench", "--vs-torch")])
def test_each_subcommand_has_help(command, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and expected in capsys.readouterr().out


def test_real_process_help_and_error_without_traceback():
    help_run = subprocess.run([sys.executable, "-m", "companion", "train", "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "--n-embd" in help_run.stdout and "--warmup-steps" in help_run.stdout
    bad = subprocess.run([sys.executable, "-m", "companion", "eval", "--ckpt", "/nonexistent"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error:")
