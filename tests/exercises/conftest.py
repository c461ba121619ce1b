"""Graded exercise tests: markers, the ``impl`` fixture, and the workers behind it.

Each test file sets ``CHAPTER = "ch03"``; its tests ask ``impl`` for the learner's functions
(``impl.attention_forward(q, k, v, mask)``). Those come from the --impl folder, run in a
worker process per exercise under the grader's limits (companion/grading/sandbox.py), or,
under check() in a notebook, from the notebook itself (companion/grading/adapter.py).

Limits: COMPANION_GRADE_TIME_LIMIT (seconds per exercise, all its tests together) and
COMPANION_GRADE_MEMORY_MB, or the grader's --timeout / --memory-limit. A test also has a
time limit here in the trusted process (pytest-timeout), for the test's own work.
"""

from __future__ import annotations

import signal
import threading

import pytest

from companion.grading import TIME_LIMIT_S
from companion.grading.adapter import Learner, close_grading


def pytest_configure(config):
    for n in range(1, 11):
        config.addinivalue_line("markers", f"ch{n:02d}: graded exercise test of chapter {n}")
    config.addinivalue_line("markers", "exercise(id, title): the exercise a graded test belongs to")
    config.addinivalue_line("markers", "points(n): what passing this graded test is worth")


def pytest_unconfigure(config):
    close_grading(config)  # no worker outlives the session


def pytest_collection_modifyitems(config, items):
    limit = config.getoption("timeout", None) or TIME_LIMIT_S  # pytest-timeout's --timeout, if given
    for item in items:
        exercise, points = item.get_closest_marker("exercise"), item.get_closest_marker("points")
        if exercise is None:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(float(limit)))
        # carried into JUnit XML as <property> elements, for graders that read points from there
        item.user_properties += [("exercise", exercise.args[0]), ("points", points.args[0] if points else 0)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """The trusted side's own time limit per test where pytest-timeout is not installed."""
    if item.config.pluginmanager.hasplugin("timeout") or item.get_closest_marker("exercise") is None \
            or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    limit = float(item.get_closest_marker("timeout").args[0]) if item.get_closest_marker("timeout") else TIME_LIMIT_S

    def expired(signum, frame):
        pytest.fail(f"the test ran past its own time limit in the grader ({limit:g} s)", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def impl(request) -> Learner:
    chapter = getattr(request.module, "CHAPTER", None)
    if chapter is None:
        raise RuntimeError(f"{request.module.__name__} must set CHAPTER = 'chNN'")
    marker = request.node.get_closest_marker("exercise")
    return Learner(request.config, chapter, marker.args[0] if marker else None)
