"""Saved searches: what is new for me. The library behind ``indexer alerts`` and the page's sidebar.

A saved search is a query with its filters, mode and threshold, kept under a name
with the index (alert_store.py). Every build that publishes runs it against the
articles it added or changed only (percolate.py) and records those that score at
least its threshold — by default the calibration's no-close-match threshold for its
mode: a match is an article a search would call a close match.

*New* means, for ``new_matches``: found since the reader last asked for that search
(each search keeps that mark; asking moves it), or, with ``since``, found by the
builds that published versions after a given one, or on or after a given date
(asking that way moves no mark). A search reports only what builds found after it
was saved. The page keeps its own mark, in its URL (``overview``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .alert_records import AlertMatch, SavedSearch, version_number
from .alert_store import AlertStore, name_taken
from .embedding import Encoder
from .errors import AlertError, IndexNotFoundError
from .index import IndexDir
from .manifest import now
from .percolate import first_state, threshold
from .query import Filters, clean_query
from .search import Searcher
from .settings import MODES

__all__ = ["AlertMatch", "Overview", "SavedSearch", "Since", "add", "new_matches", "overview", "remove", "saved"]

MAX_NAME = 80
_VERSION = re.compile(r"\d{1,6}(-\d{8}T\d{6})?")


@dataclass(frozen=True)
class Since:
    """Where "new" starts: after a version, from a moment (UTC, ISO 8601), or after the search's own mark."""

    version: int | None = None
    time: str | None = None

    @classmethod
    def parse(cls, text: str) -> Since:
        """``14``, ``000014-20261203T100000`` (a version) or ``2026-12-03``, ``2026-12-03T10:00`` (local time)."""
        value = text.strip()
        if _VERSION.fullmatch(value):
            return cls(version=version_number(value) if "-" in value else int(value))
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise AlertError(
                f"--since {text!r} is neither a version (e.g. 14 or 000014-20261203T100000, as indexer info shows) "
                "nor a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM in local time)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # the reader's own clock
        return cls(time=moment.astimezone(UTC).replace(microsecond=0).isoformat())

    def describe(self) -> str:
        """How the CLI says it."""
        if self.version is not None:
            return f"since version {self.version:06d}"
        return f"since {self.time}" if self.time else "since your last look"


@dataclass(frozen=True)
class SavedSummary:
    """A saved search with how many matches it has, how many are unseen, and the score they need."""

    search: SavedSearch
    matches: int
    unseen: int
    last_version: str | None
    threshold: float  # the score a match needs now
    default_threshold: bool  # it is the calibration's

    def to_json(self) -> dict[str, object]:
        """What ``alerts list --json`` prints per search."""
        return {**self.search.to_json(), "matches": self.matches, "unseen": self.unseen,
                "last_version": self.last_version, "threshold": round(self.threshold, 4)}  # fmt: skip


@dataclass(frozen=True)
class NewMatches:
    """One search's new matches, oldest first."""

    search: SavedSearch
    since: Since
    matches: list[AlertMatch]

    def to_json(self) -> dict[str, object]:
        """What ``alerts new --json`` prints per search (one line each)."""
        return {"alert": self.search.name, "query": self.search.query, "since": self.since.describe(),
                "matches": [m.to_json() for m in self.matches]}  # fmt: skip


@dataclass(frozen=True)
class Overview:
    """For the page: each saved search with its matches newer than the reader's mark, and the newest mark."""

    searches: list[tuple[SavedSearch, int]]
    latest: int  # the newest match's id: the mark to keep for the next visit


def _store(index_dir: Path | str, *, create: bool = False) -> tuple[IndexDir, AlertStore]:
    idx = IndexDir(index_dir)
    if not idx.exists():
        raise IndexNotFoundError(idx.path)
    return idx, AlertStore(idx.layout.alerts, create=create)


def check_name(name: str) -> str:
    """A search's name as kept: trimmed, printable, at most ``MAX_NAME`` characters."""
    text = " ".join(str(name).split())
    if not text:
        raise AlertError('a saved search needs a name, e.g. indexer alerts add arctic "Arctic shipping routes"')
    if len(text) > MAX_NAME or not text.isprintable():
        raise AlertError(f"the name {text[:MAX_NAME]!r}… is too long or not printable — use at most {MAX_NAME} "
                         "letters, digits and spaces")  # fmt: skip
    return text


def add(
    index_dir: Path | str,
    name: str,
    query: str,
    *,
    mode: str = "hybrid",
    filters: Filters | None = None,
    min_score: float | None = None,
    encoder: Encoder | None = None,
) -> SavedSearch:
    """Save a search under ``name``; from the next build on, what it adds that matches is recorded.

    The query is searched once now (its vector and candidates are kept for the builds to
    rank against); ``encoder`` is the index's model when the caller has it loaded.
    """
    name = check_name(name)
    text, _ = clean_query(query)
    if mode not in MODES:
        raise AlertError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise AlertError(f"--min-score {min_score:g} is not a score: give a number between 0 and 1")
    f = (filters or Filters()).normalized()
    idx = IndexDir(index_dir)
    if not idx.exists():
        raise IndexNotFoundError(idx.path)
    if idx.layout.alerts.is_file():  # a taken name fails before the search (and is checked again on saving)
        store = AlertStore(idx.layout.alerts)
        try:
            if store.get(name) is not None:
                raise name_taken(name)
        finally:
            store.close()
    searcher = Searcher(idx.path, encoder=encoder)
    try:
        snap = searcher.snapshot()
        search = SavedSearch(name, text, mode, f, min_score, now(), snap.manifest.version)
        state = first_state(searcher, snap, search)
    finally:
        searcher.close()
    store = AlertStore(idx.layout.alerts, create=True)
    try:
        return store.insert(search, state)
    finally:
        store.close()


def remove(index_dir: Path | str, name: str) -> int:
    """Forget a saved search and its matches; returns how many matches it had."""
    _, store = _store(index_dir)
    try:
        return store.remove(check_name(name))
    finally:
        store.close()


def saved(index_dir: Path | str) -> list[SavedSummary]:
    """Every saved search, by name, with its counts (none when nothing was ever saved)."""
    idx = IndexDir(index_dir)
    manifest = idx.manifest()
    if not idx.layout.alerts.is_file():
        return []
    store = AlertStore(idx.layout.alerts)
    try:
        totals = store.totals()
        out = []
        for s in store.searches():
            n, last = totals.get(s.id, (0, None))
            unseen = len(store.matches(s.id, after=s.seen))
            out.append(SavedSummary(s, n, unseen, last, threshold(s, manifest), s.min_score is None))
        return out
    finally:
        store.close()


def new_matches(index_dir: Path | str, name: str | None = None, *, since: Since | None = None) -> list[NewMatches]:
    """The matches of one saved search (or of each), new since its mark or since ``since``.

    Without ``since`` each search's mark moves to the newest match shown.
    """
    _, store = _store(index_dir)
    try:
        searches = [store.require(check_name(name))] if name is not None else store.searches()
        out = []
        for s in searches:
            if since is None:
                found = store.matches(s.id, after=s.seen)
                if found:
                    store.mark_seen(s.id, found[-1].id, now())
            else:
                found = store.matches(s.id, since_version=since.version, since_time=since.time)
            out.append(NewMatches(s, since or Since(), found))
        return out
    finally:
        store.close()


def overview(index_dir: Path | str, seen: int | None) -> Overview:
    """Each saved search with its matches newer than ``seen`` (the page's mark; None: all of them)."""
    idx = IndexDir(index_dir)
    if not idx.layout.alerts.is_file():
        return Overview([], 0)
    store = AlertStore(idx.layout.alerts)
    try:
        counts = store.counts_after(seen or 0)
        return Overview([(s, counts.get(s.id, 0)) for s in store.searches()], store.latest())
    finally:
        store.close()
