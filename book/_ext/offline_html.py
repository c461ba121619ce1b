"""Sphinx extension: keep the HTML book offline.

Jupyter Book always loads sphinx-thebe, which puts the URL of thebe's JavaScript on a CDN into
every page (and a loader, sphinx-thebe.js, that fetches it when a "live code" button is pressed).
The book has no live-code buttons (`launch_buttons.thebe: false`), so we drop both from each page.
Any other script or stylesheet that still points at the network gets a Sphinx warning, which the
strict build (`-W`) turns into an error; tests_book/test_offline_html.py checks the built pages too.
"""

from __future__ import annotations

import re

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)
REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


def _is_thebe(asset) -> bool:
    body = getattr(asset, "attributes", {}).get("body", "") or ""
    return "THEBE_JS_URL" in body or str(asset).endswith("sphinx-thebe.js")


def strip_remote_assets(app: Sphinx, pagename: str, templatename: str, context: dict,
                        doctree) -> None:
    scripts = context.get("script_files")
    if scripts is not None:
        context["script_files"] = [s for s in scripts if not _is_thebe(s)]
    for key in ("script_files", "css_files"):
        for asset in context.get(key) or ():
            if REMOTE.match(str(asset)):
                logger.warning(f"{pagename} loads {asset} from the network: the book must work "
                               f"offline (install it at build time and serve it from _static)",
                               location=pagename, type="offline", subtype="asset")


def setup(app: Sphinx) -> dict:
    # Late priority: run after the extensions that add their assets in html-page-context.
    app.connect("html-page-context", strip_remote_assets, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
