"""Facet counts for one question: matching articles per language, per source and per period.

``Searcher.match_counts(query, options)`` answers "how many matches does each filter value
have?" for the sidebar ("French (42)") and a date histogram beside the date filter.

* **Over the top matches, not the index.** A semantic search ranks every passage, so
  "matching" means *among the ``depth`` best-ranked passages* (default 500) of the
  question, ranked exactly as the search ranks them (same mode, same fusion, at that
  depth). A count is of distinct **articles** among those passages; near-duplicate
  copies count once each (picking the source of a copy shows that copy). Recency
  (``SearchOptions.recency``) orders results, it does not decide what matches: counts
  ignore it. The page states the depth ("counts over the top 500 matches").
* **Disjunctive**, as e-commerce facets are: each facet's counts apply the *other*
  filters but not its own, so with French selected the German count still says how many
  German matches there are. The language counts rank with the source and date filters,
  the source counts with the language and date filters, the histogram with the language
  and source filters (the page draws the selected date range on it). Each distinct
  filter set is ranked once: one ranking without filters, at most three with.
* **The histogram's unit** — day, week (Monday to Sunday), month or year — is the finest
  that spans the matching dates in at most ``MAX_BARS`` bars; every bar between the
  first and the last is given, empty ones with 0. Undated matches are counted apart.

Values selected in the filters are always listed (with 0 when nothing matches); other
values only when they have matches, most first. Articles without a language (or source)
are not counted under any language (source): no filter can select them.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np

from .columns import Columns, locate
from .errors import QueryError
from .query import Filters

DEPTH = 500  # passages per ranking the counts are taken over (the page says so)
MAX_DEPTH = 5000
MAX_BARS = 50  # the most bars a histogram has: a readable sidebar chart
UNITS = ("day", "week", "month", "year")

__all__ = ["DEPTH", "MAX_BARS", "MAX_DEPTH", "DateBucket", "DateHistogram", "FacetCount", "MatchCounts", "count"]


@dataclass(frozen=True)
class FacetCount:
    """One filter value and its number of matching articles."""

    value: str
    count: int


@dataclass(frozen=True)
class DateBucket:
    """One bar of the histogram: its first and last day (ISO, inclusive) and its matching articles."""

    start: str
    end: str
    count: int


@dataclass(frozen=True)
class DateHistogram:
    """Matching dated articles per ``unit`` (day, week, month or year; None when no match is dated)."""

    unit: str | None = None
    buckets: list[DateBucket] = field(default_factory=list)


@dataclass(frozen=True)
class MatchCounts:
    """A question's facet counts: per language, per source, per period, and the undated matches."""

    depth: int  # counted over the top ``depth`` passages of each ranking
    langs: list[FacetCount]
    sources: list[FacetCount]
    dates: DateHistogram
    undated: int  # matching articles without a date (the histogram's filters: language and source)

    def to_json(self) -> dict[str, Any]:
        """The counts as ``indexer search --facets --json`` and ``/search?facets=true`` give them."""
        return {
            "depth": self.depth,
            "langs": [{"value": c.value, "count": c.count} for c in self.langs],
            "sources": [{"value": c.value, "count": c.count} for c in self.sources],
            "dates": {
                "unit": self.dates.unit,
                "buckets": [{"start": b.start, "end": b.end, "count": b.count} for b in self.dates.buckets],
            },
            "undated": self.undated,
        }


def check_depth(depth: int) -> None:
    """Raise a ``QueryError`` unless ``depth`` is a whole number from 1 to ``MAX_DEPTH``."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise QueryError(f"facet depth must be a whole number between 1 and {MAX_DEPTH}, not {depth!r}")


def count(columns: Columns, filters: Filters, rank: Callable[[Filters], Sequence[int]], depth: int) -> MatchCounts:
    """The counts, given the version's columns, the normalised filters and ``rank``.

    ``rank(f)`` gives the question's passage ids best first under filters ``f``; only the
    first ``depth`` are counted.
    """
    check_depth(depth)
    ranked: dict[Filters, np.ndarray] = {}

    def articles(f: Filters) -> np.ndarray:
        """Positions (in the article columns) of the distinct articles among ``f``'s top passages."""
        if f not in ranked:
            pids = np.asarray(list(rank(f))[:depth], dtype=np.int64)
            pos, held = locate(columns.pids, pids)
            ranked[f] = np.unique(columns.article[pos[held]]) if len(pids) else np.zeros(0, np.int64)
        return ranked[f]

    by_lang = articles(replace(filters, langs=()))
    by_source = articles(replace(filters, sources=()))
    by_date = articles(replace(filters, date_from=None, date_to=None))
    days = columns.day[by_date]
    dated = np.array([_as_date(d) is not None for d in days.tolist()], bool).reshape(-1)  # ≤ depth articles
    return MatchCounts(
        depth=depth,
        langs=_tally(columns.langs, columns.lang[by_lang], filters.langs),
        sources=_tally(columns.sources, columns.source[by_source], filters.sources),
        dates=histogram(days[dated]),
        undated=int((~dated).sum()),
    )


def _tally(values: list[str], codes: np.ndarray, selected: Sequence[str]) -> list[FacetCount]:
    """Each value with matches (most first, then by name), and every selected value."""
    n = np.bincount(codes[codes >= 0], minlength=len(values)) if len(values) else np.zeros(0, np.int64)
    counts = {v: int(c) for v, c in zip(values, n.tolist()) if c}
    for v in selected:
        counts.setdefault(v, 0)
    return [FacetCount(v, c) for v, c in sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))]


# ---------------------------------------------------------------- histogram
def _as_date(yyyymmdd: int) -> date | None:
    """20240517 → that day; None for 0 (undated) or a day that does not exist."""
    try:
        return date(yyyymmdd // 10000, yyyymmdd // 100 % 100, yyyymmdd % 100) if yyyymmdd > 0 else None
    except ValueError:
        return None


def _key(d: date, unit: str) -> int:
    """The bucket ``d`` falls in, as a number that grows by one per bucket."""
    if unit == "day":
        return d.toordinal()
    if unit == "week":
        return (d.toordinal() - 1) // 7  # ordinal 1 (0001-01-01) is a Monday
    if unit == "month":
        return d.year * 12 + d.month - 1
    return d.year


def _bounds(key: int, unit: str) -> tuple[date, date]:
    """The first and last day of bucket ``key``."""
    if unit == "day":
        d = date.fromordinal(key)
        return d, d
    if unit == "week":
        start = date.fromordinal(key * 7 + 1)
        return start, date.fromordinal(min(key * 7 + 7, date.max.toordinal()))
    if unit == "month":
        year, month = key // 12, key % 12 + 1
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    return date(key, 1, 1), date(key, 12, 31)


def unit_for(first: date, last: date, max_bars: int = MAX_BARS) -> str:
    """The finest unit that spans ``first``..``last`` in at most ``max_bars`` bars (a year always does)."""
    for unit in UNITS[:-1]:
        if _key(last, unit) - _key(first, unit) + 1 <= max_bars:
            return unit
    return "year"


def histogram(days: np.ndarray, max_bars: int = MAX_BARS) -> DateHistogram:
    """Articles per bucket for YYYYMMDD ``days``, every bucket from the first to the last (0 and non-days left out)."""
    distinct, counts = np.unique(days, return_counts=True)
    real = [(d, int(c)) for v, c in zip(distinct.tolist(), counts.tolist()) if (d := _as_date(v)) is not None]
    if not real:
        return DateHistogram()
    dates = [d for d, _ in real]
    unit = unit_for(dates[0], dates[-1], max_bars)
    per: dict[int, int] = {}
    for d, c in real:
        k = _key(d, unit)
        per[k] = per.get(k, 0) + c
    lo, hi = _key(dates[0], unit), _key(dates[-1], unit)
    buckets = []
    for k in range(lo, hi + 1):
        start, end = _bounds(k, unit)
        buckets.append(DateBucket(start.isoformat(), end.isoformat(), per.get(k, 0)))
    return DateHistogram(unit, buckets)
