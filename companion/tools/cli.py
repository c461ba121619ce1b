"""``python -m companion``: train, evaluate, sample from and time the model from a terminal.

    python -m companion train --task listops --steps 1500 --out runs/listops --json
    python -m companion eval --ckpt runs/listops
    python -m companion generate --ckpt runs/listops --prompt "Max ( 5 3 9 ) =" --greedy
    python -m companion bench --vs-torch --threads 2

This file holds ``eval``, ``generate``, ``bench`` and ``main``; ``train`` is in cli_train.py, the
flags generated from the config dataclasses and the runs they build in cli_flags.py. ``train`` and
``bench`` call ``backend.tune_allocator()`` and print which backend serves them; ``--backend
numpy|cupy|strict`` runs a command under another (companion/tools/cli_backend.py).

Other modules add subcommands the same way this one does: a module with ``add_parser(subparsers)``
that registers its parser(s) and sets ``func`` (``func(args) -> exit code``); list it in
``SUBCOMMAND_MODULES``. A mistake on the command line (a bad flag, a flag that does not fit the task,
a missing checkpoint, a prompt with unknown symbols) prints one line to stderr and exits with 2;
set COMPANION_DEBUG=1 to see the traceback instead. A library error's Python argument names
(``lr=0.001``, ``n_head``) are shown as the command's flags (``--lr 0.001``, ``--n-head``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from contextlib import nullcontext

import numpy as np

from .cli_flags import Parser, UsageError, add_common, name_flags, task_of
from .cli_train import add_train_parser, report
from ..config import PRESETS

# Modules that may be missing (written later, or left out of a trimmed install).
SUBCOMMAND_MODULES = ("companion.grading.cli",)


# --------------------------------------------------------------------------------------- eval, generate


def add_eval_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score a checkpoint on its task's test split", description=(
        "Evaluate a saved model: loss and token accuracy with the true answer fed in, and exact match "
        "with the answer generated greedily from the question alone."))
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint folder (from train --out)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which held-out split (default test)")
    add_common(p)
    p.set_defaults(func=eval_command)


def eval_command(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..evaluate import evaluate

    ck = load_checkpoint(args.ckpt, load_optimizer=False)
    metrics = evaluate(ck.model, task_of(ck), args.split)
    report({"step": ck.step, "params": ck.model.num_params(), **metrics}, args.json)
    return 0


def add_generate_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="continue a prompt with a checkpoint's model", description=(
        "Feed a prompt to a saved model and let it write, one token at a time (with the KV cache). "
        "Greedy takes the likeliest token; otherwise tokens are sampled."))
    p.add_argument("--ckpt", required=True, metavar="DIR", help="checkpoint folder (from train --out)")
    p.add_argument("--prompt", required=True, help='the start, e.g. "Max ( 5 3 9 ) =" or "ROMEO:"')
    p.add_argument("--max-new-tokens", type=int, default=None, help="most tokens to add (default: room for an answer for listops/addition, 200 for text)")
    p.add_argument("--greedy", action="store_true", help="always take the likeliest token (no sampling)")
    p.add_argument("--temperature", type=float, default=None, help="divide the logits by this: < 1 sharper, > 1 flatter (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="sample only among the likeliest tokens whose probabilities add up to p")
    p.add_argument("--seed", type=int, default=0, help="seeds the sampling")
    add_common(p, json_help="the last line printed is one JSON object with the prompt and the completion")
    p.set_defaults(func=generate_command)


def generate_command(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..generate import generate

    if args.greedy and any(v is not None for v in (args.temperature, args.top_k, args.top_p)):
        raise UsageError("--greedy takes the likeliest token: it cannot be combined with --temperature, --top-k or --top-p")
    if args.temperature is not None and not 0 < args.temperature < float("inf"):
        raise UsageError(f"--temperature must be a number > 0, got {args.temperature} "
                         f"(for the likeliest token every time, use --greedy)")
    ck = load_checkpoint(args.ckpt, load_optimizer=False)
    tok = ck.tokenizer
    if tok is None:
        raise UsageError(f"the checkpoint in {ck.path} has no tokenizer, so text cannot be encoded")
    problem_task = ck.task and ck.task.get("name") in ("listops", "addition")
    if problem_task:  # questions are encoded as in training: <bos> then the task's symbols
        task = task_of(ck)
        ids = [tok.bos_id] + task.encode_text(args.prompt)
        decode = task.decode
    else:
        ids = tok.encode(args.prompt)
        if tok.unk_id in ids:
            bad = sorted({ch for ch in args.prompt if tok.unk_id in tok.encode(ch)})
            raise UsageError(f"the prompt has symbols the model never saw: {bad}")
        decode = tok.decode
    if not ids:
        raise UsageError("the prompt is empty")
    room = ck.config.block_size - len(ids) + 1
    if room < 1:
        raise UsageError(f"the prompt is {len(ids)} tokens; the model reads at most block_size {ck.config.block_size}")
    max_new = args.max_new_tokens if args.max_new_tokens is not None else (room if problem_task else 200)
    new = generate(ck.model, ids, max_new, rng=np.random.default_rng(args.seed),
                   temperature=1.0 if args.temperature is None else args.temperature,
                   top_k=args.top_k, top_p=args.top_p, greedy=args.greedy, eos_id=tok.eos_id)
    completion = decode([t for t in new if t != tok.eos_id])
    if args.json:
        print(json.dumps({"prompt": args.prompt, "completion": completion, "tokens": new,
                          "stopped_at_eos": bool(new) and new[-1] == tok.eos_id}))
    else:
        sep = " " if (ck.task or {}).get("name") == "listops" else ""  # listops symbols are space-separated
        print(args.prompt + sep + completion)
    return 0


# --------------------------------------------------------------------------------------------- bench


def add_bench_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="time training steps of nanoGPT's baby config", description=(
        "Time forward + backward + AdamW steps of the 'baby' config (4 layers, 4 heads, n_embd 128, "
        "block 64, batch 12, vocab 65) in float32, report tokens/s and GFLOP/s against a measured "
        "sgemm peak, and with --vs-torch the same model in PyTorch, interleaved (step by step on one thread, in blocks of five on more). "
        "With --threads N > 1 the companion splits each batch across N processes of one BLAS thread each "
        "(data parallelism); PyTorch runs one process with N intra-op threads."))
    p.add_argument("--vs-torch", action="store_true", help="also time the PyTorch twin (same weights, same batches)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20; --profile 10; --recipe 2000)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--batch-size", type=int, default=12, help="sequences per step (default 12, nanoGPT's)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="baby", help="model to time, in float32 (default baby)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--no-data-parallel", action="store_true", help="with --threads N > 1: time one companion "
                   "process with N BLAS threads instead of N data-parallel processes of one thread each")
    p.add_argument("--profile", action="store_true", help="where a step's time goes, per operation "
                   "(with --vs-torch: beside torch.profiler's table for the twin)")
    p.add_argument("--recipe", action="store_true", help="train nanoGPT's CPU Shakespeare recipe with the companion "
                   "and the PyTorch twin side by side; report both wall times and validation losses")
    add_common(p, json_help="the last line printed is one JSON object of all measurements")
    p.set_defaults(func=bench_command)


def bench_command(args) -> int:
    from ..backend import describe, tune_allocator
    from .bench import bench_config, run_bench
    from .bench_report import format_report

    tune_allocator()  # time the model as train runs it
    print(f"backend: {describe()}", flush=True)

    if args.vs_torch or args.recipe:
        try:
            import torch  # noqa: F401
        except ImportError:
            flag = "--recipe" if args.recipe else "--vs-torch"
            raise UsageError(f"{flag} needs PyTorch (CPU): pip install torch==2.13.0") from None
    if args.profile or args.recipe:
        from .bench import bench_mode_command

        return bench_mode_command(args)
    result = run_bench(steps=args.steps or 20, warmup=args.warmup, threads=args.threads, vs_torch=args.vs_torch,
                       batch_size=args.batch_size, config=bench_config(args.preset), memory=not args.no_memory,
                       data_parallel=not args.no_data_parallel)
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m companion", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in (add_train_parser, add_eval_parser, add_generate_parser, add_bench_parser):
        add(subparsers)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            if err.name is not None and name.startswith(err.name):
                continue  # that optional module is not there (yet): its commands are simply absent
            raise
        module.add_parser(subparsers)
    for sub in subparsers.choices.values():  # each command's own flags, to name them in errors
        sub.set_defaults(flags=frozenset(o for a in sub._actions for o in a.option_strings))
    return parser


def main(argv=None) -> int:
    debug = os.environ.get("COMPANION_DEBUG", "") not in ("", "0")
    args = None
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            raise UsageError("python -m companion: give a command: train, eval, generate, bench (see --help)")
        from .cli_backend import switch_backend

        restarted = switch_backend(args, argv)  # --backend other than the one serving: run again under it
        if restarted is not None:
            return restarted
        if getattr(args, "threads", None) is not None and args.threads < 1:
            raise UsageError(f"--threads must be a positive integer, got {args.threads}")
        limits = nullcontext()
        if getattr(args, "threads", None):
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(limits=args.threads, user_api="blas")
        with limits:
            return int(args.func(args) or 0)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        if debug:
            raise
        # FloatingPointError is a run that diverged (status 1); the rest are inputs that cannot work (2).
        # Library messages name Python arguments (lr=0.001); the user typed flags (--lr 0.001).
        message = name_flags(" ".join(str(err).split()), getattr(args, "flags", ()))
        print(f"error: {message}", file=sys.stderr)
        return 1 if isinstance(err, FloatingPointError) else 2
    except KeyboardInterrupt:
        print("interrupted (a run with --out can continue with --resume)", file=sys.stderr)
        return 130
