"""The install sets are pyproject.toml's extras and nothing else; the set-up script installs them.

requirements.txt and the Makefile (through tools/setup_course.py) name extras, never packages, so
the sets cannot drift apart. The real installs (a fresh `pip install ".[grade]"` and `".[all]"`)
are too slow and need a package registry, so they are not unit tests: the README gives them.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
sys.path.insert(0, str(ROOT / "tools"))
import setup_course  # noqa: E402


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def expand(extra: str) -> set[str]:
    """Every package an extra installs, following companion[...] references."""
    out = set()
    for req in EXTRAS[extra]:
        m = re.fullmatch(r"companion\[([\w,]+)\]", req)
        out |= set().union(*(expand(e) for e in m.group(1).split(","))) if m else names([req])
    return out


def test_all_is_every_extra_together():
    others = set(EXTRAS) - {"all"}
    assert others == {"learner", "grade", "book", "test"}
    assert expand("all") == set().union(*(expand(e) for e in others))


def test_grading_needs_only_the_grade_extra():
    # the grader runs pytest in-process, and the graded tests' time limit is pytest-timeout's marker
    assert {"pytest", "pytest-timeout"} <= expand("grade")
    assert expand("grade") <= expand("learner") and expand("grade") <= expand("test")


def test_the_learner_and_test_sets_have_jupyterlab_and_jupytext():
    assert {"jupyterlab", "jupytext", "ipykernel"} <= expand("learner")
    assert {"jupyterlab", "jupyter-server", "jupytext", "nbval", "hypothesis", "playwright"} <= expand("test")
    assert "jupyter-book" in expand("book")


def test_requirements_txt_names_the_extras_and_no_package():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-e .[all]"]


def test_the_makefile_installs_through_the_setup_script_with_every_extra():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "tools/setup_course.py --venv $(VENV) --extras all" in makefile
    assert "pip install" not in makefile, "the Makefile installs packages itself: use tools/setup_course.py"


def test_the_companion_command_is_python_m_companion():
    target = PYPROJECT["project"]["scripts"]["companion"]
    module, func = target.split(":")
    main = getattr(importlib.import_module(module), func)
    assert main is importlib.import_module("companion.cli").main
    assert "from .cli import main" in (ROOT / "companion" / "__main__.py").read_text(encoding="utf-8")


def test_the_licence_is_an_spdx_expression_with_its_file():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert all((ROOT / f).is_file() for f in PYPROJECT["project"]["license-files"])
    build_req = PYPROJECT["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in build_req), build_req


def test_setup_script_commands_install_the_extras_and_the_corpus(tmp_path):
    cmds = setup_course.commands(tmp_path / "python", "learner")
    assert cmds[0][-2:] == ["-e", ".[learner]"]
    assert cmds[1][-2:] == ["--no-deps", setup_course.CORPUS]
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_course.py"), "--dry-run", "--extras", "all",
                          "--venv", str(tmp_path / "v")], capture_output=True, text=True, check=True).stdout
    assert "-m venv" in out and "-e .[all]" in out and "overrides.json" in out
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_course.py"), "--dry-run", "--extras", "learnr"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown --extras learnr" in bad.stderr


def test_lab_settings_are_installed_and_keep_a_learners_other_overrides(tmp_path):
    target = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    target.parent.mkdir(parents=True)
    theme = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
             "@jupyterlab/docmanager-extension:plugin": {"autosave": False, "defaultViewers": {"csv": "Table"}}}
    target.write_text(json.dumps(theme))
    assert setup_course.install_lab_settings(tmp_path) == target
    merged = json.loads(target.read_text())
    doc = merged["@jupyterlab/docmanager-extension:plugin"]
    assert doc["defaultViewers"] == {"csv": "Table", "markdown": "Jupytext Notebook", "python": "Jupytext Notebook"}
    assert doc["autosave"] is False and merged["@jupyterlab/apputils-extension:themes"] == theme["@jupyterlab/apputils-extension:themes"]
    target.write_text("{not json")
    with pytest.raises(SystemExit, match="not valid JSON"):
        setup_course.install_lab_settings(tmp_path)
