"""End to end: ``streamlit run app.py`` on localhost, driven by headless Chromium, with the real model.

The index holds the seed article, the sample corpus and one hostile article whose
title and text carry ``<script>`` and ``<img onerror>`` payloads that would set
``window.__xss``. Screenshots of the page go to ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from indexer import build

from .conftest import ARTICLES, ROOT, SEEDS, write
from .reliability_helpers import terminate

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
NARROW = {"width": 420, "height": 860}
SEED_ID = "000_8830d0ea2df0fe55.txt"
SEED_TITLE = "Les États-Unis et la Russie discutent de l'exploitation conjointe des ressources naturelles"
FRENCH = "Que dit le Kremlin sur la coopération économique ?"
ENGLISH = "What did the Kremlin spokesman say about economic cooperation?"
SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
PIXEL = "http://127.0.0.1:9/pixel.png"
HOSTILE = {
    "id": "hostile-1",
    "title": f"{SCRIPT} Hostile glacier bulletin {IMG} ![pixel]({PIXEL})",
    "text": (
        f"Hostile glacier bulletin: the glaciers of the Alps keep retreating.\n\n{SCRIPT} Meltwater lakes grow "
        f"every summer {IMG} and guides move their routes. [click](javascript:window.__xss=1) ![pixel]({PIXEL})\n"
        '<a href="javascript:window.__xss=1">a link</a> <svg onload="window.__xss=1"></svg>'
    ),
    "url": "javascript:window.__xss=1",
    "source": '<b onmouseover="window.__xss=1">Evil</b> Gazette',
    "date": "2025-07-01",
    "lang": "en",
}


def syndicated_seed() -> dict[str, str]:
    """The seed article as another paper ran it (edited for house style): a near-duplicate."""
    title, body = (SEEDS / f"{SEED_ID}").read_text(encoding="utf-8").split("\n", 1)
    body = body.replace("Selon Bloomberg,", "D'après Bloomberg,", 1)
    return {"id": "syndicated-seed", "title": title, "text": body, "source": "Le Veilleur Polaire", "lang": "fr"}


# Streamlit sets data-test-script-state on the app root; record its changes to know when a run is over.
WATCH = """() => {
  window.__runs = [];
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => window.__runs.push(app.getAttribute('data-test-script-state')))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    extra = write(root / "extra" / "extra.json", json.dumps([HOSTILE, syndicated_seed()]))
    index = root / "index"
    report = build([SEEDS, ARTICLES, extra.parent], index)
    assert not report.skipped
    return index


@pytest.fixture(scope="module")
def server(demo_index, tmp_path_factory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "INDEXER_INDEX": str(demo_index), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        terminate(proc)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def requested() -> list[str]:
    """Every URL the test's pages requested."""
    return []


@pytest.fixture
def open_page(browser, server, requested):
    """A fresh browser session on the page."""
    contexts = []

    def _open(path: str = "/", viewport: dict[str, int] = DESKTOP):
        ctx = browser.new_context(viewport=viewport, device_scale_factor=1)
        contexts.append(ctx)
        pg = ctx.new_page()
        pg.on("request", lambda r: requested.append(r.url))
        pg.goto(server + path)
        pg.wait_for_selector("input[aria-label='Question']", timeout=120_000)
        wait_idle(pg)
        pg.evaluate(WATCH)
        return pg

    yield _open
    for ctx in contexts:
        ctx.close()


def wait_idle(pg, timeout: float = 60) -> None:
    """Until the script has stopped running and stayed stopped for a moment (reruns may follow runs)."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        state = pg.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        stale = pg.locator("[data-stale='true']").count()
        if state == "notRunning" and not stale:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.6:
                return
        else:
            quiet_since = None
        time.sleep(0.05)
    raise AssertionError("the page kept running")


def ask(pg, question: str) -> None:
    box = pg.locator("input[aria-label='Question']")
    box.fill(question)
    pg.evaluate("window.__runs = []")
    box.press("Enter")
    pg.wait_for_function("window.__runs && window.__runs.includes('running')", timeout=30_000)
    wait_idle(pg)


def first_hit(pg):
    return pg.locator(".hit").first


def shot(pg, name: str, **kw) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.mouse.move(0, 0)  # no hover effects in the pictures
    pg.screenshot(path=str(SHOTS / name), **kw)


def assert_seed_first_with(pg, words: str) -> None:
    hit = first_hit(pg)
    assert SEED_TITLE in hit.locator(".hit-title").inner_text()
    mark = hit.locator(".passage mark").first
    assert mark.is_visible(), "the best sentence is not highlighted"
    assert words in mark.inner_text(), mark.inner_text()


def test_landing_page(open_page):
    pg = open_page()
    assert pg.get_by_text("Try one of these").is_visible()
    assert "Articles" in pg.locator(".facts").inner_text()
    shot(pg, "landing.png")


def test_french_question_finds_the_seed_with_its_sentence_highlighted(open_page):
    pg = open_page()
    ask(pg, FRENCH)
    assert_seed_first_with(pg, "Peskov")
    # the syndicated copy is folded into the seed's result, not shown again
    assert "Also in:" in first_hit(pg).locator(".also-in").inner_text()
    assert [t for t in pg.locator(".hit-title").all_inner_texts() if SEED_TITLE in t] == [
        pg.locator(".hit-title").first.inner_text()
    ]
    assert "q=Que+dit+le+Kremlin" in pg.url or "q=Que%20dit" in pg.url
    shot(pg, "results-french.png")


def test_english_question_finds_the_seed_too(open_page):
    pg = open_page()
    ask(pg, ENGLISH)
    assert_seed_first_with(pg, "Peskov")
    shot(pg, "results-english.png")


def test_article_expander_shows_the_passage_in_place(open_page):
    pg = open_page("/?q=" + quote("coopération dans l'Arctique"))
    wait_idle(pg)
    assert SEED_TITLE in first_hit(pg).locator(".hit-title").inner_text()
    expander = pg.locator("[data-testid='stExpander']").first
    expander.get_by_text("Read the whole article").click()
    article = expander.locator(".article")
    article.wait_for(state="visible")
    assert "Dmitri Peskov" in article.inner_text()  # the whole article, not only the passage
    assert article.locator(".in-passage").is_visible() and article.locator("mark").first.is_visible()
    first_hit(pg).evaluate("e => e.scrollIntoView({block: 'start'})")
    shot(pg, "article-expanded.png")


def test_narrow_window(open_page):
    pg = open_page("/?q=" + quote(FRENCH), viewport=NARROW)
    wait_idle(pg)
    assert_seed_first_with(pg, "Peskov")
    overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, "the page scrolls sideways on a narrow window"
    shot(pg, "narrow.png")


def test_shared_url_restores_the_search_and_its_filters(open_page):
    pg = open_page("/?q=" + quote("énergie") + "&lang=French&k=5")
    wait_idle(pg)
    hits = pg.locator(".hit")
    assert hits.count() == 5
    assert all("French" in t for t in hits.locator(".chips").all_inner_texts())
    more = pg.get_by_role("button", name="More results")
    more.click()
    wait_idle(pg)
    assert pg.locator(".hit").count() > 5
    ranks = [int(r) for r in pg.locator(".hit .rank").all_inner_texts()]
    assert ranks == list(range(1, len(ranks) + 1))


def test_hostile_article_is_text_and_runs_nothing(open_page, requested):
    pg = open_page()
    ask(pg, "Hostile glacier bulletin: glaciers of the Alps retreating")
    hit = first_hit(pg)
    title = hit.locator(".hit-title").inner_text()
    assert SCRIPT in title and IMG in title and f"![pixel]({PIXEL})" in title
    assert "<b onmouseover" in hit.locator(".chips").inner_text()
    assert hit.locator("a").count() == 0  # its javascript: URL is not a link
    pg.locator("[data-testid='stExpander']").first.get_by_text("Read the whole article").click()
    article = pg.locator(".article").first
    article.wait_for(state="visible")
    text = article.inner_text()
    assert SCRIPT in text and IMG in text and '<svg onload="window.__xss=1">' in text
    time.sleep(1)  # give an injected handler every chance to fire
    assert pg.evaluate("typeof window.__xss") == "undefined"
    for tag in ("script", "img", "svg", "b"):
        assert pg.locator(f".hit {tag}, .article {tag}").count() == 0, tag
    assert requested and not [u for u in requested if "pixel.png" in u or u.startswith("javascript:")]
    hit.scroll_into_view_if_needed()
    shot(pg, "hostile-article-escaped.png")
