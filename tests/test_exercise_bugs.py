"""Wrong solutions must fail the graded tests, with a message that names the bug.

Each case below is a mistake a learner makes (two of them once scored full marks: an attention
that ignores its ``mask`` argument, and a clipping function that rebinds dict entries). The
graded test functions are called directly with an ``impl`` whose one function is the buggy
version (the others are the solutions'), and the failure message is checked. Two tests take the
real path: one runs pytest with a ``--impl`` folder of buggy files, the other grades buggy files
with the real grader, whose workers run them in processes of their own. A sweep plugs functions that
return junk (None, a number, a wrong tuple, a wrongly shaped array) into every graded test:
each must fail with a message, never crash with an error of its own.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from companion.grading.adapter import chapter_file, import_by_path
from companion.grading.messages import learner_line, missing_function, returned

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
GRADED = ROOT / "tests" / "exercises"
Failed = pytest.fail.Exception


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")  # graded marks: see their conftest


@functools.cache
def graded(chapter: str):
    """The graded test module of a chapter, imported under a private name."""
    path = next(GRADED.glob(f"test_{chapter}_*.py"))
    spec = importlib.util.spec_from_file_location(f"_graded_{chapter}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Impl:
    """What the ``impl`` fixture gives a test: the chapter's solutions, some replaced."""

    def __init__(self, chapter: str, **replaced):
        self._module = import_by_path(chapter_file(SOLUTIONS, chapter))
        self._replaced = replaced

    def __getattr__(self, name):
        fn = self._replaced.get(name) or getattr(self._module, name)
        return lambda *args, **kwargs: returned(name, fn(*args, **kwargs))


def outcome(test, impl, **params) -> str | None:
    """None if the graded test passes, else its failure message."""
    try:
        test(impl, **params)
    except Failed as failure:
        return str(failure.msg)
    return None


# ---------------------------------------------------------------- wrong attentions


def softmax_rows(s):
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    return e / e.sum(-1, keepdims=True)


def attention_with_own_square_mask(q, k, v, mask):
    """Ignores ``mask`` and rebuilds a causal one with the queries at positions 0..T_q-1."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = (q @ k.swapaxes(-2, -1)) * scale
    att = softmax_rows(np.where(np.tri(q.shape[-2], k.shape[-2], dtype=bool), s, -np.inf))
    return att @ v, (q, k, v, att, scale)


def attention_with_own_causal_mask(q, k, v, mask):
    """Ignores ``mask`` and rebuilds the right causal mask: padding is never hidden."""
    T_q, T_k = q.shape[-2], k.shape[-2]
    own = np.arange(T_k)[None, :] <= np.arange(T_k - T_q, T_k)[:, None]
    scale = 1.0 / math.sqrt(q.shape[-1])
    att = softmax_rows(np.where(own, (q @ k.swapaxes(-2, -1)) * scale, -np.inf))
    return att @ v, (q, k, v, att, scale)


def attention_without_guard(q, k, v, mask):
    """Right, except that a query that may see no key divides 0 by 0."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    with np.errstate(all="ignore"):
        att = softmax_rows(np.where(mask, (q @ k.swapaxes(-2, -1)) * scale, -np.inf))
    return att @ v, (q, k, v, att, scale)


def test_an_attention_that_ignores_its_mask_fails_on_kv_cache_and_padding_masks():
    ch03 = graded("ch03")
    impl = Impl("ch03", attention_forward=attention_with_own_square_mask)
    assert outcome(ch03.test_attention_forward_matches_reference, impl) is None  # the square causal case passes...
    for seed in (32, 33):  # ...a KV-cache step does not
        message = outcome(ch03.test_attention_forward_kv_cache_step, impl, seed=seed)
        assert message and "the mask argument is ignored and a causal mask is rebuilt inside" in message, message
        assert "KV cache" in message
    message = outcome(ch03.test_attention_forward_left_padded_batch, impl)
    assert message and "the mask argument is ignored" in message, message

    impl = Impl("ch03", attention_forward=attention_with_own_causal_mask)
    assert outcome(ch03.test_attention_forward_kv_cache_step, impl, seed=32) is None
    message = outcome(ch03.test_attention_forward_padding_mask, impl)
    assert message and "padding keys leak into the output" in message, message


def test_an_attention_without_the_fully_masked_row_guard_is_told_about_nan():
    ch03 = graded("ch03")
    impl = Impl("ch03", attention_forward=attention_without_guard)
    assert outcome(ch03.test_attention_forward_kv_cache_step, impl, seed=32) is None
    message = outcome(ch03.test_attention_forward_left_padded_batch, impl)
    assert message and "NaN where a query may see no key" in message and "all-zero weights" in message, message


# ---------------------------------------------------------------- in-place contracts


def clip_by_rebinding(grads, max_norm):
    total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    if total > max_norm:
        for name, g in grads.items():
            grads[name] = g * (max_norm / (total + 1e-6))  # a new array: the model's stays unclipped
    return total


def adamw_by_rebinding(params, grads, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    solution = import_by_path(chapter_file(SOLUTIONS, "ch09"))
    copies = {k: v.copy() for k, v in params.items()}
    solution.adamw_step(copies, grads, state, t, lr, betas, eps, weight_decay)
    params.update(copies)  # new arrays in the dict; the model's own arrays are untouched


def adamw_without_bias_correction(params, grads, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    for name, p in params.items():
        s = state.setdefault(name, {"m": np.zeros_like(p), "v": np.zeros_like(p)})
        if p.ndim >= 2:
            p -= lr * weight_decay * p
        s["m"] = betas[0] * s["m"] + (1 - betas[0]) * grads[name]
        s["v"] = betas[1] * s["v"] + (1 - betas[1]) * grads[name] ** 2
        p -= lr * s["m"] / (np.sqrt(s["v"]) + eps)


def adamw_decaying_by_name(params, grads, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    for name, p in params.items():
        s = state.setdefault(name, {"m": np.zeros_like(p), "v": np.zeros_like(p)})
        if name.endswith("w"):  # "the weights": but a norm's gain is called w too
            p -= lr * weight_decay * p
        s["m"] = betas[0] * s["m"] + (1 - betas[0]) * grads[name]
        s["v"] = betas[1] * s["v"] + (1 - betas[1]) * grads[name] ** 2
        p -= lr * (s["m"] / (1 - betas[0] ** t)) / (np.sqrt(s["v"] / (1 - betas[1] ** t)) + eps)


def test_an_adamw_that_decays_by_name_fails():
    ch09 = graded("ch09")
    impl = Impl("ch09", adamw_step=adamw_decaying_by_name)
    assert outcome(ch09.test_adamw_matches_reference, impl) is None  # the names 'w', 'b', 'gain' let it through...
    message = outcome(ch09.test_adamw_decays_by_shape_not_by_name, impl)  # ...a model's names do not
    assert message and "weight decay is chosen by name" in message, message


def test_a_clipping_that_rebinds_dict_entries_fails():
    ch09 = graded("ch09")
    impl = Impl("ch09", clip_grad_norm=clip_by_rebinding)
    for seed in (4, 5):
        message = outcome(ch09.test_clip_grad_norm, impl, seed=seed)
        assert message and "replaced grads[" in message and "scaling the arrays in place" in message, message
        assert "the model's gradients stay unclipped" in message


def test_in_place_is_named_only_when_it_is_the_bug():
    ch09 = graded("ch09")
    message = outcome(ch09.test_adamw_updates_in_place, Impl("ch09", adamw_step=adamw_by_rebinding))
    assert message and "replaced params['w'] with a new array" in message and "in place" in message, message
    message = outcome(ch09.test_adamw_updates_in_place, Impl("ch09", adamw_step=adamw_without_bias_correction))
    assert message and "in place" not in message and "does not match the reference" in message, message


# ---------------------------------------------------------------- wrong data-parallel shares (11.5)


def share_scaled(scale, masked=True):
    """A share_loss_and_dlogits whose dlogits are the share's own mean gradient times
    scale(b, T, n_share, n_total) (the right scale is n_share / n_total)."""
    from companion.loss import cross_entropy_backward, cross_entropy_forward

    def share(logits, targets, mask, n_total):
        b, T, _ = logits.shape
        n_share = mask.sum()
        loss, cache = cross_entropy_forward(logits, targets, mask if masked else None)
        dlogits = cross_entropy_backward(cache) * scale(b, T, n_share if masked else b * T, n_total)
        return loss * n_share, dlogits
    return share


def share_with_mean_loss(logits, targets, mask, n_total):
    """Right dlogits, but the share's mean loss where its sum is asked for."""
    loss_sum, dlogits = share_scaled(lambda b, T, n, n_total: n / n_total)(logits, targets, mask, n_total)
    return loss_sum / mask.sum(), dlogits


SHARE_BUGS = {  # a wrong share_loss_and_dlogits -> words its failure must contain
    "no scaling": (share_scaled(lambda b, T, n, n_total: 1.0), "no scaling"),
    "halved": (share_scaled(lambda b, T, n, n_total: 0.5), "divided by the number of shares"),
    "by positions": (share_scaled(lambda b, T, n, n_total: b * T / n_total), "share's positions b*T"),
    "mask ignored": (share_scaled(lambda b, T, n, n_total: n / n_total, masked=False), "the mask is ignored"),
    "no division": (share_scaled(lambda b, T, n, n_total: n), "no division at all"),
    "by rows": (share_scaled(lambda b, T, n, n_total: b / 5), "share's rows, b / B"),  # B = 5
    "twice divided": (share_scaled(lambda b, T, n, n_total: 1 / n_total), "a division by n_share and by n_total"),
    "sign": (share_scaled(lambda b, T, n, n_total: -n / n_total), "the sign is flipped"),
}


@pytest.mark.parametrize("bug", list(SHARE_BUGS))
def test_a_wrongly_scaled_share_gradient_is_named(bug):
    ch11 = graded("ch11")
    fn, words = SHARE_BUGS[bug]
    message = outcome(ch11.test_shares_dlogits_concatenate_to_the_whole_batch_gradient,
                      Impl("ch11", share_loss_and_dlogits=fn))
    assert message and words in message, message


def test_a_share_that_returns_its_mean_loss_or_divides_by_its_own_empty_count_fails():
    ch11 = graded("ch11")
    message = outcome(ch11.test_shares_loss_sums_give_the_whole_batch_mean,
                      Impl("ch11", share_loss_and_dlogits=share_with_mean_loss))
    assert message and "the share's mean loss, not its sum" in message, message

    def own_count(logits, targets, mask, n_total):  # no guard: its own mean, 0 / 0 on an empty share
        with np.errstate(all="ignore"):
            nll = -np.take_along_axis(logits - np.log(np.exp(logits).sum(-1, keepdims=True)), targets[..., None], -1)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            p = e / e.sum(-1, keepdims=True)
            p[np.arange(len(p))[:, None], np.arange(p.shape[1]), targets] -= 1.0
            n_share = mask.sum()
            mean = float((nll[..., 0] * mask).sum() / n_share)
            return mean * n_share, p * (mask / n_share)[..., None] * (n_share / n_total)
    impl = Impl("ch11", share_loss_and_dlogits=own_count)
    assert outcome(ch11.test_shares_dlogits_concatenate_to_the_whole_batch_gradient, impl) is None
    message = outcome(ch11.test_a_share_that_counts_no_token, impl)
    assert message and "NaN or inf" in message and "must never be a divisor" in message, message


# ---------------------------------------------------------------- messages


def test_a_function_that_returns_none_is_told_so():
    ch04 = graded("ch04")

    def rmsnorm_forward(x, w, eps=1e-5):
        rrms = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        out = x * rrms * w  # noqa: F841 - computed, never returned: the bug this test is about

    message = outcome(ch04.test_rmsnorm_forward_matches_reference, Impl("ch04", rmsnorm_forward=rmsnorm_forward))
    assert message == "your rmsnorm_forward returned None: did you forget `return`?"
    assert outcome(graded("ch09").test_adamw_matches_reference, Impl("ch09")) is None  # adamw_step returns nothing, rightly


def test_the_learners_own_line_is_named_not_numpys(tmp_path):
    learner = tmp_path / "ch03_attention.py"
    learner.write_text("import numpy as np\n\n\ndef stack_them(a, b):\n    return np.stack([a, b])  # shapes differ\n")
    fn = import_by_path(learner).stack_them
    with pytest.raises(ValueError) as info:
        fn(np.zeros(2), np.zeros(3))
    line = learner_line(info.value, fn)
    assert line == " (at ch03_attention.py line 5: return np.stack([a, b])  # shapes differ)", line


def test_a_renamed_function_is_named_by_its_new_name():
    old_file = SimpleNamespace(cross_entropy=lambda *a: 0.0, cross_entropy_grad=lambda *a: 0.0)
    message = missing_function("ch07", "cross_entropy_forward", old_file)
    assert "Your file defines cross_entropy(...): this exercise's function is now called cross_entropy_forward" in message
    assert "returns (loss, cache)" in message and "CHANGELOG.md" in message
    assert "now called" not in missing_function("ch07", "cross_entropy_forward", SimpleNamespace())
    message = missing_function("ch06", "pick_next", SimpleNamespace(sample=print))
    assert "Your file defines sample(...): this exercise's function is now called pick_next" in message
    from companion.grading.adapter import RENAMED  # the grader's table: new name -> old name

    assert RENAMED == {"next_token_probs": "sampling_probs", "pick_next": "sample",
                       "cross_entropy_forward": "cross_entropy", "cross_entropy_backward": "cross_entropy_grad"}


JUNK = {
    "None": None,
    "a number": 0.0,
    "an empty tuple": (),
    "a wrongly shaped array": np.ones((3, 3)),
    "a tuple of five wrong things": (np.ones(2), None, "x", 3, np.ones((2, 2))),
}


def graded_tests():
    for chapter in sorted(p.name[:4] for p in (Path(__file__).resolve().parents[1] / "solutions").glob("ch[0-9][0-9]_*.py")):
        module = graded(chapter)
        for name in dir(module):
            test = getattr(module, name)
            if name.startswith("test_") and callable(test):
                marks = {m.name: m for m in getattr(test, "pytestmark", [])}
                params = marks["parametrize"].args if "parametrize" in marks else None
                yield chapter, name, test, params


@pytest.mark.parametrize("junk", list(JUNK), ids=list(JUNK))
def test_wrong_types_and_shapes_fail_with_a_message_never_an_error(junk):
    problems = []
    for chapter, name, test, params in graded_tests():
        junk_impl = _JunkImpl(JUNK[junk])
        kwargs_list = [{}]
        if params:
            names = [n.strip() for n in params[0].split(",")]
            value = params[1][0]
            kwargs_list = [dict(zip(names, value if len(names) > 1 else (value,)))]
        for kwargs in kwargs_list:
            try:
                message = outcome(test, junk_impl, **kwargs)
            except Exception as err:  # the test crashed on the learner's output
                problems.append(f"{chapter}::{name} raised {type(err).__name__}: {err}")
                continue
            if message is None:
                problems.append(f"{chapter}::{name} passed with {junk}")
    assert not problems, "\n".join(problems)


class _JunkImpl:
    def __init__(self, value):
        self._value = value

    def __getattr__(self, name):
        return lambda *args, **kwargs: returned(name, self._value)


# ---------------------------------------------------------------- the real pytest path


def with_body(text: str, exercise: str, body: str) -> str:
    """A solution file's text with the answer of ``exercise`` replaced by ``body``."""
    pattern = re.compile(rf"( *)# BEGIN SOLUTION {re.escape(exercise)}\n.*?# END SOLUTION\n", re.S)
    match = pattern.search(text)
    assert match, exercise
    indent = match.group(1)
    return text[:match.start()] + "".join(indent + line + "\n" for line in body.strip("\n").splitlines()) + text[match.end():]


def test_buggy_files_fail_through_pytest_with_the_bug_named(tmp_path):
    folder = tmp_path / "buggy"
    shutil.copytree(SOLUTIONS, folder)
    ch03 = folder / "ch03_attention.py"
    ch03.write_text(with_body(ch03.read_text(), "3.2", """
scale = 1.0 / math.sqrt(q.shape[-1])
s = (q @ k.swapaxes(-2, -1)) * scale
s = np.where(np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool)), s, -np.inf)  # my own mask
e = np.exp(s - s.max(axis=-1, keepdims=True))
att = e / e.sum(axis=-1, keepdims=True)
return att @ v, (q, k, v, att, scale)
"""))
    ch09 = folder / "ch09_optimizers.py"
    ch09.write_text(with_body(ch09.read_text(), "9.3", """
total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
if total > max_norm:
    for name in grads:
        grads[name] = grads[name] * max_norm / (total + 1e-6)
return total
"""))
    ch07 = folder / "ch07_loss.py"
    ch07.write_text(ch07.read_text().replace("def cross_entropy_forward(", "def cross_entropy("))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--impl", str(folder),
                           str(GRADED / "test_ch03_attention.py"), str(GRADED / "test_ch07_loss.py"),
                           str(GRADED / "test_ch09_optimizers.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "the mask argument is ignored and a causal mask is rebuilt inside" in out, out[-3000:]
    assert "clip_grad_norm replaced grads[" in out, out[-3000:]
    assert "this exercise's function is now called cross_entropy_forward" in out, out[-3000:]
    # the square causal mask alone would have let it through, as it once did
    assert "PASSED tests/exercises/test_ch03_attention.py::test_attention_forward_matches_reference" in out, out[-3000:]
    assert "FAILED tests/exercises/test_ch03_attention.py::test_attention_forward_kv_cache_step" in out, out[-3000:]


def test_wrong_solutions_fail_through_the_grader_and_its_workers(tmp_path):
    """The same bugs graded by the real grader (the learner's file runs in worker processes):
    the messages (a forgotten return, the learner's own line, in-place contracts, the guard's
    NaN) come back across the process boundary unchanged."""
    from companion.grading.grader import run_tests

    folder = tmp_path / "buggy"
    folder.mkdir()
    for chapter in ("ch03", "ch04", "ch05", "ch09"):
        shutil.copy(chapter_file(SOLUTIONS, chapter), folder)
    appended = {  # a later def replaces the solution's
        "ch03": "\n\n" + "".join(inspect.getsource(f) for f in (softmax_rows, attention_without_guard))
                + "\nattention_forward = attention_without_guard\n",
        "ch04": "\n\ndef rmsnorm_forward(x, w, eps=1e-5):\n"
                "    rrms = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)\n"
                "    out = x * rrms * w  # computed, never returned\n",
        "ch05": "\n\ndef gelu_forward(x):\n    return np.stack([x, x[..., :1]]), None  # shapes differ\n",
        "ch09": "\n\n_adamw_step = adamw_step\n\n\n"
                "def adamw_step(params, grads, state, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):\n"
                "    copies = {k: v.copy() for k, v in params.items()}\n"
                "    _adamw_step(copies, grads, state, t, lr, betas, eps, weight_decay)\n"
                "    params.update(copies)  # new arrays in the dict; the model's own arrays are untouched\n",
    }
    for chapter, text in appended.items():
        path = chapter_file(folder, chapter)
        path.write_text(path.read_text() + text)
    results, _ = run_tests(list(appended), folder, root=ROOT)
    by_test = {r.nodeid.split("::")[-1]: r for r in results}

    def message(test):
        result = by_test[test]
        assert result.outcome == "failed", (test, result.outcome, result.message)
        return result.message

    assert by_test["test_attention_forward_kv_cache_step[32]"].outcome == "passed"
    m = message("test_attention_forward_left_padded_batch")
    assert "NaN where a query may see no key" in m and "all-zero weights" in m, m
    assert message("test_rmsnorm_forward_matches_reference") == \
        "your rmsnorm_forward returned None: did you forget `return`?"
    m = message("test_gelu_forward")
    assert m.startswith("your gelu_forward raised ValueError") and "(at ch05_feedforward.py line " in m, m
    assert m.endswith(": return np.stack([x, x[..., :1]]), None  # shapes differ)"), m
    m = message("test_adamw_updates_in_place")
    assert "replaced params['w'] with a new array" in m and "in place" in m, m
    assert by_test["test_adamw_matches_reference"].outcome == "passed", by_test["test_adamw_matches_reference"].message
    assert by_test["test_lr_schedule"].outcome == "passed"  # the other exercises of the file keep their points
