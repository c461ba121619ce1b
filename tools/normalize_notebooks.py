"""Rewrite the course's text notebooks exactly as JupyterLab would save them, unedited.

    python tools/normalize_notebooks.py [--check] [FILE ...]

A chapter (book/*.md), exercise or solution opened in JupyterLab is saved back through jupytext
with the settings of the jupytext.toml beside it; tests/test_jupyter_roundtrip.py proves that an
unedited save changes no byte. A page written by hand (say, a new chapter whose front matter is
in block style, or a cell option not followed by a blank line) would change on its first save, so
authors run this after editing. --check lists the files that would change and exits 1.
Solutions come before exercises: run `python -m companion.grading.build` afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
from jupytext.config import load_jupytext_configuration_file

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {".md": "md:myst", ".py": "py:percent"}


def course_files() -> list[Path]:
    return sorted([*ROOT.glob("book/*.md"), *ROOT.glob("solutions/ch[0-9][0-9]_*.py"),
                   *ROOT.glob("exercises/ch[0-9][0-9]_*.py")])


def saved_form(path: Path) -> str:
    """The text JupyterLab writes for ``path`` opened as a notebook and saved unchanged."""
    config = load_jupytext_configuration_file(str(path.parent / "jupytext.toml"))
    if config is None:
        raise SystemExit(f"{path}: no jupytext.toml beside it, so JupyterLab does not open it as a notebook")
    fmt = FORMATS[path.suffix]
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt=fmt)
    nb.metadata.setdefault("jupytext", {})["notebook_metadata_filter"] = config.notebook_metadata_filter
    return jupytext.writes(nb, fmt=fmt)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a).resolve() for a in argv if a != "--check"] or course_files()
    changed = []
    for path in paths:
        new = saved_form(path)
        if new != path.read_text(encoding="utf-8"):
            changed.append(path.relative_to(ROOT).as_posix())
            if not check:
                path.write_text(new, encoding="utf-8", newline="\n")
    for name in changed:
        print(("would change: " if check else "rewrote: ") + name)
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
