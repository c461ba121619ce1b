"""The budget plugin fails a notebook that runs over its budget or declares none, and passes one
within it. Three tiny MyST notebooks are converted with tests_book/convert.py and run by nbval
with the plugin, in one subprocess, exactly as `make notebooks` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

PAGE = """---
jupytext:
  text_representation: {{extension: .md, format_name: myst}}
kernelspec: {{display_name: Python 3, language: python, name: python3}}
{course}---
# A page
```{{code-cell}} ipython3
import time
time.sleep({sleep})
```
```{{code-cell}} ipython3
print("done")
```
"""
PAGES = {
    "slow.md": ("course:\n  budget_s: 0.3\n", 1.0),
    "nobudget.md": ("", 0),
    "quick.md": ("course:\n  budget_s: 60\n", 0),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> subprocess.CompletedProcess:
    tmp = tmp_path_factory.mktemp("nbbudget")
    for name, (course, sleep) in PAGES.items():
        (tmp / name).write_text(PAGE.format(course=course, sleep=sleep), encoding="utf-8")
    out = tmp / "nb"
    subprocess.run([sys.executable, str(HERE / "convert.py"), "--out", str(out), *PAGES],
                   check=True, capture_output=True, cwd=tmp)
    env = {**os.environ, "PYTHONPATH": str(HERE), "NB_BUDGET_SCALE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "nbbudget", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "-rf", "--rootdir", str(tmp), "-c", os.devnull, str(out)],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=240)


def test_the_run_fails(run):
    assert run.returncode == 1, run.stdout + run.stderr


def test_over_budget_fails_naming_the_page_and_both_numbers(run):
    assert "slow.md ran over its time budget" in run.stdout
    assert "budget is 0.3 s" in run.stdout
    assert "FAILED nb/slow.ipynb::Cell 1" in run.stdout


def test_missing_budget_fails(run):
    assert "nobudget.md declares no time budget" in run.stdout
    assert "FAILED nb/nobudget.ipynb::Cell 1" in run.stdout


def test_within_budget_passes_and_is_reported(run):
    assert "quick.ipynb" not in "".join(l for l in run.stdout.splitlines() if l.startswith("FAILED"))
    assert "2 failed, 4 passed" in run.stdout
    assert "quick.md" in run.stdout.split("notebook times vs budgets")[1]
