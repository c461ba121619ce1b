# ---
# jupyter:
#   course:
#     budget_s: 30
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 9 exercises: optimizers
#
# Book chapter 9 (`book/09_optimizers.md`): AdamW, the learning-rate schedule, and gradient
# clipping. Write each function, run its cell, then its check cell.

# %%
import math

import numpy as np

from companion.grading import check

# %% [markdown]
# ## Exercise 9.1: one AdamW step
#
# `params` and `grads` are dicts of arrays by name; `state` is a dict you keep between steps
# (start it empty: `state[name] = {"m": zeros, "v": zeros}` on first use); `t` is the step
# number, 1 for the first step. Update every parameter **in place** (Loshchilov & Hutter 2019):
#
# - decoupled weight decay, only for weight matrices (`p.ndim >= 2`; biases and norm gains are not decayed): `p -= lr * weight_decay * p`
# - `m = b1 m + (1 - b1) g`,  `v = b2 v + (1 - b2) g^2`
# - `p -= lr * m_hat / (sqrt(v_hat) + eps)` with `m_hat = m / (1 - b1^t)`, `v_hat = v / (1 - b2^t)`


# %%
def adamw_step(params, grads, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    """Update params in place; state holds each parameter's m and v."""
    # BEGIN SOLUTION 9.1
    b1, b2 = betas
    for name, p in params.items():
        g = grads[name]
        if p.ndim >= 2:
            p -= lr * weight_decay * p  # decoupled: not part of the gradient
        s = state.setdefault(name, {"m": np.zeros_like(p), "v": np.zeros_like(p)})
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        m_hat = s["m"] / (1 - b1**t)
        v_hat = s["v"] / (1 - b2**t)
        p -= lr * m_hat / (np.sqrt(v_hat) + eps)
    # END SOLUTION


# %%
check("9.1")

# %% [markdown]
# ## Exercise 9.2: warm-up and cosine decay
#
# Return the learning rate at `step` (0, 1, 2, ...): during the first `warmup_steps` steps it
# rises linearly, `max_lr * (step + 1) / warmup_steps`; from `warmup_steps` to `total_steps`
# it follows half a cosine from `max_lr` down to `min_lr`,
# `min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2`, with
# `progress = (step - warmup_steps) / (total_steps - warmup_steps)`; after `total_steps` it
# stays at `min_lr`.


# %%
def lr_schedule(step, max_lr, warmup_steps, total_steps, min_lr=0.0):
    """-> the learning rate (float) at this step."""
    # BEGIN SOLUTION 9.2
    if step >= total_steps:
        return min_lr
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    # END SOLUTION


# %%
check("9.2")

# %% [markdown]
# ## Exercise 9.3: clipping the global gradient norm
#
# Compute the norm of **all** gradients together, `sqrt(sum of every g^2)`. If it exceeds
# `max_norm`, scale every gradient in place by `max_norm / (norm + 1e-6)`; otherwise leave
# them alone. Return the norm before clipping.


# %%
def clip_grad_norm(grads, max_norm):
    """grads: dict of arrays, scaled in place -> the total norm before clipping (float)."""
    # BEGIN SOLUTION 9.3
    total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads.values():
            g *= scale
    return total
    # END SOLUTION


# %%
check("9.3")
