"""check("3.2"): grade one exercise from inside its notebook, with the course's own tests.

The check cell at the end of each exercise calls ``check("3.2")``. It runs exactly the tests
that ``pytest --impl exercises`` and ``python -m companion grade`` run, in this process, but
on the functions defined in the notebook right now (run the cell you edited first: the file
on disk need not be saved). It prints one verdict:

    Exercise 3.2 attention_forward: passed, 4/4 points
    Exercise 3.2 attention_forward: failed, 1/4 points
      - test_matches_reference: ... it looks like the scores are not divided by sqrt(hs) ...
    Exercise 3.2 attention_forward: not yet implemented, 0/4 points

When the grader imports the file as a module, ``check`` does nothing: grading a file must
not grade it again from inside.

The Stop button (KeyboardInterrupt) stops the check and the cell: the verdict so far is printed
once, marked "interrupted", and the interrupt goes on to Jupyter.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from .adapter import namespace_of, running
from .grader import NOT_RUN, normalise_chapter, run_tests, score

ADVICE = {
    "not implemented": "replace the `raise NotImplementedError(...)` line with your code, run that cell, then this one",
    "failed": "read the first message above: it names the likely bug and the tolerance used",
    "partial": "some tests pass; the messages above say what the others found",
}


def check(exercise: str, namespace=None, impl: str | Path | None = None, root: Path | None = None):
    """Grade exercise ``exercise`` ('3.2') on the caller's functions; print the verdict.

    ``namespace`` (an object or dict holding the functions) defaults to the caller's globals;
    ``impl`` grades a folder's file instead. Returns the ExerciseScore, or None when the
    file is being imported rather than run."""
    if namespace is None and impl is None:
        frame = inspect.currentframe().f_back
        while frame is not None and frame.f_globals.get("__name__", "").startswith("companion.grading"):
            frame = frame.f_back  # skip the package's own wrapper: we want the notebook's globals
        caller = frame.f_globals if frame is not None else {}
        if not running(caller):
            return None  # imported (by the grader or another module): grade nothing
        namespace = caller
    if isinstance(namespace, dict):
        namespace = namespace_of(namespace)
    chapter = normalise_chapter(str(exercise).split(".")[0])
    namespaces = {chapter: namespace} if namespace is not None else None
    results, collector = run_tests([chapter], impl or "solutions", exercise=str(exercise),
                                   namespaces=namespaces, root=root)
    scores = score(results)
    if not scores:  # the course's own machinery is broken (not the learner's code): say so loudly
        if collector.interrupted:
            raise KeyboardInterrupt
        problem = "; ".join(collector.collect_errors) or f"no graded test is marked exercise({exercise!r})"
        raise RuntimeError(f"Exercise {exercise} could not be graded: {problem}")
    s = scores[0]
    verdict = "not yet implemented" if s.outcome == "not implemented" else s.outcome
    if collector.interrupted:
        verdict = f"interrupted ({verdict} so far)"
    print(f"Exercise {s.exercise} {s.title}: {verdict}, {s.score:g}/{s.max_score:g} points")
    for t in s.tests if s.outcome != "not implemented" else []:
        mark = {"passed": "ok  ", NOT_RUN: "----"}.get(t.outcome, "FAIL")
        name = t.nodeid.split("::")[-1]
        print(f"  {mark} {name}" + (f": {t.message}" if t.outcome == "failed" else "")
              + (" (not run)" if t.outcome == NOT_RUN else ""))
    if collector.interrupted:
        raise KeyboardInterrupt  # the Stop button stops the cell, after one verdict
    if s.outcome in ADVICE:
        print(f"  -> {ADVICE[s.outcome]}")
    return s
