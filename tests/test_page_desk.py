"""The page's stories, timeline and desk tools: the pure helpers, then the page through AppTest.

The AppTest part reuses test_app.py's tiny index (fake encoder) and its patched library.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import altair as alt
import pytest

from indexer import page, page_desk, page_stories, page_timeline
from indexer.facet_counts import DateBucket, DateHistogram, FacetCount, MatchCounts
from indexer.similar import SimilarArticle, SimilarResult
from indexer.story_index import ArticleMeta, Story

from . import test_app as ta
from .test_app import cards, no_errors, search, tags, visible

# test_app.py's fixtures: its tiny index and the page over it
tiny_index = ta.tiny_index
fake_library = ta.fake_library
app = ta.app

EVIL = '<img src=x onerror="window.__xss=1">'
MONTHS = DateHistogram(
    "month",
    [
        DateBucket("2024-01-01", "2024-01-31", 3),
        DateBucket("2024-02-01", "2024-02-29", 0),
        DateBucket("2024-03-01", "2024-03-31", 5),
    ],
)


def ms(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000


# ------------------------------------------------------------------ timeline
def test_a_clicked_bar_gives_its_own_days():
    picked = {"pick": [{"first": "2024-02-01", "last": "2024-02-29"}], "span": {}}
    assert page_timeline.picked_range(picked, MONTHS) == ("2024-02-01", "2024-02-29")


def test_a_dragged_range_gives_every_bar_it_touches_whole():
    span = {"span": {"start": [ms("2024-02-10T00:00"), ms("2024-01-20T00:00")]}}  # dragged right to left
    assert page_timeline.picked_range(span, MONTHS) == ("2024-01-01", "2024-02-29")
    beyond = {"span": {"start": [ms("2023-01-01T00:00"), ms("2023-06-01T00:00")]}}
    assert page_timeline.picked_range(beyond, MONTHS) is None


@pytest.mark.parametrize(
    "selection",
    [{}, {"pick": []}, {"pick": [{"first": "x", "last": 3}]}, {"span": {"start": [1]}}, {"span": {"start": "ab"}}],
)
def test_nothing_usable_selected_changes_nothing(selection):
    assert page_timeline.picked_range(selection, MONTHS) is None


def test_bars_inside_the_date_filter_are_flagged_and_labelled():
    rows = page_timeline.rows(MONTHS, "2024-02-15", None)
    assert [r["inside"] for r in rows] == [False, True, True]
    assert [r["label"] for r in rows] == ["2024-01", "2024-02", "2024-03"]
    assert rows[0]["stop"] == "2024-02-01"  # a bar ends where the next begins
    assert all(r["inside"] for r in page_timeline.rows(MONTHS, None, None))
    assert page_timeline.domain(MONTHS) == ("2024-01-01", "2024-04-01")
    assert page_timeline.domain(DateHistogram()) is None
    assert "per month" in page_timeline.title(MONTHS, 500) and "500" in page_timeline.title(MONTHS, 500)


def test_the_chart_carries_both_selections():
    spec = page_timeline.chart(MONTHS, None, None).to_dict()
    assert {p["name"] for p in spec["params"]} == {page_timeline.PICK, page_timeline.SPAN}


def test_each_chart_is_its_own_data_on_the_kept_template():
    """The encodings are made once (Altair validates them as made); a chart's data never leaks into another."""
    first = page_timeline.chart(MONTHS, "2024-02-15", None).to_dict()
    other = page_timeline.chart(DateHistogram("day", [DateBucket("2024-05-01", "2024-05-01", 9)]), None, None)
    assert other.to_dict()["datasets"] != first["datasets"]
    assert page_timeline.chart(MONTHS, "2024-02-15", None).to_dict() == first
    assert page_timeline._bars().data is alt.Undefined
    inside = [r["inside"] for r in next(iter(first["datasets"].values()))]
    assert inside == [False, True, True]


def member(row: int, day: str | None, lang: str, source: str, title: str = "") -> ArticleMeta:
    return ArticleMeta(row, f"a{row}", title or f"Title {row}", day, lang, source, f"https://x.org/{row}")


STORY = Story(
    7,
    2,
    (
        member(1, "2024-01-05", "fr", "Le Monde"),
        member(2, "2024-01-09", "de", "Die Zeit", title=EVIL),
        member(3, "2024-03-02", "fr", EVIL),
        member(4, None, "en", "Wire"),
    ),
)


def test_a_story_timeline_widens_the_search_axis_to_its_members():
    spec = page_timeline.story_chart(STORY, ("2024-02-01", "2024-03-01")).to_dict()  # type: ignore[union-attr]
    assert spec["encoding"]["x"]["scale"]["domain"] == ["2024-01-05", "2024-03-03"]
    assert len(next(iter(spec["datasets"].values()))) == 3  # the undated member has no dot
    assert page_timeline.story_chart(Story(1, 1, (member(1, None, "fr", "x"),)), None) is None


# ------------------------------------------------------------------- stories
def test_a_story_card_says_how_widely_it_was_covered_and_lists_members_in_order():
    html = page_stories.render_story(STORY, best="a2")
    assert "Covered by 4 articles in 4 sources, 3 languages · 2024-01-05 – 2024-03-02" in visible(html)
    titles = re.findall(r'class="member-title"[^>]*>(.*?)</span>', html)
    assert [visible(t) for t in titles] == ["Title 1", EVIL, "Title 3", "Title 4"]
    assert html.count('class="best"') == 1 and "French" in visible(html) and "2024-01-09" in html
    assert "img" not in tags(html) and EVIL in visible(html)


def test_a_story_of_one_dated_article():
    one = Story(1, 1, (member(1, "2024-01-05", "fr", "Le Monde"),))
    assert page_stories.coverage_line(one) == "Covered by 1 article in 1 source, 1 language · 2024-01-05"


def near(rank: int, story: int | None, **kw) -> SimilarArticle:
    return SimilarArticle(rank, f"n{rank}", kw.pop("title", f"Near {rank}"), 0.9 - rank / 10, story_id=story, **kw)


def test_similar_coverage_is_grouped_by_story_in_rank_order():
    hits = [near(1, 5), near(2, None), near(3, 9), near(4, 5), near(5, None)]
    groups = page_stories.similar_groups(hits)
    assert [[h.rank for h in g] for g in groups] == [[1, 4], [2], [3], [5]]
    html = page_stories.render_similar(SimilarResult("a", "A", "fr", hits, 1.0, excluded=["copy"]))
    assert "One story, 2 articles" in visible(html) and "1 copy of this article left out" in visible(html)
    evil = page_stories.render_similar(
        SimilarResult("a", "A", "fr", [near(1, None, title=EVIL, url="javascript:x")], 1)
    )
    assert "img" not in tags(evil) and "a" not in tags(evil) and EVIL in visible(evil)
    assert "No other article" in page_stories.render_similar(SimilarResult("a", "A", "fr", [], 1.0))


# ----------------------------------------------------------------- desk tools
def test_facet_counts_read_as_value_and_count_escaped():
    counts = [FacetCount("fr", 42), FacetCount(EVIL, 1)]
    html = page_desk.render_facet_counts(counts, page.lang_label)
    assert visible(html) == f"French (42) · {EVIL} (1)" and "img" not in tags(html)
    many = [FacetCount(f"s{i}", 20 - i) for i in range(11)]
    assert visible(page_desk.render_facet_counts(many)).endswith("3 more (33)")
    assert "No matches" in page_desk.render_facet_counts([])


def test_counts_note_states_the_depth():
    counts = MatchCounts(500, [], [], DateHistogram(), undated=3)
    assert "top 500 passages" in page_desk.counts_note(counts) and "3 of them undated" in page_desk.counts_note(counts)


def test_recency_choices():
    assert page_desk.recency_label(0) == "Off" and page_desk.recency_label(30) == "30 days half-life"
    assert page_desk.recency_value(0) is None and page_desk.recency_value(30) == 30.0
    assert page_desk.recency_value(None) is None and page_desk.recency_value(True) is None


def test_page_state_asks_for_its_grouping_and_recency():
    opts = page.PageState(query="q", mode="hybrid", group="story", recency=7.0).options()
    assert opts.group == "story" and opts.recency == 7.0


def test_counts_are_kept_while_the_question_and_filters_stay():
    calls: list[int] = []

    def count() -> MatchCounts:
        calls.append(1)
        return MatchCounts(500, [], [], DateHistogram(), 0)

    state = page.PageState(query="q", mode="hybrid")
    kept = page_desk.counts_for(None, state, "v1", count)
    for same in (state, page.PageState(query="q", mode="hybrid", k=50, group="story", recency=7.0)):
        assert page_desk.counts_for(kept, same, "v1", count) is kept
    assert len(calls) == 1
    page_desk.counts_for(kept, page.PageState(query="q", mode="hybrid", langs=("fr",)), "v1", count)
    page_desk.counts_for(kept, state, "v2", count)
    assert len(calls) == 3


def test_download_names():
    assert page_desk.download_name("Arctic shipping?", "csv") == "results-arctic-shipping.csv"
    assert page_desk.download_name("../../", "jsonl") == "results-search.jsonl"
    assert page_desk.download_name("coopération dans l'Arctique", "csv") == "results-coopération-dans-l-arctique.csv"


# ------------------------------------------------------------------ the page
def sidebar_html(at) -> str:
    return " ".join(h.value for h in at.sidebar.html)


def test_the_filters_show_counts_for_the_question_only(app):
    app.run()
    assert "facet-counts" not in sidebar_html(app)  # no question: plain labels
    search(app, "harbour report cargo ships")
    no_errors(app)
    counts = re.findall(r'class="facet-counts">(.*?)</div>', sidebar_html(app))
    assert len(counts) == 2
    assert "German (" in visible(counts[0]) and "Harbour Daily (" in visible(counts[1])
    assert any("top 500 passages" in c.value for c in app.sidebar.caption)
    app.multiselect(key="lang").set_value(["de"]).run()
    no_errors(app)
    langs = visible(re.findall(r'class="facet-counts">(.*?)</div>', sidebar_html(app))[0])
    assert "English (" in langs  # disjunctive: the language filter does not hide the other languages' counts


def test_group_by_story_shows_story_cards(app):
    search(app, "harbour report cargo ships")
    app.toggle(key="story").set_value(True).run()
    no_errors(app)
    stories = [h.value for h in app.main.html if 'class="story"' in h.value]
    assert stories and len(stories) == len(cards(app))
    assert all("Covered by" in visible(s) for s in stories)
    assert any(e.label == "Timeline of this story" for e in app.expander)


def test_favour_recent_reorders_and_similar_coverage_opens_in_place(app):
    search(app, "harbour report cargo ships")
    before = [re.search(r"</span>(.*?)</div>", c).group(1) for c in cards(app)]  # type: ignore[union-attr]
    app.selectbox(key="recent").set_value(7).run()
    no_errors(app)
    after = [re.search(r"</span>(.*?)</div>", c).group(1) for c in cards(app)]  # type: ignore[union-attr]
    assert before != after  # a 7-day half-life moves the newer harbour reports up
    similar = next(b for b in app.button if b.label == "Similar coverage")
    similar.click().run()
    no_errors(app)
    assert any('class="similar"' in h.value for h in app.main.html)
    assert cards(app)[0] and any(b.label == "Hide similar coverage" for b in app.button)
