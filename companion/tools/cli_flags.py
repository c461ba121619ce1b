"""Command-line flags generated from the config dataclasses, the task and model they build (a new
run, or the recorded run that --resume continues), and the CLI's one-line errors.

Every ModelConfig and TrainConfig field becomes a flag (``n_layer`` -> ``--n-layer``), typed from
its annotation: a bool gets ``--x/--no-x``, a tuple takes several values, a ``T | None`` field
also accepts ``none``, and a field with fixed choices lists them. A flag not given leaves no
attribute at all, so "not given" (use the preset's or the task's default) differs from any value.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import typing

import numpy as np

from ..config import CHOICES, PRESETS, ModelConfig, preset

MODEL_HELP = {
    "vocab_size": "number of distinct tokens (default: the task's vocabulary)",
    "block_size": "longest sequence the model reads: the attention window (default: what the task needs)",
    "n_layer": "number of transformer blocks stacked on top of each other",
    "n_head": "attention heads per block; each gets n_embd / n_head channels",
    "n_embd": "width of the residual stream: every token is a vector of this size",
    "family": "gpt (LayerNorm, learned positions, GELU) or llama (RMSNorm, RoPE, SwiGLU)",
    "ffn_hidden": "hidden width of the feed-forward layer (default 4 * n_embd; 8/3 * n_embd for SwiGLU)",
    "norm": "normalisation layer (default: the family's)",
    "positions": "how the model knows token order (default: the family's)",
    "ffn": "feed-forward nonlinearity (default: the family's)",
    "bias": "biases in linear layers and LayerNorm (default: the family's)",
    "tie_weights": "output head reuses the token-embedding matrix (default: the preset's, else the family's: gpt ties, llama does not)",
    "norm_placement": "norm before each sub-layer (pre, GPT-2) or after the residual add (post, 2017 paper)",
    "norm_eps": "small number added inside the norm's square root, so it never divides by zero",
    "rope_base": "RoPE's base wavelength: larger spreads the rotation frequencies further",
    "dtype": "float32 (fast) or float64 (exact enough for gradient checks)",
    "n_kv_head": "key/value heads (llama): n_head by default, 1 for multi-query, a divisor of n_head for grouped-query",
    "dropout": "probability of zeroing a unit during training steps (GPT-2: 0.1); evaluation never drops (default 0)",
}
TRAIN_HELP = {
    "steps": "optimizer steps in all (a resumed run continues up to this)",
    "batch_size": "sequences per step: more is a less noisy gradient, and slower steps",
    "lr": "peak learning rate, reached at the end of warm-up",
    "min_lr": "learning rate the cosine decay ends at",
    "warmup_steps": "steps of linear warm-up from ~0 to lr (Adam's early estimates are noisy)",
    "weight_decay": "AdamW's pull of weight matrices towards zero, per step, times lr",
    "grad_clip": "clip the global gradient norm to this ('none' turns clipping off)",
    "betas": "Adam's two averaging factors: for the gradient and for its square",
    "eval_every": "evaluate on the validation split every this many steps (0: only at the end)",
    "eval_size": "validation problems (text: windows) per evaluation ('none': all)",
}


class UsageError(Exception):
    """A command line that cannot work; reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage dump
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _optional(kind):
    """A type for 'T | None' fields: 'none' gives None."""
    def parse(text):
        return None if text.lower() in ("none", "off") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def add_dataclass_flags(group, cls, helps: dict) -> None:
    """One flag per dataclass field, typed from its annotation. A flag not given leaves no attribute
    (argparse.SUPPRESS), so 'none' given on purpose (no clipping) differs from 'not given'."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, help_text = hints[f.name], helps.get(f.name, f.name.replace("_", " "))
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint)
        if base is bool:
            group.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        elif typing.get_origin(hint) is tuple:
            group.add_argument(_flag(f.name), type=args[0], nargs=len(args), default=argparse.SUPPRESS,
                               metavar=tuple(f"B{i + 1}" for i in range(len(args))), help=help_text)
        elif f.name in CHOICES and cls is ModelConfig:
            group.add_argument(_flag(f.name), choices=CHOICES[f.name], default=argparse.SUPPRESS, help=help_text)
        else:
            kind = _optional(base) if type(None) in args else base
            group.add_argument(_flag(f.name), type=kind, default=argparse.SUPPRESS, metavar=base.__name__.upper(), help=help_text)


def given(args, cls) -> dict:
    """The dataclass fields set on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def add_common(p, json_help="the last line printed is one JSON object of the final metrics"):
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (pinned with threadpoolctl; default: all cores)")
    p.add_argument("--json", action="store_true", help=json_help)
    from .cli_backend import add_backend_flag  # --backend (companion/tools/cli_backend.py)

    add_backend_flag(p)


# The model a task trains when no --preset is given.
TASK_PRESETS = {"listops": "listops", "addition": "listops", "text": "baby"}
# Options of each task, and which task each belongs to (a flag for another task is an error).
TASK_FLAGS = {"n_args": "listops", "max_value": "listops", "digits": "addition", "ops": "addition",
              "pad": "addition", "reverse": "addition",
              "corpus": "text", "tokenizer": "text", "bpe_vocab_size": "text", "max_chars": "text"}


def build_task(args):
    from ..tasks import make_task

    options = {}
    for name, owner in TASK_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if owner != args.task:
            raise UsageError(f"{_flag(name)} is an option of --task {owner}, not of --task {args.task}")
        options["vocab_size" if name == "bpe_vocab_size" else name] = value
    if args.task == "text":
        options["block_size"] = getattr(args, "block_size", None) or PRESETS[args.preset or TASK_PRESETS["text"]]["block_size"]
        try:
            return make_task(args.task, seed=args.seed, **options)
        except ValueError as err:  # the text task's vocab_size is the BPE tokenizer's: --bpe-vocab-size
            message = re.sub(r"\bvocab_size\b", "bpe_vocab_size", " ".join(str(err).split()))
            raise UsageError(name_flags(message, getattr(args, "flags", ()))) from err
    return make_task(args.task, seed=args.seed, **options)


def build_config(args, task) -> ModelConfig:
    overrides = given(args, ModelConfig)
    for name, need in (("vocab_size", task.vocab_size), ("block_size", task.block_size)):
        if name in overrides and overrides[name] < need:
            raise UsageError(f"{_flag(name)} {overrides[name]} is too small: the {task.name} task needs {need}")
        overrides.setdefault(name, need)
    return preset(args.preset or TASK_PRESETS[task.name], **overrides)


# ------------------------------------------------------------------------- runs: new or resumed


def task_of(ck):
    """The task a checkpoint was trained on (a text task keeps the saved tokenizer)."""
    from ..tasks import task_from_dict

    if not ck.task:
        raise UsageError(f"the checkpoint in {ck.path} records no task")
    d = dict(ck.task)
    if d.get("name") == "text" and ck.tokenizer is not None:  # reuse the saved tokenizer, do not retrain
        d["tokenizer"] = ck.tokenizer
        d.pop("vocab_size", None)
    return task_from_dict(d)


def new_run(args):
    """-> (task, model, train config) of a run built from the flags."""
    from ..model import Transformer
    from ..train import TrainConfig, default_train_config

    args.task = args.task or "listops"
    args.seed = 0 if args.seed is None else args.seed
    task = build_task(args)
    config = build_config(args, task)
    cfg = default_train_config(task, **given(args, TrainConfig))
    return task, Transformer(config, np.random.default_rng(args.seed)), cfg


def resume_run(args):
    """-> (task, checkpoint, train config) of the run recorded in --out, refusing any flag
    given with a value the run was not trained with."""
    from ..checkpoint import checkpoint_exists, load_checkpoint
    from ..train import TrainConfig

    if not checkpoint_exists(args.out):
        raise UsageError(f"--resume: no checkpoint in {args.out}")
    ck = load_checkpoint(args.out)
    if not ck.task or not ck.train_config or ck.optimizer is None or ck.rng is None:
        raise UsageError(f"--resume: the checkpoint in {args.out} does not record a whole run (task, training "
                         f"flags, optimizer and generator state), so it cannot be continued")
    cfg = TrainConfig.from_dict(ck.train_config)
    conflicts = resume_conflicts(args, ck.config, ck.task, cfg)
    if conflicts:
        raise UsageError(f"--resume continues the run in {args.out} with the flags it was started with, but "
                         f"{'these differ' if len(conflicts) > 1 else 'this one differs'}: {', '.join(conflicts)}. "
                         f"Leave {'them' if len(conflicts) > 1 else 'it'} out, or start a new run in another --out")
    return task_of(ck), ck, cfg


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return "none" if value is None else str(value)


def resume_conflicts(args, config: ModelConfig, task: dict, train_config) -> list[str]:
    """The flags given on this command line whose values differ from the recorded run's, each
    as '--flag GIVEN (recorded RECORDED)'. A flag not given takes the recorded value."""
    out = []

    def differ(flag, value, recorded):
        if value != recorded:
            out.append(f"{flag} {_shown(value)} (recorded {_shown(recorded)})")

    if args.task is not None:
        differ("--task", args.task, task.get("name"))
    if args.seed is not None:
        differ("--seed", args.seed, task.get("seed"))
    for name in TASK_FLAGS:
        value = getattr(args, name, None)
        recorded = task.get("vocab_size" if name == "bpe_vocab_size" else name)
        if name == "corpus" and value is not None and recorded is not None and _same_file(value, recorded):
            continue  # the same file, named another way
        if value is not None:
            differ(_flag(name), value, recorded)
    model = given(args, ModelConfig)
    if args.preset is not None:  # the preset's sizes, with the flags given over them
        fitted = {k: getattr(config, k) for k in ("vocab_size", "block_size")}
        built = preset(args.preset, **{**fitted, **model})
        for f in dataclasses.fields(ModelConfig):
            if f.name not in model and getattr(built, f.name) != getattr(config, f.name):
                out.append(f"{_flag(f.name)} {_shown(getattr(built, f.name))} from --preset {args.preset} "
                           f"(recorded {_shown(getattr(config, f.name))})")
    for name, value in model.items():
        differ(_flag(name), value, getattr(config, name))
    for name, value in given(args, type(train_config)).items():
        recorded = getattr(train_config, name)
        differ(_flag(name), tuple(value) if isinstance(recorded, tuple) else value, recorded)
    return out


# ------------------------------------------------------------------------ errors that name flags


def name_flags(message: str, flags) -> str:
    """Rewrite the Python argument names in a library's error message as the command's flags:
    ``lr=0.001`` -> ``--lr 0.001``, ``greedy=True`` -> ``--greedy``, and a field name that
    starts the message ("lr must be ...") or has an underscore ("n_head") -> its flag. Only
    names that are flags of the command in ``flags`` are touched."""
    def assignment(m):
        flag = _flag(m.group(1))
        if flag not in flags:
            return m.group(0)
        value = m.group(2)
        if value in ("True", "False"):
            return flag if value == "True" else "--no-" + flag[2:]
        return f"{flag} {value}"

    def name(m):
        flag = _flag(m.group(1))
        return flag if flag in flags else m.group(0)

    message = re.sub(r"(?<![\w.'\-])([a-z][a-z0-9_]*)=([^\s,;)]+)", assignment, message)
    message = re.sub(r"^([a-z][a-z0-9]*)(?= )", name, message)
    return re.sub(r"(?<![\w.'\-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w(='])", name, message)
