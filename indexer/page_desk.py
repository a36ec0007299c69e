"""The page's desk tools, as pure functions: facet counts, "Favour recent", downloads, cached counts.

The language and source filters stay plain multiselects whose values are the URL's values
(``?lang=French``): a label carrying its count ("French (42)") would put the count in the
URL, and a shared link would break as soon as the counts moved. So the counts are drawn
under each filter, each value with its number of matching articles among the question's
top passages (``Searcher.match_counts``; disjunctive: a facet ignores its own filter).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from .export import EXPORT_LIMIT
from .facet_counts import FacetCount, MatchCounts
from .page import PageState

#: "Favour recent": a half-life in days (0: off), as the sidebar offers it
RECENCY_CHOICES: tuple[int, ...] = (0, 7, 30, 365)
RECENCY_HELP = (
    "Recent articles rank higher: the boost halves every half-life, counted back from the newest article in the "
    "index, and an old article keeps at least half of its relevance."
)
DOWNLOAD_NOTE = (
    f"A download holds up to {EXPORT_LIMIT:,} results of this search (its question, filters, grouping and "
    "ordering), one row per result."
)
MAX_SHOWN = 8  # facet values listed under a filter; the rest are summed


def recency_label(days: int) -> str:
    """How a half-life choice reads (also its URL value)."""
    return "Off" if not days else f"{days} days half-life"


def recency_value(days: object) -> float | None:
    """The choice as ``SearchOptions.recency``: None when off."""
    return float(days) if isinstance(days, int) and not isinstance(days, bool) and days > 0 else None


def render_facet_counts(counts: Sequence[FacetCount], label: Callable[[str], str] = str) -> str:
    """Under a filter: "French (42) · English (17) · …" for the values with matches (and the selected ones)."""
    if not counts:
        return '<div class="facet-counts">No matches.</div>'
    shown = [f"{escape(label(c.value))} (<b>{c.count:,}</b>)" for c in counts[:MAX_SHOWN]]
    rest = counts[MAX_SHOWN:]
    if rest:
        shown.append(f"{len(rest)} more ({sum(c.count for c in rest):,})")
    return f'<div class="facet-counts">{" · ".join(shown)}</div>'


def counts_note(counts: MatchCounts) -> str:
    """What the counts are over (plain text)."""
    undated = f" {counts.undated:,} of them undated." if counts.undated else ""
    return (f"Counts are of matching articles among the top {counts.depth:,} passages for this question; "
            f"each filter's counts ignore that filter.{undated}")  # fmt: skip


# ------------------------------------------------------------- cached counts
@dataclass(frozen=True)
class Counted:
    """One question's counts, kept so that a rerun (paging, opening a card) does not rank again."""

    key: tuple[object, ...]
    counts: MatchCounts


def counts_key(state: PageState, version: str) -> tuple[object, ...]:
    """What the counts depend on: the question, mode, filters and index version (not k, grouping, recency)."""
    return (state.query, state.mode, state.filters(), version)


def counts_for(current: Counted | None, state: PageState, version: str, count: Callable[[], MatchCounts]) -> Counted:
    """The counts kept for the same question and filters, else freshly counted."""
    key = counts_key(state, version)
    if current is not None and current.key == key:
        return current
    return Counted(key, count())


# ----------------------------------------------------------------- downloads
_UNSAFE = re.compile(r"[^\w-]+")


def download_name(query: str, ext: str) -> str:
    """A file name for the question's download: ``results-arctic-shipping.csv``."""
    slug = _UNSAFE.sub("-", query.lower()).strip("-_")[:40].strip("-_")
    return f"results-{slug or 'search'}.{ext}"
