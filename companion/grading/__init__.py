"""Graded exercises: the grader, check() for notebooks, use() to plug a learner's layer in.

    adapter.py   the one door from the tests to a learner's code, and failure messages
    messages.py  renamed functions, a forgotten return, the learner's line, type/shape checks
    grader.py    runs the graded tests with pytest and scores them by their markers
    notebook.py  check("3.2"): the same tests, from inside an exercise notebook
    plug.py      use(attention_forward=...): the companion model on a learner's functions
    build.py     generates exercises/ (stubs) from solutions/ (one source of truth)
    bundle.py    assign: a student bundle of chosen chapters, without solutions
    cli.py       `python -m companion grade` and `python -m companion assign`
"""

from .plug import PLUGGABLE, use

TIME_LIMIT_S = 30  # per graded test: a learner's infinite loop fails its test, never hangs the grader


def check(exercise: str, namespace=None, impl=None, root=None):
    """check("3.2"): grade one exercise in its notebook (see notebook.py). Imported here lazily,
    so that ``import companion`` does not need pytest; only grading does."""
    from .notebook import check as run_check

    return run_check(exercise, namespace, impl, root)


__all__ = ["check", "use", "PLUGGABLE"]
