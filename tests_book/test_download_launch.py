"""Each chapter page offers itself as a notebook download and a Binder launch link.

Run after `jupyter-book build` (make book-strict). With `launch_buttons` set in _config.yml,
sphinx-book-theme copies the notebook this build executed (_build/jupyter_execute/<page>.ipynb)
to _sources/<page>.ipynb and links it from the page's download menu; the launch menu links to
Binder at the repository named in _config.yml. Both are plain links: nothing is fetched while the
page is read (tests_book/test_offline_html.py checks that for every resource).

Set HTML_DIR to check a build elsewhere (default _build/html).
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("HTML_DIR", ROOT / "_build" / "html"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def notebook_pages() -> list[str]:
    """Pages of the table of contents that are notebooks (a kernelspec in the front matter)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [c["file"] for p in toc.get("parts", []) for c in p.get("chapters", [])]
    files += [c["file"] for c in toc.get("chapters", [])]
    return [f for f in files if "kernelspec" in jupytext.read(ROOT / f"{f}.md").metadata]


class Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def links(page: str) -> list[str]:
    html = HTML / f"{page}.html"
    if not html.is_file():
        pytest.fail(f"{html} was not built: run `make book` (or jupyter-book build .) first")
    parser = Links()
    parser.feed(html.read_text(encoding="utf-8"))
    return parser.hrefs


def binder_url(page: str) -> str:
    """The link the course promises, built from _config.yml's repository and launch settings."""
    repo = CONFIG["repository"]["url"].rstrip("/")
    org, name = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", repo).groups()
    launch = CONFIG["launch_buttons"]
    ui = {"jupyterlab": "lab/tree", "classic": "tree"}[launch["notebook_interface"]]
    return f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{org}/{name}/{CONFIG['repository']['branch']}?urlpath={ui}/{page}.md"


def test_every_chapter_is_a_notebook_page():
    pages = notebook_pages()
    assert "book/01_tokenization" in pages and "book/10_training" in pages, pages


@pytest.mark.parametrize("page", notebook_pages())
def test_the_page_offers_its_executed_notebook_as_an_ipynb_download(page):
    hrefs = [h for h in links(page) if h.split("?")[0].endswith(".ipynb")]
    assert hrefs, f"{page}.html has no .ipynb download link"
    target = Path(urljoin((HTML / page).as_posix(), hrefs[0]))
    assert target.is_file(), f"{page}.html links {hrefs[0]}, which is not in the build"
    nb = nbformat.read(str(target), as_version=4)
    nbformat.validate(nb)
    source = jupytext.read(ROOT / f"{page}.md")
    code = [c.source for c in source.cells if c.cell_type == "code"]
    assert [c.source for c in nb.cells if c.cell_type == "code"] == code, f"{target.name} is not {page}.md"
    assert nb.metadata.get("course") == source.metadata.get("course"), "the course metadata did not reach the download"
    if code:  # executed at build time: the learner gets the outputs the book shows
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{target.name} has no outputs"


@pytest.mark.parametrize("page", notebook_pages())
def test_the_page_links_to_binder_at_the_configured_repository(page):
    assert binder_url(page) in links(page), f"{page}.html has no link {binder_url(page)}"
