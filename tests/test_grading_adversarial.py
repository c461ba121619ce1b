"""Adversarial submissions: what a mischievous learner's code does cannot change the grade of
anything but its own exercise, and there only to 0 with a message that says what happened.

Each case builds a submission folder in a temporary directory (the solutions, with attacks
planted in chosen exercises or at import), grades it with the real command line in a fresh
process, and checks: the command exits 0, the report is the grader's and valid, each attacked
exercise scores 0 with the right words, every untouched exercise keeps its points, and the
whole run stays within a bound computed from the per-exercise time limit.

The limits are POSIX (resource limits, process groups); the cases that need Linux's /proc say so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from companion.grading.adapter import chapter_file

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
LIMIT_S = 3  # per exercise, for these tests (the default is 6)
pytestmark = pytest.mark.skipif(os.name != "posix", reason="Windows has no grading workers: grade runs the learner's "
                                "files in its own process, with no isolation or limits (README: 'Linux only, and what "
                                "happens elsewhere')")
# What only Linux guarantees (README, and workers.unguaranteed()): the memory limit (macOS refuses
# RLIMIT_AS) and killing children a learner's code detached with setsid (needs /proc and
# PR_SET_CHILD_SUBREAPER). On macOS those two attacks are left out; everything else is checked.
LINUX = sys.platform.startswith("linux")


def function_of(text: str, exercise: str) -> str:
    """The name of the function whose body holds ``# BEGIN SOLUTION <exercise>``."""
    at = text.index(f"# BEGIN SOLUTION {exercise}\n")
    return re.findall(r"^def (\w+)\(", text[:at], re.MULTILINE)[-1]


def plant(text: str, exercise: str, body: str) -> str:
    """Replace the solution of ``exercise`` with ``body`` (indented into the function)."""
    begin = text.index(f"# BEGIN SOLUTION {exercise}\n")
    end = text.index("# END SOLUTION", begin)
    code = "".join(f"    {line}\n" if line else "\n" for line in body.strip("\n").splitlines())
    return text[:begin] + f"# BEGIN SOLUTION {exercise}\n" + code + "    " + text[end:]


def submission(folder: Path, bodies: dict[str, str] = (), at_import: dict[str, str] = (),
               stubs: tuple[str, ...] = ()) -> Path:
    """The solutions (or, for ``stubs`` chapters, the untouched stubs), with attacks planted:
    ``bodies`` maps an exercise id to the code that replaces its solution, ``at_import`` maps a
    chapter to code appended to its file (run when the file is imported)."""
    folder.mkdir(parents=True)
    bodies, at_import = dict(bodies), dict(at_import)
    for src in sorted(SOLUTIONS.glob("ch[0-9][0-9]_*.py")):
        chapter = src.name[:4]
        text = (chapter_file(EXERCISES, chapter) if chapter in stubs else src).read_text()
        for exercise, body in bodies.items():
            if exercise.split(".")[0] == str(int(chapter[2:])):
                text = plant(text, exercise, body)
        if chapter in at_import:
            text += "\n\n" + at_import[chapter].strip("\n").replace("{fn}", "") + "\n"
        (folder / src.name).write_text(text)
    return folder


def grade(impl: Path, *args, timeout_s: float = 600, env=None) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "companion", "grade", "--impl", str(impl), "--timeout", str(LIMIT_S),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, **(env or {})})
    return proc, time.monotonic() - start


def by_exercise(report: dict) -> dict[str, dict]:
    return {ex["exercise"]: ex for ex in report["exercises"]}


def messages(ex: dict) -> str:
    return " | ".join(t["message"] for t in ex["tests"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


# ------------------------------------------------------------------ attacks at import, and on the report

PATCH_PYTEST = """
import json, os, sys
try:  # the old grader ran pytest in this process: make every report "passed"
    import _pytest.reports
    _pytest.reports.TestReport.passed = property(lambda self: True)
    _pytest.reports.TestReport.failed = property(lambda self: False)
    _pytest.reports.TestReport.outcome = "passed"
except Exception:
    pass
_out = os.environ.get("ATTACK_OUTPUT")
if _out:  # a forged results file where the grader will write its own
    with open(_out, "w") as _f:
        json.dump({"score": 92, "tests": [{"name": "everything", "score": 92, "max_score": 92, "status": "passed"}]}, _f)
"""

EXIT_AT_IMPORT = """
import os
os._exit(0)
"""

NUMPY_PATCH = """
import numpy as _np
_np.allclose = lambda *a, **k: True
_np.array_equal = lambda *a, **k: True
_np.testing.assert_allclose = lambda *a, **k: None
"""

FAKE_PROTOCOL = """
import os, sys
for fd in (1, 2):
    os.write(fd, b"CGW1" + (1 << 20).to_bytes(8, "little") + b'{"op": "result", "status": "passed"}\\n')
print("PASSED 92/92", flush=True)
print("passed", file=sys.stderr, flush=True)
return None
"""

CATCH_EVERYTHING = """
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
"""

C_LOOP = """
return sum(range(10**14))
"""

NO_SIGNALS = """
import signal
signal.alarm(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
while True:
    pass
"""

FORGED_FRAME = """
import os
for fd in range(3, 64):  # the worker's reply pipe, whichever it is
    try:
        os.write(fd, b"CGW1" + (1 << 40).to_bytes(8, "little") + (10).to_bytes(4, "little"))
    except OSError:
        pass
return 0.0
"""

LEAVE_CHILDREN = """
import os, time
pids = []
for escape in ESCAPES:
    pid = os.fork()
    if pid == 0:
        if escape:
            os.setsid()  # out of the worker's process group
        time.sleep(600)
        os._exit(0)
    pids.append(pid)
with open(os.environ["ATTACK_PIDS"], "a") as f:
    f.write(" ".join(map(str, pids)) + "\\n")
"""

def test_attacks_at_import_and_call_score_zero_and_nothing_else(tmp_path):
    """One submission, an attack in many exercises: each scores 0 with its own message."""
    pids = tmp_path / "pids.txt"
    out = tmp_path / "results.json"
    sol5 = (SOLUTIONS / chapter_file(SOLUTIONS, "ch05").name).read_text()
    impl = submission(tmp_path / "sub", stubs=("ch02",), at_import={
        "ch01": EXIT_AT_IMPORT,  # the old grader ended with status 0 and no report
        "ch02": PATCH_PYTEST,  # stubs, plus pytest patched and a forged report written
        "ch09": NUMPY_PATCH,
    }, bodies={
        "3.1": "import sys\nsys.exit(0)",
        "3.2": "from companion.attention import attention_forward as ref\nreturn ref(q, k, v, mask)",
        "3.3": FAKE_PROTOCOL,
        "4.1": CATCH_EVERYTHING,
        "4.2": C_LOOP,
        "4.3": NO_SIGNALS,
        "5.1": LEAVE_CHILDREN.replace("ESCAPES", "(False, True)" if LINUX else "(False,)") + "\n"
               + _solution_body(sol5, "5.1"),
        **({"5.2": "import numpy as np\nbig = np.ones(5 * 10**9)  # 40 GB\nreturn big, big"} if LINUX else {}),
        "5.3": "raise KeyboardInterrupt",
        "9.2": "return 0.0",
        "8.1": "import os, signal\nos.killpg(os.getpgrp(), signal.SIGKILL)",
        "7.1": "import os\nos._exit(0)",
        "7.2": "return (x for x in range(3))",
        "7.3": FORGED_FRAME,
    })
    proc, seconds = grade(impl, "--format", "json", "--output", str(out),
                          env={"ATTACK_OUTPUT": str(out), "ATTACK_PIDS": str(pids)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert "exercises" in report, "the report is not the grader's"
    ex = by_exercise(report)
    expected = {  # exercise -> words its failure must contain
        "1.1": "while it was imported: its process exited with status 0",
        "1.2": "while it was imported", "1.3": "while it was imported",
        "2.1": "not yet implemented", "2.2": "not yet implemented", "2.3": "not yet implemented",
        "3.1": "sys.exit(0)",
        "3.2": "uses the companion's implementation (companion.attention.attention_forward)",
        "3.3": "",  # returns None after printing: an ordinary wrong answer
        "4.1": "time limit", "4.2": "time limit", "4.3": "time limit",
        **({"5.2": "memory limit"} if LINUX else {}), "5.3": "interrupted",
        "9.2": "does not match",  # the learner's patched np.allclose is not the grader's
        "8.1": "killed by signal SIGKILL",
        "7.1": "exited with status 0",
        "7.2": "cannot receive",
        "7.3": "malformed result",
    }
    for exercise, words in expected.items():
        assert ex[exercise]["score"] == 0, (exercise, messages(ex[exercise]))
        assert words in messages(ex[exercise]), (exercise, words, messages(ex[exercise]))
    untouched = [e for e in ex if e not in expected]
    assert {"5.1", "6.3", "8.2", "9.1", "10.2"} <= set(untouched)
    for exercise in untouched:  # forking is allowed: 5.1 keeps its points
        assert ex[exercise]["score"] == ex[exercise]["max_score"] > 0, (exercise, messages(ex[exercise]))
    # the children 5.1 left behind, in its process group and (on Linux) out of it, are gone
    left = [int(p) for p in pids.read_text().split()]
    assert left and not [p for p in left if alive(p)], f"processes left behind: {left}"
    # bounded: three exercises spend their time limit, the rest is quick
    assert seconds < 3 * LIMIT_S + 120, seconds


def _solution_body(text: str, exercise: str) -> str:
    begin = text.index(f"# BEGIN SOLUTION {exercise}\n") + len(f"# BEGIN SOLUTION {exercise}\n")
    end = text.index("# END SOLUTION", begin)
    return "\n".join(line[4:] for line in text[begin:end].rstrip().splitlines())


def test_reference_use_through_a_wrapper_scores_zero(tmp_path):
    text = chapter_file(SOLUTIONS, "ch09").read_text()
    fn = function_of(text, "9.2")
    impl = submission(tmp_path / "sub", at_import={"ch09": f"""
import functools
import companion.optim
{fn} = functools.wraps(companion.optim.lr_schedule)(lambda *a, **k: companion.optim.lr_schedule(*a, **k))
"""}, bodies={"9.3": "import companion\nreturn companion.optim.clip_grad_norm(grads, max_norm)"})
    proc, _ = grade(impl, "ch09", "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ex = by_exercise(json.loads(proc.stdout))
    assert ex["9.2"]["score"] == 0 and "companion.optim.lr_schedule" in messages(ex["9.2"])
    assert ex["9.3"]["score"] == 0 and "companion.optim.clip_grad_norm" in messages(ex["9.3"])
    assert ex["9.1"]["score"] == ex["9.1"]["max_score"]


def test_a_file_that_never_finishes_importing_costs_one_limit(tmp_path):
    impl = submission(tmp_path / "sub", at_import={"ch07": "while True:\n    pass"})
    proc, seconds = grade(impl, "ch07", "ch09", "--format", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ex = by_exercise(json.loads(proc.stdout))
    for exercise in ("7.1", "7.2", "7.3"):
        assert ex[exercise]["score"] == 0 and "did not finish within" in messages(ex[exercise]), messages(ex[exercise])
    assert all(ex[e]["score"] == ex[e]["max_score"] for e in ("9.1", "9.2", "9.3"))
    assert seconds < LIMIT_S + 60, seconds


def test_every_exercise_looping_forever_finishes_in_bounded_time(tmp_path):
    """The budget is per exercise, not per test: 29 loops cost 29 limits, then it is over."""
    limit = 1
    impl = tmp_path / "loops"
    impl.mkdir()
    for src in sorted(EXERCISES.glob("ch[0-9][0-9]_*.py")):
        text = re.sub(r'raise NotImplementedError\("Exercise [^"]*"\)', "while True:\n        pass", src.read_text())
        (impl / src.name).write_text(text)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "companion", "grade", "--impl", str(impl), "--timeout", str(limit),
                           "--format", "gradescope"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    exercises = {t["number"] for t in report["tests"]}
    assert len(exercises) >= 20
    assert report["score"] == 0 and all(t["status"] == "failed" and "time limit" in t["output"] for t in report["tests"])
    assert seconds < len(exercises) * (limit + 1.5) + 60, f"{seconds:.1f} s for {len(exercises)} exercises"


def test_an_interrupted_grader_still_writes_a_consistent_report(tmp_path):
    """Ctrl-C (SIGINT to the grader): exit 130, the JUnit report lists every test, and those
    that never ran are 'skipped', not passed; no worker is left running."""
    started = tmp_path / "started"
    impl = submission(tmp_path / "sub", bodies={"1.1": f"open({str(started)!r}, 'w').close()\nwhile True:\n    pass"})
    out = tmp_path / "junit.xml"
    proc = subprocess.Popen([sys.executable, "-m", "companion", "grade", "ch01", "ch03", "--impl", str(impl),
                             "--timeout", "60", "--format", "junit", "--output", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)  # until 1.1's loop runs
    assert started.exists(), "the looping exercise never started"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    suite = ET.parse(out).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) >= 8  # every collected test of ch01 and ch03
    skipped = [c for c in cases if c.find("skipped") is not None]
    passed = [c for c in cases if c.find("skipped") is None and c.find("failure") is None]
    assert skipped and int(suite.get("skipped")) == len(skipped)
    assert not [c for c in passed if "ch03" in c.get("classname")], "a test that never ran counted as passed"


CHECK_INTERRUPT = """
from companion.grading import check
def {fn}(*args, **kwargs):
    raise KeyboardInterrupt  # the Stop button, while the learner's function runs
try:
    check("7.1")
    print("=== not interrupted")
except KeyboardInterrupt:
    print("=== interrupted")
"""


def test_check_lets_the_stop_button_stop_the_cell():
    script = CHECK_INTERRUPT.replace("{fn}", function_of(chapter_file(SOLUTIONS, "ch07").read_text(), "7.1"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=EXERCISES, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "=== interrupted" in proc.stdout
    assert proc.stdout.count("Exercise 7.1") == 1, proc.stdout  # one verdict, printed once
    assert "interrupted" in proc.stdout.split("=== ")[0]


def _worker_user_usable(user: str = "nobody") -> bool:
    """True where this grader can run its workers as ``user`` (root, and an interpreter and
    checkout that user can read: a container image, not a per-user Python under /root)."""
    if os.name != "posix" or os.geteuid() != 0:  # evaluated at collection: Windows has no os.geteuid
        return False
    try:
        probe = subprocess.run([sys.executable, "-E", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                "import numpy, companion.grading.worker"], user=user, cwd="/", capture_output=True,
                               timeout=60)
    except (OSError, KeyError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def test_worker_user_refuses_what_it_cannot_do(tmp_path):
    proc, _ = grade(SOLUTIONS, "ch07", "--worker-user", "no-such-user-here")
    assert proc.returncode == 2 and "no such user" in proc.stderr
    proc, _ = grade(SOLUTIONS, "ch07", "--worker-user", "root")
    assert proc.returncode == 2 and ("must not be root" in proc.stderr or "needs the grader to run as root" in proc.stderr)


@pytest.mark.skipif(not _worker_user_usable(), reason="needs root and an interpreter the user 'nobody' can run "
                                                      "(a container image); here Python lives where 'nobody' cannot read")
def test_with_a_worker_user_the_learner_cannot_touch_the_grader(tmp_path):
    """With --worker-user, killing the grader or writing into its output is refused by the OS."""
    attack = ("import os, signal\n"
              "try:\n    os.write(os.open(f'/proc/{os.getppid()}/fd/1', os.O_WRONLY), b'{\"score\": 92}')\n"
              "except OSError:\n    pass\n"
              "os.kill(os.getppid(), signal.SIGKILL)")
    impl = submission(tmp_path / "sub", bodies={"7.1": attack})
    os.chmod(tmp_path, 0o755)
    proc, _ = grade(impl, "ch07", "--format", "json", "--worker-user", "nobody")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ex = by_exercise(json.loads(proc.stdout))
    assert ex["7.1"]["score"] == 0 and "PermissionError" in messages(ex["7.1"])
    assert ex["7.2"]["score"] == ex["7.2"]["max_score"]
