"""`python -m companion grade` and `python -m companion assign` (registered by companion/cli.py).

    grade [ch03 ...] [--impl PATH] [--format table|json|junit|gradescope] [--output FILE]
    assign ch03 ch04 --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..io import atomic_write
from . import TIME_LIMIT_S

# the grader needs pytest: it is imported when a grading command runs, so that registering
# these commands costs `python -m companion train` nothing


def add_parser(subparsers) -> None:
    g = subparsers.add_parser("grade", help="grade exercises with the course's tests",
                              description="Run the graded tests on a folder of exercise files and score them.")
    g.add_argument("chapters", nargs="*", help="chapters to grade, e.g. ch03 ch04 (default: all)")
    g.add_argument("--impl", default="exercises", help="folder with the chNN_*.py files (default: exercises)")
    g.add_argument("--format", choices=("table", "json", "junit", "gradescope"), default="table")
    g.add_argument("--timeout", type=float, default=None, help=f"seconds allowed per test (default {TIME_LIMIT_S})")
    g.add_argument("--output", type=Path, help="write the report to this file (atomically) as well as printing the table")
    g.set_defaults(func=grade_command)
    a = subparsers.add_parser("assign", help="make a student bundle of chapters, without solutions")
    a.add_argument("chapters", nargs="+", help="chapters to assign, e.g. ch03 ch04")
    a.add_argument("--out", type=Path, required=True, help="new folder for the bundle")
    a.set_defaults(func=assign_command)


def grade_command(args) -> int:
    from .grader import find_root, format_gradescope, format_json, format_table, junit_xml, run_tests, score

    root = find_root()
    if args.format == "junit":
        report, results = junit_xml(args.chapters, args.impl, root=root, timeout=args.timeout)
    else:
        results, _ = run_tests(args.chapters, args.impl, root=root, timeout=args.timeout)
    scores = score(results)
    if not scores:
        print("no graded tests were collected", file=sys.stderr)
        return 2
    if args.format == "json":
        report = json.dumps(format_json(scores), indent=2)
    elif args.format == "gradescope":
        report = json.dumps(format_gradescope(scores), indent=2)
    elif args.format == "table":
        report = format_table(scores)
    if args.output is not None:
        atomic_write(args.output, lambda f: f.write(report + "\n"), mode="w")
        print(format_table(scores, details=False))
        print(f"wrote {args.output}")
    else:
        print(report)
    return 0 if all(s.outcome == "passed" for s in scores) else 1


def assign_command(args) -> int:
    from .bundle import make_bundle
    from .grader import find_root

    written = make_bundle(args.chapters, args.out, find_root())
    print(f"wrote {len(written)} files to {args.out} (no solutions); grade with: "
          f"python -m companion grade --impl exercises (run inside {args.out})")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.grading")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
