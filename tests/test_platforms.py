"""Every OS: nothing POSIX-only breaks importing the companion or using it on macOS or Windows.

CI runs the unit tests on macOS and Windows too; these tests make the same checks on Linux by
taking the POSIX-only parts away. A subprocess blocks the modules Windows lacks (``resource``,
``fcntl``, ``termios``, ``pwd``, ``grp``: importing one raises ImportError) and deletes the
``os`` functions Windows lacks, then imports every module of the package, runs the command line,
a two-step training run, and ``grade`` as it runs on Windows: without worker processes, the
learner's files imported into the grading process, which warns that nothing is isolated
(the README's "Linux only, and what happens elsewhere").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import setup_course  # noqa: E402

BLOCKED = ("resource", "fcntl", "termios", "pwd", "grp")
PRELUDE = textwrap.dedent(f"""
    import os, runpy, sys
    for name in {BLOCKED!r}:
        sys.modules[name] = None  # `import resource` raises ImportError, as on Windows
    for name in ("getloadavg", "killpg", "setsid", "sched_getaffinity", "getuid", "geteuid", "fork"):
        if hasattr(os, name):
            delattr(os, name)
""")


def run_without_posix(code: str, *args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_cli_without_posix(*argv: str, windows_grader: bool = False, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m companion ARGV`` with the POSIX-only parts gone; ``windows_grader``: and the
    grader's workers too (on Windows ``os.name`` is not 'posix', so workers.POSIX is False)."""
    patch = "import companion.grading.workers as w; w.POSIX = False\n" if windows_grader else ""
    return run_without_posix(patch + "sys.argv = ['companion', *sys.argv[1:]]\n"
                             "runpy.run_module('companion', run_name='__main__', alter_sys=True)\n", *argv, cwd=cwd)


def test_the_prelude_really_blocks_the_posix_modules():
    r = run_without_posix("""
        try:
            import resource
        except ImportError:
            print("blocked")
        print(hasattr(os, "killpg"), hasattr(os, "getloadavg"))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["blocked", "False", "False"]


def test_every_module_imports_without_the_posix_modules():
    r = run_without_posix(f"""
        import importlib, pkgutil
        import companion
        failed = []
        for info in pkgutil.walk_packages(companion.__path__, "companion."):
            if info.name.endswith(".__main__"):
                continue  # runs the command line: tested below
            try:
                importlib.import_module(info.name)
            except ImportError as err:
                if err.name in {BLOCKED!r} or err.name is None:
                    failed.append(f"{{info.name}}: {{err}}")
        print(len(list(pkgutil.walk_packages(companion.__path__, "companion."))), failed)
    """)
    assert r.returncode == 0, r.stderr
    count, failed = r.stdout.split(" ", 1)
    assert int(count) > 40, r.stdout  # it walked the whole package
    assert failed.strip() == "[]", f"modules that need a POSIX-only module at import: {failed}"


def test_the_command_line_and_a_short_training_run_work_without_posix(tmp_path):
    r = run_cli_without_posix("--help")
    assert r.returncode == 0 and "train" in r.stdout, r.stderr
    r = run_cli_without_posix("train", "--task", "listops", "--preset", "listops", "--steps", "2",
                              "--eval-every", "2", "--batch-size", "4", "--eval-size", "8", "--threads", "1",
                              "--no-progress", "--json", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout.strip().splitlines()[-1])
    assert metrics["steps"] == 2 and metrics["val_loss"] > 0
    assert (tmp_path / "run").is_dir()


def test_grade_without_workers_runs_the_files_here_and_warns(tmp_path):
    r = run_cli_without_posix("grade", "ch03", "--impl", str(ROOT / "solutions"), "--format", "json",
                              windows_grader=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no isolation" in r.stderr and "no time, memory or file limits" in r.stderr, r.stderr
    report = json.loads(r.stdout)
    assert report["score"] == report["max_score"] > 0, "the solutions lost points when graded in-process"
    assert any("no isolation" in m for m in report["unguaranteed"]), "the report must say the files ran unisolated"

    broken = tmp_path / "broken"
    broken.mkdir()
    source = (ROOT / "solutions" / "ch03_attention.py").read_text(encoding="utf-8")
    (broken / "ch03_attention.py").write_text(source + "\nraise RuntimeError('left over from debugging')\n",
                                              encoding="utf-8")
    r = run_cli_without_posix("grade", "ch03", "--impl", str(broken), "--format", "json", windows_grader=True)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["score"] == 0 < report["max_score"]
    messages = [t["message"] for ex in report["exercises"] for t in ex["tests"]]
    assert messages and all("your file raised RuntimeError while it was imported: left over from debugging" in m
                            for m in messages), messages[:2]


def test_unguaranteed_names_what_each_os_lacks(monkeypatch):
    from companion.grading import workers

    monkeypatch.setattr(workers, "POSIX", False)
    assert "no isolation" in workers.unguaranteed()[0]
    monkeypatch.setattr(workers, "POSIX", True)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert any("RLIMIT_AS" in line for line in workers.unguaranteed())
    monkeypatch.setattr(sys, "platform", "linux")
    assert workers.unguaranteed() == []


@pytest.mark.skipif(os.name != "posix", reason="resource limits exist only on POSIX systems")
@pytest.mark.parametrize("platform, refused", [("darwin", False), ("linux", True)])
def test_a_kernel_that_refuses_the_memory_limit(platform, refused):
    """macOS refuses RLIMIT_AS (EINVAL, which Python raises as ValueError): the worker starts
    without a memory limit there; on Linux the same refusal is an error, never skipped silently."""
    code = textwrap.dedent(f"""
        import resource, sys
        real = resource.setrlimit
        def setrlimit(which, limits):
            if which == resource.RLIMIT_AS:
                raise ValueError("current limit exceeds maximum limit")
            real(which, limits)
        resource.setrlimit = setrlimit
        from companion.grading.worker import set_limits
        sys.platform = {platform!r}
        try:
            set_limits(600, 2**31, 2**26)
        except ValueError as err:
            print("refused", err)
        else:
            print("started", resource.getrlimit(resource.RLIMIT_CPU)[0])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if refused:
        assert r.stdout.startswith("refused"), r.stdout
    else:
        assert r.stdout.split() == ["started", "600"], r.stdout  # the other limits still hold


def test_set_up_finds_the_venvs_python_on_windows_and_posix(monkeypatch, tmp_path):
    monkeypatch.setattr(setup_course.os, "name", "nt")
    assert setup_course.venv_python(tmp_path) == tmp_path / "Scripts" / "python.exe"
    monkeypatch.setattr(setup_course.os, "name", "posix")
    assert setup_course.venv_python(tmp_path) == tmp_path / "bin" / "python"


def test_set_up_needs_no_make(tmp_path):
    """tools/setup_course.py is what Windows and macOS run instead of `make venv`: with only
    Python on the PATH it still gets as far as printing its commands."""
    bare = tmp_path / "bin"
    bare.mkdir()
    assert shutil.which("make", path=str(bare)) is None
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_course.py"), "--dry-run", "--venv",
                        str(tmp_path / "v")], env={**os.environ, "PATH": str(bare)}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "-m venv" in r.stdout and "pip install -e .[learner]" in r.stdout and "overrides.json" in r.stdout


@pytest.mark.parametrize("replaces", [True, False])
def test_backend_switch_from_the_command_line_keeps_the_commands_exit_status(monkeypatch, capfd, replaces):
    """`python -m companion eval ... --backend strict` runs itself again under the other backend.
    POSIX replaces the process (os.execve); Windows' execve would start the command and end this
    process with status 0 at once, so there the command runs as a child and its status is returned."""
    from companion.tools import cli, cli_backend

    monkeypatch.setattr(cli_backend, "EXEC_REPLACES_PROCESS", replaces)
    monkeypatch.setattr(sys, "argv", ["companion", "eval", "--ckpt", "/nonexistent-run", "--backend", "strict"])
    execs = []

    def execve(path, args, env):
        execs.append((args, env["COMPANION_BACKEND"]))
        raise SystemExit(0)  # what the caller would see on Windows: success, whatever the command does

    monkeypatch.setattr(cli_backend.os, "execve", execve)
    if replaces:
        with pytest.raises(SystemExit):
            cli.main()
        assert execs == [([sys.executable, "-m", "companion", *sys.argv[1:]], "strict")]
    else:
        assert cli.main() == 2  # the child's error status (no checkpoint there), not 0
        assert execs == [] and "no checkpoint at" in capfd.readouterr().err


def test_a_corpus_saved_with_windows_line_ends_reads_as_on_linux(tmp_path):
    """A text file saved on Windows (or written there by Python's text mode) ends its lines with
    CRLF: the text task reads it as text mode does, so a character model gets no '\\r' token and the
    same file gives the same task on every OS, as the plays (read in text mode) do."""
    from companion.tasks import make_task, read_corpus

    text = "".join(f"line {i}: to be or not to be\n" for i in range(400))
    (tmp_path / "lf.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "crlf.txt").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    (tmp_path / "cr.txt").write_bytes(text.replace("\n", "\r").encode("utf-8"))
    assert read_corpus(tmp_path / "crlf.txt") == read_corpus(tmp_path / "cr.txt") == text
    lf, crlf = (make_task("text", corpus=str(tmp_path / f"{name}.txt"), block_size=16) for name in ("lf", "crlf"))
    assert "\r" not in crlf.tokenizer.chars and crlf.vocab_size == lf.vocab_size
    assert all(np.array_equal(getattr(lf, split), getattr(crlf, split)) for split in ("train", "val", "test"))
