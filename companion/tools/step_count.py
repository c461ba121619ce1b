"""Count what one training step asks of an accelerator: array operations and host round trips.

    COMPANION_BACKEND=strict python -m companion.tools.step_count [--n-layer 2 --n-embd 64 --n-head 4]

runs the course's own training loop (``companion.train``) on the ListOps task under the strict
CuPy double (companion/tools/backend_strict.py), counting each operation on a device array, and prints
one JSON object: per step, the operations that would each launch at least one GPU kernel
("op"), the host-to-device copies ("to_device") and the device-to-host copies ("to_host"), with
the most frequent operations by name. Views (reshape, transpose, slicing) launch nothing and are
not counted. The backend is fixed at import, so ``count_in_subprocess`` runs the count in a
fresh process; the notebook that calls it stays on NumPy.

    COMPANION_BACKEND=strict python -m companion.tools.step_count --sweep '[{"name": "10M"}]'

counts instead one step of the size sweep (``companion.tools.bench_sweep``: forward, loss,
backward, AdamW, no training loop around it), optionally with the GELU and AdamW loops walking
their data in the CPU's cache-sized pieces ("cpu_pieces"), as they did on a GPU before
``backend.pieces`` ran them in one piece there.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np

from ..backend import BACKEND

KINDS = ("op", "to_device", "to_host")


def count_train_steps(steps: int = 2, batch_size: int = 8, seed: int = 0, **model_changes) -> list[dict]:
    """Counts of each of ``steps`` training steps of the ListOps model (with ``model_changes``),
    taken from the real training loop. The loop evaluates after its last step, so it runs one
    step more than is counted."""
    if BACKEND != "strict":
        raise RuntimeError("operations are counted by the strict backend: set COMPANION_BACKEND=strict "
                           "(count_in_subprocess does it for you)")
    from .backend_strict import counting
    from ..config import preset
    from ..model import Transformer
    from ..tasks import make_task
    from ..train import default_train_config, train

    task = make_task("listops", seed=seed)
    model = Transformer(preset("listops", **model_changes), np.random.default_rng(seed))
    cfg = default_train_config(task, steps=steps + 1, batch_size=batch_size, eval_every=0, eval_size=8,
                               warmup_steps=1)
    after = []  # the counter after each step (the callback runs once a step is done)
    with counting() as counter:
        train(model, task, cfg, np.random.default_rng(seed), progress=False,
              callback=lambda step, *rest: after.append(collections.Counter(counter)))
    out, before = [], collections.Counter()
    for now in after[:steps]:
        step = now - before
        out.append({**{k: step[k] for k in KINDS},
                    "top": {k[3:]: v for k, v in step.most_common() if k.startswith("op:")}})
        before = now
    return out


def count_sweep_step(name: str, batch_size: int = 1, block_size: int = 16, cpu_pieces: bool = False,
                     seed: int = 0, changes: dict | None = None) -> dict:
    """Counts of one steady step (after a warm-up step) of the sweep's model ``name`` (e.g. "10M"),
    on a batch of ``batch_size`` x ``block_size`` tokens. In one piece, as on a GPU, the count does
    not depend on the batch; with ``cpu_pieces`` GELU takes ``GELU_BLOCK_ROWS`` rows of the batch at
    a time and AdamW ``CHUNK`` numbers of the buffer at a time, as on the CPU. "optimizer_op" is the
    part of "op" that AdamW's step ran ("optimizer_top": by name). ``changes`` replaces
    fields of the size's config (e.g. ``{"n_embd": 16, "n_head": 2}`` for a tiny model)."""
    if BACKEND != "strict":
        raise RuntimeError("operations are counted by the strict backend: set COMPANION_BACKEND=strict "
                           "(count_sweep_in_subprocess does it for you)")
    from unittest import mock

    from .backend_strict import counting
    from .bench_sweep import sweep_configs, training_step
    from .. import feedforward, optim
    from ..backend import asarray
    from ..model import Transformer

    configs = dict(sweep_configs(block_size=block_size))
    if name not in configs:
        raise ValueError(f"no sweep size named {name!r}; the sizes are {sorted(configs)}")
    config, rng = dataclasses.replace(configs[name], **(changes or {})), np.random.default_rng(seed)
    model = Transformer(config, rng)
    opt = optim.AdamW(model.parameters(), model.gradients(), lr=1e-3)
    idx = asarray(rng.integers(0, config.vocab_size, size=(batch_size, block_size)))  # (B, T)
    targets = asarray(rng.integers(0, config.vocab_size, size=(batch_size, block_size)))  # (B, T)

    def cpu(n: int, size: int) -> list[slice]:  # backend.pieces as it runs on NumPy
        return [slice(start, start + size) for start in range(0, n, size)]

    with mock.patch.object(feedforward, "pieces", cpu if cpu_pieces else feedforward.pieces), \
            mock.patch.object(optim, "pieces", cpu if cpu_pieces else optim.pieces):
        training_step(model, opt, idx[:1, :1], targets[:1, :1])  # a one-token warm-up creates AdamW's moments
        optimizer_ops = []  # the operations of opt.step alone, by name, inside the counted step
        step = opt.step

        def counted_step() -> None:
            before = collections.Counter(counter)
            step()
            optimizer_ops.append(collections.Counter(counter) - before)

        opt.step = counted_step
        with counting() as counter:
            training_step(model, opt, idx, targets)
    return {**{k: counter[k] for k in KINDS}, "optimizer_op": optimizer_ops[0]["op"],
            "optimizer_top": {k[3:]: v for k, v in optimizer_ops[0].most_common() if k.startswith("op:")},
            "top": {k[3:]: v for k, v in counter.most_common() if k.startswith("op:")}}


def count_sweep_in_subprocess(specs: list[dict]) -> list[dict]:
    """``count_sweep_step(**spec)`` for each of ``specs`` (e.g. ``{"name": "10M", "cpu_pieces": True}``),
    run under COMPANION_BACKEND=strict in one fresh process -> one result each."""
    env = {**os.environ, "COMPANION_BACKEND": "strict"}
    proc = subprocess.run([sys.executable, "-m", "companion.tools.step_count", "--sweep", json.dumps(specs)],
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"counting under the strict backend failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_in_subprocess(models: list[dict], steps: int = 2, batch_size: int = 8) -> list[dict]:
    """``count_train_steps`` for each of ``models`` (changes to the ListOps model, e.g.
    ``{"n_layer": 8}``), run under COMPANION_BACKEND=strict in one fresh process -> one result each."""
    env = {**os.environ, "COMPANION_BACKEND": "strict"}
    proc = subprocess.run([sys.executable, "-m", "companion.tools.step_count", "--steps", str(steps),
                           "--batch-size", str(batch_size), "--models", json.dumps(models)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"counting under the strict backend failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m companion.tools.step_count", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="training steps to count (default 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step (default 8)")
    for name in ("n_layer", "n_head", "n_embd"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"{name} (default: the ListOps model's)")
    parser.add_argument("--models", default=None,
                        help='several models in one run, as a JSON list of changes: \'[{}, {"n_layer": 8}]\' '
                             "(prints a JSON list)")
    parser.add_argument("--sweep", default=None,
                        help='count one step of sweep sizes instead, as a JSON list: \'[{"name": "10M", '
                             '"batch_size": 12, "block_size": 128, "cpu_pieces": true}]\' (prints a JSON list)')
    args = parser.parse_args(argv)
    if args.sweep:
        print(json.dumps([{**spec, **count_sweep_step(**spec)} for spec in json.loads(args.sweep)]))
        return
    single = {k: getattr(args, k) for k in ("n_layer", "n_head", "n_embd") if getattr(args, k) is not None}
    models = json.loads(args.models) if args.models else [single]
    results = []
    for changes in models:
        if "n_embd" in changes and "ffn_hidden" not in changes:
            changes = {**changes, "ffn_hidden": 4 * changes["n_embd"]}
        steps = count_train_steps(args.steps, args.batch_size, **changes)
        results.append({"model": changes, "batch_size": args.batch_size, "steps": steps})
    print(json.dumps(results if args.models else results[0]))


if __name__ == "__main__":
    main()
