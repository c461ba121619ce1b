"""Sphinx extension: show each chapter's course metadata (objectives, time, prerequisites).

A chapter declares its course metadata once, in its front matter:

    course:
      budget_s: 30                      # execution-time budget, checked by tests_book/nbbudget.py
      minutes: 45                       # learner time
      objectives: [..., ...]
      prerequisites: [..., ...]
      exercises: exercises/ch03_attention.py

myst-nb passes front-matter keys to Sphinx as document metadata (the docinfo field list, which
Sphinx removes from the page). This extension reads `course` back and puts a "Before you start"
box under the chapter title, so the reader sees what the budget check and the instructors' page
read, and nobody writes the objectives twice.
"""

from __future__ import annotations

import json

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

GITHUB_BLOB = "{url}/blob/{branch}/{path}"


def _course_of(app: Sphinx, docname: str) -> dict | None:
    raw = app.env.metadata.get(docname, {}).get("course")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            logger.warning(f"course metadata is not valid JSON/YAML: {raw!r}",
                           location=docname, type="course", subtype="metadata")
            return None
    if not isinstance(raw, dict):
        logger.warning("course metadata must be a mapping", location=docname,
                       type="course", subtype="metadata")
        return None
    return raw


def _bullets(items) -> nodes.bullet_list:
    blist = nodes.bullet_list()
    for item in items:
        blist += nodes.list_item("", nodes.paragraph(text=str(item)))
    return blist


def insert_card(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    course = _course_of(app, docname)
    shown = ("minutes", "objectives", "prerequisites", "exercises")
    if course is None or not any(course.get(key) for key in shown):
        return  # e.g. a page that declares only its budget_s: no empty box
    card = nodes.admonition(classes=["tip", "course-card"])
    card += nodes.title(text="Before you start")
    lines = []
    if "minutes" in course:
        lines.append(nodes.paragraph(text=f"Time: about {course['minutes']} minutes."))
    card.extend(lines)
    if course.get("objectives"):
        card += nodes.paragraph(text="You will be able to:")
        card += _bullets(course["objectives"])
    if course.get("prerequisites"):
        card += nodes.paragraph(text="Prerequisites:")
        card += _bullets(course["prerequisites"])
    if course.get("exercises"):
        path = course["exercises"]
        # Jupyter Book passes _config.yml's `repository:` to the theme options.
        options = app.config.html_theme_options or {}
        url, branch = options.get("repository_url"), options.get("repository_branch", "main")
        para = nodes.paragraph(text="Exercises: ")
        if url:
            target = GITHUB_BLOB.format(url=url.rstrip("/"), branch=branch, path=path)
            para += nodes.reference("", path, refuri=target)
        else:
            para += nodes.literal(text=path)
        para += nodes.Text(" (open it in Jupyter: it is a jupytext notebook).")
        card += para
    # Put the card right under the page title (the first section's title).
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children:
        doctree.insert(0, card)
    else:
        section.insert(1, card)


def setup(app: Sphinx) -> dict:
    # Priority > 500: run after Sphinx's metadata collector has read the docinfo.
    app.connect("doctree-read", insert_card, priority=600)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
