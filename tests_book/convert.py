"""Convert text notebooks (MyST Markdown or py:percent) to .ipynb for nbval.

    python tests_book/convert.py --out _build/notebooks book/intro.md book/01_tokenization.md ...

Each source keeps its path under --out (book/01_x.md -> _build/notebooks/book/01_x.ipynb), so
exercises/ch03_attention.py and solutions/ch03_attention.py never collide. The notebooks are
build products: they live under _build/ and are never committed (text notebooks only).

The source's front matter survives the conversion as notebook metadata (jupytext keeps every key
besides `jupytext` and `kernelspec`), so the chapter's `course.budget_s` is read by the nbval
budget plugin (tests_book/nbbudget.py) from the .ipynb; the converter checks that it survived.
We also record the source path, so a failure names the file the author edits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat


def convert(source: Path, out_dir: Path, root: Path) -> Path:
    """Write `source` as an .ipynb under `out_dir`, mirroring its path relative to `root`."""
    if not source.is_file():
        raise SystemExit(f"convert.py: no such notebook source: {source}")
    nb = jupytext.read(source)
    try:
        rel = source.resolve().relative_to(root)
    except ValueError:
        rel = Path(source.name)
    nb.metadata["course_source"] = rel.as_posix()
    target = out_dir / rel.with_suffix(".ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(target))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the .ipynb files")
    parser.add_argument("sources", nargs="+", type=Path, help="text notebooks (.md or .py)")
    args = parser.parse_args(argv)
    root = Path.cwd().resolve()
    for source in args.sources:
        target = convert(source, args.out, root)
        budget = nbformat.read(str(target), as_version=4).metadata.get("course", {}).get("budget_s")
        print(f"{source} -> {target}  (budget_s: {budget})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
