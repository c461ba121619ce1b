"""``--backend numpy|cupy|strict``: which array library serves a command.

The backend is chosen once, when the companion is imported (``COMPANION_BACKEND``, see
companion/backend.py), and a running process cannot change it. So a command whose ``--backend``
differs from the backend already serving sets ``COMPANION_BACKEND`` and runs itself again: the
command line replaces this process (``os.execve``, POSIX), or, when ``main(argv)`` was called from
Python (and on Windows, whose exec starts a new process and ends this one with status 0 at once,
before the command has run), runs as a child process whose exit status is returned. The child sees
the backend it was asked for, so it never restarts a second time.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ..backend import BACKEND
from .cli_flags import UsageError

BACKENDS = ("numpy", "cupy", "strict")
EXEC_REPLACES_PROCESS = os.name == "posix"  # Windows' os.execve spawns and exits: the caller would get status 0


def add_backend_flag(p) -> None:
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="array library: numpy (CPU), cupy (an NVIDIA GPU) or strict (the CPU test double of "
                        "CuPy); default: COMPANION_BACKEND, else numpy")


def check_available(name: str) -> None:
    """A clear error before restarting, rather than a traceback from the restarted process."""
    if name != "cupy":
        return
    try:
        import cupy
    except ImportError:
        raise UsageError("--backend cupy needs CuPy, which is not installed (pip install cupy-cuda12x)") from None
    try:
        ok = bool(cupy.cuda.is_available())
    except Exception:  # a driver without a device raises instead of answering
        ok = False
    if not ok:
        raise UsageError("--backend cupy needs an NVIDIA GPU, and CuPy sees none on this machine")


def switch_backend(args, argv) -> int | None:
    """None when the requested backend already serves (or none was requested); otherwise run the
    same command under it and return its exit status (from the command line on POSIX: never returns)."""
    wanted = getattr(args, "backend", None)
    if wanted is None or wanted == BACKEND:
        return None
    check_available(wanted)
    env = {**os.environ, "COMPANION_BACKEND": wanted}
    command = [sys.executable, "-m", "companion", *(sys.argv[1:] if argv is None else argv)]
    sys.stdout.flush()
    sys.stderr.flush()
    if argv is None and EXEC_REPLACES_PROCESS:  # the command line: this process becomes the new one
        os.execve(sys.executable, command, env)
    return subprocess.run(command, env=env).returncode
