"""A size sweep: time one training step from the ListOps model up to ~50M parameters.

    python -m companion.bench_sweep --out results.json [--max-params 1.2e7] [--steps 3]

runs on whichever backend serves the companion (``COMPANION_BACKEND``: NumPy on the CPU, CuPy
on a GPU) and writes a JSON file that says what was measured where: the backend and device,
the library and driver versions, the date, the git commit, and for each size its parameters,
FLOPs per step and the median milliseconds of ``--steps`` timed steps after one warm-up step.
Chapter 14 plots such files; ``check_results`` is the schema the tests hold them to.

On a GPU every step is followed by a device synchronisation before the clock is read: CuPy
launches kernels asynchronously, so without it the timer would measure only the launches.
TF32 (float32 products on tensor cores with a 10-bit mantissa) is off unless CUPY_TF32=1 is
set before CuPy starts; the results record which.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from .accounting import parameter_counts, training_step_flops
from .backend import BACKEND, asarray, describe, xp
from .config import ModelConfig
from .io import write_json
from .loss import cross_entropy_backward, cross_entropy_forward
from .model import Transformer
from .optim import AdamW

SCHEMA = 1
BATCH_SIZE, BLOCK_SIZE, VOCAB_SIZE = 12, 128, 512
# (name, n_layer, n_head, n_embd): from the ListOps model's width to about 50M parameters
SIZES = [("0.1M", 2, 4, 64), ("0.8M", 4, 4, 128), ("3M", 6, 6, 192), ("10M", 8, 8, 320),
         ("25M", 8, 8, 512), ("50M", 12, 12, 576)]
ROW_KEYS = {"name": str, "n_params": int, "flops_per_step": int, "ms_per_step": float, "gflops_per_s": float}


def sweep_configs(max_params: float = float("inf")) -> list[tuple[str, ModelConfig]]:
    out = []
    for name, n_layer, n_head, n_embd in SIZES:
        config = ModelConfig(family="gpt", vocab_size=VOCAB_SIZE, block_size=BLOCK_SIZE, n_layer=n_layer,
                             n_head=n_head, n_embd=n_embd)
        if parameter_counts(config)["total"] <= max_params:
            out.append((name, config))
    return out


def synchronize() -> None:
    if BACKEND == "cupy":  # pragma: no cover - GPU only
        xp.cuda.Device().synchronize()


def time_steps(config: ModelConfig, steps: int, seed: int = 0) -> list[float]:
    """Seconds of each of ``steps`` training steps (forward, loss, backward, AdamW), after one warm-up."""
    rng = np.random.default_rng(seed)
    model = Transformer(config, rng)
    opt = AdamW(model.parameters(), model.gradients(), lr=1e-3)
    idx = asarray(rng.integers(0, config.vocab_size, size=(BATCH_SIZE, config.block_size)))
    targets = asarray(rng.integers(0, config.vocab_size, size=(BATCH_SIZE, config.block_size)))
    times = []
    for step in range(steps + 1):
        synchronize()
        t0 = time.perf_counter()
        loss, cache = cross_entropy_forward(model.forward(idx), targets)
        model.zero_grad()
        model.backward(cross_entropy_backward(cache))
        opt.step()
        synchronize()
        if step > 0:  # the first step pays for allocation (and, on a GPU, kernel compilation)
            times.append(time.perf_counter() - t0)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"the sweep's step produced a non-finite loss for {config}")
    return times


def sweep(max_params: float = float("inf"), steps: int = 3):
    """Yield one result row per size, smallest first, as soon as it is measured."""
    for name, config in sweep_configs(max_params):
        seconds = statistics.median(time_steps(config, steps))
        flops = training_step_flops(config, BATCH_SIZE)
        row = {"name": name, "n_params": parameter_counts(config)["total"], "flops_per_step": flops,
               "ms_per_step": round(1000 * seconds, 3), "gflops_per_s": round(flops / seconds / 1e9, 2)}
        print(f"{name:>5}  {row['n_params']:>11,} params  {row['ms_per_step']:>10.1f} ms/step  "
              f"{row['gflops_per_s']:>8.1f} GFLOP/s", flush=True)
        yield row


def environment() -> dict:
    """What served the run: backend, device, versions, date, commit."""
    env = {"backend": BACKEND, "device": describe(), "numpy": np.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpu_count": os.cpu_count(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": git_commit(), "batch_size": BATCH_SIZE, "block_size": BLOCK_SIZE, "vocab_size": VOCAB_SIZE}
    if BACKEND == "cupy":  # pragma: no cover - GPU only
        env["cupy"] = xp.__version__
        env["cuda_driver"] = xp.cuda.runtime.driverGetVersion()
        env["cuda_runtime"] = xp.cuda.runtime.runtimeGetVersion()
        env["tf32"] = os.environ.get("CUPY_TF32", "0") == "1"
    return env


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def check_results(results: dict, require_cpu: bool = True) -> None:
    """Raise ValueError naming the first field that does not fit the schema of a sweep file
    (a 'gpu' run may be null: none recorded yet)."""
    if results.get("schema") != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA}, got {results.get('schema')!r}")
    for part in ("cpu", "gpu"):
        run = results.get(part)
        if run is None and (part == "gpu" or not require_cpu):
            continue
        if not isinstance(run, dict):
            raise ValueError(f"{part} must be an object")
        for key in ("backend", "device", "date", "commit", "rows"):
            if key not in run:
                raise ValueError(f"{part} lacks {key!r}")
        if part == "gpu":
            for key in ("cupy", "cuda_driver", "tf32"):
                if key not in run:
                    raise ValueError(f"gpu lacks {key!r}")
        if not run["rows"]:
            raise ValueError(f"{part}.rows is empty")
        for i, row in enumerate(run["rows"]):
            for key, kind in ROW_KEYS.items():
                value = row.get(key)
                if not isinstance(value, kind) or isinstance(value, bool) or (kind is not str and value <= 0):
                    raise ValueError(f"{part}.rows[{i}].{key} must be a positive {kind.__name__}, got {value!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m companion.bench_sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write (the run is stored under 'cpu' or 'gpu')")
    parser.add_argument("--max-params", type=float, default=float("inf"), help="skip sizes above this many parameters")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per size (after one warm-up step)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    path = Path(args.out)
    results = {"schema": SCHEMA, "cpu": None, "gpu": None}
    if path.exists():
        from .io import read_json

        results = read_json(path, "sweep results")
    part = "gpu" if BACKEND == "cupy" else "cpu"
    print(f"sweep on {describe()}", flush=True)
    results[part] = {**environment(), "rows": []}
    for row in sweep(args.max_params, args.steps):  # written after each size, so a cut-off run keeps its rows
        results[part]["rows"].append(row)
        write_json(path, results)
    check_results(results, require_cpu=False)


if __name__ == "__main__":
    main()
