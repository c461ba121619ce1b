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
    """The optimizer's arrays are the model's parameters: they must change in place."""
    params, grads_seq = problem(1)
    arrays = dict(params)  # the arrays the model holds
    before = {k: v.copy() for k, v in params.items()}
    impl.adamw_step(params, grads_seq[0], {}, 1, **HP)
    want = run_reference(AdamW, problem(1)[0], grads_seq[:1], **HP)
    for name, array in arrays.items():
        rebound = params[name] is not array
        if rebound and np.array_equal(array, before[name]):
            expect(False, f"adamw_step replaced params[{name!r}] with a new array and left the model's array "
                          f"unchanged: update it in place (p -= ...), the model keeps the original array")
        expect(not rebound, f"adamw_step replaced params[{name!r}] with a new array: update it in place (p -= ...)")
        expect_close(array, want[name], f"parameter {name!r} after one AdamW step", rtol=1e-7, atol=1e-10)


@pytest.mark.exercise("9.1", "adamw_step")
@pytest.mark.points(1)
def test_adamw_decays_by_shape_not_by_name(impl):
    """Names as a model gives them, shapes drawn: a norm's gain is called 'w' like every weight
    matrix (the embedding table 'wte.w' included), so only the shape tells them apart."""
    rng = np.random.default_rng(91)
    shapes = {"blocks.0.norm1.w": (int(rng.integers(2, 7)),), "wte.w": tuple(int(n) for n in rng.integers(2, 6, size=2)),
              "blocks.0.attn.c_attn.w": tuple(int(n) for n in rng.integers(2, 6, size=2)), "head.b": (int(rng.integers(2, 7)),)}
    params = {k: rng.standard_normal(shape) for k, shape in shapes.items()}
    grads_seq = [{k: rng.standard_normal(shape) for k, shape in shapes.items()} for _ in range(3)]
    mine = {k: v.copy() for k, v in params.items()}
    state = {}
    for t, g in enumerate(grads_seq, start=1):
        impl.adamw_step(mine, g, state, t, **HP)
    want = run_reference(AdamW, params, grads_seq, **HP)
    decay_all = run_reference(DecayAll, params, grads_seq, **HP)
    no_decay = run_reference(AdamW, params, grads_seq, **{**HP, "weight_decay": 0.0})
    for name in shapes:
        bugs = {"weight decay is chosen by name: decay exactly the parameters with ndim >= 2": decay_all[name]
                if params[name].ndim == 1 else no_decay[name]}
        expect_close(mine[name], want[name], f"parameter {name!r} of shape {params[name].shape} after 3 AdamW steps",
                     bugs, rtol=1e-7, atol=1e-10)


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


def clip_problem(seed):
    """Gradients of drawn shapes, in a dict like the model's ``gradients()``."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(int(n) for n in rng.integers(1, 6, size=int(rng.integers(1, 4)))) for _ in range(int(rng.integers(2, 5)))]
    return {f"g{i}": rng.standard_normal(shape) * 3 for i, shape in enumerate(shapes)}


def expect_clipped(impl, grads, max_norm):
    """The learner's clipping against the reference; the arrays must be scaled in place."""
    arrays = dict(grads)  # the arrays the model (and its optimizer) hold
    before = {k: v.copy() for k, v in grads.items()}
    want = {k: v.copy() for k, v in grads.items()}
    want_total = ref_clip(want, max_norm)
    total = impl.clip_grad_norm(grads, max_norm)
    expect_close(total, want_total, "the returned norm (the global norm before clipping)",
                 {"the norm returned is the one after clipping": min(want_total, max_norm)})
    rebound = sorted(k for k in arrays if grads.get(k) is not arrays[k])
    expect(not rebound, f"clip_grad_norm replaced grads{rebound} with new arrays instead of scaling the arrays in "
                        f"place (g *= scale): the model's gradients stay unclipped")
    per_tensor = {k: v * min(1.0, max_norm / (np.linalg.norm(v) + 1e-6)) for k, v in before.items()}
    for k, array in arrays.items():
        expect_close(array, want[k], f"the clipped gradient {k!r} (shape {array.shape})",
                     {"each tensor is clipped on its own: clip by the norm of all gradients together": per_tensor[k],
                      "the gradients were not scaled at all": before[k]})


@pytest.mark.exercise("9.3", "clip_grad_norm")
@pytest.mark.points(1)
@pytest.mark.parametrize("seed", [4, 5])
def test_clip_grad_norm(impl, seed):
    expect_clipped(impl, clip_problem(seed), 1.0)


@pytest.mark.exercise("9.3", "clip_grad_norm")
@pytest.mark.points(1)
def test_clip_grad_norm_leaves_small_gradients(impl):
    grads = {"w": np.full((2, 2), 0.1)}
    w = grads["w"]
    total = impl.clip_grad_norm(grads, 5.0)
    expect_close(total, 0.2, "the norm of a 2x2 array of 0.1")
    expect_close(grads["w"], np.full((2, 2), 0.1), "a gradient whose norm is below max_norm",
                 {"gradients below max_norm were scaled up: only ever scale down": np.full((2, 2), 0.1) * 5.0 / 0.2})
    expect(grads["w"] is w, "clip_grad_norm replaced grads['w'] with a new array: leave it (or scale it in place)")
