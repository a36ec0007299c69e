"""Facet counts: matching articles per language, source and period, disjunctive, over the top matches."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from indexer import Filters, Searcher, SearchOptions
from indexer.errors import QueryError
from indexer.facet_counts import MAX_BARS, histogram, unit_for

from .conftest import FakeEncoder
from .desk_helpers import build_records

# (lang, source, date, text): "harbour" is in 7 articles, the rest are about other things
RECORDS = [
    ("en", "Wire", "2023-01-10", "Dock workers at the harbour strike over wages."),
    ("en", "Wire", "2023-01-20", "The harbour strike ends with a deal on wages."),
    ("en", "Post", "2023-03-05", "Harbour cranes stand still on the third day of the strike."),
    ("de", "Wire", "2023-02-01", "Die Hafenarbeiter streiken im harbour von Hamburg."),
    ("de", "Blatt", "2023-02-14", "Harbour Hamburg: der Streik geht weiter."),
    ("fr", "Monde", "2023-01-15", "La grève du harbour de Marseille continue."),
    ("fr", "Monde", None, "Le harbour est fermé depuis lundi."),
    ("en", "Post", "2023-06-01", "A volcano erupts on a remote island."),
    ("fr", "Monde", "2023-07-01", "Un volcan entre en éruption dans le Pacifique."),
    ("de", "Blatt", None, "Ein Vulkan bricht auf einer Insel aus."),
]
HARBOUR = [i for i, r in enumerate(RECORDS) if "harbour" in r[3].lower()]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    records = [{"id": f"a{i}", "title": f"Article {i}", "text": text, "lang": lang, "source": source,
                **({"date": day} if day else {})} for i, (lang, source, day, text) in enumerate(RECORDS)]  # fmt: skip
    return Searcher(build_records(tmp_path_factory.mktemp("facets"), records), encoder=FakeEncoder())


def counted(values) -> dict[str, int]:
    return {c.value: c.count for c in values}


def expected(rows: list[int], field: int) -> dict[str, int]:
    return dict(Counter(RECORDS[i][field] for i in rows))


def keep(rows: list[int], *, langs=(), sources=(), date_from=None) -> list[int]:
    out = []
    for i in rows:
        lang, source, day, _ = RECORDS[i]
        if (langs and lang not in langs) or (sources and source not in sources):
            continue
        if date_from and (day is None or day < date_from):
            continue
        out.append(i)
    return out


def test_bm25_counts_are_the_articles_holding_the_word(searcher):
    c = searcher.match_counts("harbour", SearchOptions(mode="bm25"))
    assert counted(c.langs) == expected(HARBOUR, 0)
    assert counted(c.sources) == expected(HARBOUR, 1)
    assert c.undated == 1  # a6, the undated French one
    assert sum(b.count for b in c.dates.buckets) == len(HARBOUR) - 1
    assert c.depth == 500


def test_counts_are_most_first_then_by_name(searcher):
    c = searcher.match_counts("harbour", SearchOptions(mode="bm25"))
    assert [x.value for x in c.langs] == ["en", "de", "fr"]  # 3, 2, 2: a tie goes by name
    assert [x.value for x in c.sources] == ["Wire", "Monde", "Blatt", "Post"]  # 3, 2, 1, 1


def test_each_facet_ignores_its_own_filter_and_applies_the_others(searcher):
    f = Filters(langs=("fr",), sources=("Wire", "Monde"), date_from="2023-01-12")
    c = searcher.match_counts("harbour", SearchOptions(mode="bm25", filters=f))
    # languages: sources and dates applied, not the language
    assert counted(c.langs) == expected(keep(HARBOUR, sources=("Wire", "Monde"), date_from="2023-01-12"), 0)
    assert counted(c.langs)["en"] == 1 and counted(c.langs)["de"] == 1  # still shown with French picked
    # sources: language and dates applied
    assert counted(c.sources) == {"Monde": 1, "Wire": 0}  # a selected value is listed, even at 0
    # dates: language and source applied, not the dates: the undated French article counts
    dated = keep(HARBOUR, langs=("fr",), sources=("Wire", "Monde"))
    assert c.undated == sum(RECORDS[i][2] is None for i in dated) == 1
    assert [b.start for b in c.dates.buckets if b.count] == ["2023-01-15"]


def test_hybrid_counts_at_full_depth_cover_every_article_the_filters_keep(searcher):
    # ten one-passage articles, depth 500: the dense side returns all of them
    c = searcher.match_counts("harbour", SearchOptions(filters=Filters(sources=("Blatt",))))
    assert counted(c.langs) == {"de": 2}
    assert counted(c.sources) == expected(list(range(len(RECORDS))), 1)
    assert c.undated == 1 and sum(b.count for b in c.dates.buckets) == 1


def test_depth_limits_what_is_counted(searcher):
    c = searcher.match_counts("harbour strike wages", SearchOptions(mode="bm25"), depth=1)
    assert sum(x.count for x in c.langs) == 1 and sum(x.count for x in c.sources) == 1
    assert c.depth == 1
    top = searcher.search("harbour strike wages", SearchOptions(mode="bm25", k=1)).hits[0]
    assert counted(c.langs) == {top.lang: 1} and counted(c.sources) == {top.source: 1}
    for bad in (0, 5001, 2.5, True):
        with pytest.raises(QueryError, match="facet depth must be a whole number between 1 and 5000"):
            searcher.match_counts("harbour", depth=bad)


def test_filter_errors_are_the_searchs(searcher):
    with pytest.raises(QueryError, match="invalid language"):
        searcher.match_counts("harbour", SearchOptions(filters=Filters(langs=("klingon",))))
    with pytest.raises(QueryError, match="empty query"):
        searcher.match_counts("   ")


def test_json_shape(searcher):
    data = searcher.match_counts("harbour", SearchOptions(mode="bm25")).to_json()
    assert list(data) == ["depth", "langs", "sources", "dates", "undated"]
    assert data["langs"][0] == {"value": "en", "count": 3}
    assert data["dates"]["unit"] == "week"  # 2023-01-10 .. 2023-03-05: 9 weeks
    assert data["dates"]["buckets"][0] == {"start": "2023-01-09", "end": "2023-01-15", "count": 2}


# ---------------------------------------------------------------- histogram
def days(*iso: str) -> np.ndarray:
    return np.array([int(d.replace("-", "")) for d in iso], np.int32)


@pytest.mark.parametrize(
    ("first", "last", "unit"),
    [("2024-05-01", "2024-05-01", "day"), ("2024-05-01", "2024-06-19", "day"), ("2024-05-01", "2024-06-20", "week"),
     ("2024-01-01", "2024-12-15", "week"), ("2024-01-01", "2025-03-01", "month"), ("2019-01-01", "2023-02-01", "month"),
     ("2019-01-01", "2023-03-01", "year"), ("1900-01-01", "2025-01-01", "year")],
)  # fmt: skip
def test_the_unit_is_the_finest_that_fits_the_span(first, last, unit):
    h = histogram(days(first, last))
    assert h.unit == unit == unit_for(*(np.datetime64(x).astype(object) for x in (first, last)))
    assert 1 <= len(h.buckets) <= MAX_BARS or unit == "year"
    assert h.buckets[0].start <= first <= h.buckets[0].end and h.buckets[-1].start <= last <= h.buckets[-1].end


def test_buckets_are_contiguous_whole_periods_with_empty_ones_kept():
    h = histogram(days("2024-01-31", "2024-02-29", "2024-02-01", "2024-05-02", "2024-05-02"))
    assert h.unit == "week"
    h = histogram(days("2023-12-31", "2024-02-29", "2024-02-01", "2025-05-02", "2025-05-02"))
    assert h.unit == "month"
    assert [(b.start, b.end, b.count) for b in h.buckets[:3]] == [
        ("2023-12-01", "2023-12-31", 1), ("2024-01-01", "2024-01-31", 0), ("2024-02-01", "2024-02-29", 2)]  # fmt: skip
    assert h.buckets[-1] == type(h.buckets[-1])("2025-05-01", "2025-05-31", 2)
    assert len(h.buckets) == 18 and sum(b.count for b in h.buckets) == 5
    for a, b in zip(h.buckets, h.buckets[1:]):
        assert np.datetime64(a.end) + 1 == np.datetime64(b.start)


def test_weeks_start_on_monday():
    h = histogram(days("2024-05-15", "2024-07-20"))  # a Wednesday .. 10 weeks later
    assert h.unit == "week" and h.buckets[0].start == "2024-05-13" and h.buckets[0].end == "2024-05-19"
    assert all(np.datetime64(b.start).astype(object).weekday() == 0 for b in h.buckets)


def test_no_dated_match_is_an_empty_histogram_and_non_days_are_left_out():
    assert histogram(np.zeros(0, np.int32)).unit is None
    assert histogram(days("2024-05-01")).buckets[0].count == 1
    h = histogram(np.array([20240230, 20240501, 0], np.int32))  # 30 February is no day
    assert h.unit == "day" and [b.count for b in h.buckets] == [1]
