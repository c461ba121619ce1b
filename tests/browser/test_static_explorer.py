"""The static attention explorer's JavaScript, in headless Chromium, without building the book.

A StaticExplorer of a small model is saved as a standalone page and driven like a reader would:
every control must change the shown weights to exactly the precomputed ones, and the page must
fetch nothing and log no error. Skips (except under CI) where Chromium is absent, like the book test.
"""

from __future__ import annotations

import numpy as np
import pytest

from companion import Transformer, preset
from companion.tokenizers import CharTokenizer
from companion.viz import take_snapshot
from companion.viz.static import StaticExplorer

from .test_book_in_browser import ARGS, CHROMIUM, _missing

TEXTS = ["max(3 7 1)", "min(42)"]


@pytest.fixture(scope="module")
def page_and_explorer(tmp_path_factory):
    import shutil
    from pathlib import Path

    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _missing(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -r requirements.txt")
    tok = CharTokenizer("()0123456789 aimnx")
    rng = np.random.default_rng(0)
    model = Transformer(preset("tiny", vocab_size=tok.vocab_size, n_head=2, dtype="float64"), rng)
    first = take_snapshot(model)
    for p in model.parameters().values():
        p += rng.normal(0.0, 0.5, size=p.shape)
    explorer = StaticExplorer(model, tok, TEXTS, snapshots=[first], snapshot_labels=[0])
    path = tmp_path_factory.mktemp("static") / "explorer.html"
    explorer.save(path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                   else (problems.append(r.request.url), r.abort()))
        page.goto(path.as_uri())
        yield page, explorer, problems
        browser.close()


def shown(page):
    return np.array(page.locator(".cvx-view table.cvx-matrix").first.evaluate(
        "t => [...t.querySelectorAll('tr')].filter(r => r.querySelector('td'))"
        ".map(r => [...r.querySelectorAll('td')].map(td => parseFloat(td.dataset.w)))"))


def test_every_control_shows_the_precomputed_weights(page_and_explorer):
    page, ex, problems = page_and_explorer
    final = len(ex.records) - 1
    assert page.locator("div.cvx-root[data-cvx-ready]").count() == 1
    np.testing.assert_allclose(shown(page), ex.records[final][0].weights[0, 0], atol=6e-4)
    page.select_option("select[data-control=head]", "1")
    np.testing.assert_allclose(shown(page), ex.records[final][0].weights[0, 1], atol=6e-4)
    page.select_option("select[data-control=layer]", "1")
    np.testing.assert_allclose(shown(page), ex.records[final][0].weights[1, 1], atol=6e-4)
    page.locator("input[data-control=snapshot]").evaluate("s => { s.value = 0; s.dispatchEvent(new Event('input')); }")
    np.testing.assert_allclose(shown(page), ex.records[0][0].weights[1, 1], atol=6e-4)
    page.select_option("select[data-control=input]", "1")
    np.testing.assert_allclose(shown(page), ex.records[0][1].weights[1, 1], atol=6e-4)
    assert shown(page).shape == (len(TEXTS[1]),) * 2
    page.select_option("select[data-control=head]", "all")
    assert page.locator(".cvx-view table.cvx-matrix").count() == 2  # one small map per head
    assert not problems, problems


def show_first_head_at_the_last_snapshot(page):
    """Input 0, layer 0, head 0, and the snapshot slider at its end (the trained model)."""
    page.select_option("select[data-control=input]", "0")
    page.select_option("select[data-control=head]", "0")
    page.select_option("select[data-control=layer]", "0")
    page.locator("input[data-control=snapshot]").evaluate(
        "s => { s.value = s.max; s.dispatchEvent(new Event('input')); }")


def test_picking_a_query_lists_what_it_attends_to(page_and_explorer):
    page, ex, problems = page_and_explorer
    show_first_head_at_the_last_snapshot(page)
    page.locator(".cvx-view th.cvx-row").nth(4).click()  # query token 4, by clicking its row label
    details = page.locator("[data-role=details]").inner_text()
    rec = ex.records[-1][0]
    best = int(np.argmax(np.round(rec.weights[0, 0, 4], 3)))
    assert details.startswith(f"query 4: {rec.labels[4]}")
    assert f"{best}: {rec.labels[best]}" in details.split("attends most to")[1].splitlines()[1]
    assert page.locator("select[data-control='query token']").input_value() == "4"
    assert page.locator("tr.cvx-query th").inner_text() == rec.labels[4]
    assert not problems, problems


def test_every_control_is_labelled_and_works_from_the_keyboard(page_and_explorer):
    # focus a control, press a key, and the displayed weights change: no mouse anywhere
    page, ex, problems = page_and_explorer
    show_first_head_at_the_last_snapshot(page)
    final = len(ex.records) - 1
    unlabelled = page.evaluate("() => [...document.querySelectorAll('.cvx-root select, .cvx-root input, "
                               ".cvx-root button')].filter(e => !e.getAttribute('aria-label') || !e.closest('label, th'))"
                               ".map(e => e.outerHTML.slice(0, 80))")
    assert not unlabelled, unlabelled
    head = page.locator("select[data-control=head]")
    head.focus()
    page.keyboard.press("ArrowDown")  # head 0 -> head 1
    assert head.input_value() == "1"
    np.testing.assert_allclose(shown(page), ex.records[final][0].weights[0, 1], atol=6e-4)
    slider = page.locator("input[data-control=snapshot]")
    slider.focus()
    page.keyboard.press("ArrowLeft")  # back one training snapshot
    assert slider.input_value() == "0" and slider.get_attribute("aria-valuetext") == "step 0"
    np.testing.assert_allclose(shown(page), ex.records[0][0].weights[0, 1], atol=6e-4)
    page.keyboard.press("Tab")  # the row buttons come after the controls, in document order
    for _ in range(3):
        page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.dataset.row")
    assert focused == "3", focused
    page.keyboard.press("Enter")  # query token 3, picked from the keyboard
    assert page.locator("select[data-control='query token']").input_value() == "3"
    assert page.locator("[data-role=details]").inner_text().startswith(f"query 3: {ex.records[0][0].labels[3]}")
    assert page.evaluate("() => document.activeElement.dataset.row") == "3"  # focus kept after the redraw
    assert not problems, problems
