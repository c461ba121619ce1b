"""Atomic file writes: nothing a user made is ever left half-written.

Each write goes to a temporary file in the same folder, is flushed to disk, and is then
renamed over the target. A rename within one file system is atomic, so a reader (or a
crash) sees either the old file or the new one, never a truncated mix.

``tempfile.mkstemp`` creates its file readable by its owner only (0600); the finished file gets
the permissions any new file would get, 0666 less the user's umask, as ``open(path, "w")`` gives.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable


_UMASK_LOCK = threading.Lock()


def new_file_mode() -> int:
    """0666 less the process's umask: the mode ``open()`` gives a new file. The umask can only be
    read by setting it, so it is set and restored at once, under a lock (threads share it)."""
    with _UMASK_LOCK:
        umask = os.umask(0o077)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    A text mode ("w") writes UTF-8 with LF line ends on every OS, whatever the locale's encoding
    and Windows' CRLF: a generated exercise file is then byte for byte the one in git."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
    try:
        with os.fdopen(fd, mode, **text) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda f: f.write(text), mode="w")


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """Read a JSON object, naming the file and the problem if it is missing or not JSON."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid JSON (truncated or edited?): {err}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path} must hold a JSON object, got {type(obj).__name__}")
    return obj
