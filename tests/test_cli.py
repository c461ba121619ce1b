"""`python -m companion`: every subcommand runs, --json's last line is the metrics, every
ModelConfig/TrainConfig field is a flag, mistakes exit 2 with one line, and a run interrupted
after a checkpoint resumes bit for bit."""

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from companion import ModelConfig
from companion.checkpoint import load_checkpoint
from companion.tools.cli import build_parser, main
from companion.history import MetricsLog
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
    from companion.tools.cli_flags import build_config, build_task
    parser = build_parser()
    args = parser.parse_args(["train", "--task", "listops", "--seed", "0", *flags])
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
    (["train", "--n-embd", "30", "--n-head", "4"], "--n-embd (30) must be divisible by --n-head (4)"),
    (["train", "--lr", "-1"], "--lr must be a positive number"),
    (["train", "--seed", "-1"], "--seed must be a non-negative integer"),
    (["train", "--norm-eps", "0"], "--norm-eps must be a finite number > 0"),
    (["train", "--rope-base", "nan"], "--rope-base must be a finite number > 0"),
    (["train", "--task", "addition", "--digits", "12"], "--digits must be an integer from 1 to 9"),
    (["train", "--min-lr", "0.5"], "--min-lr must be between 0 and the peak --lr 0.003, got 0.5"),
    (["train", "--task", "text", "--corpus", __file__, "--tokenizer", "bpe", "--bpe-vocab-size", "100"],
     "--bpe-vocab-size must be an int >= 260"),
    (["train", "--resume"], "--resume continues the checkpoint in --out"),
    (["train", "--plot"], "--plot saves curves.png into the run folder: give --out"),
    (["generate", "--ckpt", "x", "--prompt", "a", "--temperature", "0"], "--temperature must be a number > 0, got 0.0 (for the likeliest token every time, use --greedy)"),
    (["eval", "--ckpt", "/nonexistent/ck"], f"no checkpoint at {Path('/nonexistent/ck')}"),  # \nonexistent\ck on Windows
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


def test_generate_from_a_checkpoint_saved_without_a_task(tmp_path, capsys):
    """save_checkpoint(..., tokenizer=tok) with no task: a text model; it used to crash after generating."""
    from companion import Transformer, save_checkpoint
    from companion.tokenizers import CharTokenizer

    tok = CharTokenizer.from_text("hello world")
    model = Transformer(ModelConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16),
                        np.random.default_rng(0))
    save_checkpoint(tmp_path / "ck", model, tokenizer=tok)
    assert main(["generate", "--ckpt", str(tmp_path / "ck"), "--prompt", "hel", "--max-new-tokens", "3",
                 "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hel") and len(out.splitlines()) == 1, out  # the prompt, then an untrained model's 3 tokens


def test_text_task_with_a_corpus_file(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 60, encoding="utf-8")
    argv = ["train", "--task", "text", "--corpus", str(corpus), "--block-size", "16", "--steps", "30",
            "--eval-every", "15", "--batch-size", "8", "--lr", "0.01", "--warmup-steps", "3",
            "--out", str(tmp_path / "ck"), "--json", *SMALL]
    assert main(argv) == 0
    captured = capsys.readouterr()
    m, err = json.loads(captured.out.strip().splitlines()[-1]), captured.err
    assert m["task"] == "text" and "test_accuracy" not in m and m["val_loss"] > 0 and isinstance(m["sample"], str)
    # perplexity and bits per character of the test text (a character model: one token, one character)
    assert m["test_perplexity"] == pytest.approx(math.exp(m["test_loss"]), rel=1e-12)
    assert m["test_bits_per_char"] == pytest.approx(m["test_loss"] / math.log(2), rel=1e-12)
    logged = MetricsLog(tmp_path / "ck").read()  # a sample at each evaluation, with its bits per character
    assert [line["step"] for line in logged] == [15, 30]
    assert all(isinstance(line["sample"], str) and line["sample"] and line["bits_per_char"] > 0 for line in logged)
    assert err.count("    | ") >= 2 and "bits/char" in err and "perplexity" in err
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.block_size == 16 and ck.tokenizer.vocab_size == ck.config.vocab_size
    assert main(["eval", "--ckpt", str(tmp_path / "ck"), "--json"]) == 0
    ev = last_json(capsys)
    assert ev["bits_per_char"] == m["test_bits_per_char"] and ev["perplexity"] == m["test_perplexity"]
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


# ------------------------------------------------------------ what a run reports as it goes


def test_one_line_per_evaluation_a_metrics_file_and_no_bar_off_a_terminal(tmp_path, capsys):
    # no --no-progress: under pytest stderr is not a terminal, so there must be no bar
    argv = ["train", "--task", "listops", "--steps", "20", "--eval-every", "10", "--batch-size", "16",
            "--out", str(tmp_path / "ck"), "--json", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
            "--threads", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert len(out) == 1 and json.loads(out[0])["steps"] == 20  # with --json, stdout is the metrics alone
    assert "\r" not in captured.err and "train listops" not in captured.err  # no bar, no bar updates
    lines = [line for line in captured.err.splitlines() if line.startswith("step ")]
    ck = load_checkpoint(tmp_path / "ck")
    assert [line.split()[1] for line in lines] == ["10/20", "20/20"]
    for line, record in zip(lines, ck.history.records):
        assert f"val {record['val_loss']:.4f}" in line and f"exact match {record['exact_match']:.3f}" in line
    logged = MetricsLog(tmp_path / "ck").read()
    assert logged == ck.history.records  # one JSON line per evaluation, as the checkpoint records them


def test_a_terminal_gets_the_progress_bar(tmp_path, capsys, monkeypatch):
    argv = ["train", "--task", "listops", "--steps", "4", "--eval-every", "0", "--batch-size", "8",
            "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--threads", "1"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(argv) == 0
    assert "train listops" in capsys.readouterr().err  # tqdm's bar, with its description
    assert main(argv + ["--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "train listops" not in captured.err
    assert "step 4/4  train " in captured.out  # without --json the evaluation lines go to stdout


def test_plot_saves_the_curves(tmp_path, capsys):
    metrics = run_train(tmp_path, capsys, "--plot")
    png = tmp_path / "ck" / "curves.png"
    assert metrics["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_diverged_run_names_the_flags(tmp_path, capsys):
    argv = ["train", "--task", "listops", "--steps", "20", "--batch-size", "16", "--lr", "1e6", "--grad-clip",
            "none", "--warmup-steps", "0", "--min-lr", "0", *SMALL]
    with np.errstate(all="ignore"):
        assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "training diverged" in err and "(--lr 1e+06 now, e.g. --lr 3.3e+05)" in err and "--grad-clip 1.0" in err
    assert "lr=" not in err and "grad_clip" not in err


# ------------------------------------------------------------------------------- --resume


def cut_at_step_10(monkeypatch):
    import companion.checkpoint as checkpoint

    real_save = checkpoint.save_checkpoint

    def save_then_stop(path, model, optimizer, step, *args, **kwargs):
        real_save(path, model, optimizer, step, *args, **kwargs)
        if step == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_stop)


def test_resume_takes_the_recorded_flags_and_refuses_different_ones(tmp_path, capsys, monkeypatch):
    base = ["train", "--task", "listops", "--steps", "20", "--eval-every", "10", "--batch-size", "16",
            "--lr", "0.002", "--weight-decay", "0.05", "--json", *SMALL]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    assert main(base + ["--out", whole]) == 0
    cut_at_step_10(monkeypatch)
    assert main(base + ["--out", cut]) == 130
    capsys.readouterr()
    MetricsLog(cut).append({"step": 15, "val_loss": 9.9})  # a line the checkpoint never reached

    refused = ["train", "--out", cut, "--resume", "--steps", "30", "--lr", "0.01", "--batch-size", "16",
               "--betas", "0.8", "0.9", "--grad-clip", "none", "--seed", "1", "--n-layer", "2"]
    assert main(refused) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for part in ("--steps 30 (recorded 20)", "--lr 0.01 (recorded 0.002)", "--betas 0.8 0.9 (recorded 0.9 0.99)",
                 "--grad-clip none (recorded 1.0)", "--seed 1 (recorded 0)", "--n-layer 2 (recorded 1)"):
        assert part in err, part
    assert "--batch-size" not in err  # given, but with the recorded value
    assert main(["train", "--out", cut, "--resume", "--preset", "listops"]) == 2
    assert "--n-embd 64 from --preset listops (recorded 16)" in capsys.readouterr().err
    assert main(["train", "--out", cut, "--resume", "--task", "addition"]) == 2
    assert "--task addition (recorded listops)" in capsys.readouterr().err
    assert load_checkpoint(cut).step == 10  # nothing was trained by the refused commands

    # no training flag at all: the run continues with the recorded ones, to its recorded --steps
    assert main(["train", "--out", cut, "--resume", "--json", "--no-progress", "--threads", "1"]) == 0
    a, b = load_checkpoint(whole), load_checkpoint(cut)
    assert b.step == 20 and b.train_config == a.train_config
    assert b.history.lrs == a.history.lrs and b.history.train_losses == a.history.train_losses
    # the metrics file holds one line per evaluation, the stale one gone, as the unbroken run's
    def timeless(lines):
        return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]

    assert MetricsLog(cut).read() == b.history.records
    assert timeless(MetricsLog(cut).read()) == timeless(MetricsLog(whole).read())


# ------------------------------------------------------------------------------ allocator

SPY = """
import ctypes, sys
calls = []
real = ctypes.CDLL
class Spy:  # a CDLL whose mallopt is recorded
    def __init__(self, *args, **kwargs):
        self._lib = real(*args, **kwargs)
    def __getattr__(self, name):
        attr = getattr(self._lib, name)
        if name != "mallopt":
            return attr
        def mallopt(*args):
            calls.append(args)
            return attr(*args)
        return mallopt
ctypes.CDLL = Spy
import companion, companion.tools.cli, companion.backend
print("import", len(calls), companion.backend.MALLOC_TUNED)
if sys.argv[1:]:
    rc = companion.tools.cli.main(sys.argv[1:])
    print("train", rc, len(calls), companion.backend.MALLOC_TUNED)
"""


@pytest.mark.parametrize("switch", ["1", "0"])
def test_importing_companion_leaves_the_allocator_alone_and_train_tunes_it(switch):
    env = {**os.environ, "COMPANION_MALLOC_TUNING": switch}
    argv = ["train", "--task", "listops", "--steps", "2", "--eval-every", "0", "--batch-size", "4", *SMALL]
    run = subprocess.run([sys.executable, "-c", SPY, *argv], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith(("import ", "train "))]
    assert lines[0] == "import 0 False"  # importing the package called mallopt zero times
    tuned = switch == "1" and sys.platform.startswith("linux")
    assert lines[1] == ("train 0 2 True" if tuned else "train 0 0 False")
