"""Tasks: seeded problem generators with held-out test sets (issue 3).

    make_task("listops", seed=0, n_args=3, max_value=9)   First/Second/Last/Max/Min ( a b c ) = x
    make_task("addition", seed=0, digits=2, ops="+-")      37+48=85, 5-12=-7
    make_task("text", corpus=None, tokenizer="char")       next-character prediction (Shakespeare)

Every task has ``.name``, ``.tokenizer``, ``.vocab_size``, ``.block_size``, the splits
``.train``, ``.val``, ``.test``, ``.batch(split, batch_size, rng)`` and ``.to_dict()``;
``make_task(**task.to_dict())`` rebuilds the same task (a checkpoint stores that dict).
"""

from __future__ import annotations

import inspect

from .addition import AdditionTask
from .base import ProblemTask, Task
from .listops import OPS, ListOpsTask
from .text import TextTask, default_corpus, read_corpus

TASKS = {"listops": ListOpsTask, "addition": AdditionTask, "text": TextTask}


def make_task(name: str, seed: int = 0, **options) -> Task:
    """Build a task by name; an unknown option is named in the error with the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks are {sorted(TASKS)}")
    cls = TASKS[name]
    known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "seed")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for task {name!r}; its options are {known}")
    return cls(seed=seed, **options)


def task_from_dict(d: dict) -> Task:
    """Rebuild a task from ``task.to_dict()``."""
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError(f"a task description must be a dict with a 'name', got {d!r}")
    # (a text task's BPE vocabulary is retrained from the corpus unless d["tokenizer"] is the
    # saved tokenizer itself, a Tokenizer or its to_dict(), as a checkpoint provides)
    return make_task(d["name"], **{k: v for k, v in d.items() if k != "name"})


__all__ = ["TASKS", "make_task", "task_from_dict", "Task", "ProblemTask", "ListOpsTask", "AdditionTask",
           "TextTask", "OPS", "default_corpus", "read_corpus"]
