"""Command-line flags generated from the config dataclasses, the task and model they build,
and the CLI's one-line errors.

Every ModelConfig and TrainConfig field becomes a flag (``n_layer`` -> ``--n-layer``), typed from
its annotation: a bool gets ``--x/--no-x``, a tuple takes several values, a ``T | None`` field
also accepts ``none``, and a field with fixed choices lists them. A flag not given leaves no
attribute at all, so "not given" (use the preset's or the task's default) differs from any value.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from .config import CHOICES, PRESETS, ModelConfig, preset

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


# The model a task trains when no --preset is given.
TASK_PRESETS = {"listops": "listops", "addition": "listops", "text": "baby"}
# Options of each task, and which task each belongs to (a flag for another task is an error).
TASK_FLAGS = {"n_args": "listops", "max_value": "listops", "digits": "addition", "ops": "addition",
              "pad": "addition", "reverse": "addition",
              "corpus": "text", "tokenizer": "text", "bpe_vocab_size": "text", "max_chars": "text"}


def build_task(args):
    from .tasks import make_task

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
    return make_task(args.task, seed=args.seed, **options)


def build_config(args, task) -> ModelConfig:
    overrides = given(args, ModelConfig)
    for name, need in (("vocab_size", task.vocab_size), ("block_size", task.block_size)):
        if name in overrides and overrides[name] < need:
            raise UsageError(f"{_flag(name)} {overrides[name]} is too small: the {task.name} task needs {need}")
        overrides.setdefault(name, need)
    return preset(args.preset or TASK_PRESETS[task.name], **overrides)
