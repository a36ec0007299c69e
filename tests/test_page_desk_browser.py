"""End to end in headless Chromium, the real model: the timeline, search by story and the desk tools.

The server, browser and index are those of ``test_browser.py`` (the seed article, the sample
corpus, a hostile article and the seed's syndicated copy). Screenshots go to ``docs/``
(``timeline.png``, ``stories.png``, ``desk-tools.png``); look at them after a change.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from indexer import export

from . import test_browser as tb
from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DOCS = ROOT / "docs"
QUESTION = "coopération économique et énergie"

demo_index = tb.demo_index
server = tb.server
browser = tb.browser
requested = tb.requested
open_page = tb.open_page


def picture(pg, name: str, **kw) -> None:
    pg.mouse.move(0, 0)
    pg.screenshot(path=str(DOCS / name), **kw)


def params(pg) -> dict[str, list[str]]:
    return parse_qs(urlsplit(pg.url).query)


def titles(pg) -> list[str]:
    return pg.locator(".hit-title").all_inner_texts()


def card(inside):
    """The bordered container (a result's card) holding an element."""
    return inside.locator("xpath=ancestor::div[@data-testid='stVerticalBlock'][1]")


def rerun(pg, action) -> None:
    pg.evaluate("window.__runs = []")
    action()
    pg.wait_for_function("window.__runs && window.__runs.includes('running')", timeout=30_000)
    tb.wait_idle(pg)


def test_the_timeline_narrows_the_dates_and_the_url_keeps_them(open_page):
    pg = open_page("/?q=" + quote(QUESTION) + "&k=20")
    tb.wait_idle(pg)
    assert "dates" not in params(pg)
    before = titles(pg)
    chart = pg.locator("[data-testid='stVegaLiteChart']").first
    chart.wait_for(state="visible")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box
    y = box["y"] + box["height"] * 0.45
    # a drag over the right part of the timeline: the newest bars
    rerun(pg, lambda: (pg.mouse.move(box["x"] + box["width"] * 0.55, y), pg.mouse.down(),
                       pg.mouse.move(box["x"] + box["width"] * 0.8, y, steps=8), pg.mouse.up()))  # fmt: skip
    tb.wait_idle(pg)
    picked = params(pg).get("dates")
    assert picked, pg.url
    after = titles(pg)
    assert after != before
    chips = pg.locator(".hit .chip[title='date']").all_inner_texts()
    lo, hi = min(picked), max(picked)
    assert chips and all(lo <= d <= hi for d in chips), (picked, chips)
    assert pg.get_by_role("button", name="All dates").is_visible()
    pg.locator("[data-testid='stVegaLiteChart']").first.scroll_into_view_if_needed()
    picture(pg, "timeline.png")
    # the narrowed search reloads from its URL
    again = open_page(urlsplit(pg.url).path + "?" + urlsplit(pg.url).query)
    tb.wait_idle(again)
    assert titles(again) == after
    rerun(pg, lambda: pg.get_by_role("button", name="All dates").click())
    assert "dates" not in params(pg) and titles(pg) == before


def test_group_by_story_shows_each_story_with_its_coverage(open_page):
    pg = open_page("/?q=" + quote(tb.FRENCH))
    tb.wait_idle(pg)
    rerun(pg, lambda: pg.get_by_text("Group by story").click())
    assert params(pg).get("story") == ["true"], pg.url
    story = card(pg.locator(".story").first)
    assert tb.SEED_TITLE in story.locator(".hit-title").inner_text()
    coverage = story.locator(".coverage").inner_text()
    assert coverage.startswith("Covered by 2 articles"), coverage  # the seed and its syndicated copy
    members = story.locator("ol.members li")
    assert members.count() == 2 and "Le Veilleur Polaire" in " ".join(members.all_inner_texts())
    assert story.locator(".passage mark").first.is_visible()
    story.get_by_text("Timeline of this story").click()
    # its own timeline, or why there is none (the seed and its copy carry no date)
    story.locator("[data-testid='stVegaLiteChart'], :text('None of its articles is dated.')").first.wait_for()
    ranks = [int(r) for r in pg.locator(".hit .rank").all_inner_texts()]
    assert ranks == list(range(1, len(ranks) + 1))
    assert sum(tb.SEED_TITLE in t for t in titles(pg)) == 1  # one card per story
    story.evaluate("e => e.scrollIntoView({block: 'start'})")
    picture(pg, "stories.png")
    reloaded = open_page("/?q=" + quote(tb.FRENCH) + "&story=true")
    tb.wait_idle(reloaded)
    assert reloaded.locator(".story").count() == pg.locator(".story").count()


def test_facet_counts_recency_downloads_and_similar_coverage(open_page, tmp_path):
    pg = open_page("/?q=" + quote(tb.FRENCH))
    tb.wait_idle(pg)
    counts = pg.locator("[data-testid='stSidebar'] .facet-counts").all_inner_texts()
    assert len(counts) == 2 and "French (" in counts[0], counts
    assert pg.get_by_text("top 500 passages").first.is_visible()
    # favour recent: a sidebar choice kept in the URL
    recent = pg.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has_text="Favour recent")
    box = recent.locator("input").first
    box.click()
    box.fill("30 days")
    rerun(pg, lambda: box.press("Enter"))
    assert params(pg).get("recent") == ["30 days half-life"], pg.url
    shown = titles(pg)
    # the CSV download: this search's rows, spreadsheet-safe, UTF-8 with a BOM
    with pg.expect_download() as got:
        pg.get_by_role("button", name="Download results (CSV)").click()
    raw = Path(got.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == list(export.COLUMNS)
    assert len(rows) > len(shown) and all(r["title"] in t for r, t in zip(rows, shown, strict=False))
    assert got.value.suggested_filename.startswith("results-que-dit-le-kremlin")
    with pg.expect_download() as got:
        pg.get_by_role("button", name="Download results (JSON lines)").click()
    lines = [json.loads(x) for x in Path(got.value.path()).read_text(encoding="utf-8").splitlines()]
    assert [x["title"] for x in lines] == [r["title"] for r in rows]
    assert pg.get_by_text(f"up to {export.EXPORT_LIMIT:,} results").is_visible()
    # similar coverage of the first card, opened in place: the search stays
    first = card(pg.locator(".hit").first)
    rerun(pg, lambda: first.get_by_role("button", name="Similar coverage").click())
    similar = first.locator(".similar")
    similar.wait_for(state="visible")
    assert similar.locator("li").count() >= 1
    assert titles(pg) == shown and params(pg).get("recent") == ["30 days half-life"]
    if tb.SEED_TITLE in first.locator(".hit-title").inner_text():
        assert "1 copy of this article left out" in similar.inner_text()  # its syndicated copy
    first.evaluate("e => e.scrollIntoView({block: 'start'})")
    picture(pg, "desk-tools.png")
    rerun(pg, lambda: first.get_by_role("button", name="Hide similar coverage").click())
    assert first.locator(".similar").count() == 0
