"""End to end in headless Chromium, the real model: scores a reader can trust on the page.

A question the collection cannot answer is said so plainly, its nearest passages dimmed and
unmarked; a real question's results explain themselves ("Why this result") and mark the
question's words. Screenshots go to ``docs/`` (``no-match.png``, ``why-this-result.png``).
The server, browser and index are those of ``test_browser.py``.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from indexer import page

from . import test_browser as tb
from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DOCS = ROOT / "docs"
NONSENSE = "xyzzy qwerty"  # the example: today it shows "score 1.00"

# the same fixtures, for this module: its own index, server and browser
demo_index = tb.demo_index
server = tb.server
browser = tb.browser
requested = tb.requested
open_page = tb.open_page


def picture(pg, name: str) -> None:
    pg.mouse.move(0, 0)
    pg.screenshot(path=str(DOCS / name))


def test_a_question_without_an_answer_says_so_and_dims_the_nearest_passages(open_page):
    pg = open_page()
    tb.ask(pg, NONSENSE)
    notice = pg.locator(".no-match")
    assert notice.is_visible() and notice.inner_text().strip() == page.NO_CLOSE_MATCH
    hits = pg.locator(".hit")
    assert hits.count() == page.DEFAULT_K
    assert pg.locator(".hit[data-dim]").count() == hits.count()
    assert pg.locator(".hit mark, .hit .term").count() == 0  # nothing is highlighted
    opacity = float(hits.first.evaluate("e => getComputedStyle(e).opacity"))
    assert opacity < 1
    scores = [float(t.split()[-1]) for t in pg.locator(".chip.score").all_inner_texts()]
    assert max(scores) < 0.5  # no "score 1.00"
    picture(pg, "no-match.png")


def test_a_real_question_explains_its_results_and_marks_its_words(open_page):
    pg = open_page("/?q=" + quote("coopération dans l'Arctique"))
    tb.wait_idle(pg)
    assert pg.locator(".no-match").count() == 0
    first = tb.first_hit(pg)
    assert tb.SEED_TITLE in first.locator(".hit-title").inner_text()
    words = first.locator(".passage .term")
    assert words.count() and any("Arctique" in w or "coopération" in w for w in words.all_inner_texts())
    colours = {words.first.evaluate("e => getComputedStyle(e).backgroundColor")}
    marked = first.locator(".passage mark")
    if marked.count():
        colours.add(marked.first.evaluate("e => getComputedStyle(e).backgroundColor"))
        assert len(colours) == 2  # the words' highlight is not the sentence's
    why = pg.locator("details.why").first
    assert not why.locator("ul").is_visible()  # closed until asked
    why.locator("summary").click()
    text = why.locator("ul").inner_text()
    assert "Score " in text and "in 100 results scored like this one" in text
    assert "Meaning: similarity" in text and "rank" in text
    assert "Words: BM25" in text and "“l'Arctique” as arctiqu" in text
    first.evaluate("e => e.scrollIntoView({block: 'start'})")
    picture(pg, "why-this-result.png")
