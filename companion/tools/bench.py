"""The benchmark: how fast is a training step, and how far from the machine's limit?

``python -m companion bench [--vs-torch] [--steps N] [--threads N] [--preset NAME] [--json]`` times a full
training step (forward, cross-entropy, backward, AdamW) of nanoGPT's CPU "baby" config (preset
``baby``: 4 layers, 4 heads, n_embd 128, block 64, vocab 65, batch 12) in float32, with the BLAS
threads pinned (threadpoolctl; ``torch.set_num_threads`` for PyTorch, the same count).

With ``--threads N`` > 1 the companion splits each batch across N processes (at most one per row of
the batch) of one BLAS thread each (``companion.data_parallel``: NumPy's element-wise work runs on one
core per process, so BLAS threads alone leave the other cores idle for about half of a step);
``--no-data-parallel`` times one process with N BLAS threads instead. PyTorch always runs in one
process with N intra-op threads. The memory figures are those of one process stepping the whole batch.

With ``--vs-torch`` the same architecture runs in PyTorch (``companion.tools.torch_twin``) with the same
initial weights and the same batches; each step runs both, alternating which goes first, after a
few untimed warm-up steps, so both see the same machine load (with more than one thread, in blocks
of five steps each: see ``_interleaving``). A busy machine (load average above
the free cores) is reported with a warning: its timings are noise.

FLOPs, counted analytically (matmuls only; norms, softmax, GELU, Adam are O(B T C), ignored):
a matmul (m, k) @ (k, n) costs 2 m k n. Per layer, with B T tokens, width C, FFN width H:

    qkv projection       2 BT C 3C          attention scores  q k^T   2 B T^2 C (all T x T, masked after)
    output projection    2 BT C C           attention mix     att v   2 B T^2 C
    MLP                  2 BT C H * 2       (SwiGLU: * 3)
and once: the head 2 BT C V. Backward of every matmul is two matmuls of the same size (one for each
input's gradient), so a training step is 3x the forward. Achieved GFLOP/s = that count / step time,
set against the sgemm peak: the best rate of a large float32 matmul with the same thread count.

Memory: see ``companion.tools.bench_memory``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time

import numpy as np

from ..config import PRESETS, ModelConfig, preset
from ..loss import cross_entropy_backward, cross_entropy_forward
from ..model import Transformer
from ..optim import AdamW
from .bench_report import load_average, step_report

BATCH_SIZE = 12  # nanoGPT's shakespeare_char CPU run
LR, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.99), 0.1


def flops_per_step(config: ModelConfig, batch_size: int, seq_len: int | None = None) -> dict:
    """Matmul FLOPs of one training step (forward + backward), by part; 'total' is the sum."""
    B, T = batch_size, seq_len or config.block_size
    C, H, V, L = config.n_embd, config.ffn_hidden, config.vocab_size, config.n_layer
    n_ffn_mats = 3 if config.ffn == "swiglu" else 2
    forward = {
        "qkv": L * 2 * B * T * C * 3 * C,
        "attn_scores": L * 2 * B * T * T * C,  # n_head heads of (T, hs) @ (hs, T), hs * n_head = C
        "attn_mix": L * 2 * B * T * T * C,
        "attn_proj": L * 2 * B * T * C * C,
        "ffn": 0 if config.attn_only else L * n_ffn_mats * 2 * B * T * C * H,
        "head": 2 * B * T * C * V,
    }
    out = {f"forward_{k}": v for k, v in forward.items()}
    out["forward"] = sum(forward.values())
    out["backward"] = 2 * out["forward"]
    out["total"] = out["forward"] + out["backward"]
    return out


def sgemm_peak(threads: int, n: int = 1024, repeats: int = 7) -> float:
    """GFLOP/s of the fastest of ``repeats`` float32 (n, n) @ (n, n) products with ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)  # (n, n)
    b = rng.standard_normal((n, n), dtype=np.float32)  # (n, n)
    best = math.inf
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b  # warm-up: thread pool start, page faults
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def bench_config(name: str = "baby", **overrides) -> ModelConfig:
    """A preset in float32 (the bench's default: nanoGPT's baby config)."""
    return preset(name, dtype="float32", **overrides)


def _batches(config: ModelConfig, batch_size: int, n: int, rng: np.random.Generator):
    """Random token batches (speed does not depend on what the tokens say); batch i is the same
    whatever n is, so runs of different lengths start alike."""
    both = np.stack([rng.integers(0, config.vocab_size, size=(2, batch_size, config.block_size))
                     for _ in range(n)])  # (n, 2, B, T): inputs and targets of each step
    return both[:, 0], both[:, 1]  # (n, B, T) each


def companion_step(model: Transformer, opt: AdamW, idx, targets) -> float:
    logits = model.forward(idx)  # (B, T, V)
    loss, cache = cross_entropy_forward(logits, targets)
    model.zero_grad()
    model.backward(cross_entropy_backward(cache))
    opt.step()
    return float(loss)


def parallel_step(pool, opt: AdamW, idx, targets) -> float:
    """``companion_step`` with the forward and backward pass split across the processes of a
    ``DataParallel`` pool; AdamW runs here, on the summed gradients."""
    loss = pool.forward_backward(idx, targets)
    opt.step()
    return loss


def _torch_setup(model: Transformer):
    import torch

    from .torch_twin import build_torch_model, copy_weights

    twin = build_torch_model(model.config)
    copy_weights(model, twin)  # same initial weights
    decay = [p for p in twin.parameters() if p.ndim >= 2]  # as the companion's AdamW: matrices only
    no_decay = [p for p in twin.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=1e-8)
    return twin, opt


def torch_step(twin, opt, idx, targets) -> float:
    _, loss = twin(idx, targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def run_bench(steps: int = 20, warmup: int = 3, threads: int | None = None, vs_torch: bool = False,
              batch_size: int = BATCH_SIZE, config: ModelConfig | None = None, seed: int = 0,
              memory: bool = True, sgemm_n: int = 1024, data_parallel: bool = True) -> dict:
    """Time ``steps`` training steps after ``warmup`` untimed ones; returns a JSON-able dict.

    With ``threads`` > 1 and ``data_parallel``, the companion runs ``threads`` processes of one BLAS
    thread each (``companion.data_parallel``); otherwise one process with ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    from ..data_parallel import DataParallel

    from .bench_memory import rss_in_fresh_process, tracemalloc_step  # it imports this module's step functions

    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    threads = threads or os.cpu_count() or 1
    load_before = load_average()
    config = config or bench_config()
    rng = np.random.default_rng(seed)
    model = Transformer(config, rng)
    opt = AdamW(model.parameters(), model.gradients(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    idx, targets = _batches(config, batch_size, warmup + steps, rng)
    processes = min(threads, batch_size) if data_parallel and threads > 1 else 1  # each needs a row of the batch
    twin = topt = pool = None
    if vs_torch:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        twin, topt = _torch_setup(model)
        tidx, ttargets = torch.from_numpy(idx), torch.from_numpy(targets)

    times = {"companion": [], "torch": []}
    losses = {"companion": [], "torch": []}
    try:
        if processes > 1:
            pool = DataParallel(model, processes, batch_size)  # started before the clock, like a training run's
        with threadpool_limits(limits=threads, user_api="blas"):
            for block in _interleaving(warmup + steps, threads):
                # alternate who goes first, so neither always runs on caches the other just warmed
                order = ("companion", "torch") if block[0] % 2 == 0 else ("torch", "companion")
                for name in order:
                    if name == "torch" and not vs_torch:
                        continue
                    if threads > 1:
                        time.sleep(0.05)  # let the other library's idle worker threads stop spinning first
                    for i in block:
                        t0 = time.perf_counter()
                        if name == "companion" and pool is not None:
                            loss = parallel_step(pool, opt, idx[i], targets[i])
                        elif name == "companion":
                            loss = companion_step(model, opt, idx[i], targets[i])
                        else:
                            loss = torch_step(twin, topt, tidx[i], ttargets[i])
                        elapsed = time.perf_counter() - t0
                        losses[name].append(loss)
                        if i >= warmup:
                            times[name].append(elapsed)
            peak_bytes = tracemalloc_step(model, opt, idx[0], targets[0]) if memory else None
        sgemm = sgemm_peak(threads, n=sgemm_n)
    finally:
        if pool is not None:
            pool.close()
        if vs_torch:
            torch.set_num_threads(torch_threads)

    flops = flops_per_step(config, batch_size)
    tokens = batch_size * config.block_size
    result = {
        "config": next((n for n in PRESETS if config == bench_config(n)), None) or config.to_dict(),
        "batch_size": batch_size, "block_size": config.block_size, "dtype": config.dtype,
        "params": model.num_params(), "threads": threads, "steps": steps, "warmup": warmup,
        "flops_per_step": flops["total"], "sgemm_peak_gflops": sgemm,
        "cpu_count": os.cpu_count(), "load_average": [load_before, load_average()],  # 1-min, before and after
        "companion": step_report(times["companion"], tokens, flops["total"], sgemm),
    }
    state_bytes = sum(a.nbytes for a in model.parameters().values()) * 4  # weights, grads, Adam m and v
    result["companion"]["processes"] = processes  # data parallelism: the batch split across them
    result["companion"]["blas_threads"] = 1 if processes > 1 else threads  # per process
    result["companion"]["state_bytes"] = state_bytes
    result["companion"]["peak_step_alloc_bytes"] = peak_bytes
    result["companion"]["first_loss"] = losses["companion"][0]
    if vs_torch:
        result["torch"] = step_report(times["torch"], tokens, flops["total"], sgemm)
        result["torch"]["first_loss"] = losses["torch"][0]
        result["torch"]["version"] = torch.__version__
        result["torch"]["processes"], result["torch"]["intra_op_threads"] = 1, threads
        result["ratio_companion_over_torch"] = result["companion"]["median_s"] / result["torch"]["median_s"]
        # each step's two timings ran back to back, under the same load: their ratio cancels most of it
        result["ratio_stepwise_median"] = statistics.median(c / t for c, t in zip(times["companion"], times["torch"]))
        # the same work: from the same weights and batches the losses agree to float32 rounding
        result["max_loss_diff"] = max(abs(a - b) for a, b in zip(losses["companion"], losses["torch"]))
    if memory:
        rss = rss_in_fresh_process("companion", threads, batch_size, config)
        if rss:
            result["companion"].update(rss)
        if vs_torch:
            rss = rss_in_fresh_process("torch", threads, batch_size, config)
            if rss:
                result["torch"].update(rss)
    return result


def _interleaving(n: int, threads: int, block: int = 5) -> list[range]:
    """The steps in the order they are timed: one at a time with one thread (each step's two runs
    share the same moment's load); in blocks of ``block`` with more threads, because OpenBLAS's and
    PyTorch's OpenMP worker threads keep spinning for a while after each call, and a step of one
    library right after the other's then shares the cores with the other's idle-but-busy workers
    (we measured PyTorch's 2-thread step near 29 ms alone and about twice that when interleaved)."""
    size = 1 if threads == 1 else block
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def run_profile(steps: int = 10, warmup: int = 2, threads: int | None = None, vs_torch: bool = False,
                batch_size: int = BATCH_SIZE, config: ModelConfig | None = None, seed: int = 0) -> dict:
    """Where a step's time goes: ``steps`` profiled training steps (companion.tools.profile) after
    ``warmup`` plain ones, and with ``vs_torch`` the twin's torch.profiler table for the same steps."""
    from threadpoolctl import threadpool_limits

    from .profile import profile_companion, profile_torch

    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    threads = threads or os.cpu_count() or 1
    config = config or bench_config()
    rng = np.random.default_rng(seed)
    model = Transformer(config, rng)
    opt = AdamW(model.parameters(), model.gradients(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    idx, targets = _batches(config, batch_size, warmup + steps, rng)
    result = {"batch_size": batch_size, "threads": threads, "config": config.to_dict()}
    with threadpool_limits(limits=threads, user_api="blas"):
        for i in range(warmup):
            companion_step(model, opt, idx[i], targets[i])
        result["companion"] = profile_companion(model, opt, idx[warmup:], targets[warmup:])
    if vs_torch:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            twin, topt = _torch_setup(Transformer(config, np.random.default_rng(seed)))
            tidx, ttargets = torch.from_numpy(idx), torch.from_numpy(targets)
            for i in range(warmup):
                torch_step(twin, topt, tidx[i], ttargets[i])
            result["torch"] = profile_torch(twin, topt, tidx[warmup:], ttargets[warmup:])
        finally:
            torch.set_num_threads(torch_threads)
    return result


def bench_mode_command(args) -> int:
    """``bench --profile`` and ``bench --recipe`` (the command line lives in cli.py)."""
    if args.profile and args.recipe:
        raise ValueError("give --profile or --recipe, not both")
    if args.recipe:
        from .recipe import format_recipe, run_recipe

        result = run_recipe(steps=args.steps or 2000, threads=args.threads or 1)
        print(format_recipe(result))
    else:
        from .profile import format_profile

        result = run_profile(steps=args.steps or 10, warmup=args.warmup, threads=args.threads, vs_torch=args.vs_torch,
                             batch_size=args.batch_size, config=bench_config(args.preset))
        print(format_profile(result))
        result.get("torch", {}).pop("table", None)  # the JSON keeps the rows
    if args.json:
        print(json.dumps(result))
    return 0
