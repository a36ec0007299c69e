"""End to end in headless Chromium, the real model: saved searches in the page's sidebar.

A search saved through the library, then a build that publishes an article it matches: the
sidebar shows the search with "1 new", the reader's mark goes into the URL (``?seen=…``) so
the next visit counts from there, and clicking the search runs it. The screenshot goes to
``docs/alerts.png``. The server and browser are those of ``test_browser.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer import alerts, build, page

from . import test_browser as tb
from .conftest import ARTICLES, ROOT, SEEDS, write

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAME = "Offshore wind"
QUERY = "offshore wind farms in the North Sea"
NEW_TITLE = "Denmark opens the largest offshore wind farm in the North Sea"
NEW_ARTICLE = (
    f"---\ndate: 2025-11-20\nsource: Nordic Wire\nlang: en\n---\n# {NEW_TITLE}\n\n"
    "Denmark switched on the largest offshore wind farm in the North Sea on Thursday. Its 120 turbines, "
    "built 80 kilometres off the coast of Jutland, will supply power to a million homes.\n\n"
    "The operator said a second offshore wind farm in the Danish part of the North Sea will follow in 2027.\n"
)

server = tb.server
browser = tb.browser
requested = tb.requested
open_page = tb.open_page


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alerts-page")
    extra = write(root / "extra" / "bakers.md", "# Bakers on strike\n\nThe bakers of Lyon strike over flour prices.\n")
    index = root / "index"
    sources = [SEEDS, ARTICLES, extra.parent]
    build(sources, index)
    alerts.add(index, NAME, QUERY)
    write(extra.parent / "wind.md", NEW_ARTICLE)
    report = build(sources, index)
    assert report.alerts is not None and report.alerts.matches == 1, report
    return index


def sidebar_button(pg, name: str):
    """The sidebar's button of a saved search (its widget container: the help tooltip repeats the button)."""
    return pg.locator('[data-testid="stSidebar"] [data-testid="stButton"]', has_text=name)


def test_the_sidebar_counts_new_matches_and_runs_the_saved_search(open_page, demo_index):
    pg = open_page()
    saved = sidebar_button(pg, NAME)
    assert saved.count() == 1 and "1 new" in saved.inner_text()
    latest = alerts.overview(demo_index, None).latest
    assert pg.evaluate("new URL(location.href).searchParams.get('seen')") == str(latest)  # the mark for next time
    saved.locator("button").first.click()
    pg.wait_for_function("window.__runs && window.__runs.includes('running')", timeout=30_000)
    tb.wait_idle(pg)
    assert pg.locator("input[aria-label='Question']").input_value() == QUERY
    assert NEW_TITLE in tb.first_hit(pg).locator(".hit-title").inner_text()
    assert "1 new" in sidebar_button(pg, NAME).inner_text()  # this visit keeps counting from the mark it came with
    pg.evaluate("document.activeElement && document.activeElement.blur()")  # no tooltip over the sidebar
    pg.mouse.move(900, 760)
    pg.wait_for_timeout(600)
    (ROOT / "docs").mkdir(exist_ok=True)
    pg.screenshot(path=str(ROOT / "docs" / "alerts.png"))


def test_a_visit_with_the_newest_mark_has_nothing_new(open_page, demo_index):
    latest = alerts.overview(demo_index, None).latest
    pg = open_page(f"/?{page.SEEN_PARAM}={latest}")
    saved = sidebar_button(pg, NAME)
    assert saved.count() == 1 and "new" not in saved.inner_text()
    pg = open_page(f"/?{page.SEEN_PARAM}=garbled")  # a bad mark is a first visit: everything is new
    assert "1 new" in sidebar_button(pg, NAME).inner_text()
