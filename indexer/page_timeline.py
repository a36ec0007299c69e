"""The page's timelines: matching articles over time (from ``Searcher.match_counts``) and a story's dates.

The main chart draws the date histogram of ``MatchCounts`` — day, week, month or year bars
chosen from the span by facet_counts.py — with two Vega-Lite selections: a click picks one
bar (``PICK``), a drag picks a range (``SPAN``). ``picked_range`` turns what Streamlit
returns for them into the date filter's bounds; the page then sets its "Published" filter,
which lives in the URL. The histogram ignores the date filter (its counts are disjunctive),
so the chart keeps every bar and shows the picked range in colour, the rest greyed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd  # Streamlit sends a chart's data as a table; inline Vega-Lite values do not reach the chart

from .facet_counts import DateBucket, DateHistogram
from .page import lang_label
from .story_index import Story

PICK = "pick"  # the click selection's name: Streamlit returns [{"first": ..., "last": ...}]
SPAN = "span"  # the drag selection's name: Streamlit returns {"start": [from, to]} (epoch ms)
UNIT_WORDS = {"day": "day", "week": "week", "month": "month", "year": "year"}
_BLUE, _GREY = "#3b6fd8", "#c9ced8"


def _next_day(iso: str) -> str:
    return (date.fromisoformat(iso) + timedelta(days=1)).isoformat()


def bucket_label(bucket: DateBucket, unit: str | None) -> str:
    """How a bar is named: 2024-05-17, week of 2024-05-13, 2024-05, 2024."""
    if unit == "month":
        return bucket.start[:7]
    if unit == "year":
        return bucket.start[:4]
    if unit == "week":
        return f"week of {bucket.start}"
    return bucket.start


def title(hist: DateHistogram, depth: int) -> str:
    """The chart's caption: what a bar counts."""
    return f"Matching articles per {UNIT_WORDS.get(hist.unit or 'day', 'day')} (among the top {depth:,} passages)"


def rows(hist: DateHistogram, date_from: str | None, date_to: str | None) -> list[dict[str, Any]]:
    """One row per bar, ``inside`` when it overlaps the date filter (all bars without one)."""
    out = []
    for b in hist.buckets:
        inside = (date_from is None or b.end >= date_from) and (date_to is None or b.start <= date_to)
        out.append({"start": b.start, "stop": _next_day(b.end), "first": b.start, "last": b.end, "count": b.count,
                    "label": bucket_label(b, hist.unit), "inside": inside})  # fmt: skip
    return out


def domain(hist: DateHistogram) -> tuple[str, str] | None:
    """The x axis's span (first bar's first day to the day after the last bar), shared with story timelines."""
    if not hist.buckets:
        return None
    return hist.buckets[0].start, _next_day(hist.buckets[-1].end)


def chart(hist: DateHistogram, date_from: str | None, date_to: str | None) -> alt.Chart:
    """The bar chart with its click and drag selections."""
    out = _bars().copy(deep=True)
    out.data = pd.DataFrame(rows(hist, date_from, date_to))
    return out


@functools.cache
def _bars() -> alt.Chart:
    """The timeline without its data, made once.

    Altair validates every encoding as it is made: that cost a page run more than the facet
    counts the chart draws (~60 ms a question on 2 cores); the copy with data is the same spec.
    """
    pick = alt.selection_point(name=PICK, fields=["first", "last"], on="click", clear="dblclick")
    span = alt.selection_interval(name=SPAN, encodings=["x"], clear="dblclick")
    return (
        alt.Chart()
        .mark_bar(cornerRadius=2, cursor="pointer", stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("start:T", title=None, axis=alt.Axis(labelOverlap=True, grid=False)),
            x2="stop:T",
            y=alt.Y("count:Q", title=None, axis=alt.Axis(tickMinStep=1, grid=True, gridOpacity=0.4)),
            y2=alt.datum(0),  # a bar ranged on x is otherwise a line at its count
            color=alt.condition("datum.inside", alt.value(_BLUE), alt.value(_GREY)),
            tooltip=[alt.Tooltip("label:N", title="period"), alt.Tooltip("count:Q", title="articles")],
        )
        .add_params(pick, span)
        .properties(height=150)
    )


def _day(value: object) -> str | None:
    """An ISO day from what a selection carries: an ISO string, or epoch milliseconds (UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, UTC).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return None
    return None


def picked_range(selection: Mapping[str, Any], hist: DateHistogram) -> tuple[str, str] | None:
    """The first and last day of the bars a selection covers, or None when nothing usable is selected.

    A clicked bar gives its own days; a dragged range gives every bar it touches, whole.
    """
    picked = selection.get(PICK) or []
    if isinstance(picked, Sequence) and picked and isinstance(picked[0], Mapping):
        lo, hi = _day(picked[0].get("first")), _day(picked[0].get("last"))
        if lo and hi:
            return min(lo, hi), max(lo, hi)
    span = selection.get(SPAN) or {}
    ends = span.get("start") if isinstance(span, Mapping) else None
    if isinstance(ends, Sequence) and not isinstance(ends, str) and len(ends) == 2:
        a, b = _day(ends[0]), _day(ends[1])
        if a and b:
            a, b = min(a, b), max(a, b)
            touched = [x for x in hist.buckets if x.end >= a and x.start <= b]
            if touched:
                return touched[0].start, touched[-1].end
    return None


def story_chart(story: Story, span: tuple[str, str] | None) -> alt.Chart | None:
    """A story's members as dots on the timeline's axis (``span``), one row per language; None when undated."""
    dated = [m for m in story.members if m.date and _day(m.date)]
    if not dated:
        return None
    values = [{"day": (_day(m.date) or "") + "T12:00:00", "lang": lang_label(m.lang or "") or "?",
               "title": m.title, "source": m.source or ""} for m in dated]  # fmt: skip
    days = [v["day"][:10] for v in values]
    # the search's timeline axis, widened to the members it would cut off
    scale = alt.Scale(domain=[min(span[0], min(days)), max(span[1], _next_day(max(days)))]) if span else alt.Undefined
    return (
        alt.Chart(pd.DataFrame(values))
        .mark_circle(size=70, opacity=0.85, color=_BLUE)
        .encode(
            x=alt.X("day:T", title=None, scale=scale, axis=alt.Axis(labelOverlap=True, grid=False)),
            y=alt.Y("lang:N", title=None),
            tooltip=[alt.Tooltip("title:N"), alt.Tooltip("source:N"), alt.Tooltip("day:T", title="date")],
        )
        .properties(height=max(60, 28 * len({v["lang"] for v in values})))
    )
