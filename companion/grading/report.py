"""The grader's reports: the scores as a table, JSON, Gradescope's results.json or JUnit XML.

``python -m companion grade --format table|json|gradescope|junit`` writes one of these, made
from the scores that grader.py computed (never from pytest's own reports), so every collected
test appears in each format whatever happened to it: a test that never ran (grading was
interrupted) is 'not run' in the table and JSON, 'failed' with output saying so for Gradescope,
and <skipped> in JUnit; it is never counted as passed.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from .grader import NOT_RUN, ExerciseScore, TestResult


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


def format_json(scores: list[ExerciseScore], info: dict | None = None) -> dict:
    return {"score": sum(s.score for s in scores), "max_score": sum(s.max_score for s in scores), **(info or {}),
            "exercises": [{**{k: v for k, v in asdict(s).items() if k != "tests"},
                           "tests": [asdict(t) for t in s.tests]} for s in scores]}


def _test_output(t: TestResult) -> str:
    if t.outcome == "passed":
        return "passed"
    if t.outcome == NOT_RUN:
        return "not run: grading stopped before this test ran"
    return t.message or t.outcome


def format_gradescope(scores: list[ExerciseScore], wall_seconds: float, info: dict | None = None,
                      visibility: str = "visible") -> dict:
    """Gradescope's autograder results.json (its "Autograder Specifications" page): one test per
    graded test, with score, max_score, status 'passed' or 'failed' (a test that never ran is
    'failed', with output saying so), output and visibility; execution_time is wall time."""
    tests = []
    for s in scores:
        for t in s.tests:
            tests.append({"name": f"Exercise {s.exercise} {s.title}: {t.nodeid.split('::')[-1]}",
                          "number": s.exercise,
                          "score": t.points if t.outcome == "passed" else 0.0, "max_score": t.points,
                          "status": "passed" if t.outcome == "passed" else "failed",
                          "output": _test_output(t), "visibility": visibility})
    lines = [*(f"this OS cannot give this guarantee: {m}" for m in (info or {}).get("unguaranteed", [])),
             *(info or {}).get("notes", []), *(info or {}).get("problems", [])]
    result = {"score": sum(s.score for s in scores), "execution_time": round(wall_seconds, 3),
              "visibility": visibility, "stdout_visibility": "hidden", "tests": tests}
    if lines:
        result["output"] = "\n".join(lines)
    return result


def format_junit(scores: list[ExerciseScore], wall_seconds: float, info: dict | None = None) -> str:
    """JUnit XML made from the results (so it lists every collected test, whatever happened):
    a failed test is a <failure>, a test that never ran is <skipped>."""
    import xml.etree.ElementTree as ET

    tests = [t for s in scores for t in s.tests]
    failed = [t for t in tests if t.outcome in ("failed", "not implemented")]
    skipped = [t for t in tests if t.outcome == NOT_RUN]
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name="graded exercises", tests=str(len(tests)), failures=str(len(failed)),
                          errors="0", skipped=str(len(skipped)), time=f"{wall_seconds:.3f}")
    if info:
        props = ET.SubElement(suite, "properties")
        for key in ("interrupted",):
            if key in info:
                ET.SubElement(props, "property", name=key, value=str(info[key]).lower())
        for missing in info.get("unguaranteed", []):
            ET.SubElement(props, "property", name="unguaranteed", value=missing)
    for s in scores:
        for t in s.tests:
            path, _, name = t.nodeid.partition("::")
            case = ET.SubElement(suite, "testcase", classname=path.replace("/", ".").removesuffix(".py"), name=name,
                                 time=f"{t.seconds:.3f}")
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="exercise", value=s.exercise)
            ET.SubElement(props, "property", name="points", value=f"{t.points:g}")
            if t.outcome == NOT_RUN:
                ET.SubElement(case, "skipped", message=_test_output(t))
            elif t.outcome != "passed":
                failure = ET.SubElement(case, "failure", message=(t.message.splitlines() or [t.outcome])[0][:500])
                failure.text = t.message
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


class Timer:
    """Wall-clock seconds since it was made: the run time the Gradescope and JUnit reports give."""

    def __init__(self):
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start
