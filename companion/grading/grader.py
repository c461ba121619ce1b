"""The grader: run the graded tests with pytest in this (trusted) process, and score them.

``python -m companion grade``, ``check("3.2")`` in a notebook and CI all run the same test
files in ``tests/exercises/``. Each test carries three markers:

    @pytest.mark.ch03                                chapter (select with ``-m ch03``)
    @pytest.mark.exercise("3.2", "attention_forward") which exercise it grades
    @pytest.mark.points(2)                           what passing it is worth

A collector plugin reads those markers and every test's outcome; an exercise scores the
points of the tests it passes. Outcomes are 'passed', 'failed', 'not implemented' (the
learner's function still raises NotImplementedError) or 'not run' (grading was interrupted
before the test ran: never counted as passed). The learner's code never runs here: each call
goes to a worker process (sandbox.py), so nothing it does can crash, hang or fool this process.
The reports (table, JSON, Gradescope, JUnit) are made from the scores by report.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .adapter import LIMITS, NAMESPACES, NOT_IMPLEMENTED, grading, notes, resolve_impl

NOT_RUN = "not run"


@dataclass
class TestResult:
    nodeid: str
    exercise: str
    title: str
    chapter: str
    points: float
    outcome: str = NOT_RUN  # 'passed' | 'failed' | 'not implemented' | 'not run'
    message: str = ""
    seconds: float = 0.0


@dataclass(repr=False)
class ExerciseScore:
    exercise: str
    title: str
    chapter: str
    score: float
    max_score: float
    outcome: str  # 'passed' | 'partial' | 'failed' | 'not implemented' | 'not run'
    tests: list = field(default_factory=list)

    def __repr__(self) -> str:  # what a notebook shows under check("3.2")
        return f"<Exercise {self.exercise} {self.title}: {self.outcome}, {self.score:g}/{self.max_score:g} points>"


def exercise_key(exercise: str) -> tuple[int, ...]:
    return tuple(int(p) for p in exercise.split("."))


class Collector:
    """A pytest plugin: keeps the chosen exercise's tests and records their outcomes."""

    def __init__(self, exercise: str | None = None, namespaces: dict | None = None, limits=None):
        self.exercise, self.namespaces, self.limits = exercise, namespaces or {}, limits
        self.results: dict[str, TestResult] = {}
        self.collect_errors: list[str] = []
        self.interrupted = False
        self.notes: list[str] = []
        self.faults: list[str] = []
        self.config = None

    def pytest_configure(self, config):
        self.config = config
        config.stash[NAMESPACES] = self.namespaces
        if self.limits is not None:
            config.stash[LIMITS] = self.limits

    def pytest_keyboard_interrupt(self):
        self.interrupted = True

    def pytest_sessionfinish(self, session):
        self.notes = list(notes(session.config))
        if not self.namespaces:
            g = grading(session.config)
            self.faults = list(g.faults)
            g.close()

    def pytest_collection_modifyitems(self, config, items):
        kept, dropped = [], []
        for item in items:
            ex = item.get_closest_marker("exercise")
            pts = item.get_closest_marker("points")
            if ex is None or pts is None:
                dropped.append(item)  # not a graded test
                continue
            if self.exercise is not None and ex.args[0] != self.exercise:
                dropped.append(item)
                continue
            chapter = next((m.name for m in item.iter_markers() if m.name.startswith("ch")), "")
            title = ex.args[1] if len(ex.args) > 1 else ""
            self.results[item.nodeid] = TestResult(item.nodeid, ex.args[0], title, chapter, float(pts.args[0]))
            kept.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext.strip().splitlines()[-1:]}")

    def pytest_runtest_logreport(self, report):
        result = self.results.get(report.nodeid)
        if result is None:
            return
        result.seconds += report.duration
        if report.when == "call" and report.passed:
            result.outcome, result.message = "passed", ""
        elif report.failed or report.skipped:
            text = _short_message(report)
            if report.when == "teardown" and result.outcome != NOT_RUN and not report.failed:
                return
            result.outcome = "not implemented" if NOT_IMPLEMENTED in text else "failed"
            result.message = text
        elif report.when == "setup" and result.outcome == NOT_RUN:
            result.outcome = "failed"  # it started: only a passed call makes it 'passed'
            result.message = "the test did not finish (grading was interrupted)"


def _short_message(report) -> str:
    """The failure's own message (pytest.fail's text), not the whole traceback."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        text = crash.message
    elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        text = str(report.longrepr[2])
    else:
        text = str(report.longreprtext or report.longrepr)
    for prefix in ("Failed: ", "Skipped: "):
        text = text.replace(prefix, "", 1) if text.startswith(prefix) else text
    if "Timeout" in text:
        text = "the test ran past its own time limit in the grader: " + text.splitlines()[0]
    if text.startswith("KeyboardInterrupt"):
        text = "grading was interrupted during this test"
    return text.strip()


def find_root(start: Path | None = None) -> Path:
    """The folder holding tests/exercises: searched upward from ``start`` (the working
    directory), then beside the companion package (an editable install of the course)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "tests" / "exercises").is_dir():
            return folder
    beside = Path(__file__).resolve().parents[2]
    if (beside / "tests" / "exercises").is_dir():
        return beside
    raise FileNotFoundError(f"cannot find tests/exercises above {here} or beside the companion package")


def test_files(root: Path, chapters: list[str] | None) -> list[str]:
    folder = root / "tests" / "exercises"
    if not chapters:
        return [str(folder)]
    files = []
    for chapter in chapters:
        chapter = normalise_chapter(chapter)
        found = sorted(folder.glob(f"test_{chapter}_*.py"))
        if not found:
            known = sorted(p.name[5:9] for p in folder.glob("test_ch*.py"))
            raise ValueError(f"no graded tests for chapter {chapter!r}; chapters are {known}")
        files += [str(p) for p in found]
    return files


def normalise_chapter(chapter: str) -> str:
    """'3', 'ch3', 'ch03' -> 'ch03'."""
    digits = chapter.lower().removeprefix("ch")
    if not digits.isdigit():
        raise ValueError(f"a chapter is written ch03 (or 3), got {chapter!r}")
    return f"ch{int(digits):02d}"


def run_tests(chapters: list[str] | None = None, impl: str | Path = "solutions", exercise: str | None = None,
              namespaces: dict | None = None, root: Path | None = None, verbose: bool = False,
              limits=None, collect_only: bool = False) -> tuple[list[TestResult], Collector]:
    """Run the graded tests (the learner's code in workers, see sandbox.py) and return one
    result per test, in collection order (with ``collect_only``, the tests found, none run:
    their outcome stays 'not run'). ``limits`` is a workers.Limits (else the environment's)."""
    root = root or find_root()
    if not namespaces:  # fail at once, in one line, for a folder that is not there
        impl = resolve_impl(impl, root)
    collector = Collector(exercise, namespaces, limits)
    args = [*test_files(root, chapters), f"--impl={impl}", "--rootdir", str(root), "-p", "no:cacheprovider",
            "-o", "addopts=", "-q", "--capture=sys", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if collect_only:
        args.append("--collect-only")
    if importlib.util.find_spec("pytest_timeout") is not None:
        args += ["-p", "pytest_timeout"]  # the one plugin wanted: a time limit per test on this side too
    out = io.StringIO()
    with contextlib.chdir(root), (contextlib.nullcontext() if verbose else contextlib.redirect_stdout(out)), \
            _no_plugin_autoload():
        code = pytest.main(args, plugins=[collector])
    if code == pytest.ExitCode.INTERRUPTED:
        collector.interrupted = True
    if code not in (0, 1, 2, 5) and not collector.results:  # 5: no test selected (say so in the caller)
        raise RuntimeError(f"pytest could not run the graded tests (exit code {int(code)}):\n{out.getvalue()[-2000:]}")
    return list(collector.results.values()), collector


@contextlib.contextmanager
def _no_plugin_autoload():
    """Grading loads no installed pytest plugin but pytest-timeout: nbval, hypothesis and the
    like cost seconds to import and have nothing to do with the graded tests."""
    previous = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = previous


def score(results: list[TestResult]) -> list[ExerciseScore]:
    """Group test results by exercise: points of the tests passed, out of all their points."""
    by_ex: dict[str, ExerciseScore] = {}
    for r in results:
        s = by_ex.setdefault(r.exercise, ExerciseScore(r.exercise, r.title, r.chapter, 0.0, 0.0, ""))
        s.max_score += r.points
        s.score += r.points if r.outcome == "passed" else 0.0
        s.tests.append(r)
    for s in by_ex.values():
        outcomes = {t.outcome for t in s.tests}
        if outcomes == {"passed"}:
            s.outcome = "passed"
        elif outcomes == {"not implemented"}:
            s.outcome = "not implemented"
        elif outcomes == {NOT_RUN}:
            s.outcome = NOT_RUN
        else:
            s.outcome = "partial" if "passed" in outcomes else "failed"
    return sorted(by_ex.values(), key=lambda s: exercise_key(s.exercise))


def catalogue(root: Path | None = None) -> list[ExerciseScore]:
    """Every graded exercise with its points (max_score) and tests, read from the markers."""
    results, collector = run_tests(None, "solutions", root=root, collect_only=True)
    if collector.collect_errors:
        raise RuntimeError("the graded tests do not collect: " + "; ".join(collector.collect_errors))
    return score(results)

