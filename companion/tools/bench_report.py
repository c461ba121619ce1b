"""The bench's figures: the step times summarised, set against the work and the sgemm peak, and
printed (``python -m companion bench``; the measurements themselves are ``companion.tools.bench``'s)."""

from __future__ import annotations

import os
import statistics


def step_summary(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) >= 2 else [times[0]] * 3
    return {"median_s": statistics.median(times), "p25_s": q[0], "p75_s": q[2],
            "min_s": min(times), "max_s": max(times)}


def load_average() -> float | None:
    """The 1-minute load average: runnable processes. More than the core count means the timings
    share the CPU with other work and are not to be trusted."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def step_report(times: list[float], tokens: int, flops: int, sgemm: float) -> dict:
    s = step_summary(times)
    s["tokens_per_second"] = tokens / s["median_s"]
    s["gflops"] = flops / s["median_s"] / 1e9
    s["fraction_of_sgemm_peak"] = s["gflops"] / sgemm
    return s


def format_report(r: dict) -> str:
    """A human-readable report of ``run_bench``'s result."""
    mb = 1024 * 1024
    lines = [
        f"bench: {r['config']} config, {r['params']:,} parameters, batch {r['batch_size']} x block "
        f"{r['block_size']}, {r['dtype']}, {r['threads']} thread(s), {r['steps']} timed steps after {r['warmup']} warm-up",
        f"FLOPs per step (matmuls, forward + backward = 3 x forward): {r['flops_per_step'] / 1e9:.3f} GFLOP",
        f"sgemm peak (float32 1024x1024 matmul, {r['threads']} thread(s)): {r['sgemm_peak_gflops']:.1f} GFLOP/s",
    ]
    c = r["companion"]
    if c.get("processes", 1) > 1:
        lines.append(f"the companion runs as {c['processes']} data-parallel processes x 1 BLAS thread (each takes a "
                     f"share of the batch; their gradients are summed, AdamW runs in the first)")
    else:
        lines.append(f"the companion runs as 1 process x {c.get('blas_threads', r['threads'])} BLAS thread(s)")
    if "torch" in r:
        lines.append(f"PyTorch runs as 1 process x {r['threads']} intra-op thread(s)")
    for name in ("companion", "torch"):
        if name not in r:
            continue
        s = r[name]
        lines.append(
            f"{name:>9}: median {s['median_s'] * 1e3:7.1f} ms/step (p25 {s['p25_s'] * 1e3:.1f}, p75 {s['p75_s'] * 1e3:.1f}, "
            f"min {s['min_s'] * 1e3:.1f})  {s['tokens_per_second']:,.0f} tokens/s  {s['gflops']:.1f} GFLOP/s "
            f"({100 * s['fraction_of_sgemm_peak']:.0f}% of sgemm peak)")
    if c.get("peak_step_alloc_bytes") is not None:
        lines.append(f"companion memory: weights + grads + Adam moments {c['state_bytes'] / mb:.1f} MiB; "
                     f"peak NumPy allocation during a step (tracemalloc) {c['peak_step_alloc_bytes'] / mb:.1f} MiB")
    for name in ("companion", "torch"):
        if name in r and "rss_growth_bytes" in r[name]:
            s = r[name]
            lines.append(f"{name:>9} resident memory (fresh process, 3 steps): peak {s['rss_peak_bytes'] / mb:.0f} MiB, "
                         f"{s['rss_growth_bytes'] / mb:.0f} MiB above the {s['rss_base_bytes'] / mb:.0f} MiB after imports")
    before = (r.get("load_average") or [None])[0]  # measured before the bench's own threads ran
    if before is not None and r.get("cpu_count") and before + r["threads"] > r["cpu_count"] + 0.5:
        lines.append(f"WARNING: load average {before:.1f} before the run on {r['cpu_count']} cores, and the bench "
                     f"uses {r['threads']} thread(s): other work shares the CPU, so these timings are unreliable")
    if "ratio_companion_over_torch" in r:
        lines.append(f"ratio companion / torch (median step time): {r['ratio_companion_over_torch']:.2f}; "
                     f"median of the step-by-step ratios {r['ratio_stepwise_median']:.2f}   "
                     f"(torch {r['torch']['version']}; max |loss difference| over the run {r['max_loss_diff']:.1e})")
    return "\n".join(lines)
