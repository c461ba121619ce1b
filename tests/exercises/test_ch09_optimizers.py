"""Graded tests, chapter 9: AdamW, the learning-rate schedule, gradient clipping.

References: the companion's AdamW, lr_schedule and clip_grad_norm (which match torch.optim);
the buggy variants are run here on the same numbers.
"""

import math

import numpy as np
import pytest

from companion.grading.adapter import expect, expect_close
from companion.optim import Adam, AdamW
from companion.optim import clip_grad_norm as ref_clip
from companion.optim import lr_schedule as ref_schedule

CHAPTER = "ch09"
pytestmark = pytest.mark.ch09
HP = dict(lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)


def problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4), "gain": 1 + rng.standard_normal(4)}
    grads_seq = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(4)]
    return params, grads_seq


def run_reference(cls, params, grads_seq, **kw):
    params = {k: v.copy() for k, v in params.items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    opt = cls(params, grads, **kw)
    for g in grads_seq:
        for k in grads:
            grads[k][...] = g[k]
        opt.step()
    return params


class DecayAll(AdamW):
    def decays(self, name):
        return True


def adamw_no_bias_correction(params, grads_seq, lr, betas, eps, weight_decay):
    params = {k: v.copy() for k, v in params.items()}
    m = {k: 0 * v for k, v in params.items()}
    s = {k: 0 * v for k, v in params.items()}
    for g in grads_seq:
        for k, p in params.items():
            if p.ndim >= 2:
                p -= lr * weight_decay * p
            m[k] = betas[0] * m[k] + (1 - betas[0]) * g[k]
            s[k] = betas[1] * s[k] + (1 - betas[1]) * g[k] ** 2
            p -= lr * m[k] / (np.sqrt(s[k]) + eps)
    return params


# ------------------------------------------------------------------ 9.1 AdamW


@pytest.mark.exercise("9.1", "adamw_step")
@pytest.mark.points(3)
def test_adamw_matches_reference(impl):
    params, grads_seq = problem()
    mine = {k: v.copy() for k, v in params.items()}
    state = {}
    for t, g in enumerate(grads_seq, start=1):
        impl.adamw_step(mine, g, state, t, **HP)
    want = run_reference(AdamW, params, grads_seq, **HP)
    variants = {
        "AdamW decays the biases and norm gains too: decay only weight matrices (ndim >= 2)": run_reference(DecayAll, params, grads_seq, **HP),
        "the weight decay is an L2 term in the gradient (that is Adam): AdamW shrinks the weight itself": run_reference(Adam, params, grads_seq, **HP),
        "the bias correction (1 - b1^t), (1 - b2^t) is missing": adamw_no_bias_correction(params, grads_seq, **HP),
        "there is no weight decay at all": run_reference(AdamW, params, grads_seq, **{**HP, "weight_decay": 0.0}),
    }
    for name in ("w", "b", "gain"):
        bugs = {why: p[name] for why, p in variants.items()}
        expect_close(mine[name], want[name], f"parameter {name!r} after 4 AdamW steps", bugs, rtol=1e-7, atol=1e-10)


@pytest.mark.exercise("9.1", "adamw_step")
@pytest.mark.points(1)
def test_adamw_updates_in_place(impl):
    params, grads_seq = problem(1)
    w = params["w"]
    impl.adamw_step(params, grads_seq[0], {}, 1, **HP)
    expect(params["w"] is w, "adamw_step replaced params['w'] with a new array: update it in place (p -= ...)")
    want = run_reference(AdamW, problem(1)[0], grads_seq[:1], **HP)
    expect_close(w, want["w"], "the array params['w'] after one step (updated in place?)")


# ------------------------------------------------------------------ 9.2 schedule


@pytest.mark.exercise("9.2", "lr_schedule")
@pytest.mark.points(2)
def test_lr_schedule(impl):
    kw = dict(max_lr=1e-2, warmup_steps=10, total_steps=100, min_lr=1e-3)
    steps = range(0, 120)
    got = [impl.lr_schedule(s, **kw) for s in steps]
    want = [ref_schedule(s, **kw) for s in steps]

    def variant(fn):
        return [fn(s) for s in steps]

    bugs = {
        "the warm-up starts at 0 (use (step + 1) / warmup_steps, so step 0 already learns)":
            variant(lambda s: kw["max_lr"] * s / 10 if s < 10 else ref_schedule(s, **kw)),
        "the cosine ignores min_lr (it decays to 0)": variant(lambda s: ref_schedule(s, 1e-2, 10, 100, 0.0) if s < 100 else 1e-3),
        "the cosine's progress counts from step 0, not from the end of the warm-up":
            variant(lambda s: ref_schedule(s, **kw) if s < 10 or s >= 100 else 1e-3 + 0.5 * 9e-3 * (1 + math.cos(math.pi * s / 100))),
        "the decay is linear, not a cosine":
            variant(lambda s: ref_schedule(s, **kw) if s < 10 or s >= 100 else 1e-2 - 9e-3 * (s - 10) / 90),
        "after total_steps the rate is not held at min_lr":
            variant(lambda s: ref_schedule(s, **kw) if s < 100 else 1e-3 + 0.5 * 9e-3 * (1 + math.cos(math.pi * (s - 10) / 90))),
    }
    expect_close(got, want, "the learning rates at steps 0..119 (warm-up 10, total 100)", bugs, rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("9.2", "lr_schedule")
@pytest.mark.points(1)
def test_lr_schedule_landmarks(impl):
    got = [impl.lr_schedule(s, 3e-4, 5, 50, 3e-5) for s in (4, 5, 50, 80)]
    expect_close(got, [3e-4, 3e-4, 3e-5, 3e-5], "the rate at the end of warm-up (steps 4 and 5), at total_steps and after",
                 rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ 9.3 clipping


@pytest.mark.exercise("9.3", "clip_grad_norm")
@pytest.mark.points(2)
def test_clip_grad_norm(impl):
    rng = np.random.default_rng(4)
    grads = {"w": rng.standard_normal((4, 4)) * 3, "b": rng.standard_normal(4)}
    mine = {k: v.copy() for k, v in grads.items()}
    want = {k: v.copy() for k, v in grads.items()}
    total = impl.clip_grad_norm(mine, 1.0)
    want_total = ref_clip(want, 1.0)
    expect_close(total, want_total, "the returned norm (the global norm before clipping)",
                 {"the norm returned is the one after clipping": 1.0})
    per_tensor = {k: v / max(1.0, np.linalg.norm(v) / 1.0) for k, v in grads.items()}
    for k in grads:
        expect_close(mine[k], want[k], f"the clipped gradient {k!r}",
                     {"each tensor is clipped on its own: clip by the norm of all gradients together": per_tensor[k],
                      "the gradients were not scaled in place": grads[k]})


@pytest.mark.exercise("9.3", "clip_grad_norm")
@pytest.mark.points(1)
def test_clip_grad_norm_leaves_small_gradients(impl):
    grads = {"w": np.full((2, 2), 0.1)}
    total = impl.clip_grad_norm(grads, 5.0)
    expect_close(total, 0.2, "the norm of a 2x2 array of 0.1")
    expect_close(grads["w"], np.full((2, 2), 0.1), "a gradient whose norm is below max_norm",
                 {"gradients below max_norm were scaled up: only ever scale down": np.full((2, 2), 0.1) * 5.0 / 0.2})
