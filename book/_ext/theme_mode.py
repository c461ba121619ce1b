"""Sphinx extension: give the theme a colour mode, so no page logs a console error.

pydata-sphinx-theme (under sphinx-book-theme) reads the mode from ``html_context["default_mode"]``;
left unset, each page runs ``dataset.mode = localStorage.getItem("mode") || ""`` and, for a
first-time reader, logs "Got invalid theme mode: . Resetting to auto." as a console error
(tests/browser checks for none). We add the one key, keeping a value the book already sets.
"""

from __future__ import annotations

from sphinx.application import Sphinx

DEFAULT_MODE = "light"  # matplotlib figures are drawn on white; readers can still switch to dark


def set_default_mode(app: Sphinx, config) -> None:
    context = dict(config.html_context or {})
    context.setdefault("default_mode", DEFAULT_MODE)
    config.html_context = context


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", set_default_mode)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
