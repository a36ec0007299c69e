"""Recency: a half-life boost counted back from the newest article; off by default."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest

from indexer import Searcher, SearchOptions
from indexer.errors import QueryError
from indexer.recency import FLOOR, parse_half_life, reference_day

from .conftest import FakeEncoder
from .desk_helpers import build_records

Q = "harbour strike wages"
OLD = {"id": "old", "title": "Harbour strike", "text": "Harbour strike over wages at the docks.",
       "date": "2019-01-05"}  # fmt: skip
NEW = {"id": "new", "title": "Harbour strike goes on",
       "text": "The harbour strike over wages goes on at the docks, with no end in sight.",
       "date": "2019-06-01"}  # fmt: skip
UNDATED = {"id": "undated", "title": "Strike", "text": "A strike somewhere far away, again."}
OTHER = {"id": "other", "title": "Volcano", "text": "A volcano erupts on a remote island far away.",
         "date": "2019-06-30"}  # fmt: skip


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    index = build_records(tmp_path_factory.mktemp("recency"), [OLD, NEW, UNDATED, OTHER])
    return Searcher(index, encoder=FakeEncoder())


def by_id(result) -> dict[str, float]:
    return {h.article_id: h.score for h in result.hits}


@pytest.mark.parametrize(
    ("text", "days"),
    [("30d", 30), ("30", 30), (" 2W ", 14), ("6m", 6 * 30.436875), ("1y", 365.2425), ("1.5d", 1.5),
     ("1000y", 365242.5)],
)  # fmt: skip
def test_half_lives_parse(text, days):
    assert parse_half_life(text) == pytest.approx(days)


@pytest.mark.parametrize("text", ["", "0d", "-3d", "3x", "d", "1e3d", "inf", "nan", "30 days", "1001y", "3d4"])
def test_bad_half_lives_are_one_line_errors(text):
    with pytest.raises(QueryError) as exc:
        parse_half_life(text)
    assert "invalid recency" in str(exc.value) and "30d, 2w, 6m or 1y" in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), True, "30d"])
def test_search_options_refuse_bad_recency(value):
    with pytest.raises(QueryError, match="invalid recency"):
        SearchOptions(recency=value)


def test_off_is_the_default(searcher):
    assert SearchOptions().recency is None


def test_a_recent_article_overtakes_an_older_one_about_as_relevant(searcher):
    off = searcher.search(Q, SearchOptions(k=4))
    assert [h.article_id for h in off.hits][:2] == ["old", "new"]  # the older one is a little more relevant
    on = searcher.search(Q, SearchOptions(k=4, recency=30))
    assert [h.article_id for h in on.hits][:2] == ["new", "old"]
    assert all(0.0 <= h.score <= 1.0 for h in on.hits)
    assert [h.rank for h in on.hits] == [1, 2, 3, 4]


def test_scores_are_relevance_times_freshness_counted_from_the_newest_article(searcher):
    off, on = by_id(searcher.search(Q, SearchOptions(k=4))), by_id(searcher.search(Q, SearchOptions(k=4, recency=30)))
    assert on["other"] == pytest.approx(off["other"])  # the newest article (2019, not today): no decay
    age = (date(2019, 6, 30) - date(2019, 6, 1)).days
    assert on["new"] == pytest.approx(off["new"] * (FLOOR + (1 - FLOOR) * 0.5 ** (age / 30)))
    assert on["undated"] == pytest.approx(off["undated"] * FLOOR)  # undated: no boost, the floor
    assert on["old"] < off["old"] and on["old"] >= off["old"] * FLOOR


def test_a_long_half_life_changes_little_and_a_much_more_relevant_old_article_stays_ahead(searcher):
    slow = searcher.search(Q, SearchOptions(k=4, recency=parse_half_life("100y")))
    assert [h.article_id for h in slow.hits][:2] == ["old", "new"]
    top = searcher.search("volcano island", SearchOptions(k=2, recency=1))
    assert top.hits[0].article_id == "other"


def test_recency_changes_nothing_when_every_article_has_the_newest_date(tmp_path):
    records = [{**r, "date": "2020-02-02"} for r in (OLD, NEW, UNDATED, OTHER)]
    s = Searcher(build_records(tmp_path, records), encoder=FakeEncoder())
    for mode in ("hybrid", "dense", "bm25"):
        off, on = s.search(Q, SearchOptions(k=4, mode=mode)), s.search(Q, SearchOptions(k=4, mode=mode, recency=7))
        assert [h.to_json() for h in on.hits] == [h.to_json() for h in off.hits]
        assert on.no_close_match == off.no_close_match


def test_now_is_the_newest_day_but_never_after_today(searcher):
    cols = searcher.snapshot().columns
    assert reference_day(cols) == date(2019, 6, 30).toordinal()
    assert reference_day(cols, today=date(2019, 3, 1)) == date(2019, 3, 1).toordinal()


def test_the_explanation_keeps_the_calibrated_relevance(searcher):
    off = {h.article_id: h for h in searcher.search(Q, SearchOptions(k=4, explain=True)).hits}
    on = {h.article_id: h for h in searcher.search(Q, SearchOptions(k=4, explain=True, recency=30)).hits}
    assert on["undated"].explanation.calibrated == pytest.approx(off["undated"].score)
    assert on["undated"].score == pytest.approx(off["undated"].score * FLOOR)


def test_now_skips_a_largest_day_that_is_no_day():
    cols = SimpleNamespace(day=np.array([20190105, 0, 20241399, 20190601], np.int32))
    assert reference_day(cols, today=date(2030, 1, 1)) == date(2019, 6, 1).toordinal()
    assert reference_day(SimpleNamespace(day=np.zeros(3, np.int32))) is None
