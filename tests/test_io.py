"""companion.tools.io: atomic writes leave a whole file, with the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from companion.tools.io import atomic_write, read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Windows files have no POSIX mode bits")


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = write_json(tmp_path / "run" / "config.json", {"steps": 3})
        reference = tmp_path / "plain.txt"
        reference.write_text("x")  # what an ordinary open() creates under this umask
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~umask, f"mode {oct(mode)} under umask {oct(umask)} (mkstemp's 0600 leaked through?)"
    assert mode == stat.S_IMODE(reference.stat().st_mode)


@posix_only
def test_the_umask_is_left_as_it_was(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.bin", lambda f: f.write(b"abc"))
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json(tmp_path / "x.json", {"a": 1})

    def explode(f):
        f.write("{half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, explode, mode="w")
    assert read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_text_is_utf8_with_lf_line_ends_whatever_the_locale(tmp_path):
    """A locale whose encoding cannot write "≤" (ASCII here; cp1252 on many Windows machines), and
    Windows' text mode, which turns LF into CRLF, must not change a generated exercise file."""
    code = ("import sys; from companion.tools.io import atomic_write; "
            "text = 'def f(x):  # x \\u2264 1, \\u00e9\\n    return x\\n'; "
            "atomic_write(sys.argv[1], lambda f: f.write(text), mode='w')")
    env = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",  # the locale's own encoding
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ex.py")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ex.py").read_bytes() == "def f(x):  # x \u2264 1, \u00e9\n    return x\n".encode("utf-8")
