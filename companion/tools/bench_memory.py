"""How much memory a training step takes, measured the same way for the companion and PyTorch.

Memory: ``tracemalloc`` sees every NumPy allocation, so the companion's peak is "bytes NumPy
allocated at once during one step" (on top of the weights, gradients and Adam moments, reported
separately). PyTorch's CPU allocator is invisible to tracemalloc, so both frameworks are also
measured the same way: a fresh process builds the model and runs 3 steps, and the kernel's
high-water mark of its resident memory (VmHWM in /proc/self/status, Linux) minus its resident
memory right after the imports is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np

from ..config import ModelConfig
from ..model import Transformer
from ..optim import AdamW
from .bench import BETAS, LR, WEIGHT_DECAY, _batches, _torch_setup, companion_step, torch_step


def tracemalloc_step(model, opt, idx, targets) -> int:
    """Most bytes NumPy held at once during one step, beyond what was allocated before it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        companion_step(model, opt, idx, targets)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _read_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_child(framework: str, threads: int, batch_size: int, config: dict) -> dict | None:
    """In a fresh process: import, note resident memory, build and run 3 steps, read the high-water mark."""
    from threadpoolctl import threadpool_limits

    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    base_kb = _read_status_kb("VmRSS")
    config = ModelConfig.from_dict(config)
    rng = np.random.default_rng(0)
    model = Transformer(config, rng)
    opt = AdamW(model.parameters(), model.gradients(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    idx, targets = _batches(config, batch_size, 3, rng)
    with threadpool_limits(limits=threads, user_api="blas"):
        if framework == "torch":
            twin, topt = _torch_setup(model)
            del model, opt  # only the twin runs here
            for i in range(3):
                torch_step(twin, topt, torch.from_numpy(idx[i]), torch.from_numpy(targets[i]))
        else:
            for i in range(3):
                companion_step(model, opt, idx[i], targets[i])
    hwm_kb = _read_status_kb("VmHWM")
    if base_kb is None or hwm_kb is None:
        return None
    return {"rss_base_bytes": base_kb * 1024, "rss_peak_bytes": hwm_kb * 1024}


# The child is a plain `python -c`; its arguments and its answer travel as JSON text (no pickle).
CHILD = "import json, sys; from companion.tools.bench_memory import _rss_child; print(json.dumps(_rss_child(*json.loads(sys.argv[1]))))"


def rss_in_fresh_process(framework: str, threads: int, batch_size: int, config: ModelConfig) -> dict | None:
    if not os.path.exists("/proc/self/status"):
        return None  # not Linux: no VmHWM to read
    args = json.dumps([framework, threads, batch_size, config.to_dict()])
    try:
        run = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True, timeout=300)
        out = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else None
    except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError):
        out = None  # a failed measurement is reported as missing, not fatal
    if out is not None:
        out["rss_growth_bytes"] = out["rss_peak_bytes"] - out["rss_base_bytes"]
    return out
