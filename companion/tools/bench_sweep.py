"""A size sweep: time one training step from the ListOps model up to ~50M parameters.

    python -m companion.tools.bench_sweep --out results.json [--max-params 1.2e7] [--steps 3]
                                          [--batch-size 12] [--block-size 128]

runs on whichever backend serves the companion (``COMPANION_BACKEND``: NumPy on the CPU, CuPy
on a GPU) and writes a JSON file that says what was measured where: the backend and device,
the library and driver versions, the host's CPU model, the date, the git commit and the number of
timed steps, and for each size its parameters, FLOPs per step, the median milliseconds of
``--steps`` timed steps after one warm-up step, the median host CPU time of those steps, and the
step's array operations as the strict double counts them (``companion.tools.step_count``, in a
subprocess after the timing, at the same batch, with GELU and AdamW in pieces exactly where this
backend cuts them). Chapter 14 plots such files; ``check_results`` is the schema the tests hold
them to.

On a GPU every step is followed by a device synchronisation before the clock is read: CuPy
launches kernels asynchronously, so without it the timer would measure only the launches.
TF32 (float32 products on tensor cores with a 10-bit mantissa) is off unless CUPY_TF32=1 is
set before CuPy starts; a run with it off is stored under 'gpu', one with it on under
'gpu_tf32' (optional), so one file holds both.

The host CPU time of a step (``time.process_time``, all of the process's threads) is read before
that final synchronisation: on a GPU it is the CPU time the host spent issuing the step (Python,
CuPy and the driver), including any spinning at the step's few copies to the host, but not the
wait for the GPU to finish the queue at the end. On NumPy it is the step's CPU time on every core
BLAS uses, so it can exceed the wall time.
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

from ..accounting import parameter_counts, training_step_flops
from ..backend import BACKEND, Array, asarray, describe, xp
from ..config import ModelConfig
from .io import write_json
from ..loss import cross_entropy_backward, cross_entropy_forward
from ..model import Transformer
from ..optim import AdamW

SCHEMA = 1
BATCH_SIZE, BLOCK_SIZE, VOCAB_SIZE = 12, 128, 512
# (name, n_layer, n_head, n_embd): from the ListOps model's width to about 50M parameters
SIZES = [("0.1M", 2, 4, 64), ("0.8M", 4, 4, 128), ("3M", 6, 6, 192), ("10M", 8, 8, 320),
         ("25M", 8, 8, 512), ("50M", 12, 12, 576)]
ROW_KEYS = {"name": str, "n_params": int, "flops_per_step": int, "ms_per_step": float, "gflops_per_s": float}
# optional: files recorded before these existed lack them
OPTIONAL_ROW_KEYS = {"host_ms_per_step": float, "n_ops": int, "n_to_host": int}
BATCH_PARTS = ("gpu_batch", "cpu_batch")  # optional: one size at several batch sizes (--only, --batch-sizes)
BATCH_ROW_KEYS = {"batch_size": int, "tokens_per_s": float}


def sweep_configs(max_params: float = float("inf"), block_size: int = BLOCK_SIZE) -> list[tuple[str, ModelConfig]]:
    """The sizes of the sweep up to ``max_params`` parameters (counted at ``block_size``)."""
    out = []
    for name, n_layer, n_head, n_embd in SIZES:
        config = ModelConfig(family="gpt", vocab_size=VOCAB_SIZE, block_size=block_size, n_layer=n_layer,
                             n_head=n_head, n_embd=n_embd)
        if parameter_counts(config)["total"] <= max_params:
            out.append((name, config))
    return out


def synchronize() -> None:
    if BACKEND == "cupy":  # pragma: no cover - GPU only
        xp.cuda.Device().synchronize()


def training_step(model: Transformer, opt: AdamW, idx: Array, targets: Array) -> Array:
    """The step the sweep times: forward, loss, backward, AdamW. -> the loss, left on the device."""
    loss, cache = cross_entropy_forward(model.forward(idx), targets)  # idx, targets (B, T)
    model.zero_grad()
    model.backward(cross_entropy_backward(cache))
    opt.step()
    return loss


def time_steps(config: ModelConfig, steps: int, seed: int = 0, batch_size: int = BATCH_SIZE,
               host: list[float] | None = None) -> list[float]:
    """Seconds of each of ``steps`` training steps (forward, loss, backward, AdamW), after one warm-up.
    With ``host`` given, each step's host CPU seconds (up to its final synchronisation) are appended to it."""
    rng = np.random.default_rng(seed)
    model = Transformer(config, rng)
    opt = AdamW(model.parameters(), model.gradients(), lr=1e-3)
    idx = asarray(rng.integers(0, config.vocab_size, size=(batch_size, config.block_size)))
    targets = asarray(rng.integers(0, config.vocab_size, size=(batch_size, config.block_size)))
    times = []
    for step in range(steps + 1):
        synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        loss = training_step(model, opt, idx, targets)
        c1 = time.process_time()  # before the wait for the GPU's queue: the host's own work
        synchronize()
        if step > 0:  # the first step pays for allocation (and, on a GPU, kernel compilation)
            times.append(time.perf_counter() - t0)
            if host is not None:
                host.append(c1 - c0)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"the sweep's step produced a non-finite loss for {config}")
    return times


def sweep(max_params: float = float("inf"), steps: int = 3, batch_size: int = BATCH_SIZE,
          block_size: int = BLOCK_SIZE, verbose: bool = True, only: str | None = None,
          batch_sizes: list[int] | None = None):
    """Yield one result row per size, smallest first, as soon as it is measured. With ``only`` and
    ``batch_sizes``: one row per batch size of the size named ``only``, each with its 'batch_size'
    and 'tokens_per_s'."""
    configs = sweep_configs(max_params, block_size)
    if only is not None:
        configs = [(name, config) for name, config in configs if name == only]
        if not configs:
            raise ValueError(f"no sweep size named {only!r} up to {max_params:g} parameters; the sizes are "
                             f"{[name for name, _ in sweep_configs(block_size=block_size)]}")
    runs = [(name, config, b) for name, config in configs for b in (batch_sizes or [batch_size])]
    for name, config, batch_size in runs:
        host: list[float] = []
        seconds = statistics.median(time_steps(config, steps, batch_size=batch_size, host=host))
        flops = training_step_flops(config, batch_size)
        row = {"name": name, "n_params": parameter_counts(config)["total"], "flops_per_step": flops,
               "ms_per_step": round(1000 * seconds, 3), "gflops_per_s": round(flops / seconds / 1e9, 2),
               "host_ms_per_step": round(1000 * statistics.median(host), 3)}
        if batch_sizes:
            row["batch_size"] = batch_size
            row["tokens_per_s"] = round(batch_size * block_size / seconds, 1)
        if verbose:
            print(f"{name:>5}  {row['n_params']:>11,} params  {row['ms_per_step']:>10.1f} ms/step  "
                  f"{row['gflops_per_s']:>8.1f} GFLOP/s" + (f"  batch {batch_size}" if batch_sizes else ""), flush=True)
        yield row


def environment(batch_size: int = BATCH_SIZE, block_size: int = BLOCK_SIZE, steps: int | None = None) -> dict:
    """What served the run: backend, device, versions, the host's CPU model, date, commit, timed
    steps a size (and, on the CPU, the load average of the last 1, 5 and 15 minutes: above the core
    count, other work shared the CPU; on CuPy, the GPU's name, UUID and memory where CuPy reports them)."""
    env = {"backend": BACKEND, "device": describe(), "numpy": np.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": git_commit(), "batch_size": batch_size, "block_size": block_size, "vocab_size": VOCAB_SIZE}
    if steps is not None:
        env["steps"] = steps
    if BACKEND != "cupy" and hasattr(os, "getloadavg"):
        env["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if BACKEND == "cupy":  # pragma: no cover - GPU only
        env["cupy"] = xp.__version__
        env["cuda_driver"] = xp.cuda.runtime.driverGetVersion()
        env["cuda_runtime"] = xp.cuda.runtime.runtimeGetVersion()
        env["tf32"] = os.environ.get("CUPY_TF32", "0") == "1"
        try:  # what CuPy's device properties hold; the UUID only with newer CUDA and CuPy
            props = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)
            name = props.get("name")
            if name:
                env["gpu_name"] = name.decode() if isinstance(name, bytes) else str(name)
            if props.get("totalGlobalMem"):
                env["gpu_memory_bytes"] = int(props["totalGlobalMem"])
            uuid = props.get("uuid")
            if uuid:
                env["gpu_uuid"] = uuid.hex() if isinstance(uuid, bytes) else str(uuid)
        except Exception:  # noqa: BLE001 - a label, never worth failing the run for
            pass
    return env


def cpu_model() -> str:
    """The host CPU's model name: /proc/cpuinfo's 'model name' where it exists (Linux on x86),
    else what platform.processor() says ('' when it says nothing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def count_ops(rows: list[dict], batch_size: int, block_size: int) -> None:
    """Add each row's operation count ('n_ops') and copies to the host ('n_to_host'), as the strict
    double counts one steady step of that size at this batch, with GELU and AdamW cut into pieces
    where this backend cuts them (on NumPy; one piece elsewhere). One subprocess for all rows."""
    from .step_count import count_sweep_in_subprocess

    specs = [{"name": row["name"], "batch_size": row.get("batch_size", batch_size), "block_size": block_size,
              "cpu_pieces": BACKEND == "numpy"} for row in rows]
    for row, counted in zip(rows, count_sweep_in_subprocess(specs)):
        row["n_ops"], row["n_to_host"] = counted["op"], counted["to_host"]


def git_commit() -> str:
    """The commit measured: COMPANION_COMMIT when set (a copy of the tree without its .git, as on a
    lent GPU machine), else what git says, else 'unknown'."""
    if os.environ.get("COMPANION_COMMIT"):
        return os.environ["COMPANION_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def check_results(results: dict, require_cpu: bool = True) -> None:
    """Raise ValueError naming the first field that does not fit the schema of a sweep file
    (a 'gpu' run may be null: none recorded yet; 'gpu_tf32', the same with TF32 products, may be
    null or absent). The fields added later ('steps', 'cpu_model', 'gpu_name', 'gpu_uuid',
    'gpu_memory_bytes'; a row's
    'host_ms_per_step', 'n_ops', 'n_to_host', 'ops_by_name') may be absent, and are checked where present; so are
    the optional batch parts ('gpu_batch', 'cpu_batch': one size at several batch sizes, each row
    with its 'batch_size' and 'tokens_per_s')."""
    if results.get("schema") != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA}, got {results.get('schema')!r}")
    if "gpu" not in results:
        raise ValueError("lacks 'gpu' (null when no GPU run is recorded)")
    for part in ("cpu", "gpu", "gpu_tf32", *BATCH_PARTS):
        run = results.get(part)
        if run is None and (part != "cpu" or not require_cpu):
            continue
        if not isinstance(run, dict):
            raise ValueError(f"{part} must be an object")
        for key in ("backend", "device", "date", "commit", "rows"):
            if key not in run:
                raise ValueError(f"{part} lacks {key!r}")
        if part.startswith("gpu"):
            for key in ("cupy", "cuda_driver", "tf32"):
                if key not in run:
                    raise ValueError(f"{part} lacks {key!r}")
            if run["tf32"] is not (part == "gpu_tf32"):
                raise ValueError(f"{part}.tf32 must be {part == 'gpu_tf32'}, got {run['tf32']!r}")
        steps = run.get("steps")
        if "steps" in run and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ValueError(f"{part}.steps must be a positive int, got {steps!r}")
        for key in ("cpu_model", "gpu_name", "gpu_uuid"):
            if key in run and not isinstance(run[key], str):
                raise ValueError(f"{part}.{key} must be a str, got {run[key]!r}")
        memory = run.get("gpu_memory_bytes")
        if "gpu_memory_bytes" in run and (not isinstance(memory, int) or isinstance(memory, bool) or memory < 1):
            raise ValueError(f"{part}.gpu_memory_bytes must be a positive int, got {memory!r}")
        if not run["rows"]:
            raise ValueError(f"{part}.rows is empty")
        for i, row in enumerate(run["rows"]):
            for key, kind in [*ROW_KEYS.items(), *OPTIONAL_ROW_KEYS.items()]:
                if key in OPTIONAL_ROW_KEYS and key not in row:
                    continue
                value = row.get(key)
                if not isinstance(value, kind) or isinstance(value, bool) or (kind is not str and value <= 0):
                    raise ValueError(f"{part}.rows[{i}].{key} must be a positive {kind.__name__}, got {value!r}")
            by_name = row.get("ops_by_name")
            if "ops_by_name" in row and not (isinstance(by_name, dict) and all(
                    isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v > 0
                    for k, v in by_name.items()) and sum(by_name.values()) == row.get("n_ops")):
                raise ValueError(f"{part}.rows[{i}].ops_by_name must map operation names to positive counts "
                                 f"that add up to n_ops")
            for key, kind in (BATCH_ROW_KEYS.items() if part in BATCH_PARTS else ()):
                value = row.get(key)
                if not isinstance(value, kind) or isinstance(value, bool) or value <= 0:
                    raise ValueError(f"{part}.rows[{i}].{key} must be a positive {kind.__name__}, got {value!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m companion.tools.bench_sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True,
                        help="JSON file to write (the run is stored under 'cpu', 'gpu' or, with CUPY_TF32=1, 'gpu_tf32'; "
                             "with --batch-sizes under 'cpu_batch' or 'gpu_batch')")
    parser.add_argument("--max-params", type=float, default=float("inf"), help="skip sizes above this many parameters")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per size (after one warm-up step)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"sequences per step (default {BATCH_SIZE})")
    parser.add_argument("--block-size", type=int, default=BLOCK_SIZE, help=f"tokens per sequence (default {BLOCK_SIZE})")
    parser.add_argument("--only", default=None, help="time only the size of this name (e.g. 10M)")
    parser.add_argument("--batch-sizes", default=None,
                        help="with --only: time it at each of these batch sizes, e.g. 12,48,192, and store the "
                             "run under 'gpu_batch' or 'cpu_batch' (float32 products only)")
    parser.add_argument("--no-count", action="store_true",
                        help="do not count each size's operations under the strict double afterwards")
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "block_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    batch_sizes = None
    if args.batch_sizes is not None:
        try:
            batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        except ValueError:
            parser.error(f"--batch-sizes must be whole numbers separated by commas, got {args.batch_sizes!r}")
        if not batch_sizes or min(batch_sizes) < 1 or args.only is None:
            parser.error("--batch-sizes needs positive batch sizes and --only NAME (the size to time)")
    path = Path(args.out)
    results = {"schema": SCHEMA, "cpu": None, "gpu": None}
    if path.exists():
        from .io import read_json

        results = read_json(path, "sweep results")
    part = "cpu" if BACKEND != "cupy" else ("gpu_tf32" if os.environ.get("CUPY_TF32", "0") == "1" else "gpu")
    if batch_sizes:
        if part == "gpu_tf32":
            parser.error("--batch-sizes records float32 products only: unset CUPY_TF32")
        part += "_batch"
    print(f"sweep on {describe()}", flush=True)
    results[part] = {**environment(max(batch_sizes) if batch_sizes else args.batch_size, args.block_size,
                                   args.steps), "rows": []}
    for row in sweep(args.max_params, args.steps, args.batch_size, args.block_size, only=args.only,
                     batch_sizes=batch_sizes):  # written after each size, so a cut-off run keeps its rows
        results[part]["rows"].append(row)
        write_json(path, results)
    if not args.no_count:  # after the timing, so that a run cut short keeps its times
        count_ops(results[part]["rows"], args.batch_size, args.block_size)
        write_json(path, results)
    check_results(results, require_cpu=False)


if __name__ == "__main__":
    main()
