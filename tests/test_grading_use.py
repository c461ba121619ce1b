"""use(): the companion model running on a learner's functions (here, the solutions').

A model on every kernel of solutions/ must train exactly like the reference (same losses and
gradients, float64), on plain and on left-padded batches; every plugged function must really
be called; nothing may stay plugged after the with-block; a model built before the block
uses the learner's functions inside it, and one built inside stops using them after it.
Inside a graded test, the ``impl`` fixture's proxies (calls to the learner's worker process) plug
in the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import companion
from companion import feedforward
from companion.grading import use
from companion.grading.adapter import chapter_file, import_by_path
from companion.grading.plug import PAIRS, originals
from companion.kernels import plugged
from companion.loss import cross_entropy_backward, cross_entropy_forward

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
CHAPTERS = ("ch02", "ch03", "ch04", "ch05", "ch07", "ch08")


def solution_kernels() -> dict:
    """Every pluggable kernel that solutions/ defines (exercises and the halves given beside them)."""
    own, found = originals(), {}
    for chapter in CHAPTERS:
        module = import_by_path(chapter_file(SOLUTIONS, chapter))
        found.update({name: getattr(module, name) for name in own if callable(getattr(module, name, None))})
    return found


def test_every_kernel_exercise_can_be_plugged_in_as_a_pair():
    kernels = solution_kernels()
    for backward, forward in PAIRS.items():
        assert forward in kernels and backward in kernels, f"solutions/ lacks {forward} or {backward}"
    assert {"causal_mask", "rope_forward", "sinusoidal_table"} <= set(kernels)


def batch(config, left_padded: bool):
    """(idx, targets, mask, pad_mask): a random batch, or one whose rows are left-padded by
    0, 2 and block_size - 1 tokens (a padding query then sees no key at all)."""
    rng = np.random.default_rng(1)
    B, T = 3, config.block_size
    tokens = rng.integers(0, config.vocab_size, size=(B, T + 1))  # (B, T + 1)
    idx, targets = tokens[:, :-1], tokens[:, 1:]
    if not left_padded:
        return idx, targets, None, None
    real = np.arange(T)[None, :] >= np.array([0, 2, T - 1])[:, None]  # (B, T) True at real tokens
    return idx, targets, real.astype(np.float64), real


def train_losses(config, left_padded=False, steps=6):
    """Losses of a few AdamW steps on one batch, and the gradients of the last step."""
    model = companion.Transformer(config, np.random.default_rng(0))
    opt = companion.AdamW(model.parameters(), model.gradients(), lr=1e-2)
    idx, targets, mask, pad_mask = batch(config, left_padded)
    losses = []
    for _ in range(steps):
        logits = model.forward(idx, pad_mask)  # (B, T, V)
        loss, cache = plugged(cross_entropy_forward)(logits, targets, mask)  # as train.py calls it
        model.zero_grad()
        model.backward(plugged(cross_entropy_backward)(cache))
        grads = {k: g.copy() for k, g in model.gradients().items()}
        opt.step()
        losses.append(loss)
    return losses, grads


def counted(calls, name, fn):
    def wrapper(*args, **kwargs):
        calls[name] += 1
        return fn(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("left_padded", [False, True], ids=["full", "left-padded"])
@pytest.mark.parametrize("overrides", [dict(family="gpt"), dict(family="llama"), dict(family="gpt", positions="sinusoidal")],
                         ids=["gpt", "llama", "sinusoidal"])
def test_model_on_the_solutions_trains_like_the_reference(overrides, left_padded):
    config = companion.preset("tiny", dtype="float64", **overrides)
    reference, ref_grads = train_losses(config, left_padded)
    kernels = solution_kernels()
    calls = {name: 0 for name in kernels}
    with use(**{name: counted(calls, name, fn) for name, fn in kernels.items()}):
        mine, grads = train_losses(config, left_padded)
    assert np.all(np.isfinite(mine)), mine
    np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-12)
    for name, g in ref_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-7, atol=1e-12, err_msg=name)
    assert reference[-1] < reference[0]  # it trains
    used = {"attention_forward", "attention_backward", "causal_mask", "linear_forward", "linear_backward",
            "embedding_forward", "embedding_backward", "cross_entropy_forward", "cross_entropy_backward"}
    used |= {"rope_forward", "rmsnorm_forward", "rmsnorm_backward", "swiglu_forward", "swiglu_backward"} \
        if overrides["family"] == "llama" else {"layernorm_forward", "layernorm_backward", "gelu_forward", "gelu_backward"}
    if overrides.get("positions") == "sinusoidal":
        used.add("sinusoidal_table")
    assert all(calls[n] > 0 for n in used), {n: calls[n] for n in used}


def test_generation_with_a_kv_cache_on_the_solutions_matches_the_reference():
    """Decoding with a KV cache calls attention with T_q = 1 < T_k: the solutions must agree."""
    from companion.generate import generate_batch

    config = companion.preset("tiny", dtype="float64", family="llama")
    model = companion.Transformer(config, np.random.default_rng(0))
    for p in model.parameters().values():
        p += np.random.default_rng(1).normal(0, 0.3, p.shape)  # varied predictions
    prompts = np.array([[1, 2, 3], [4, 5, 6]])
    reference = generate_batch(model, prompts, 12, greedy=True)
    with use(**solution_kernels()):
        mine = generate_batch(model, prompts, 12, greedy=True)
    np.testing.assert_array_equal(mine, reference)


def test_nothing_stays_plugged_after_the_block_even_after_an_error():
    own = originals()

    def broken(*args):
        raise RuntimeError("learner bug")

    with pytest.raises(RuntimeError, match="learner bug"):
        with use(attention_forward=broken, rope_forward=broken):
            assert plugged(own["attention_forward"]) is not own["attention_forward"]
            assert plugged(own["rope_forward"]) is broken
            companion.Transformer(companion.preset("tiny"), np.random.default_rng(0)).forward(np.zeros((1, 3), dtype=np.int64))
    assert all(plugged(fn) is fn for fn in own.values())
    # no module attribute is ever rebound
    from companion import attention, positions
    assert attention.attention_forward is own["attention_forward"] and positions.rope_forward is own["rope_forward"]
    assert feedforward.ACTIVATIONS["gelu"][0] is feedforward.gelu_forward


def test_a_model_built_before_the_block_uses_the_learners_function_inside_it():
    model = companion.Transformer(companion.preset("tiny", dtype="float64"), np.random.default_rng(0))
    idx = np.array([[1, 2, 3, 4]])
    calls = []

    def my_gelu(x):
        calls.append(x.shape)
        return feedforward.gelu_forward(x)

    with use(gelu_forward=my_gelu):
        model.forward(idx)
    assert len(calls) == model.config.n_layer
    model.forward(idx)
    assert len(calls) == model.config.n_layer  # and not after it


def test_a_model_built_inside_the_block_stops_using_the_learners_function_after_it():
    calls = []

    def my_gelu(x):
        calls.append(1)
        return feedforward.gelu_forward(x)

    with use(gelu_forward=my_gelu):
        model = companion.Transformer(companion.preset("tiny", dtype="float64"), np.random.default_rng(0))
        model.forward(np.array([[1, 2]]))
    inside = len(calls)
    assert inside == model.config.n_layer
    model.forward(np.array([[1, 2]]))
    assert len(calls) == inside


def test_blocks_nest_and_other_threads_do_not_see_them():
    own = originals()
    f, g = (lambda x: own["gelu_forward"](x)), (lambda x: own["gelu_forward"](x))
    seen = []
    with use(gelu_forward=f):
        outer = plugged(own["gelu_forward"])
        with use(gelu_forward=g):
            inner = plugged(own["gelu_forward"])
            thread = threading.Thread(target=lambda: seen.append(plugged(own["gelu_forward"])))
            thread.start()
            thread.join()
        assert plugged(own["gelu_forward"]) is outer
    assert outer.__wrapped__ is f and inner.__wrapped__ is g  # a lone forward, paired with the companion's cache
    assert seen == [own["gelu_forward"]]


def test_a_lone_forward_gets_the_companions_cache_and_a_lone_backward_is_refused():
    config = companion.preset("tiny", dtype="float64")
    idx = np.array([[3, 1, 4, 1]])

    def opaque_gelu(x):  # right output, a cache only its own backward could read
        return feedforward.gelu_forward(x)[0], "my own cache"

    model = companion.Transformer(config, np.random.default_rng(0))
    with use(gelu_forward=opaque_gelu):
        logits = model.forward(idx)
        model.backward(np.ones_like(logits))  # the companion's gelu_backward never sees "my own cache"
    with pytest.raises(ValueError, match=r"needs its forward too: use\(layernorm_forward=\.\.\., layernorm_backward"):
        with use(layernorm_backward=feedforward.gelu_backward):
            pass
    with pytest.raises(TypeError, match=r"your gelu_forward must return \(out, cache\)"):
        with use(gelu_forward=lambda x: x):
            model.forward(idx)


def test_use_names_what_it_cannot_plug():
    with pytest.raises(ValueError, match="pluggable functions"):
        with use(attention_fwd=print):
            pass
    with pytest.raises(TypeError, match="needs a function"):
        with use(attention_forward=3):
            pass


PROXY_TEST = '''
import numpy as np
import pytest

import companion
from companion.grading import use
from companion.grading.adapter import LearnerFunction
from companion.kernels import plugged

CHAPTER = "ch03"


@pytest.mark.exercise("3.2", "attention_forward")
@pytest.mark.points(1)
def test_model_on_the_workers_attention(impl):
    assert isinstance(impl.attention_forward, LearnerFunction)  # a proxy: the learner's code runs in a worker
    config = companion.preset("tiny", dtype="float64")
    model = companion.Transformer(config, np.random.default_rng(0))  # built outside the block
    rng = np.random.default_rng(1)
    idx = rng.integers(0, config.vocab_size, size=(2, config.block_size))
    pad_mask = np.arange(config.block_size)[None, :] >= np.array([0, 3])[:, None]  # the second row left-padded
    want = model.forward(idx, pad_mask)
    dlogits = rng.standard_normal(want.shape) * pad_mask[..., None]
    model.zero_grad()
    model.backward(dlogits)
    want_grads = {k: g.copy() for k, g in model.gradients().items()}
    calls = []

    def counted(name):
        proxy = getattr(impl, name)
        return lambda *args, **kwargs: calls.append(name) or proxy(*args, **kwargs)

    with use(attention_forward=counted("attention_forward"), attention_backward=counted("attention_backward")):
        got = model.forward(idx, pad_mask)
        model.zero_grad()
        model.backward(dlogits)
    assert calls.count("attention_forward") == config.n_layer and calls.count("attention_backward") == config.n_layer
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    for name, g in want_grads.items():
        np.testing.assert_allclose(model.gradients()[name], g, rtol=1e-7, atol=1e-12, err_msg=name)
    own = companion.attention.attention_forward
    assert plugged(own) is own  # nothing left plugged
'''


def test_use_plugs_the_graders_worker_proxies_into_the_model(tmp_path):
    """``use(attention_forward=impl.attention_forward, ...)`` inside a graded test: each call
    from the model goes to the learner's worker and back (cache included), and the model
    matches the reference, on a left-padded batch too."""
    root = Path(__file__).resolve().parents[1]
    graded = tmp_path / "tests" / "exercises"
    graded.mkdir(parents=True)
    for helper in (root / "tests").glob("*.py"):
        if not helper.name.startswith("test_"):
            shutil.copy(helper, tmp_path / "tests")
    shutil.copy(root / "tests" / "exercises" / "conftest.py", graded)
    (graded / "test_ch03_proxy.py").write_text(PROXY_TEST)
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "300"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "--impl", str(SOLUTIONS), str(graded / "test_ch03_proxy.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]
