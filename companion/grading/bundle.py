"""assign: a student bundle of some chapters' exercises, with no solutions in it.

    python -m companion assign ch03 ch04 --out DIR

DIR gets everything a student needs to work and grade offline, and nothing else:

    DIR/exercises/ch03_attention.py ...   the stubs of the chosen chapters
    DIR/tests/conftest.py (+ its helpers), tests/exercises/conftest.py, test_ch03_*.py ...   the graded tests
    DIR/companion/                        the package (the chapters use it; see below)
    DIR/pyproject.toml, LICENSE, README.md            install with `python tools/setup_course.py`: the
                                          `learner` extra, what grading and Jupyter need (JupyterLab,
                                          jupytext, pytest), not the book's tools (no jupyter-book,
                                          no Playwright)
    DIR/tools/setup_course.py, jupyter_config/, jupytext.toml, exercises/jupytext.toml
                                          JupyterLab set up to open the exercises as notebooks

and a README saying how to grade: `python -m companion grade` inside DIR grades DIR/exercises,
the learner's own folder. The solutions folder is never copied, and the bundle is checked for
solution markers before it is reported done. The companion package itself implements what the
exercises ask for (the chapters need it); the grader scores an exercise answered with it as 0
(companion/grading/references.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..io import atomic_write
from .build import BEGIN as _BEGIN
from .grader import normalise_chapter

BEGIN = re.compile(_BEGIN.pattern, re.MULTILINE)  # a solution marker line, anywhere in a file

README = """# Exercises: {chapters}

Open the files in `exercises/` in Jupyter (jupytext opens `.py` notebooks) and replace each
`raise NotImplementedError(...)` with your code. The check cell under each exercise grades it.

Set up once:   python tools/setup_course.py        (any OS: makes .venv with JupyterLab and the grader)
Open them:     .venv/bin/jupyter lab                (Windows: .venv\\Scripts\\jupyter lab)
Grade it all:  .venv/bin/python -m companion grade          (grades exercises/, your own folder)
          or:  .venv/bin/pytest tests --impl exercises

The `companion` package is here because the chapters use it. It contains the course's own
versions of what the exercises ask for: an exercise answered by calling them scores 0.
"""


def make_bundle(chapters: list[str], out: Path, root: Path) -> list[Path]:
    """Write the bundle for ``chapters`` into ``out`` (which must not exist or be empty)."""
    chapters = [normalise_chapter(c) for c in chapters]
    if not chapters:
        raise ValueError("name at least one chapter, e.g. assign ch03 ch04 --out DIR")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty: choose a new folder")
    files: list[tuple[Path, Path]] = []
    for chapter in chapters:
        stubs = sorted((root / "exercises").glob(f"{chapter}_*.py"))
        tests = sorted((root / "tests" / "exercises").glob(f"test_{chapter}_*.py"))
        if not stubs or not tests:
            raise ValueError(f"chapter {chapter} has no exercises to assign")
        files += [(p, Path("exercises") / p.name) for p in stubs]
        files += [(p, Path("tests/exercises") / p.name) for p in tests]
    # the conftests and the helper modules they import (tests/*.py that are not tests)
    helpers = [p for p in sorted((root / "tests").glob("*.py")) if not p.name.startswith("test_")]
    files += [(p, Path("tests") / p.name) for p in helpers]
    files += [(root / "tests" / "exercises" / "conftest.py", Path("tests/exercises/conftest.py"))]
    setup = ("pyproject.toml", "LICENSE", "jupytext.toml", "exercises/jupytext.toml", "tools/setup_course.py",
             "jupyter_config/overrides.json")
    files += [(root / name, Path(name)) for name in setup if (root / name).exists()]
    for src in sorted(p for p in (root / "companion").rglob("*") if p.suffix in (".py", ".js")):  # + package data
        files.append((src, Path("companion") / src.relative_to(root / "companion")))
    written = []
    for src, rel in files:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(dest)
    readme = README.format(chapters=", ".join(chapters))
    written.append(atomic_write(out / "README.md", lambda f: f.write(readme), mode="w"))
    handed_out = [p for p in written if p.suffix == ".py" and p.relative_to(out).parts[0] in ("exercises", "tests")]
    leaked = [p for p in handed_out if BEGIN.search(p.read_text(encoding="utf-8"))]
    if leaked:  # pragma: no cover - would mean exercises/ holds solutions
        raise RuntimeError(f"refusing to hand out solutions: {leaked}")
    return written
