"""assign: a student bundle of some chapters' exercises, with no solutions in it.

    python -m companion assign ch03 ch04 --out DIR

DIR gets everything a student needs to work and grade offline, and nothing else:

    DIR/exercises/ch03_attention.py ...   the stubs of the chosen chapters
    DIR/tests/conftest.py (+ its helpers), tests/exercises/conftest.py, test_ch03_*.py ...   the graded tests
    DIR/companion/                        the package (the chapters use it; see below)
    DIR/pyproject.toml, README.md         install with `pip install -e DIR`
    DIR/requirements.txt                  the student's own: what grading and Jupyter need
                                          (JupyterLab, jupytext, pytest), not the book's tools
                                          (no jupyter-book, no Playwright)

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

# the course's requirements a student needs (versions as in the course's requirements.txt),
# plus JupyterLab to open the exercise notebooks
STUDENT_PACKAGES = ("numpy", "matplotlib", "ipywidgets", "tqdm", "threadpoolctl", "jupytext", "ipykernel",
                    "pytest", "pytest-timeout")
STUDENT_EXTRA = ("jupyterlab>=4.0",)


def student_requirements(course_requirements: str) -> str:
    """The bundle's requirements.txt: the course's pins for STUDENT_PACKAGES, and JupyterLab."""
    pins = {}
    for line in course_requirements.splitlines():
        line = line.split("#")[0].strip()
        name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower() if line else ""
        if name in STUDENT_PACKAGES:
            pins[name] = line
    missing = [p for p in STUDENT_PACKAGES if p not in pins]
    lines = ["# What the exercises, their check() cells and the grader need; nothing for building the book.",
             *[pins.get(p, p) for p in STUDENT_PACKAGES], *STUDENT_EXTRA]
    if missing:
        lines.insert(1, f"# (not pinned by the course: {', '.join(missing)})")
    return "\n".join(lines) + "\n"

README = """# Exercises: {chapters}

Open the files in `exercises/` in Jupyter (jupytext opens `.py` notebooks) and replace each
`raise NotImplementedError(...)` with your code. The check cell under each exercise grades it.

Set up once:   python -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/pip install -e .
Work:          .venv/bin/jupyter lab exercises/
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
    files += [(root / "pyproject.toml", Path("pyproject.toml"))]
    for src in sorted((root / "companion").rglob("*.py")):
        files.append((src, Path("companion") / src.relative_to(root / "companion")))
    written = []
    for src, rel in files:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        written.append(dest)
    readme = README.format(chapters=", ".join(chapters))
    written.append(atomic_write(out / "README.md", lambda f: f.write(readme), mode="w"))
    course = (root / "requirements.txt").read_text(encoding="utf-8") if (root / "requirements.txt").exists() else ""
    requirements = student_requirements(course)
    written.append(atomic_write(out / "requirements.txt", lambda f: f.write(requirements), mode="w"))
    handed_out = [p for p in written if p.suffix == ".py" and p.relative_to(out).parts[0] in ("exercises", "tests")]
    leaked = [p for p in handed_out if BEGIN.search(p.read_text(encoding="utf-8"))]
    if leaked:  # pragma: no cover - would mean exercises/ holds solutions
        raise RuntimeError(f"refusing to hand out solutions: {leaked}")
    return written
