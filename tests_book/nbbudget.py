"""pytest plugin: fail a notebook that runs over its time budget.

Loaded with `-p nbbudget` next to nbval (see the Makefile's `notebooks` target). Every chapter
declares its budget once, in its front matter, which jupytext carries into the notebook metadata:

    course:
      budget_s: 60      # seconds allowed on the 2-core CI machine

nbval turns each code cell into a test item. We add up the wall-clock time of the cells' `call`
phases (cell execution in the kernel; kernel start-up is not counted), and when the notebook's
last cell has run we compare the total with the budget: over budget, that last item fails with
a message naming the notebook and both numbers. A notebook without a budget fails too, unless
`--nb-default-budget` gives one. `--nb-budget-scale` (or NB_BUDGET_SCALE) multiplies every budget,
for a machine known to be slower than CI. The times are printed at the end and, with
`--nb-times-json PATH`, written to a JSON file (atomically).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbbudget", "notebook time budgets (course.budget_s)")
    group.addoption("--nb-budget-scale", type=float,
                    default=float(os.environ.get("NB_BUDGET_SCALE", "1")),
                    help="multiply every budget by this factor (default: $NB_BUDGET_SCALE or 1)")
    group.addoption("--nb-default-budget", type=float, default=None,
                    help="budget in seconds for notebooks that declare none (default: fail them)")
    group.addoption("--nb-times-json", default=None,
                    help="write each notebook's measured time and budget to this JSON file")


def pytest_configure(config: pytest.Config) -> None:
    # State lives on the plugin object registered for this session, not at module level.
    config.pluginmanager.register(BudgetPlugin(config), "nbbudget-state")


def _notebook_of(item: pytest.Item):
    """The nbval notebook (IPyNbFile) an item belongs to, or None for ordinary tests."""
    parent = item.parent
    return parent if parent is not None and hasattr(parent, "nb") else None


class BudgetPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.scale = config.getoption("--nb-budget-scale")
        self.default = config.getoption("--nb-default-budget")
        self.times_json = config.getoption("--nb-times-json")
        self.elapsed: dict[str, float] = defaultdict(float)
        self.last_item: dict[str, str] = {}
        self.results: dict[str, dict] = {}

    def budget_of(self, nbfile) -> float | None:
        course = nbfile.nb.metadata.get("course") or {}
        budget = course.get("budget_s", self.default)
        if budget is None:
            return None
        if not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0:
            raise pytest.UsageError(
                f"{self.name_of(nbfile)}: course.budget_s must be a positive number of "
                f"seconds, got {budget!r}")
        return float(budget) * self.scale

    @staticmethod
    def name_of(nbfile) -> str:
        return nbfile.nb.metadata.get("course_source") or str(nbfile.fspath)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            nbfile = _notebook_of(item)
            if nbfile is not None:
                self.last_item[nbfile.nodeid] = item.nodeid   # items come in cell order

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        nbfile = _notebook_of(item)
        if nbfile is None or call.when != "call":
            return
        report = outcome.get_result()
        self.elapsed[nbfile.nodeid] += call.duration
        if self.last_item.get(nbfile.nodeid) != item.nodeid:
            return
        name, spent = self.name_of(nbfile), self.elapsed[nbfile.nodeid]
        budget = self.budget_of(nbfile)
        self.results[name] = {"seconds": round(spent, 2), "budget_s": budget}
        if not report.passed:
            return                               # the cell's own failure says more
        if budget is None:
            report.outcome = "failed"
            report.longrepr = (f"{name} declares no time budget: add `course: budget_s: N` "
                               f"to its front matter (or pass --nb-default-budget)")
        elif spent > budget:
            report.outcome = "failed"
            report.longrepr = (f"{name} ran over its time budget: executed in {spent:.1f} s, "
                               f"budget is {budget:.1f} s (course.budget_s"
                               f"{' x scale %g' % self.scale if self.scale != 1 else ''})")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results:
            return
        tr = terminalreporter
        tr.section("notebook times vs budgets")
        total = 0.0
        for name, r in self.results.items():
            total += r["seconds"]
            budget = "none" if r["budget_s"] is None else f"{r['budget_s']:.0f} s"
            flag = "" if r["budget_s"] is None or r["seconds"] <= r["budget_s"] else "  OVER"
            tr.write_line(f"{name:45s} {r['seconds']:7.1f} s   budget {budget}{flag}")
        tr.write_line(f"{'total':45s} {total:7.1f} s")
        if self.times_json:
            # Imported here so the plugin also loads where the companion is not installed.
            from companion.tools.io import write_json
            write_json(Path(self.times_json), {"notebooks": self.results,
                                               "total_s": round(total, 2)})
