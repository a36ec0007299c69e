"""The Streamlit page: its pure helpers in ``indexer.page``, then the page itself through AppTest.

AppTest runs ``app.py`` in this process against a tiny index built with the fake
encoder; ``indexer.Searcher`` and ``indexer.build`` are swapped for versions that
use it, so the page is tested exactly as written, without the model.
"""

from __future__ import annotations

import json
import re
from datetime import date
from html import unescape
from pathlib import Path

import pytest
import streamlit as st
from hypothesis import given
from hypothesis import strategies as stt
from streamlit.testing.v1 import AppTest

import indexer
from indexer import BuildSettings, Searcher, SearchOptions, build, page
from indexer.records import Article, Hit
from indexer.search import MAX_QUERY_CHARS, MODES, SearchResult

from .conftest import FAKE_MODEL, ROOT, SEEDS, FakeEncoder, write

APP = str(ROOT / "app.py")
XSS_TITLE = (
    '<script>window.__xss=1</script> Hostile <img src=x onerror="window.__xss=1"> '
    "![pixel](http://127.0.0.1:9/pixel.png) [click](javascript:window.__xss=1) :red[alarm] $x^2$ title"
)
XSS_TEXT = (
    "Hostile dispatch about glaciers.\n\n"
    '<script>window.__xss=1</script> The glaciers <img src=x onerror="window.__xss=1"> are melting.\n'
    '**bold** ![pixel](http://127.0.0.1:9/pixel.png) <a href="javascript:window.__xss=1">link</a> & more.'
)


# --------------------------------------------------------------- page helpers
def hit(text: str = "Alpha beta. Gamma delta.", start: int = 0, **kw) -> Hit:
    fields = dict(rank=1, score=0.5, article_id="a1", title="Title", passage_id=1, text=text)
    fields.update(kw)
    return Hit(start=start, end=start + len(text), **fields)  # type: ignore[arg-type]


def visible(html: str) -> str:
    """What a browser shows as text: tags dropped, entities decoded."""
    return unescape(re.sub(r"<[^>]*>", "", html))


def tags(html: str) -> set[str]:
    return set(re.findall(r"<\s*([a-zA-Z0-9]+)", html))


def test_passage_marks_highlight_with_article_offsets():
    h = hit("Alpha beta. Gamma delta.", start=100, highlights=[(112, 124)])
    html = page.render_passage(h)
    assert "<mark>Gamma delta.</mark>" in html
    assert visible(html).endswith("Alpha beta. Gamma delta.")


@pytest.mark.parametrize(
    ("spans", "marked"),
    [
        ([(0, 5)], ["Alpha"]),  # at the very start
        ([(19, 24)], ["elta."]),  # at the very end
        ([(0, 24)], ["Alpha beta. Gamma delta."]),  # the whole passage
        ([(-50, 5)], ["Alpha"]),  # starts before the passage: clipped
        ([(19, 999)], ["elta."]),  # ends after it: clipped
        ([(200, 300)], []),  # outside: dropped
        ([(5, 5), (7, 3)], []),  # empty and reversed: dropped
        ([(0, 8), (6, 12)], ["Alpha beta. "]),  # overlapping: merged
        ([(6, 12), (0, 5)], ["Alpha", "beta. "]),  # unsorted: sorted
        ([(0, 5), (5, 10)], ["Alpha beta"]),  # touching: merged
        ([("x", 3), (None,), 7, (0, 5)], ["Alpha"]),  # malformed entries: ignored
    ],
)
def test_passage_highlight_edges(spans, marked):
    html = page.render_passage(hit(highlights=spans))
    assert re.findall(r"<mark>(.*?)</mark>", html) == marked
    assert visible(html) == "Alpha beta. Gamma delta."


def test_passage_escapes_markup_before_marking():
    text = '<script>alert(1)</script> <img src=x onerror="alert(1)"> & "quotes"'
    html = page.render_passage(hit(text, highlights=[(0, 25)]))
    assert "<script" not in html and "<img" not in html
    assert "<mark>&lt;script&gt;alert(1)&lt;/script&gt;</mark>" in html
    assert visible(html) == text
    assert tags(html) <= {"div", "mark", "span"}


def test_passage_keeps_lines_and_compacts_blank_ones():
    text = "First line.\nSecond line.\n\n\n  \nThird paragraph."
    html = page.render_passage(hit(text))
    assert visible(html) == "First line.\nSecond line.\nThird paragraph."


def test_passage_trims_edges_without_shifting_highlights():
    text = "\n\n  Alpha beta. Gamma.  \n"
    html = page.render_passage(hit(text, start=10, highlights=[(26, 32)]))
    assert re.findall(r"<mark>(.*?)</mark>", html) == ["Gamma."]


def test_passage_from_the_middle_of_an_article_says_so():
    assert '<span class="ellipsis">' in page.render_passage(hit(start=40))
    assert '<span class="ellipsis">' not in page.render_passage(hit(start=0))


def test_article_marks_the_passage_in_place():
    article = "Intro line.\n\nAlpha beta. Gamma delta.\n\nOutro <b>bold</b>."
    start = article.index("Alpha")
    h = hit("Alpha beta. Gamma delta.", start=start, highlights=[(start + 12, start + 24)])
    html = page.render_article(article, h)
    assert visible(html) == article  # every character, newlines included
    assert '<span class="in-passage">Alpha beta. <mark>Gamma delta.</mark></span>' in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>" not in html


def test_article_highlight_crossing_the_passage_edge_stays_well_formed():
    article = "One two. Three four. Five six."
    h = hit("Three four.", start=9, highlights=[(4, 15)])
    html = page.render_article(article, h)
    assert visible(html) == article
    assert html.count("<mark>") == html.count("</mark>") == 2
    assert html.count("<span") == html.count("</span>")


def test_article_with_offsets_past_its_end_does_not_fail():
    html = page.render_article("Short.", hit("Gone text", start=50, highlights=[(50, 55)]))
    assert visible(html) == "Short." and "<mark>" not in html


def test_long_article_is_windowed_around_the_passage():
    article = "a" * 100_000 + "PASSAGE" + "b" * 100_000
    h = hit("PASSAGE", start=100_000)
    html = page.render_article(article, h, max_chars=1000)
    assert '<span class="in-passage">PASSAGE</span>' in html
    assert 900 < len(visible(html)) < 1100 and "[…]" in visible(html)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a?b=c#d", "https://example.org/a?b=c#d"),
        ("http://example.org", "http://example.org"),
        ("  https://example.org/x  ", "https://example.org/x"),
        ("HTTPS://EXAMPLE.ORG/", "HTTPS://EXAMPLE.ORG/"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        (" javascript:alert(1)", None),
        ("java\tscript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("vbscript:msgbox", None),
        ("file:///etc/passwd", None),
        ("//evil.example/x", None),
        ("/relative/path", None),
        ("https://", None),
        ("https://exa mple.org", None),
        ("https://example.org/\x00", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_safe_url(url, expected):
    assert page.safe_url(url) == expected


def test_hit_card_escapes_title_metadata_and_drops_unsafe_links():
    h = hit(
        XSS_TEXT[:40],
        title=XSS_TITLE,
        url="javascript:window.__xss=1",
        source='<b onmouseover="x()">Src</b>',
        date="2025-01-02T10:00:00",
        lang="fr",
        duplicates=["b2"],
    )
    html = page.render_hit(h, also_in=["<i>Other</i>"])
    assert "<script" not in html and "<img" not in html and "<b " not in html and "<i>" not in html
    assert "href" not in html  # javascript: is not a link
    assert XSS_TITLE in visible(html)  # shown as text, markdown syntax included
    assert "2025-01-02" in visible(html) and "French" in visible(html)
    assert "Also in: <i>Other</i>" in visible(html)
    assert tags(html) <= {"div", "span", "mark"}


def test_hit_card_links_http_urls_safely():
    h = hit(title="T", url='https://example.org/a"><script>x</script>')
    html = page.render_hit(h)
    assert 'href="https://example.org/a&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in html
    assert 'rel="noopener noreferrer nofollow"' in html and "example.org" in visible(html)


def test_hit_card_without_title_shows_the_id():
    assert "a1" in visible(page.render_hit(hit(title="  ")))


@given(
    text=stt.text(alphabet=stt.sampled_from("ab <>&\"'\n/=é漢😀"), max_size=60),
    spans=stt.lists(stt.tuples(stt.integers(-10, 80), stt.integers(-10, 80)), max_size=6),
    start=stt.integers(0, 20),
)
def test_rendering_never_loses_text_or_lets_markup_through(text, spans, start):
    article = "x" * start + text + "y" * 5
    h = hit(text, start=start, highlights=[(a + start, b + start) for a, b in spans])
    art = page.render_article(article, h)
    assert visible(art) == article
    assert tags(art) <= {"div", "span", "mark"}
    passage = page.render_passage(h)
    assert tags(passage) <= {"div", "span", "mark"}
    shown = visible(passage).removeprefix("… ") if start else visible(passage)
    assert re.sub(r"\s", "", shown) == re.sub(r"\s", "", text)


def test_md_escape_neutralises_markdown():
    out = page.md_escape("![x](http://evil/x.png) [a](javascript:x) :red[b] $y$ *c* <b>d</b>")
    assert not re.search(r"(?<!\\)[][!*$:<>_`~|#]", out)  # every markdown character is backslash-escaped
    assert re.sub(r"\\(.)", r"\1", out) == "![x](http://evil/x.png) [a](javascript:x) :red[b] $y$ *c* <b>d</b>"


def test_date_range_and_url_query():
    bounds = ["2024-01-01", "2025-12-31"]
    assert page.date_range((date(2024, 1, 1), date(2025, 12, 31)), bounds) == (None, None)
    assert page.date_range((date(2024, 3, 1), date(2025, 12, 31)), bounds) == ("2024-03-01", None)
    assert page.date_range((date(2024, 3, 1),), bounds) == ("2024-03-01", None)  # a range half picked
    assert page.date_range((), bounds) == (None, None)
    assert page.date_range((date(2024, 9, 1), date(2024, 3, 1)), bounds) == ("2024-03-01", "2024-09-01")
    assert page.date_range(["2023-01-01", "2030-01-01"], bounds) == (None, None)
    assert page.url_query("  a \n b  ", max_chars=10) == "a b"
    assert len(page.url_query("z" * 10_000, max_chars=MAX_QUERY_CHARS)) == MAX_QUERY_CHARS


def test_labels():
    assert page.lang_label("fr") == "French" and page.lang_label("xx") == "xx"
    assert page.mode_label("bm25") == "Keywords" and page.mode_label("new") == "new"
    assert page.format_score(0.8531) == "0.85" and page.format_score(1) == "1.00"
    assert page.format_score(0.0032512) == "0.0033" and page.format_score(0) == "0.00"
    tagline = page.render_tagline({"articles": 3}, ["en", "fr"])
    assert visible(tagline) == "Ask in any language — search 3 articles in English and French."
    assert visible(page.render_tagline({"articles": 1}, ["<x>"])) == "Ask in any language — search 1 article in <x>."
    assert visible(page.render_tagline({"articles": 9}, list("abcdefgh"))).endswith("9 articles in 8 languages.")
    assert page.summary(1, 12.34) == "1 result · 12.3 ms"
    assert page.summary(0, 250) == "No results · 250 ms"
    assert page.build_progress(3, 4, 10) == (0.75, "3 of 4 files read · 10 passages embedded")
    assert page.build_progress(0, 0, 0)[0] == 0.0
    assert page.duplicate_label(None, "x1") == "x1"
    assert page.duplicate_label(Article(id="x1", text="t", title="T", source="S"), "x1") == "S"
    assert page.duplicate_label(Article(id="x1", text="t", title="T"), "x1") == "T"


def test_pages_fetch_one_offset_at_a_time():
    calls: list[int] = []

    def search(query: str, options: SearchOptions) -> SearchResult:
        calls.append(options.offset)
        total = 12
        hits = [hit(rank=i + 1) for i in range(options.offset, min(total, options.offset + options.k))]
        return SearchResult(query, hits, 1.0)

    state = page.PageState(query="q", k=5, mode=MODES[0])
    p = page.pages_for(None, state, search, 1)
    assert (len(p.hits), p.has_more, calls) == (5, True, [0])
    p = page.pages_for(p, state, search, 3)
    assert (len(p.hits), p.has_more, calls) == (12, False, [0, 5, 10])
    assert [h.rank for h in p.hits] == list(range(1, 13))
    p = page.pages_for(p, state, search, 9)  # asking for more than there is: no more calls
    assert calls == [0, 5, 10]
    p = page.pages_for(p, page.PageState(query="other", k=5, mode=MODES[0]), search, 2)
    assert len(p.hits) == 10 and calls[-2:] == [0, 5]  # a new search starts over
    p = page.pages_for(p, p.state, search, 2, version="000002")
    assert calls[-2:] == [0, 5] and len(calls) == 7  # so does a new index version


# ------------------------------------------------------------------- AppTest
class QueryCounter(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed_queries(self, texts):
        self.queries += texts
        return super().embed_queries(texts)


ENCODER = QueryCounter()


class FakeSearcher(Searcher):
    def __init__(self, index_dir, **kw):
        kw.setdefault("encoder", ENCODER)
        super().__init__(index_dir, **kw)


def fake_build(sources, index_dir, settings=None, **kw):
    return build(sources, index_dir, settings, encoder=FakeEncoder(), model=FAKE_MODEL, **kw)


def records() -> list[dict]:
    recs = [
        dict(
            id="arctic",
            title="Arctic shipping routes open",
            text="Arctic sea ice is melting. Shipping routes open in the north during summer.",
            source="Polar Times",
            date="2025-01-10",
            lang="en",
            url="https://example.org/arctic",
        ),
        dict(
            id="cuisine",
            title="La tarte aux pommes",
            text="Une recette de cuisine: la tarte aux pommes. Il faut du beurre et des pommes.",
            source="Cuisine Hebdo",
            date="2024-05-01",
            lang="fr",
        ),
        dict(
            id="fox",
            title="Fox story",
            text="The quick brown fox jumps over the lazy dog. The fox is quick and brown.",
            lang="en",
        ),
        dict(
            id="hostile",
            title=XSS_TITLE,
            text=XSS_TEXT,
            source="<b>Evil</b> Source",
            date="2025-06-01",
            lang="en",
            url="javascript:window.__xss=1",
        ),
    ]
    for i in range(14):
        recs.append(
            dict(
                id=f"ship{i:02d}",
                title=f"Ship log {i}",
                text=f"Harbour report {i}. Cargo ships and container vessels crossed the harbour on day {i}.",
                source="Harbour Daily",
                date=f"2024-{i % 12 + 1:02d}-15",
                lang="de" if i % 2 else "en",
            )
        )
    return recs


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("app")
    src = root / "articles"
    write(src / "batch.json", json.dumps(records(), ensure_ascii=False))
    index = root / "index"
    report = build([SEEDS, src], index, BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
    assert report.articles == 19 and not report.skipped
    return index


@pytest.fixture
def fake_library(monkeypatch):
    monkeypatch.setattr(indexer, "Searcher", FakeSearcher)
    monkeypatch.setattr(indexer, "build", fake_build)
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def app(fake_library, monkeypatch, tiny_index) -> AppTest:
    monkeypatch.setenv("INDEXER_INDEX", str(tiny_index))
    return AppTest.from_file(APP, default_timeout=30)


def cards(at: AppTest) -> list[str]:
    return [h.value for h in at.main.html if 'class="hit"' in h.value]


def first_title(at: AppTest) -> str:
    m = re.search(r'class="hit-title"[^>]*>.*?</span>(.*?)</div>', cards(at)[0])
    assert m
    return visible(m.group(1))


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def search(at: AppTest, query: str) -> AppTest:
    at.run()
    at.text_input(key="q").input(query).run()
    return at


def test_landing_page_shows_examples_facts_and_filters(app):
    app.run()
    no_errors(app)
    assert app.title[0].value == "Article search"
    assert list(app.pills(key="example").options) == list(page.EXAMPLES)
    assert not cards(app)
    facts = app.sidebar.html[0].value
    assert "fake-bow" in facts and ">19<" in facts and "Passages" in facts and "Built at" in facts
    assert app.multiselect(key="lang").options == ["German", "English", "French"]
    assert "Polar Times" in app.multiselect(key="source").options
    assert app.date_input(key="dates").value == (date(2024, 1, 15), date(2025, 6, 1))
    assert app.radio(key="mode").options == [page.mode_label(m) for m in MODES]
    assert app.select_slider(key="k").value == page.DEFAULT_K


def test_search_shows_ranked_cards_count_and_time(app):
    search(app, "arctic shipping routes")
    no_errors(app)
    assert first_title(app) == "Arctic shipping routes open"
    assert re.fullmatch(r"10 results · [\d.,]+ ms", app.caption[0].value)
    assert len(cards(app)) == 10 and len(app.expander) == 10
    assert 'href="https://example.org/arctic"' in cards(app)[0]
    assert "Polar Times" in cards(app)[0] and "2025-01-10" in cards(app)[0]
    article = app.expander[0].html[0].value
    assert '<span class="in-passage">' in article and "Shipping routes open" in article
    assert app.query_params["q"] == "arctic shipping routes"


def test_example_question_runs_a_search(app):
    app.run()
    app.pills(key="example").set_value(page.EXAMPLES[0]).run()
    no_errors(app)
    assert app.text_input(key="q").value == page.EXAMPLES[0]
    assert first_title(app).startswith("Les États-Unis et la Russie")


def test_search_from_the_url(app):
    app.query_params.update({"q": "tarte aux pommes", "lang": "French", "k": "5"})
    app.run()
    no_errors(app)
    assert app.text_input(key="q").value == "tarte aux pommes"
    assert app.multiselect(key="lang").value == ["fr"] and app.select_slider(key="k").value == 5
    assert first_title(app) == "La tarte aux pommes"
    assert all("French" in c for c in cards(app))


def test_date_range_from_the_url(app):
    app.query_params.update({"q": "harbour cargo ships", "dates": ["2024-04-30", "2024-03-01"]})
    app.run()
    no_errors(app)
    shown = {re.search(r'title="date">([\d-]+)<', c).group(1) for c in cards(app)}  # type: ignore[union-attr]
    assert shown == {"2024-03-15", "2024-04-15"}


def test_unknown_url_values_are_ignored(app):
    app.query_params.update({"q": "fox", "lang": ["Klingon", "English"], "k": "7", "mode": "nope", "source": "Nobody"})
    app.run()
    no_errors(app)
    assert app.multiselect(key="lang").value == ["en"] and app.multiselect(key="source").value == []
    assert app.select_slider(key="k").value == page.DEFAULT_K
    assert first_title(app) == "Fox story"


def test_language_source_and_date_filters(app):
    search(app, "harbour cargo ships")
    assert any("German" in c for c in cards(app)) and any("English" in c for c in cards(app))
    app.multiselect(key="lang").select("de").run()
    no_errors(app)
    assert cards(app) and all("German" in c for c in cards(app))
    app.multiselect(key="lang").unselect("de").run()
    app.multiselect(key="source").select("Polar Times").run()
    assert [first_title(app)] == ["Arctic shipping routes open"] and len(cards(app)) == 1
    app.multiselect(key="source").unselect("Polar Times").run()
    app.date_input(key="dates").set_value((date(2024, 3, 1), date(2024, 4, 30))).run()
    no_errors(app)
    shown = {re.search(r'title="date">([\d-]+)<', c).group(1) for c in cards(app)}  # type: ignore[union-attr]
    assert shown == {"2024-03-15", "2024-04-15"}
    assert any("without a date" in c.value for c in app.sidebar.caption)


def test_every_mode_of_the_library_is_offered_and_works(app):
    search(app, "fox quick brown")
    for mode in MODES:
        app.radio(key="mode").set_value(mode).run()
        no_errors(app)
        assert first_title(app) == "Fox story", mode


def more_button(at: AppTest):
    return next((b for b in at.button if b.label == "More results"), None)


def test_more_results_pages_without_embedding_again(app):
    search(app, "harbour report cargo ships day")
    app.select_slider(key="k").set_value(5).run()
    assert len(cards(app)) == 5
    first_page = cards(app)
    embedded = len(ENCODER.queries)
    more_button(app).click().run()
    no_errors(app)
    assert cards(app)[:5] == first_page and len(cards(app)) == 10
    ranks = [int(re.search(r'class="rank">(\d+)<', c).group(1)) for c in cards(app)]  # type: ignore[union-attr]
    assert ranks == list(range(1, 11))
    assert len(ENCODER.queries) == embedded  # the second page reused the query vector
    for _ in range(5):
        if more_button(app) is None:
            break
        more_button(app).click().run()
    assert more_button(app) is None and len(cards(app)) == 19  # every article, once
    assert app.main.caption[-1].value == "No more results."
    app.text_input(key="q").input("fox").run()  # a new search starts on page one
    assert len(cards(app)) == 5


def test_hostile_article_is_shown_as_text(app):
    # pinned by its (hostile) source name through the URL, so ranking changes cannot move it
    app.query_params.update({"q": "hostile dispatch glaciers melting", "source": "<b>Evil</b> Source"})
    app.run()
    no_errors(app)
    assert app.multiselect(key="source").value == ["<b>Evil</b> Source"] and len(cards(app)) == 1
    card = cards(app)[0]
    assert "Hostile" in first_title(app) and XSS_TITLE in visible(card)
    article = app.expander[0].html[0].value
    everything = card + article + "".join(m.value for m in app.markdown)  # article text never goes to Markdown
    assert tags(everything) <= {"div", "span", "mark"}  # no script, img, a, b… from the article
    assert not re.search(r"<[^>]*(onerror|javascript:)", everything)  # nor any attribute of its making
    assert XSS_TEXT in visible(article)
    assert "<b>Evil</b> Source" in visible(card)
    assert not re.search(r"<[^>]*href", card)  # a javascript: URL is not linked


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   \t  ",
        "\n\n",
        "x" * 10_000,
        "arctic " * 1500,
        "🦊🧊🚢",
        "مرحبا بالعالم",
        "北極海の航路",
        "\u200b\u200f\u202e",
        "\x00\x01\x02",
        "<script>window.__xss=1</script>",
        "'; DROP TABLE articles; --",
        "%s %(q)s {q} \\",
    ],
)
def test_odd_queries_never_break_the_page(app, query):
    search(app, query)
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error
    if not query.strip():
        assert app.pills(key="example") and not cards(app)
    elif len(query) > MAX_QUERY_CHARS:
        assert any("first 2,000 characters" in c.value for c in app.caption)
        assert len(app.query_params["q"]) == MAX_QUERY_CHARS
    else:
        assert cards(app) or app.warning or app.info


def test_no_index_offers_to_build_it(fake_library, monkeypatch, tmp_path):
    data = tmp_path / "data"
    write(data / "articles" / "batch.json", json.dumps(records()[:3]))
    monkeypatch.setenv("INDEXER_DATA", str(data))
    monkeypatch.setenv("INDEXER_INDEX", str(tmp_path / "index"))
    monkeypatch.chdir(ROOT)  # seeds/ is a relative default source
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "no index at" in at.info[0].value.lower().replace("\\", "")
    assert at.button[0].label == "Build the index"
    assert not at.text_input
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.stack_trace for e in at.exception]
    assert at.text_input(key="q") is not None and "Articles" in at.sidebar.html[0].value
    assert ">4<" in at.sidebar.html[0].value  # the seed and three articles
    at.text_input(key="q").input("arctic shipping").run()
    assert first_title(at) == "Arctic shipping routes open"


def test_missing_sources_are_explained(fake_library, monkeypatch, tmp_path):
    monkeypatch.setenv("INDEXER_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("INDEXER_INDEX", str(tmp_path / "index"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button[0].click().run()
    assert not at.exception
    assert "source not found" in at.error[0].value.replace("\\", "")


def copy_index(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("manifest", 'rebuild it with "indexer build --full"'),
        ("store", 'rebuild it with "indexer build --full"'),
        ("newer", "upgrade indexer"),
    ],
)
def test_broken_index_gives_the_fix_and_a_rebuild(fake_library, monkeypatch, tmp_path, tiny_index, damage, message):
    index = copy_index(tiny_index, tmp_path / "index")
    manifest = json.loads((index / "manifest.json").read_text())
    if damage == "manifest":
        (index / "manifest.json").write_text("{not json")
    elif damage == "store":
        (index / "segments" / manifest["segments"][0]["name"] / "store.sqlite").write_bytes(b"garbage" * 100)
    else:
        manifest["format_version"] = 99
        (index / "manifest.json").write_text(json.dumps(manifest))
    data = tmp_path / "data"
    write(data / "articles" / "batch.json", json.dumps(records()[:3]))
    monkeypatch.setenv("INDEXER_DATA", str(data))
    monkeypatch.setenv("INDEXER_INDEX", str(index))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert message in at.error[0].value.replace("\\", "")
    assert at.button[0].label == "Rebuild the index"
    at.button[0].click().run()
    assert not at.exception and not at.error
    at.text_input(key="q").input("tarte aux pommes").run()
    assert first_title(at) == "La tarte aux pommes"


def test_search_error_is_a_message_not_a_traceback(app, monkeypatch):
    from indexer.errors import ModelMismatchError

    app.run()

    def broken(self, query, options=None):
        raise ModelMismatchError('the index was built with another model — rebuild with "indexer build --full"')

    monkeypatch.setattr(FakeSearcher, "search", broken)
    app.text_input(key="q").input("fox").run()
    assert not app.exception
    assert "indexer build --full" in app.error[0].value.replace("\\", "")
