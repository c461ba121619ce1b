"""`python -m companion grade` and `python -m companion assign` (registered by companion/tools/cli.py).

    grade [ch03 ...] [--impl PATH] [--format table|json|junit|gradescope] [--output FILE]
          [--timeout S] [--memory-limit MB]
    assign ch03 ch04 --out DIR

The exit status of ``grade`` says whether grading happened, never how the learner did: 0 when
the report was produced (whatever the score), 2 for a usage error (no such folder), 3 when the
grader itself failed (a worker could not start), 130 when it was interrupted (the report is
still written, with the tests that never ran marked 'not run').
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ..tools.io import new_file_mode

# the grader needs pytest: it is imported when a grading command runs, so that registering
# these commands costs `python -m companion train` nothing


def add_parser(subparsers) -> None:
    g = subparsers.add_parser("grade", help="grade exercises with the course's tests",
                              description="Run the graded tests on a folder of exercise files and score them. "
                                          "The learner's code runs in worker processes under time and memory limits "
                                          "(Linux, macOS; on Windows in this process, without limits: see the README).")
    g.add_argument("chapters", nargs="*", help="chapters to grade, e.g. ch03 ch04 (default: all)")
    g.add_argument("--impl", default="exercises", help="folder with the chNN_*.py files (default: exercises)")
    g.add_argument("--format", choices=("table", "json", "junit", "gradescope"), default="table")
    g.add_argument("--timeout", type=float, default=None,
                   help="seconds of wall time each exercise may use, all its tests together (default 6)")
    g.add_argument("--memory-limit", type=int, default=None, help="MiB of memory a worker may use (default 2048)")
    g.add_argument("--worker-user", default=None,
                   help="run the learner's code as this user (the grader must run as root, e.g. in a container): "
                        "then it cannot signal the grader or touch its report")
    g.add_argument("--output", type=Path, help="write the report to this file (atomically) as well as printing the table")
    g.set_defaults(func=grade_command)
    a = subparsers.add_parser("assign", help="make a student bundle of chapters, without solutions")
    a.add_argument("chapters", nargs="+", help="chapters to assign, e.g. ch03 ch04")
    a.add_argument("--out", type=Path, required=True, help="new folder for the bundle")
    a.set_defaults(func=assign_command)


class ReportFile:
    """The --output file, opened (as a temporary file beside it) before any worker starts, and
    put in place with one rename at the end: whatever was at that path meanwhile is replaced."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"--output {path} is a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")  # LF on Windows too, as atomic_write

    def commit(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.chmod(self.tmp, new_file_mode())  # mkstemp made it 0600; a report gets the user's umask
        os.replace(self.tmp, self.path)

    def abandon(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def grade_command(args) -> int:
    from .grader import NOT_RUN, find_root, run_tests, score
    from .report import Timer, format_gradescope, format_json, format_junit, format_table
    from .worker import not_dumpable
    from .workers import Limits, become_subreaper, unguaranteed

    timer = Timer()
    root = find_root()
    limits = Limits.from_env(args.timeout, args.memory_limit, args.worker_user)
    if limits.time_limit_s <= 0 or limits.memory_mb <= 0:
        raise ValueError("--timeout and --memory-limit must be positive")
    if limits.worker_user:
        from .workers import worker_ids

        worker_ids(limits.worker_user)  # a clear error now, not a failed worker later
    missing_guarantees = unguaranteed()  # also written into the report, for whoever reads it later
    for missing in missing_guarantees:
        print(f"warning: this OS cannot give this guarantee: {missing}", file=sys.stderr)
    report_file = ReportFile(args.output) if args.output is not None else None
    try:
        become_subreaper()
        not_dumpable()  # the grader's own pipes and report are out of reach through /proc (Linux, non-root)
        try:
            results, collector = run_tests(args.chapters, args.impl, root=root, limits=limits)
        except KeyboardInterrupt:  # before pytest's session began: there is no list of tests to report
            print("interrupted before the graded tests were collected: no report written", file=sys.stderr)
            return 130
        scores = score(results)
        if not scores:
            print("no graded tests were collected: " + "; ".join(collector.collect_errors), file=sys.stderr)
            return 2
        problems = [f"the grader failed: {f}" for f in dict.fromkeys(collector.faults)]
        if collector.interrupted:
            problems.append(f"grading was interrupted: {sum(t.outcome == NOT_RUN for t in results)} test(s) never ran")
        info = {"notes": collector.notes, "problems": problems, "interrupted": collector.interrupted,
                "unguaranteed": missing_guarantees,
                "time_limit_s": limits.time_limit_s, "memory_limit_mb": limits.memory_mb}
        if args.format == "json":
            report = json.dumps(format_json(scores, info), indent=2)
        elif args.format == "gradescope":
            report = json.dumps(format_gradescope(scores, timer.seconds, info), indent=2)
        elif args.format == "junit":
            report = format_junit(scores, timer.seconds, info)
        else:
            report = format_table(scores)
        if report_file is not None:
            report_file.commit(report + "\n")
            report_file = None
            print(format_table(scores, details=False))
            print(f"wrote {args.output}")
        else:
            print(report)
        for line in [*collector.notes, *problems]:
            print(f"note: {line}", file=sys.stderr)
        if collector.interrupted:
            return 130
        return 3 if collector.faults else 0
    finally:
        if report_file is not None:
            report_file.abandon()


def assign_command(args) -> int:
    from .bundle import make_bundle
    from .grader import find_root

    written = make_bundle(args.chapters, args.out, find_root())
    print(f"wrote {len(written)} files to {args.out} (no solutions); grade with: "
          f"python -m companion grade (run inside {args.out}: it grades {args.out}/exercises)")
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
