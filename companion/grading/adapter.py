"""The one door between the graded tests and a learner's code (CS336's tests/adapters.py idea).

A test never imports ``exercises/ch03_attention.py`` itself. It asks the ``impl`` fixture
for a function by name (``impl.attention_forward(q, k, v, mask)``). When grading a folder
(``pytest --impl exercises``, ``python -m companion grade``), the learner's code never runs in
this process: the call goes to a worker process (sandbox.py, workers.py, worker.py) that imports the
learner's file and runs the function under time and memory limits; its result, and what it
did to its arguments, come back as data and are compared here. Under ``check("3.2")`` in a
notebook, the functions are the notebook's own and run in the notebook's process. On Windows,
which lacks what the workers need, a folder's files are imported into this process too.

Whatever a learner's code does becomes one clear failure of that test, never a crash of the
grader:

    NotImplementedError        -> "not yet implemented: Exercise 3.2: attention_forward"
    any other exception        -> "your attention_forward raised ValueError: ..." (with the line)
    the companion's own answer -> "your attention_forward uses the companion's implementation ..."
    a loop, exit, crash, 40 GB -> "time limit ...", "... exited with status 0", "memory limit ..."
    None from a function       -> "your rmsnorm_forward returned None: did you forget `return`?"
    a function's old name      -> "... none found. Your file defines cross_entropy(...): this
                                   exercise's function is now called cross_entropy_forward ..."
                                   (messages.py; the same in a worker and under check())

``expect_close`` then compares a result with the reference. Before the bare "mismatch" it
checks type, shape and NaN/inf, and it tries the deliberately buggy variants the test
computed (``bugs={"the mask lets future tokens through": ...}``): if the learner's answer
matches one of them, the failure names that bug. Every message names the tolerance used.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from .messages import OLD_NAMES, learner_line, missing_function, returned

NOT_IMPLEMENTED = "not yet implemented"
NAMESPACES = pytest.StashKey[dict]()  # chapter -> a notebook's namespace, set by check()
LIMITS = pytest.StashKey[object]()  # workers.Limits, set by the grader (else from the environment)
_GRADING = pytest.StashKey[object]()  # the session's sandbox.Grading
_NOTES = pytest.StashKey[list]()  # notes for the report ("graded ch03_attention (1).py as chapter 3")
_IMPORTED_HERE = pytest.StashKey[dict]()  # path -> the learner's module (or why it failed to import): Windows
CANONICAL = re.compile(r"^ch\d\d_[A-Za-z0-9_]+\.py$")

# exercise functions renamed since an earlier edition: new name -> old name (the grader tells a
# learner who still uses the old name what it is called now); the table is messages.OLD_NAMES
RENAMED: dict[str, str] = {new: old for chapter in OLD_NAMES.values() for old, (new, _) in chapter.items()}


def find_chapter_file(folder: Path, chapter: str) -> tuple[Path, str]:
    """(the file for chapter 'ch03' in ``folder``, a note or ''). A re-uploaded copy such as
    ``ch03_attention (1).py`` is used when it is the only ch03 file; two candidates are an error."""
    matches = sorted(p for p in Path(folder).glob(f"{chapter}_*.py") if p.is_file())
    if len(matches) == 1:
        path = matches[0]
        note = "" if CANONICAL.match(path.name) else f"graded {path.name!r} as the {chapter} file"
        return path, note
    found = ", ".join(repr(p.name) for p in matches) or "none"
    if matches:
        raise FileNotFoundError(f"expected one {chapter}_*.py in {folder}, found {len(matches)}: {found}; "
                                f"keep only the one to grade")
    raise FileNotFoundError(f"expected one {chapter}_*.py in {folder}, found none")


def chapter_file(folder: Path, chapter: str) -> Path:
    """``folder/chNN_topic.py`` for chapter 'ch03' (the one file whose name starts with it)."""
    return find_chapter_file(folder, chapter)[0]


def resolve_impl(value: str | Path, root: Path) -> Path:
    """The --impl folder: a path as given, or relative to the repository root."""
    for candidate in (Path(value), root / value):
        if candidate.is_dir():
            return candidate.resolve()
    places = sorted({str(Path.cwd()), str(root)})
    raise FileNotFoundError(f"--impl {value}: no such folder (looked in {' and '.join(places)})")


def import_by_path(path: Path) -> ModuleType:
    """Import a file under a private name, never added to sys.modules. For trusted files (the
    course's own solutions, in its tests): the grader imports a learner's file only on Windows,
    which has no workers (``_imported_here``)."""
    name = f"_learner_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grading(config: pytest.Config):
    """The session's sandbox.Grading (workers, budgets), made on first use."""
    from .sandbox import Grading
    from .workers import Limits

    found = config.stash.get(_GRADING, None)
    if found is None:
        limits = config.stash.get(LIMITS, None) or Limits.from_env()
        found = config.stash[_GRADING] = Grading(limits)
    return found


def close_grading(config: pytest.Config) -> None:
    found = config.stash.get(_GRADING, None)
    if found is not None:
        found.close()


def notes(config: pytest.Config) -> list[str]:
    return config.stash.setdefault(_NOTES, [])


class LearnerFunction:
    """A learner's function, called so that whatever it does becomes a test failure."""

    def __init__(self, learner: "Learner", name: str):
        self.learner, self.name = learner, name

    def __call__(self, *args, **kwargs):
        lr = self.learner
        namespaces = lr._config.stash.get(NAMESPACES, {})
        if lr._chapter in namespaces:
            return self._call_here(namespaces[lr._chapter], args, kwargs)
        from .sandbox import GraderFault, Missing, Verdict
        from .workers import POSIX

        if not POSIX:  # Windows: no workers (they need POSIX pipes, process groups, resource limits)
            return self._call_here(_imported_here(lr), args, kwargs)

        try:
            path = lr._path()
            result = grading(lr._config).call(str(path), lr._exercise, self.name, args, kwargs)
        except Missing as missing:  # names the function's new name when the file has its old one
            message = missing_function(lr._chapter, self.name, missing.namespace())
        except Verdict as verdict:
            message = str(verdict)
        except GraderFault as fault:  # not the learner's doing: the grading command exits non-zero
            message = f"the grader could not run this test ({fault})"
        except FileNotFoundError as err:
            message = str(err)
        else:
            return returned(self.name, result)  # None from a function that must return: "forgot `return`?"
        pytest.fail(message, pytrace=False)

    def _call_here(self, namespace, args, kwargs):
        """check() in a notebook: the notebook's own function, in the notebook's process."""
        from .references import CallWatch, identity_use, message as reference_message, resolve_all

        fn = getattr(namespace, self.name, None)
        if not callable(fn):
            pytest.fail(missing_function(self.learner._chapter, self.name, namespace), pytrace=False)
        references = resolve_all(self.learner._exercise)
        used = identity_use(fn, references)
        watch = CallWatch(references)
        try:
            with watch.watching():
                result = fn(*args, **kwargs)
        except NotImplementedError as err:
            message = f"{NOT_IMPLEMENTED}: {err or self.name}"
        except Exception as err:
            message = f"your {self.name} raised {type(err).__name__}: {err}{learner_line(err, fn)}"
        else:
            uses = ([used] if used else []) + [h for h in watch.hits if h != used]
            if not uses:
                return returned(self.name, result)
            message = reference_message(self.learner._exercise, self.name, uses)
        pytest.fail(message, pytrace=False)  # outside the except: no "during handling" chain


def _imported_here(learner: "Learner") -> ModuleType:
    """Windows only: the learner's file imported into this process, once per grading run, as
    check() uses a notebook's own functions. No time, memory or file limits apply (workers.unguaranteed
    says so before grading starts); a file that fails to import fails each of its tests."""
    modules = learner._config.stash.setdefault(_IMPORTED_HERE, {})
    try:
        path = learner._path()
    except FileNotFoundError as err:
        pytest.fail(str(err), pytrace=False)
    if path not in modules:
        try:
            modules[path] = import_by_path(path)
        except SystemExit as err:
            modules[path] = f"your file called sys.exit({err.code!r:.40}) while it was imported"
        except Exception as err:  # noqa: BLE001 - everything a learner's file can raise
            modules[path] = f"your file raised {type(err).__name__} while it was imported: {err}{learner_line(err)}"
    if isinstance(modules[path], str):
        pytest.fail(modules[path], pytrace=False)
    return modules[path]


class Learner:
    """``impl.attention_forward(q, k, v, mask)``: the learner's function, safely called."""

    def __init__(self, config: pytest.Config, chapter: str, exercise: str | None = None):
        self._config, self._chapter = config, chapter
        self._exercise = exercise or chapter

    def _path(self) -> Path:
        folder = resolve_impl(self._config.getoption("impl", default="solutions"), Path(self._config.rootpath))
        path, note = find_chapter_file(folder, self._chapter)
        if note and note not in notes(self._config):
            notes(self._config).append(note)
        return path

    def __getattr__(self, name: str) -> LearnerFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return LearnerFunction(self, name)


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

