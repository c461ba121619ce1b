"""The built book in a real browser: Debian's headless Chromium, driven by Playwright.

Run after the book is built (``make test`` runs it after the strict build):

    .venv/bin/python -m pytest tests/browser

A local HTTP server on 127.0.0.1 serves _build/html; every request elsewhere is refused and
counted as a failure, so the test also proves that the pages need no network. For the index and
every chapter it checks: no console errors, math rendered by MathJax (output elements present, no
math errors, no raw TeX left), every image loaded (naturalWidth > 0) and described (a figure caption,
or alt text that is not just its file name). On the attention chapter it
picks another head in the attention explorer and checks that the shown weights change (and are a
causal map: rows sum to 1, zeros above the diagonal), then does the same from the keyboard alone
(focus the head control, press ArrowDown; Enter on a row's button picks that query). Screenshots go to
_build/screenshots/.

Chromium comes from the system package manager (apt-get install chromium); Playwright never
downloads a browser here. Where Chromium is absent the test SKIPS and says so, except under CI
(CI=true), where a missing browser is a failure: CI must never skip it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # another built book, for a trial run
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ATTENTION_PAGE = "book/03_attention.html"


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs chromium)")
    pytest.skip(reason)


def chapter_pages() -> list[str]:
    if not (HTML / "index.html").is_file():
        return []
    return ["index.html"] + sorted(str(p.relative_to(HTML)) for p in (HTML / "book").glob("*.html"))


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _missing(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
                 "(or set CHROMIUM=/path/to/chromium) to run the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -r requirements.txt")
    if not chapter_pages():
        _missing(f"no built book at {HTML}: run `make book` first")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


def open_page(browser, url_base: str, page_path: str):
    """Open a page, record console errors, uncaught exceptions, failed and off-site requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})")
            if r.url.startswith(url_base) else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def route(r):
        if r.request.url.startswith(url_base) or r.request.url.startswith("data:"):
            return r.continue_()
        problems.append(f"tried to load from the network: {r.request.url}")
        return r.abort()

    page.route("**/*", route)
    page.goto(url_base + page_path, wait_until="load")
    return context, page, problems


def wait_for_math(page) -> dict:
    """Let MathJax finish, then count what it rendered."""
    page.wait_for_function("""() => !document.querySelector('.math')
        || (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)""", timeout=20_000)
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    return page.evaluate("""() => ({
        math: document.querySelectorAll('.math').length,
        rendered: document.querySelectorAll('mjx-container').length,
        errors: document.querySelectorAll('mjx-merror').length,
        raw: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')
              && /\\\\[(\\[]|\\$/.test(e.textContent)).length,
    })""")


def images(page) -> list[dict]:
    """Every image: its size once loaded, its alt text, and the caption of the figure around it (the
    page's content only, where a figure caption or alt text is owed; the theme's logo is outside)."""
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
    return page.evaluate("""() => [...document.images].map(i => {
        const fig = i.closest('figure'), cap = fig && fig.querySelector('figcaption');
        return {src: i.src, w: i.naturalWidth, content: !!i.closest('main'),
                alt: (i.getAttribute('alt') || '').trim(), caption: cap ? cap.textContent.trim() : ''};
    })""")


def described(image: dict) -> bool:
    """A figure caption, or alt text that says something: not empty and not a file name (Sphinx
    writes an image's path as its alt text when a cell gives none)."""
    alt = image["alt"]
    file_like = re.search(r"\.(png|svg|jpe?g|gif|webp)$", alt, re.IGNORECASE) or alt in image["src"]
    return bool(image["caption"]) or bool(alt and not file_like)


def test_book_has_pages():
    if not chapter_pages():
        _missing(f"no built book at {HTML}: run `make book` first")
    assert ATTENTION_PAGE in chapter_pages(), f"the attention chapter {ATTENTION_PAGE} was not built"


@pytest.mark.parametrize("page_path", chapter_pages() or ["index.html"])
def test_page_renders_cleanly(browser, server, page_path):
    context, page, problems = open_page(browser, server, page_path)
    try:
        math = wait_for_math(page)
        imgs = images(page)
        page.wait_for_timeout(300)  # late console errors from deferred scripts
    finally:
        context.close()
    assert not problems, f"{page_path}:\n  " + "\n  ".join(problems)
    if math["math"]:
        assert math["rendered"] >= 1 and math["raw"] == 0, f"{page_path}: math not rendered by MathJax: {math}"
        assert math["errors"] == 0, f"{page_path}: MathJax reported {math['errors']} TeX errors"
    broken = [i["src"] for i in imgs if i["w"] == 0]
    assert not broken, f"{page_path}: images that did not load: {broken}"
    silent = [i["src"].rsplit("/", 1)[-1] for i in imgs if i["content"] and not described(i)]
    assert not silent, (f"{page_path}: figures with neither a caption nor alt text (give the cell "
                        f"`mystnb: figure: caption:` and `image: alt:` metadata): {silent}")
    if page_path.startswith("book/0"):  # a chapter: it has at least one figure computed by the page
        assert imgs, f"{page_path}: a chapter should show at least one figure"


def shown_weights(page, root) -> list[list[float]]:
    return root.locator(".cvx-view table.cvx-matrix").first.evaluate(
        "t => [...t.querySelectorAll('tr')].filter(r => r.querySelector('td'))"
        ".map(r => [...r.querySelectorAll('td')].map(td => parseFloat(td.dataset.w)))")


def test_attention_explorer_responds(browser, server):
    context, page, problems = open_page(browser, server, ATTENTION_PAGE)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        roots = page.locator("div.cvx-root[data-cvx-ready]")
        assert roots.count() >= 1, "the attention chapter shows no working attention explorer"
        root = roots.first
        wait_for_math(page)
        page.screenshot(path=str(SHOTS / "03_attention_page.png"), full_page=True)  # from the top, before scrolling
        root.scroll_into_view_if_needed()
        root.screenshot(path=str(SHOTS / "03_explorer_head0.png"))
        before = shown_weights(page, root)
        T = len(before)
        assert T >= 2 and all(len(r) == T for r in before)
        for i, row in enumerate(before):  # a causal attention map, as the page shows it
            assert abs(sum(row) - 1.0) < 5e-3 * T, f"row {i} sums to {sum(row)}"
            assert all(x == 0.0 for x in row[i + 1:]), f"row {i} attends to the future: {row}"
        root.locator("select[data-control=head]").select_option("1")
        after = shown_weights(page, root)
        root.screenshot(path=str(SHOTS / "03_explorer_head1.png"))
        assert after != before, "choosing another head did not change the displayed weights"
        root.locator("select[data-control=head]").select_option("all")
        assert root.locator(".cvx-view table.cvx-matrix").count() >= 2, "'all' heads should show one map per head"
        root.locator("select[data-control=head]").select_option("0")
        assert shown_weights(page, root) == before, "going back to head 0 should show head 0 again"
        head = root.locator("select[data-control=head]")  # the keyboard alone: focus, then a key
        head.focus()
        page.keyboard.press("ArrowDown")
        assert head.input_value() == "1" and shown_weights(page, root) == after, \
            "ArrowDown on the focused head control did not show head 1"
        root.locator("button.cvx-pick").nth(1).focus()
        page.keyboard.press("Enter")
        assert root.locator("select[data-control='query token']").input_value() == "1", \
            "Enter on a row's button did not pick that query token"
        head.select_option("0")
        slider = root.locator("input[data-control=snapshot]")
        if slider.count():  # the explorer replays training: the first snapshot shows other weights
            slider.evaluate("s => { s.value = s.min; s.dispatchEvent(new Event('input')); }")
            assert shown_weights(page, root) != before, "moving the training slider did not change the weights"
            root.screenshot(path=str(SHOTS / "03_explorer_first_snapshot.png"))
    finally:
        context.close()
    assert not problems, "\n".join(problems)
