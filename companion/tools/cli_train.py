"""``python -m companion train``: train a model on a task from a terminal, and print its metrics.

    python -m companion train --task listops --steps 1500 --out runs/listops --json

Every ModelConfig field and every TrainConfig field is a flag, generated from the dataclasses
themselves (``--n-layer``, ``--n-embd``, ``--lr``, ``--batch-size`` ...; see cli_flags.py), so a
field added there appears here with no edit. A flag left out keeps the value of the preset (model)
or of the task's tuned defaults (training).

``train`` prints one line per evaluation (text: perplexity, bits per character, a sample), on
stderr with ``--json``; the progress bar only when stderr is a terminal. ``--out DIR`` holds the
checkpoint, ``metrics.jsonl`` (appended as the run goes) and, with ``--plot``, ``curves.png``.
``--resume`` continues the recorded run to its recorded ``--steps``; a flag given with another
value than the recorded one is refused. ``report`` prints the final metrics, for ``eval`` too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .cli_flags import (MODEL_HELP, TRAIN_HELP, UsageError, add_common, add_dataclass_flags, new_run,
                        resume_run)
from ..config import PRESETS, ModelConfig
from ..history import PLOT_FILE


def add_train_parser(subparsers) -> None:
    from ..tasks import TASKS
    from ..train import TrainConfig

    p = subparsers.add_parser("train", help="train a model on a task", description=(
        "Train a model on a task and report its test accuracy (text: perplexity and bits per "
        "character). Model flags override the preset (default: the task's); training flags override "
        "the task's tuned defaults. Each evaluation prints one line (and, for text, a sample); with "
        "--out, it is also appended to DIR/metrics.jsonl."))
    p.add_argument("--task", choices=sorted(TASKS), default=None, help="what to learn (default listops)")
    p.add_argument("--seed", type=int, default=None,
                   help="seeds the task's train/test split, the weights and the batches (default 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="run folder: the checkpoint (saved at each evaluation and at the end) and metrics.jsonl")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out to its recorded --steps, with its recorded flags "
                        "(a flag given with a different value is refused)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal)")
    p.add_argument("--plot", action="store_true", help=f"save the training curves as DIR/{PLOT_FILE} (needs --out)")
    p.add_argument("--workers", type=int, default=1, help="split each batch across this many processes of one "
                   "BLAS thread each (data parallelism; the same numbers up to float rounding; default 1)")
    add_common(p)
    t = p.add_argument_group("task options")
    t.add_argument("--n-args", type=int, help="listops: numbers inside the brackets (default 3)")
    t.add_argument("--max-value", type=int, help="listops: numbers go from 0 to this (default 9)")
    t.add_argument("--digits", type=int, help="addition: most digits per operand (default 2)")
    t.add_argument("--ops", help="addition: which of + and - to ask (default '+-')")
    t.add_argument("--pad", action=argparse.BooleanOptionalAction, default=None,
                   help="addition: write operands with leading zeros, 05-12= (default on)")
    t.add_argument("--reverse", action=argparse.BooleanOptionalAction, default=None,
                   help="addition: answer digits least significant first, 37+48=58 (default on)")
    t.add_argument("--corpus", metavar="PATH", help="text: a UTF-8 text file (default: Shakespeare's plays)")
    t.add_argument("--tokenizer", choices=("char", "bpe"), help="text: characters or byte-pair merges (default char)")
    t.add_argument("--bpe-vocab-size", type=int, help="text: vocabulary size BPE trains up to (default 512)")
    t.add_argument("--max-chars", type=int, help="text: read only the first this many characters")
    m = p.add_argument_group("model (ModelConfig)")
    m.add_argument("--preset", choices=sorted(PRESETS), help="named model size to start from")
    add_dataclass_flags(m, ModelConfig, MODEL_HELP)
    add_dataclass_flags(p.add_argument_group("training (TrainConfig)"), TrainConfig, TRAIN_HELP)
    p.set_defaults(func=train_command)


def train_command(args) -> int:
    from ..backend import describe, tune_allocator
    from ..checkpoint import checkpoint_exists, save_checkpoint
    from ..evaluate import evaluate
    from ..history import MetricsLog, format_record
    from ..train import train

    if args.resume and not args.out:
        raise UsageError("--resume continues the checkpoint in --out DIR: give --out")
    if args.plot and not args.out:
        raise UsageError(f"--plot saves {PLOT_FILE} into the run folder: give --out DIR")
    tune_allocator()  # this process does nothing but train: let glibc keep freed memory for reuse
    print(f"backend: {describe()}", file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.resume:
        task, ck, cfg = resume_run(args)
        model, optimizer, start, history, rng = ck.model, ck.optimizer, ck.step, ck.history, ck.rng
    else:
        if args.out and checkpoint_exists(args.out):
            raise UsageError(f"{args.out} already holds a checkpoint: add --resume to continue it, or pick another --out")
        task, model, cfg = new_run(args)
        optimizer, start, history, rng = None, 0, None, np.random.default_rng(args.seed)
    seed = task.seed
    progress = not args.no_progress and sys.stderr.isatty()  # a log file gets no bar updates
    stream = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the metrics
    log = MetricsLog(args.out) if args.out else None
    if log is not None:
        log.start(history)

    def say(text: str) -> None:
        if progress:
            from tqdm.auto import tqdm

            tqdm.write(text, file=stream)  # above the bar, which is redrawn below
        else:
            print(text, file=stream, flush=True)

    def after_step(step, model, optimizer, rng, history):
        record = history.last
        if record is None or record["step"] != step:
            return  # not an evaluation step
        if args.out:
            save_checkpoint(args.out, model, optimizer, step, rng, tokenizer=task.tokenizer, task=task,
                            train_config=cfg, history=history)
        line = dict(record)
        say(format_record(record, cfg.steps))
        if task.name == "text":  # its own generator: the training batches stay those of an unbroken run
            line["sample"] = text_sample(model, task, np.random.default_rng([seed, step]), n_tokens=100)
            say("\n".join("    | " + row for row in line["sample"].splitlines()))
        if log is not None:
            log.append(line)

    c = model.config
    if start >= cfg.steps:
        say(f"the run in {args.out} has done all its {cfg.steps} steps: testing it")
    else:
        say(f"{'resuming at step ' + str(start) + ': ' if start else ''}training {c.family} "
            f"({model.num_params():,} parameters, {c.n_layer} layers, n_embd {c.n_embd}) on {task!r} "
            f"for {cfg.steps} steps")
    history = train(model, task, cfg, rng, optimizer=optimizer, start_step=start, history=history,
                    progress=progress, callback=after_step, workers=args.workers)
    metrics = final_metrics(model, task, history, cfg, evaluate(model, task, "test"))
    if task.name == "text":  # a language model is judged by reading it, too
        metrics["sample"] = text_sample(model, task, np.random.default_rng(seed))
    if args.plot:
        metrics["plot"] = str(history.save_plot(Path(args.out) / PLOT_FILE))
    report(metrics, args.json)
    return 0


def final_metrics(model, task, history, cfg, test: dict) -> dict:
    last = history.last or {}
    seconds = history.seconds  # wall clock of the whole run, evaluations included
    # tokens_per_second counts every position fed to the model (padding included) over that clock
    out = {"task": task.name, "params": model.num_params(), "steps": history.steps, "seconds": round(seconds, 2),
           "tokens_per_second": round(history.steps * cfg.batch_size * task.block_size / seconds, 1) if seconds else None}
    if "val_loss" in last:
        out["val_loss"] = last["val_loss"]
    if "exact_match" in test:
        out["test_accuracy"] = test["exact_match"]
        out["per_op_accuracy"] = test["per_op_accuracy"]
    for key in ("perplexity", "bits_per_char", "bits_per_byte"):  # the text task
        if key in test:
            out[f"test_{key}"] = test[key]
    out["test_loss"] = test["loss"]
    out["test_token_accuracy"] = test["token_accuracy"]
    return out


def text_sample(model, task, rng, n_tokens: int = 200, temperature: float = 0.8) -> str:
    """Continue the first few tokens of the held-out test slice, sampled with the given temperature."""
    from ..generate import generate

    prompt = [int(t) for t in task.test[:8]]
    new = generate(model, prompt, n_tokens, rng=rng, temperature=temperature)
    return task.decode(prompt + new)


def report(metrics: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics))
        return
    for key, value in metrics.items():
        if key == "mistakes":  # a few wrong answers, to see what the model gets wrong
            for m in value:
                print(f"{'wrong':>20}: {m['question']} {m['got']!r} (answer {m['answer']!r})")
            continue
        if key == "sample":
            print(f"{'sample':>20}:\n{value}")
            continue
        if isinstance(value, dict):
            value = "  ".join(f"{k} {v:.4f}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4f}"
        print(f"{key:>20}: {value}")
