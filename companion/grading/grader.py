"""The grader: run the graded tests with pytest, in this process, and score them.

``python -m companion grade``, ``check("3.2")`` in a notebook and CI all run the same test
files in ``tests/exercises/``. Each test carries three markers:

    @pytest.mark.ch03                                chapter (select with ``-m ch03``)
    @pytest.mark.exercise("3.2", "attention_forward") which exercise it grades
    @pytest.mark.points(2)                           what passing it is worth

A collector plugin reads those markers and every test's outcome; an exercise scores the
points of the tests it passes. Outcomes are 'passed', 'failed' or 'not implemented' (the
learner's function still raises NotImplementedError). Nothing a learner's code does can
crash the grader: an exception, a NaN or a wrong shape fails that test, and a test that
runs too long is stopped by pytest-timeout and fails.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from .adapter import NAMESPACES, NOT_IMPLEMENTED, resolve_impl


@dataclass
class TestResult:
    nodeid: str
    exercise: str
    title: str
    chapter: str
    points: float
    outcome: str = "failed"  # 'passed' | 'failed' | 'not implemented'
    message: str = ""
    seconds: float = 0.0


@dataclass(repr=False)
class ExerciseScore:
    exercise: str
    title: str
    chapter: str
    score: float
    max_score: float
    outcome: str  # 'passed' | 'partial' | 'failed' | 'not implemented'
    tests: list = field(default_factory=list)

    def __repr__(self) -> str:  # what a notebook shows under check("3.2")
        return f"<Exercise {self.exercise} {self.title}: {self.outcome}, {self.score:g}/{self.max_score:g} points>"


def exercise_key(exercise: str) -> tuple[int, ...]:
    return tuple(int(p) for p in exercise.split("."))


class Collector:
    """A pytest plugin: keeps the chosen exercise's tests and records their outcomes."""

    def __init__(self, exercise: str | None = None, namespaces: dict | None = None):
        self.exercise, self.namespaces = exercise, namespaces or {}
        self.results: dict[str, TestResult] = {}
        self.collect_errors: list[str] = []

    def pytest_configure(self, config):
        config.stash[NAMESPACES] = self.namespaces

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
            result.outcome = "not implemented" if NOT_IMPLEMENTED in text else "failed"
            result.message = text


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
        text = "the test ran past its time limit (an infinite loop, or much too slow?): " + text.splitlines()[0]
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
              namespaces: dict | None = None, root: Path | None = None, junit: Path | None = None,
              verbose: bool = False, timeout: float | None = None,
              collect_only: bool = False) -> tuple[list[TestResult], Collector]:
    """Run the graded tests in this process and return one result per test
    (with ``collect_only``, the tests found, none run: their outcome stays 'failed')."""
    root = root or find_root()
    if not namespaces:  # fail at once, in one line, for a folder that is not there
        impl = resolve_impl(impl, root)
    collector = Collector(exercise, namespaces)
    args = [*test_files(root, chapters), f"--impl={impl}", "--rootdir", str(root), "-p", "no:cacheprovider",
            "-o", "addopts=", "-q", "--capture=sys", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if timeout is not None:
        args.append(f"--timeout={timeout}")
    if junit is not None:
        args.append(f"--junitxml={junit}")
    if collect_only:
        args.append("--collect-only")
    out = io.StringIO()
    with contextlib.chdir(root), (contextlib.nullcontext() if verbose else contextlib.redirect_stdout(out)):
        code = pytest.main(args, plugins=[collector])
    if code not in (0, 1, 5) and not collector.results:  # 5: no test selected (say so in the caller)
        raise RuntimeError(f"pytest could not run the graded tests (exit code {int(code)}):\n{out.getvalue()[-2000:]}")
    return list(collector.results.values()), collector


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
        else:
            s.outcome = "partial" if "passed" in outcomes else "failed"
    return sorted(by_ex.values(), key=lambda s: exercise_key(s.exercise))


def catalogue(root: Path | None = None) -> list[ExerciseScore]:
    """Every graded exercise with its points (max_score) and tests, read from the markers."""
    results, collector = run_tests(None, "solutions", root=root, collect_only=True)
    if collector.collect_errors:
        raise RuntimeError("the graded tests do not collect: " + "; ".join(collector.collect_errors))
    return score(results)


# ---------------------------------------------------------------- output formats


def format_table(scores: list[ExerciseScore], details: bool = True) -> str:
    lines = [f"{'exercise':<9}{'function':<28}{'points':>9}  result"]
    for s in scores:
        lines.append(f"{s.exercise:<9}{s.title:<28}{s.score:>4g}/{s.max_score:<4g}  {s.outcome}")
        if details and s.outcome in ("failed", "partial"):
            for t in s.tests:
                if t.outcome != "passed":
                    lines.append(f"{'':9}- {t.nodeid.split('::')[-1]}: {t.message.splitlines()[0] if t.message else ''}")
    total, most = sum(s.score for s in scores), sum(s.max_score for s in scores)
    lines.append(f"{'total':<37}{total:>4g}/{most:<4g}")
    return "\n".join(lines)


def format_json(scores: list[ExerciseScore]) -> dict:
    return {"score": sum(s.score for s in scores), "max_score": sum(s.max_score for s in scores),
            "exercises": [{**{k: v for k, v in asdict(s).items() if k != "tests"},
                           "tests": [asdict(t) for t in s.tests]} for s in scores]}


def format_gradescope(scores: list[ExerciseScore]) -> dict:
    """Gradescope's autograder results.json: one entry per test, with its points."""
    tests = []
    for s in scores:
        for t in s.tests:
            tests.append({"name": f"Exercise {s.exercise} {s.title}: {t.nodeid.split('::')[-1]}",
                          "score": t.points if t.outcome == "passed" else 0.0, "max_score": t.points,
                          "status": "passed" if t.outcome == "passed" else "failed",
                          "output": t.message or "passed"})
    return {"score": sum(s.score for s in scores), "tests": tests,
            "execution_time": round(sum(t.seconds for s in scores for t in s.tests), 3)}


def junit_xml(chapters, impl, root=None, timeout=None) -> tuple[str, list[TestResult]]:
    """Run the tests writing pytest's JUnit XML; return the XML text and the results."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junit.xml"
        results, _ = run_tests(chapters, impl, root=root, junit=path, timeout=timeout)
        return path.read_text(encoding="utf-8"), results

