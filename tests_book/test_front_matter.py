"""Every page in the table of contents declares its course metadata, and it survives jupytext.

The `course:` block in a chapter's front matter is written once and read three times: by the
nbval budget plugin (budget_s, from the converted notebook's metadata), by the "Before you
start" box (book/_ext/course_card.py) and by the instructors' chapter map. This test reads the
table of contents, so a new chapter cannot slip in without a budget.

A chapter marked ``optional: true`` in its ``course:`` block (chapter 14, the GPU chapter, asks no
exercises) may leave out ``exercises``; if it names a file, the file must still fit the rules.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    files += [c["file"] for c in toc.get("chapters", [])]
    return files


def chapters() -> list[str]:
    return [f for f in toc_files() if Path(f).name[:2].isdigit()]


def test_toc_lists_the_preface_and_ten_chapters():
    files = toc_files()
    assert files[0] == "book/intro"
    assert [Path(f).name[:2] for f in chapters()][:10] == [f"{i:02d}" for i in range(1, 11)]
    for f in files:
        assert (ROOT / f"{f}.md").is_file(), f"_toc.yml lists {f} but {f}.md does not exist"


@pytest.mark.parametrize("page", toc_files())
def test_every_page_has_a_positive_budget_after_conversion(page):
    nb = jupytext.read(ROOT / f"{page}.md")          # what tests_book/convert.py hands to nbval
    course = nb.metadata.get("course")
    assert isinstance(course, dict), f"{page}.md: front matter has no `course:` mapping"
    budget = course.get("budget_s")
    assert isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0, \
        f"{page}.md: course.budget_s must be a positive number of seconds, got {budget!r}"


@pytest.mark.parametrize("page", chapters())
def test_every_chapter_states_objectives_time_prerequisites_and_exercises(page):
    course = jupytext.read(ROOT / f"{page}.md").metadata["course"]
    assert isinstance(course.get("minutes"), int) and course["minutes"] > 0, f"{page}: minutes"
    for key in ("objectives", "prerequisites"):
        assert isinstance(course.get(key), list) and course[key], f"{page}: {key} must be a non-empty list"
        assert all(isinstance(x, str) and x.strip() for x in course[key]), f"{page}: {key} entries"
    ex = course.get("exercises")
    if ex is None and course.get("optional") is True:
        return  # an optional chapter without graded exercises
    assert isinstance(ex, str) and ex.startswith("exercises/ch") and ex.endswith(".py"), \
        f"{page}: course.exercises must name exercises/chNN_<topic>.py, got {ex!r}"
    assert Path(ex).name[2:4] == Path(page).name[:2], f"{page}: exercises file {ex} is another chapter's"
