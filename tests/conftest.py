"""Shared fixtures and helpers for the companion's tests.

Every random number comes from an explicit numpy Generator made here or in the test, so a
failing test fails the same way on every run.
"""

from __future__ import annotations

import numpy as np
import pytest

# helpers live in model_helpers.py (tests/exercises has its own conftest.py, and the two
# collide under the module name "conftest"); re-exported here for older imports
from model_helpers import MODEL_VARIANTS, perturb, small_model  # noqa: F401


def pytest_addoption(parser):
    # graded exercises (tests/exercises): whose code to grade, a folder of chNN_*.py files
    parser.addoption("--impl", default="solutions",
                     help="folder graded by tests/exercises: solutions (default), exercises, or a path")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

