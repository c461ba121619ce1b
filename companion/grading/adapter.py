"""The one door between the graded tests and a learner's code (CS336's tests/adapters.py idea).

A test never imports ``exercises/ch03_attention.py`` itself. It asks the ``impl`` fixture
for a function by name; the fixture finds the chapter's module in the folder chosen with
``pytest --impl exercises`` (default ``solutions``), or, under ``check("3.2")`` in a notebook,
in the notebook's own namespace. Every call then goes through ``LearnerFunction``, which turns
what a learner's code can do wrong into one clear failure of that test, never a crash of the
grader:

    NotImplementedError        -> "not yet implemented: Exercise 3.2: attention_forward"
    any other exception        -> "your attention_forward raised ValueError: ..." (with the line)

``expect_close`` then compares a result with the reference. Before the bare "mismatch" it
checks type, shape and NaN/inf, and it tries the deliberately buggy variants the test
computed (``bugs={"the mask lets future tokens through": ...}``): if the learner's answer
matches one of them, the failure names that bug. Every message names the tolerance used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from .messages import learner_line, missing_function, returned

NOT_IMPLEMENTED = "not yet implemented"
NAMESPACES = pytest.StashKey[dict]()  # chapter -> a notebook's namespace, set by check()
_MODULES = pytest.StashKey[dict]()  # per pytest session: chapter file -> imported module


def chapter_file(folder: Path, chapter: str) -> Path:
    """``folder/chNN_topic.py`` for chapter 'ch03' (the one file whose name starts with it)."""
    matches = sorted(folder.glob(f"{chapter}_*.py"))
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches) or "none"
        raise FileNotFoundError(f"expected exactly one {chapter}_*.py in {folder}, found {found}")
    return matches[0]


def resolve_impl(value: str | Path, root: Path) -> Path:
    """The --impl folder: a path as given, or relative to the repository root."""
    for candidate in (Path(value), root / value):
        if candidate.is_dir():
            return candidate.resolve()
    places = sorted({str(Path.cwd()), str(root)})
    raise FileNotFoundError(f"--impl {value}: no such folder (looked in {' and '.join(places)})")


def import_by_path(path: Path) -> ModuleType:
    """Import a learner's file under a private name; it is never added to sys.modules, so
    a second folder's file of the same name cannot shadow it."""
    name = f"_learner_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_chapter(config: pytest.Config, chapter: str):
    """The learner's module (or notebook namespace) for chapter 'ch03'."""
    namespaces = config.stash.get(NAMESPACES, {})
    if chapter in namespaces:
        return namespaces[chapter]
    cache = config.stash.setdefault(_MODULES, {})
    if chapter not in cache:
        folder = resolve_impl(config.getoption("impl", default="solutions"), Path(config.rootpath))
        path = chapter_file(folder, chapter)
        try:
            cache[chapter] = import_by_path(path)
        except Exception as err:  # a syntax error in one chapter fails that chapter's tests only
            cache[chapter] = err
    found = cache[chapter]
    if isinstance(found, Exception):
        pytest.fail(f"could not import the {chapter} file: {type(found).__name__}: {found}", pytrace=False)
    return found


class LearnerFunction:
    """A learner's function, called so that whatever it does becomes a test failure."""

    def __init__(self, name: str, fn):
        self.name, self.fn = name, fn

    def __call__(self, *args, **kwargs):
        try:
            return returned(self.name, self.fn(*args, **kwargs))
        except NotImplementedError as err:
            message = f"{NOT_IMPLEMENTED}: {err or self.name}"
        except Exception as err:
            message = f"your {self.name} raised {type(err).__name__}: {err}{learner_line(err, self.fn)}"
        pytest.fail(message, pytrace=False)  # outside the except: no "during handling" chain


class Learner:
    """``impl.attention_forward(q, k, v, mask)``: the learner's function, safely called."""

    def __init__(self, config: pytest.Config, chapter: str):
        self._config, self._chapter = config, chapter

    def __getattr__(self, name: str) -> LearnerFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        module = load_chapter(self._config, self._chapter)
        fn = getattr(module, name, None)
        if not callable(fn):
            pytest.fail(missing_function(self._chapter, name, module), pytrace=False)
        return LearnerFunction(name, fn)


def namespace_of(globals_: dict) -> SimpleNamespace:
    """A notebook's globals as the object ``load_chapter`` returns (functions by name)."""
    return SimpleNamespace(**{k: v for k, v in globals_.items() if not k.startswith("__")})


# ---------------------------------------------------------------- comparing with the reference


def _as_array(value, what: str) -> np.ndarray:
    if value is None:
        pytest.fail(f"{what} is None: did you forget `return`?", pytrace=False)
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        pytest.fail(f"{what} should be an array of numbers, got {type(value).__name__}", pytrace=False)


def close(a, b, rtol: float, atol: float) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def expect_close(actual, expected, what: str, bugs: dict | None = None, rtol: float = 1e-6,
                 atol: float = 1e-8, hint: str = "") -> None:
    """Fail with a message that names the likely bug when ``actual`` is not ``expected``.

    ``bugs`` maps a description ("softmax over the wrong axis") to the output a buggy
    implementation gives on the same input; the first one ``actual`` matches is named."""
    tol = f"(np.allclose with rtol={rtol:g}, atol={atol:g})"
    expected = np.asarray(expected, dtype=float)
    actual = _as_array(actual, what)
    if actual.shape != expected.shape:
        for description, buggy in (bugs or {}).items():
            if close(actual, buggy, rtol, atol):
                pytest.fail(f"{what} is wrong: it looks like {description} {tol}", pytrace=False)
        pytest.fail(f"{what} has shape {actual.shape}, expected {expected.shape}", pytrace=False)
    if not np.all(np.isfinite(actual)) and np.all(np.isfinite(expected)):
        bad = int((~np.isfinite(actual)).sum())
        pytest.fail(f"{what} contains {bad} NaN/inf value(s) where the reference is finite "
                    f"(overflow in exp? a division by zero?)", pytrace=False)
    if close(actual, expected, rtol, atol):
        return
    for description, buggy in (bugs or {}).items():
        if close(actual, buggy, rtol, atol):
            pytest.fail(f"{what} is wrong: it looks like {description} {tol}", pytrace=False)
    diff = np.abs(actual - expected)
    i = np.unravel_index(int(np.nanargmax(diff)), diff.shape) if diff.size else ()
    worst = f"; largest difference {float(diff[i]):.3g} at index {tuple(int(j) for j in i)}" if diff.size else ""
    pytest.fail(f"{what} does not match the reference {tol}{worst}{'. ' + hint if hint else ''}", pytrace=False)


def expect(condition: bool, message: str) -> None:
    """A named check: fail with ``message`` (and no Python traceback) when it does not hold."""
    if not condition:
        pytest.fail(message, pytrace=False)


def running(module_globals: dict) -> bool:
    """True in a notebook or ``python file.py``; False when the grader imports the file."""
    return module_globals.get("__name__") == "__main__"

