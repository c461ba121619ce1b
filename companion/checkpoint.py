"""Checkpoints: everything a training run needs to stop and carry on as if it never stopped.

A checkpoint is one folder:

    ckpt/
      checkpoint.json              the manifest: format and version, ModelConfig, optimizer kind
                                   and hyperparameters, step, task options, train config, and the
                                   name and sha256 of each file below
      state-<sha256[:16]>.npz      arrays only: weights ``param/<name>``, optimizer state
                                   ``optim/<key>``, the step, and the random generator's state
                                   (JSON text as uint8 bytes)
      tokenizer-<sha256[:16]>.json (optional) the tokenizer, as its own JSON
      history-<sha256[:16]>.json   (optional) the training history (losses, accuracies), as JSON

Why it is built this way:

- No pickle anywhere. ``np.load(..., allow_pickle=False)`` refuses object arrays, so opening a
  checkpoint cannot run code that someone slipped into it. The generator's state (a dict with
  128-bit integers) therefore travels as JSON text, not as a pickled object.
- Every file is written atomically (``companion.tools.io``: temporary file, fsync, rename). Data files
  are named by their checksum and the manifest, written last, points at them: saving over an
  old checkpoint never touches the files the old manifest names, so a save interrupted at any
  moment leaves the old checkpoint whole, and files no manifest names are deleted only after
  the new manifest is in place. A truncated copy or an edited file fails its checksum on load.
- Loading checks everything against the config: a missing or extra parameter, a wrong shape or
  dtype each fail with an error that names the parameter. Never a silently wrong model.
- Resuming reproduces the uninterrupted run exactly: the weights, Adam's moments and step count,
  and the generator's state are restored bit for bit, and the step tells the lr schedule where
  it was. (The train loop draws all of a step's randomness from that one generator.)
- Older checkpoints keep loading. A parameter renamed since a file was written is translated in
  one place, ``RENAMED`` (companion/tools/checkpoint_versions.py, with the format's ``VERSION``),
  in the weights and the optimizer state alike; a name that is not in that table still fails, named.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import asarray, to_numpy
from .config import ModelConfig
from .tools.checkpoint_files import (FILE_NAME, CheckpointError, json_bytes, read_npz, verify_files,
                                     write_data)
from .tools.checkpoint_versions import (READABLE_VERSIONS, RENAMED, VERSION, with_current_names,
                                        with_legacy_tie)
from .tools.io import read_json, write_json
from .model import Transformer
from .optim import SGD, Adam, AdamW, Optimizer

FORMAT = "companion-checkpoint"
MANIFEST_FILE = "checkpoint.json"
# The optimizers a checkpoint can rebuild, and the hyperparameters each one needs.
OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
OPTIMIZER_FIELDS = {
    "SGD": ("lr", "momentum", "weight_decay"),
    "Adam": ("lr", "b1", "b2", "eps", "weight_decay"),
    "AdamW": ("lr", "b1", "b2", "eps", "weight_decay"),
}
# Bit generators whose state is a plain JSON-able dict; the name read from a file is looked
# up here, never with getattr on a module, so a file cannot name an arbitrary class.
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "Philox": np.random.Philox,
                  "SFC64": np.random.SFC64, "MT19937": np.random.MT19937}


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: a ready model and optimizer, and where the run was."""

    path: Path
    config: ModelConfig
    model: Transformer
    optimizer: Optimizer | None
    step: int
    rng: np.random.Generator | None
    tokenizer: object | None = None  # a companion tokenizer, rebuilt from tokenizer.json
    task: dict | None = None  # the task's options (``task.to_dict()``), to rebuild it
    train_config: dict | None = None  # the training config as a dict
    history: object | None = None  # a History when companion.train is present, else its dict
    extra: dict | None = None  # anything else the caller stored (JSON)


# ---------------------------------------------------------------------------------------------
# saving


def save_checkpoint(path, model: Transformer, optimizer: Optimizer | None = None, step: int = 0,
                    rng: np.random.Generator | None = None, tokenizer=None, task=None, train_config=None,
                    history=None, extra: dict | None = None) -> Path:
    """Write a checkpoint folder at ``path`` (created if needed; an old checkpoint there is replaced).

    task, train_config and history may be objects with ``to_dict()`` or plain dicts."""
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a companion Transformer, got {type(model).__name__}")
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"checkpoint path {path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)

    # Everything is turned into JSON first, so a value that cannot be stored fails before any write.
    described = {key: (_as_dict(obj, key) if obj is not None else None)
                 for key, obj in (("task", task), ("train_config", train_config), ("extra", extra))}
    arrays = {f"param/{name}": to_numpy(a) for name, a in model.parameters().items()}
    optim_meta = None
    if optimizer is not None:
        optim_meta = _optimizer_meta(optimizer)
        arrays.update({f"optim/{k}": to_numpy(a) for k, a in optimizer.state_dict().items()})
    arrays["step"] = np.asarray(int(step), dtype=np.int64)
    if rng is not None:
        state = json.dumps(rng.bit_generator.state, default=_json_scalar)  # 128-bit ints are fine in JSON
        arrays["rng_state"] = np.frombuffer(state.encode("utf-8"), dtype=np.uint8)

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files = {"state": write_data(path, "state", buf.getvalue())}
    if tokenizer is not None:
        files["tokenizer"] = write_data(path, "tokenizer", json_bytes(_as_dict(tokenizer, "tokenizer")))
    if history is not None:
        files["history"] = write_data(path, "history", json_bytes(_as_dict(history, "history")))

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "config": model.config.to_dict(),
        "optimizer": optim_meta,
        **described,  # task, train_config, extra
        "files": files,  # written last: it names and vouches for every file above
    }
    write_json(path / MANIFEST_FILE, manifest)
    keep = {f["name"] for f in files.values()}
    for old in path.iterdir():  # only now may the previous checkpoint's files go
        if FILE_NAME.match(old.name) and old.name not in keep:
            old.unlink(missing_ok=True)
    return path


def _optimizer_meta(opt: Optimizer) -> dict:
    kind = type(opt).__name__
    if kind not in OPTIMIZERS:
        raise TypeError(f"cannot checkpoint optimizer {kind}; supported: {sorted(OPTIMIZERS)}")
    return {"type": kind, **{f: float(getattr(opt, f)) for f in OPTIMIZER_FIELDS[kind]}}


def _as_dict(obj, what: str) -> dict:
    d = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if not isinstance(d, dict):
        raise TypeError(f"{what} must be a dict or have to_dict(), got {type(obj).__name__}")
    try:  # NumPy scalars (a float32 loss) become plain numbers; anything else is refused here
        return json.loads(json.dumps(d, default=_json_scalar))
    except TypeError as err:
        raise TypeError(f"{what} cannot be stored as JSON: {err}") from err


def _json_scalar(x):
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON-serializable")


# ---------------------------------------------------------------------------------------------
# loading


def load_checkpoint(path, load_optimizer: bool = True) -> Checkpoint:
    """Read and verify a checkpoint folder; every problem raises CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the folder does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder (expected a folder with {MANIFEST_FILE})")
    if not (path / MANIFEST_FILE).exists():
        raise CheckpointError(f"{path} is not a checkpoint: {MANIFEST_FILE} is missing")
    try:
        manifest = read_json(path / MANIFEST_FILE, what="checkpoint manifest")
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path / MANIFEST_FILE} is not a companion checkpoint (format {manifest.get('format')!r})")
    version = manifest.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # JSON's true, 1.0 or "1" is not 1
        newer = type(version) is int and version > VERSION
        raise CheckpointError(f"checkpoint format version {version!r} is not supported (this companion reads "
                              f"versions {', '.join(map(str, READABLE_VERSIONS))})"
                              + ("; it was written by a newer companion" if newer else ""))
    for key in ("config", "step", "files"):
        if key not in manifest:
            raise CheckpointError(f"checkpoint manifest is missing the field {key!r}")
    files = verify_files(path, manifest["files"])

    try:
        config = ModelConfig.from_dict(with_legacy_tie(manifest["config"]))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint config is invalid: {err}") from err
    arrays = with_current_names(read_npz(files["state"]), version)

    # A throwaway generator builds the model; every weight is then overwritten from the file.
    model = Transformer(config, np.random.default_rng(0))
    _load_params(model, arrays)

    step = int(arrays["step"]) if "step" in arrays else None
    if step != manifest["step"]:
        raise CheckpointError(f"step in {files['state'].name} ({step}) differs from the manifest's ({manifest['step']})")
    rng = _rng_from_bytes(arrays["rng_state"]) if "rng_state" in arrays else None

    optimizer = None
    optim_arrays = {k[len("optim/"):]: a for k, a in arrays.items() if k.startswith("optim/")}
    if manifest.get("optimizer") is not None and load_optimizer:
        optimizer = _build_optimizer(model, manifest["optimizer"], optim_arrays)
    elif manifest.get("optimizer") is None and optim_arrays:
        raise CheckpointError(f"{files['state'].name} holds optimizer state but the manifest names no optimizer")

    tokenizer = None
    if "tokenizer" in files:
        from .tokenizers import load_tokenizer

        try:
            tokenizer = load_tokenizer(files["tokenizer"])
        except (KeyError, TypeError, ValueError) as err:  # its message names the file and the problem
            raise CheckpointError(f"the checkpoint's tokenizer is invalid: {err}") from err
        if tokenizer is not None and getattr(tokenizer, "vocab_size", config.vocab_size) > config.vocab_size:
            raise CheckpointError(f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size "
                                  f"is {config.vocab_size}: the checkpoint's files do not belong together")
    history = None
    if "history" in files:
        history = _load_history(read_json(files["history"], what="history"))
    return Checkpoint(path=path, config=config, model=model, optimizer=optimizer, step=step, rng=rng,
                      tokenizer=tokenizer, task=manifest.get("task"), train_config=manifest.get("train_config"),
                      history=history, extra=manifest.get("extra"))


def _load_params(model: Transformer, arrays: dict) -> None:
    params = model.parameters()
    stored = {k[len("param/"):] for k in arrays if k.startswith("param/")}
    missing, extra = sorted(set(params) - stored), sorted(stored - set(params))
    renamed = [f"{old!r} was renamed {new!r} in format version {v}, and this file says it is version {v} or later"
               for v, table in RENAMED.items() for old, new in table.items() if old in extra]
    if renamed:  # an old name in a file that says it is new: edited, or written by a mixed-up version
        raise CheckpointError(f"checkpoint has parameter(s) {extra} that the config does not have: " + "; ".join(renamed))
    if missing:
        raise CheckpointError(f"checkpoint is missing parameter(s) {missing} that the config "
                              f"({model.config.family}, n_layer={model.config.n_layer}) needs")
    if extra:
        raise CheckpointError(f"checkpoint has parameter(s) {extra} that the config does not have: "
                              f"the weights belong to a different model")
    for name, p in params.items():
        a = arrays[f"param/{name}"]
        if a.shape != tuple(p.shape):
            raise CheckpointError(f"parameter {name} has shape {a.shape} in the checkpoint but the config "
                                  f"gives {tuple(p.shape)}: weights and config do not match")
        if a.dtype != p.dtype:
            raise CheckpointError(f"parameter {name} has dtype {a.dtype} in the checkpoint but the config "
                                  f"says {model.config.dtype}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"parameter {name} holds NaN or inf: the run diverged before this save")
        p[...] = asarray(a)  # in place: optimizers and tied layers hold these very arrays


def _rng_from_bytes(raw: np.ndarray) -> np.random.Generator:
    try:
        state = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
        bit_gen = BIT_GENERATORS[state["bit_generator"]]()
        bit_gen.state = state
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"the random generator state in the checkpoint is unreadable: {err!r}") from err
    return np.random.Generator(bit_gen)


def _build_optimizer(model: Transformer, meta: dict, flat: dict[str, np.ndarray]) -> Optimizer:
    kind = meta.get("type")
    if kind not in OPTIMIZERS:
        raise CheckpointError(f"checkpoint names an unknown optimizer {kind!r}; known: {sorted(OPTIMIZERS)}")
    try:
        h = {f: float(meta[f]) for f in OPTIMIZER_FIELDS[kind]}
    except KeyError as err:
        raise CheckpointError(f"checkpoint's {kind} optimizer is missing the hyperparameter {err}") from err
    params, grads = model.parameters(), model.gradients()
    if kind == "SGD":
        opt = SGD(params, grads, lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"])
    else:
        opt = OPTIMIZERS[kind](params, grads, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"],
                               weight_decay=h["weight_decay"])
    if "t" not in flat:
        raise CheckpointError("checkpoint's optimizer state has no step count 't'")
    for key, a in flat.items():
        if key == "t":
            continue
        name = key.split(".", 1)[1] if "." in key else key
        if name in params and a.dtype != params[name].dtype:
            raise CheckpointError(f"optimizer state {key} has dtype {a.dtype}, the parameter has {params[name].dtype}")
    try:
        opt.load_state_dict({k: asarray(a) for k, a in flat.items()})
    except ValueError as err:
        raise CheckpointError(f"optimizer state does not fit the model: {err}") from err
    if kind != "SGD" and opt.t > 0:  # after one Adam step every parameter has both moments
        lacking = sorted(n for n in params if set(opt.state.get(n, {})) != {"m", "v"})
        if lacking:
            raise CheckpointError(f"optimizer state is missing Adam moments for {lacking[:3]}"
                                  f"{' ...' if len(lacking) > 3 else ''}")
    return opt


def _load_history(d: dict):
    from .history import History

    try:
        return History.from_dict(d)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the checkpoint's history file is not a valid training history: {err}") from err


def checkpoint_exists(path) -> bool:
    """True when ``path`` holds a checkpoint manifest (it may still fail verification)."""
    return os.path.isfile(Path(path) / MANIFEST_FILE)
