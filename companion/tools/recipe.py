"""nanoGPT's CPU recipe, trained by the companion and by its PyTorch twin side by side.

``python -m companion bench --recipe [--threads 1] [--steps 2000]`` trains the character model
of nanoGPT's README "on a MacBook / CPU" run on the default Shakespeare corpus:

    4 layers, 4 heads, n_embd 128, block 64, batch 12, no biases, tied head, float32
    2000 steps; lr 1e-3 after 100 warm-up steps, cosine down to 1e-4 at step 2000
    AdamW betas (0.9, 0.99), weight decay 0.1 on the matrices, gradient clipping at 1.0

Both models start from the same weights (``copy_weights``) and see the same batches, drawn
from one generator seeded with 0. The steps are interleaved, companion then twin, the order
swapped every step, so that both share whatever else the machine is doing; each side's wall
time is the sum of its own steps (forward, loss, backward, clipping, optimizer). At the end
both are scored on the same validation windows: every non-overlapping 64-character window of
the validation split, in order.

The twin is what a PyTorch user writes (``companion.tools.torch_twin``: scaled_dot_product_attention,
F.gelu, F.layer_norm, F.cross_entropy) with ``torch.optim.AdamW`` in its default implementation
and ``torch.nn.utils.clip_grad_norm_``; both use the same number of threads.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .bench import bench_config
from ..data import consecutive_windows
from ..loss import cross_entropy_backward, cross_entropy_forward
from ..model import Transformer
from ..optim import AdamW, clip_grad_norm, lr_schedule

RECIPE = dict(steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup_steps=100, weight_decay=0.1,
              betas=(0.9, 0.99), grad_clip=1.0)
COMMAND = "python -m companion bench --recipe --threads 1"


def _twin_optimizer(twin):
    import torch

    decay = [p for p in twin.parameters() if p.ndim >= 2]  # nanoGPT: matrices (and embeddings) decay
    no_decay = [p for p in twin.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": RECIPE["weight_decay"]},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=RECIPE["lr"], betas=RECIPE["betas"])


def _companion_loss(model, windows: np.ndarray, batch_size: int = 64) -> float:
    """Mean next-character loss over (N, T + 1) windows."""
    total = 0.0
    for i in range(0, len(windows), batch_size):
        w = windows[i : i + batch_size]  # (b, T + 1)
        loss, _ = cross_entropy_forward(model.forward(w[:, :-1]), w[:, 1:])
        total += loss * len(w)
    return total / len(windows)


def _twin_loss(twin, windows: np.ndarray, batch_size: int = 64) -> float:
    import torch

    total = 0.0
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            w = torch.from_numpy(windows[i : i + batch_size])  # (b, T + 1)
            _, loss = twin(w[:, :-1], w[:, 1:])
            total += float(loss) * len(w)
    return total / len(windows)


def run_recipe(steps: int = RECIPE["steps"], threads: int = 1, seed: int = 0, corpus=None,
               max_chars: int | None = None, max_eval_windows: int | None = None) -> dict:
    """Train both models ``steps`` steps, interleaved; -> wall times and final validation losses."""
    import torch
    from threadpoolctl import threadpool_limits

    from ..tasks.text import TextTask
    from .torch_twin import build_torch_model, copy_weights

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    task = TextTask(seed=seed, corpus=corpus, tokenizer="char", block_size=64, max_chars=max_chars)
    config = bench_config("baby", vocab_size=task.vocab_size, bias=False)
    model = Transformer(config, np.random.default_rng(seed))
    opt = AdamW(model.parameters(), model.gradients(), lr=RECIPE["lr"], betas=RECIPE["betas"],
                weight_decay=RECIPE["weight_decay"])
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        twin = build_torch_model(config)
        copy_weights(model, twin)  # the same initial weights
        topt = _twin_optimizer(twin)
        data_rng = np.random.default_rng(seed)
        seconds = {"companion": 0.0, "torch": 0.0}
        last = {}
        with threadpool_limits(limits=threads, user_api="blas"):
            for step in range(steps):
                lr = lr_schedule(step, RECIPE["lr"], RECIPE["warmup_steps"], steps, RECIPE["min_lr"])
                batch = task.batch("train", RECIPE["batch_size"], data_rng)  # the same batch for both
                idx, targets = torch.from_numpy(batch.idx), torch.from_numpy(batch.targets)
                for side in (("companion", "torch") if step % 2 == 0 else ("torch", "companion")):
                    t0 = time.perf_counter()
                    if side == "companion":
                        loss, cache = cross_entropy_forward(model.forward(batch.idx), batch.targets)
                        model.zero_grad()
                        model.backward(cross_entropy_backward(cache))
                        clip_grad_norm(model.gradients(), RECIPE["grad_clip"])
                        opt.lr = lr
                        opt.step()
                    else:
                        _, tloss = twin(idx, targets)
                        topt.zero_grad(set_to_none=True)
                        tloss.backward()
                        torch.nn.utils.clip_grad_norm_(twin.parameters(), RECIPE["grad_clip"])
                        for group in topt.param_groups:
                            group["lr"] = lr
                        topt.step()
                        loss = float(tloss.detach())
                    seconds[side] += time.perf_counter() - t0
                    last[side] = loss
                    if not math.isfinite(loss):
                        raise FloatingPointError(f"the {side} run diverged at step {step}: loss {loss}")
            windows = consecutive_windows(task.val, task.block_size, max_eval_windows)  # (N, T + 1)
            val = {"companion": _companion_loss(model, windows), "torch": _twin_loss(twin, windows)}
    finally:
        torch.set_num_threads(torch_threads)
    return {"command": COMMAND, "recipe": {**RECIPE, "steps": steps}, "threads": threads, "seed": seed,
            "config": config.to_dict(), "vocab_size": task.vocab_size, "val_windows": len(windows),
            "wall_s": seconds, "wall_ratio_companion_over_torch": seconds["companion"] / seconds["torch"],
            "last_train_loss": last, "val_loss": val, "val_loss_diff": val["companion"] - val["torch"],
            "torch_version": torch.__version__}


def format_recipe(r: dict) -> str:
    w, v = r["wall_s"], r["val_loss"]
    return "\n".join([
        f"nanoGPT CPU recipe, side by side: {r['recipe']['steps']} steps, batch {r['recipe']['batch_size']}, block 64, "
        f"{r['threads']} thread(s) each, char tokens (vocab {r['vocab_size']}), seed {r['seed']}",
        f"companion: {w['companion']:7.1f} s of training, final validation loss {v['companion']:.4f}",
        f"    torch: {w['torch']:7.1f} s of training, final validation loss {v['torch']:.4f}  (torch {r['torch_version']})",
        f"wall-time ratio companion / torch {r['wall_ratio_companion_over_torch']:.2f}; validation loss difference "
        f"{r['val_loss_diff']:+.4f} over {r['val_windows']} windows of the validation split",
    ])
