"""Generate the exercise stubs from the solutions: solutions/ is the one source of truth.

In a solution file, each exercise's body sits between two marker lines:

    def attention_forward(q, k, v, mask):
        \"\"\"...\"\"\"
        # BEGIN SOLUTION 3.2
        ...the answer...
        # END SOLUTION

The stub keeps everything else (instructions, signature, docstring, check cell) and puts
in place of the marked lines, at the same indentation:

        raise NotImplementedError("Exercise 3.2: attention_forward")

    python -m companion.grading.build            write exercises/ from solutions/
    python -m companion.grading.build --check    exit 1, naming the files, if exercises/ is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..io import atomic_write

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION (\d+\.\d+)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
DEF = re.compile(r"^\s*def (\w+)\(")
# a cell of its own ("# %%"): a notebook saved from JupyterLab writes the same bytes back
HEADER_NOTE = "# %%\n# This file is generated from solutions/ by `python -m companion.grading.build`: edit the solution.\n"


def make_stub(source: str, filename: str = "<solution>") -> str:
    """The exercise file for one solution file's text."""
    out, inside, current_def = [], None, None
    for lineno, line in enumerate(source.splitlines(keepends=True), start=1):
        if inside is None:
            m = BEGIN.match(line)
            if m:
                if current_def is None:
                    raise ValueError(f"{filename}:{lineno}: BEGIN SOLUTION outside a function")
                indent, exercise = m.groups()
                out.append(f'{indent}raise NotImplementedError("Exercise {exercise}: {current_def}")\n')
                inside = lineno
                continue
            if END.match(line):
                raise ValueError(f"{filename}:{lineno}: END SOLUTION without a BEGIN SOLUTION")
            d = DEF.match(line)
            if d:
                current_def = d.group(1)
            out.append(line)
        elif END.match(line):
            inside = None
        elif BEGIN.match(line):
            raise ValueError(f"{filename}:{lineno}: BEGIN SOLUTION inside the one opened at line {inside}")
    if inside is not None:
        raise ValueError(f"{filename}:{inside}: BEGIN SOLUTION is never closed by END SOLUTION")
    text = "".join(out)
    # the generated-file note goes after the jupytext header, so the notebook still opens
    if text.startswith("# ---\n"):
        end = text.index("# ---\n", 6) + len("# ---\n")
        return text[:end] + "\n" + HEADER_NOTE + text[end:]
    return HEADER_NOTE + text


def stubs(solutions: Path, exercises: Path) -> dict[Path, str]:
    """{exercise path: generated text} for every chNN_*.py in ``solutions``."""
    found = sorted(solutions.glob("ch[0-9][0-9]_*.py"))
    if not found:
        raise FileNotFoundError(f"no chNN_*.py solution files in {solutions}")
    return {exercises / p.name: make_stub(p.read_text(encoding="utf-8"), str(p)) for p in found}


def stale(solutions: Path, exercises: Path) -> list[str]:
    """Names of exercise files that are missing, out of date, or have no solution."""
    wanted = stubs(solutions, exercises)
    problems = [f"{p} is out of date" if p.exists() else f"{p} is missing"
                for p, text in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    problems += [f"{p} has no solution file" for p in sorted(exercises.glob("ch[0-9][0-9]_*.py")) if p not in wanted]
    return problems


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m companion.grading.build", description=__doc__.split("\n")[0])
    parser.add_argument("--solutions", type=Path, default=root / "solutions")
    parser.add_argument("--exercises", type=Path, default=root / "exercises")
    parser.add_argument("--check", action="store_true", help="only check that exercises/ is up to date")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.solutions, args.exercises)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run `python -m companion.grading.build` to regenerate the stubs", file=sys.stderr)
        return 1 if problems else 0
    for path, text in stubs(args.solutions, args.exercises).items():
        atomic_write(path, lambda f, t=text: f.write(t), mode="w")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
