"""What the grader tells a learner: renamed functions, a forgotten ``return``, the learner's
own line in a traceback, and type/shape checks that fail with a message (never a crash).

    OLD_NAMES        an exercise's former function name -> its name now (CHANGELOG.md)
    missing_function the message when a chapter file lacks a function (names a renamed one)
    returned         fails "your X returned None: did you forget `return`?"
    learner_line     " (at ch03_attention.py line 42: s = q @ k)": the learner's frame, not NumPy's
    expect_tuple     a result that must be a tuple of n things: fail with a message if it is not
    expect_array     a result that must be an array of a given shape: idem
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
import pytest

# chapter -> {the function's former name: (its name now, what else changed)}
OLD_NAMES = {
    "ch06": {"sampling_probs": ("next_token_probs", ""),
             "sample": ("pick_next", "")},
    "ch07": {"cross_entropy": ("cross_entropy_forward", "; it now returns (loss, cache)"),
             "cross_entropy_grad": ("cross_entropy_backward", "; it now takes the cache of cross_entropy_forward")},
}

# functions whose contract is to return nothing (they update their arguments in place)
RETURNS_NOTHING = {"adamw_step"}


def missing_function(chapter: str, name: str, module) -> str:
    """The failure message for a chapter file that defines no function ``name``."""
    message = f"the {chapter} exercises must define a function {name}(...); none found"
    for old, (new, change) in OLD_NAMES.get(chapter, {}).items():
        if new == name and callable(getattr(module, old, None)):
            message += (f". Your file defines {old}(...): this exercise's function is now called {name}"
                        f"{change} (see CHANGELOG.md)")
    return message


def returned(name: str, value):
    """``value``, unless a function that must return something returned None."""
    if value is None and name not in RETURNS_NOTHING:
        pytest.fail(f"your {name} returned None: did you forget `return`?", pytrace=False)
    return value


def learner_line(err: BaseException, fn=None) -> str:
    """' (at ch03_attention.py line 42: s = q @ k)' for the deepest frame in the learner's own
    code: the file ``fn`` was defined in (a notebook cell included), never NumPy's or ours."""
    frames = traceback.extract_tb(err.__traceback__)
    home = getattr(getattr(fn, "__code__", None), "co_filename", None)
    mine = [f for f in frames if f.filename == home]
    if not mine:  # the learner's helper in another file: anything outside the libraries
        mine = [f for f in frames if not _library(f.filename)]
    if not mine:
        return ""
    f = mine[-1]
    return f" (at {Path(f.filename).name} line {f.lineno}: {(f.line or '').strip()})"


def _library(filename: str) -> bool:
    parts = Path(filename).parts
    return ("companion" in parts or "site-packages" in parts or "dist-packages" in parts
            or "_pytest" in filename or "pluggy" in filename or filename.startswith("<frozen"))


def expect_tuple(value, n: int, what: str) -> tuple:
    """``value`` as a tuple of ``n`` items; else fail with ``what`` ("attention_forward must
    return (out, cache)") and what came back."""
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"a {type(value).__name__} of {len(value)} items" if isinstance(value, (tuple, list)) \
            else ("None" if value is None else f"a {type(value).__name__}")
        pytest.fail(f"{what}, got {got}", pytrace=False)
    return tuple(value)


def expect_array(value, what: str, shape: tuple | None = None, dtype=float) -> np.ndarray:
    """``value`` as an array of ``dtype`` (float; None keeps its own, e.g. for token ids), of
    ``shape`` when given; else fail with a message."""
    if value is None:
        pytest.fail(f"{what} is None: did you forget `return`?", pytrace=False)
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        pytest.fail(f"{what} should be an array of numbers, got {type(value).__name__}", pytrace=False)
    if shape is not None and array.shape != tuple(shape):
        pytest.fail(f"{what} has shape {array.shape}, expected {tuple(shape)}", pytrace=False)
    return array
