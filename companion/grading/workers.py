"""Worker processes, seen from the trusted parent: start, limits, kill, and what is left behind.

A ``Worker`` is one ``python -E -s -c ... worker.main()`` process in a session and process group
of its own, talking on two pipes; its stdin, stdout and stderr are /dev/null. ``kill`` sends
SIGKILL to the whole group (nothing can ignore it; children in the group die with it) and, where
the grading command adopted orphans (Linux, ``become_subreaper``), kills the processes a
learner's code detached with ``setsid``. ``Limits`` holds what a worker may use; the worker sets
the POSIX resource limits on itself before it imports a learner's file (worker.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import codec

DEFAULT_TIME_LIMIT_S = 6.0  # per exercise, all its tests together: 40 exercises x 6 s < 5 minutes (tests/test_grading.py)
DEFAULT_MEMORY_MB = 2048
FILE_LIMIT_BYTES = 64 * 2**20
START_LIMIT_S = 60.0  # a worker that cannot even start is the grader's problem, not the learner's
POSIX = os.name == "posix"

BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]; "
        "from companion.grading.worker import main; main()")


class Verdict(Exception):
    """A graded call failed; the message is for the learner."""


class Missing(Verdict):
    """The learner's file defines no such function; ``names`` are the functions it does define
    (so that the message can say what a function that was renamed is called now)."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names

    def namespace(self):
        from types import SimpleNamespace

        return SimpleNamespace(**{n: (lambda: None) for n in self.names})


class GraderFault(Exception):
    """The grader itself could not do its job (not the learner's doing)."""


@dataclass(frozen=True)
class Limits:
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    worker_user: str | None = None  # run workers as this user (the grader must be root): see worker_ids

    @classmethod
    def from_env(cls, time_limit_s: float | None = None, memory_mb: int | None = None,
                 worker_user: str | None = None) -> "Limits":
        env_t, env_m = os.environ.get("COMPANION_GRADE_TIME_LIMIT"), os.environ.get("COMPANION_GRADE_MEMORY_MB")
        user = worker_user or os.environ.get("COMPANION_GRADE_WORKER_USER") or None
        return cls(float(time_limit_s or env_t or DEFAULT_TIME_LIMIT_S), int(memory_mb or env_m or DEFAULT_MEMORY_MB),
                   user)


def worker_ids(user: str) -> tuple[int, int]:
    """(uid, gid) for --worker-user: workers as another user cannot signal the grader, read its
    file descriptors or write its report. Needs a grader running as root (in a container)."""
    if not POSIX:
        raise ValueError("--worker-user needs a POSIX system")
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"--worker-user {user}: no such user") from None
    if os.geteuid() != 0:
        raise ValueError("--worker-user needs the grader to run as root (for example in a container)")
    if entry.pw_uid == 0:
        raise ValueError("--worker-user must not be root")
    return entry.pw_uid, entry.pw_gid


def unguaranteed() -> list[str]:
    """The guarantees this OS cannot give (printed by the grader before it starts)."""
    if not POSIX:
        return ["no isolation: without POSIX pipes, process groups and resource limits, the learner's files run "
                "in the grading process itself, with no time, memory or file limits, and a test that overruns "
                "pytest-timeout's limit ends the whole run (to grade others' work, use Linux, macOS, WSL "
                "or a container)"]
    if not sys.platform.startswith("linux"):
        return ["children a learner's code detaches from its process group (setsid) are not found and killed "
                "(that needs Linux's /proc and PR_SET_CHILD_SUBREAPER)",
                "the memory limit holds only where the kernel accepts RLIMIT_AS (macOS usually refuses it)"]
    return []


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


class Worker:
    """One worker process, seen from the parent."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.tmp = tempfile.mkdtemp(prefix="companion-grade-")
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        root = str(Path(__file__).resolve().parents[2])  # the folder holding this companion package
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "COMPANION_WORKER_CPU_S": str(2 * limits.time_limit_s + 5),  # its import and its calls
               "COMPANION_WORKER_MEMORY_BYTES": str(limits.memory_mb * 2**20),
               "COMPANION_WORKER_FILE_BYTES": str(FILE_LIMIT_BYTES)}
        debug = os.environ.get("COMPANION_GRADE_DEBUG") == "1"
        as_user = {}
        if limits.worker_user:
            uid, gid = worker_ids(limits.worker_user)
            os.chown(self.tmp, uid, gid)
            env.update(HOME=self.tmp, COMPANION_WORKER_NPROC="256")  # one user's processes: a fork bomb stops
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-E", "-s", "-c", BOOT, root, str(cmd_r), str(reply_w)], pass_fds=(cmd_r, reply_w),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None if debug else subprocess.DEVNULL,
                cwd=self.tmp, env=env, start_new_session=POSIX, **as_user)
        finally:
            os.close(cmd_r)
            os.close(reply_w)
        self.cmd_fd = cmd_w
        os.set_blocking(self.cmd_fd, False)
        self.reader = codec.FrameReader(reply_r)
        self.ready = False
        self.closed = False

    def send(self, header: dict, blobs: list[bytes], deadline: float) -> None:
        data = memoryview(codec.pack(header, blobs))
        import select

        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise codec.Timeout()
            _, ready, _ = select.select([], [self.cmd_fd], [], min(left, 1.0))
            if not ready:
                continue
            try:
                n = os.write(self.cmd_fd, data)
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError):
                raise codec.Closed() from None
            data = data[n:]

    def wait_ready(self) -> None:
        try:
            header, _ = self.reader.read(time.monotonic() + START_LIMIT_S)
        except (codec.Timeout, codec.Closed, codec.CodecError) as err:
            self.kill()
            raise GraderFault(f"a grading worker did not start ({type(err).__name__}; exit status "
                              f"{self.proc.returncode})") from None
        if header.get("op") != "ready":
            self.kill()
            raise GraderFault("a grading worker started wrongly")
        self.ready = True

    def kill(self) -> None:
        """Kill the worker's whole process group, and reap it."""
        if self.closed:
            return
        self.closed = True
        try:
            if POSIX:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:  # pragma: no cover - no process groups
                self.proc.kill()
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for fd in (self.cmd_fd, self.reader.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        reap_orphans()
        _rmtree(self.tmp)

    def how_it_ended(self) -> str:
        """After the pipe closed: 'exited with status 3', 'was killed by signal SIGSEGV', ..."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is None:
            return "stopped answering"
        if code >= 0:
            return f"exited with status {code}"
        name = _signal_name(-code)
        if -code == getattr(signal, "SIGXCPU", -1):
            return f"was killed by signal {name} (the CPU-time limit of {2 * self.limits.time_limit_s + 5:g} s)"
        if -code == getattr(signal, "SIGXFSZ", -1):
            return f"was killed by signal {name} (it wrote a file larger than {FILE_LIMIT_BYTES // 2**20} MiB)"
        return f"was killed by signal {name}"


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ orphans (Linux)

_SUBREAPER = False


def become_subreaper() -> bool:
    """Linux: let orphans of our workers (a learner's setsid'd child) be re-parented to this
    process, so that ``reap_orphans`` can find and kill them. Only the grader command does this."""
    global _SUBREAPER
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _SUBREAPER = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _SUBREAPER = False
    return _SUBREAPER


def reap_orphans() -> int:
    """Kill processes re-parented to us that we never started (left behind by a worker)."""
    if not _SUBREAPER:
        return 0
    total = 0
    for _ in range(20):  # killing one orphan re-parents its own children to us: sweep until none is left
        killed = _sweep()
        total += killed
        if not killed:
            break
    return total


def _sweep() -> int:
    me, killed = os.getpid(), 0
    known = {p.pid for p in _LIVE_WORKERS}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in known:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            try:
                os.kill(int(entry), signal.SIGKILL)
                os.waitpid(int(entry), 0)
                killed += 1
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass
    return killed


_LIVE_WORKERS: set = set()
