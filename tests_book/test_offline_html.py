"""The built HTML book loads nothing from the network when it is read.

Run after `jupyter-book build` (make book-strict). Every page in _build/html is parsed, and every
resource a browser would fetch while showing it (scripts, stylesheets, images, frames, fonts,
CSS imports) must be a local path. Links a reader may click (<a href>) are allowed to leave the
site. The CSS and JavaScript under _static are checked for absolute URLs they would load too
(@import, url(...), and MathJax's own loader configuration).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

HTML = Path(__file__).resolve().parents[1] / "_build" / "html"
REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)

# tag -> attributes whose URL the browser fetches while rendering the page
LOADING_ATTRS = {
    "script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "embed": ("src",),
    "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",),
    "track": ("src",), "object": ("data",), "input": ("src",),
}
# <link rel=...> values that make the browser fetch the href
LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut",
                "apple-touch-icon", "manifest", "preconnect", "dns-prefetch"}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)
# Absolute URLs inside inline scripts that are fetched: require.js paths, MathJax loader paths,
# widget CDNs. Plain strings in JS (e.g. a link in a comment) are matched too: we would rather
# see and allow a harmless one than miss a fetch.
JS_URL = re.compile(r"""['"]((?:https?:)?//[^'"\s]+)['"]""")
ALLOWED_JS_URLS = (
    "http://www.w3.org/",          # XML namespaces (SVG, MathML) are identifiers, not fetched
)


class ResourceCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.remote: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        for name in LOADING_ATTRS.get(tag, ()):
            for url in re.split(r",\s*", a.get(name, "")):
                if REMOTE.match(url):
                    self.remote.append(f"<{tag} {name}={url.split()[0]}>")
        if tag == "link":
            rels = set(a.get("rel", "").lower().split())
            if rels & LOADING_RELS and REMOTE.match(a.get("href", "")):
                self.remote.append(f"<link rel={a['rel']} href={a['href']}>")
        for url in CSS_URL.findall(a.get("style", "")):
            self.remote.append(f"<{tag} style=...{url}>")
        # Any attribute that names a CDN for a loader (data-jupyter-widgets-cdn, data-main, ...)
        for name, value in a.items():
            if name.startswith("data-") and REMOTE.match(value):
                self.remote.append(f"<{tag} {name}={value}>")
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "style":
            self.remote += [f"<style> {u}" for u in CSS_URL.findall(data)]
        elif self._in == "script":
            self.remote += [f"<script> {u}" for u in JS_URL.findall(data)
                            if not u.startswith(ALLOWED_JS_URLS)]


def pages() -> list[Path]:
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built book at {HTML}: run `make book` (or make book-strict) first")
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts)


def test_the_book_was_built_with_pages():
    assert len(pages()) >= 2, "expected the preface and at least one chapter in _build/html"


def test_pages_load_nothing_from_the_network():
    offenders = {}
    for page in pages():
        collector = ResourceCollector()
        collector.feed(page.read_text(encoding="utf-8"))
        if collector.remote:
            offenders[str(page.relative_to(HTML))] = sorted(set(collector.remote))
    assert not offenders, "pages load remote resources when read:\n" + "\n".join(
        f"  {page}: {refs}" for page, refs in offenders.items())


def test_static_css_imports_nothing_remote():
    offenders = {}
    for css in (HTML / "_static").rglob("*.css"):
        urls = CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace"))
        if urls:
            offenders[str(css.relative_to(HTML))] = sorted(set(urls))
    assert not offenders, f"stylesheets load remote resources: {offenders}"


def test_math_is_served_locally():
    """The pages with math point at the MathJax copied into _static, and that copy exists."""
    script = re.compile(r"""<script[^>]+src="([^"]*mathjax[^"]*)""", re.I)
    srcs = {m for page in pages() for m in script.findall(page.read_text(encoding="utf-8"))}
    assert srcs, "no page loads MathJax: the book has math, so the MathJax script is missing"
    for src in srcs:
        assert not REMOTE.match(src), f"MathJax is loaded from the network: {src}"
        assert src.split("?")[0].endswith("_static/mathjax/tex-chtml.js"), \
            f"unexpected MathJax path {src}"
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").is_file()
    # MathJax fetches its fonts relative to its own script: they must have been copied too.
    assert list((HTML / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff")), \
        "MathJax's CHTML fonts are missing from _static/mathjax"
