"""The records of saved searches: a search, a match, and what the percolator keeps of a search between builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .frame import Frame
from .query import Filters


@dataclass(frozen=True)
class SavedSearch:
    """A search kept under a name, run against what each build adds."""

    name: str
    query: str
    mode: str = "hybrid"
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None  # None: the calibration's no-close-match threshold for the mode
    created_at: str = ""
    created_version: str = ""  # the live version when it was saved: it reports what came after
    id: int = 0
    seen: int = 0  # the newest match id ``alerts new`` showed

    def to_json(self) -> dict[str, Any]:
        """The search as ``alerts list --json`` prints it."""
        f = self.filters
        return {
            "name": self.name,
            "query": self.query,
            "mode": self.mode,
            "filters": {
                "langs": list(f.langs),
                "sources": list(f.sources),
                "date_from": f.date_from,
                "date_to": f.date_to,
            },
            "min_score": self.min_score,
            "created_at": self.created_at,
            "created_version": self.created_version,
        }


@dataclass(frozen=True)
class AlertMatch:
    """An article a build added or changed that a saved search found, with the passage that matched."""

    id: int
    alert: str
    version: str
    found_at: str  # when the build found it (UTC, ISO 8601)
    article_id: str
    title: str
    passage_id: int
    passage: str
    score: float  # calibrated, as ``Hit.score``
    url: str | None = None
    date: str | None = None
    source: str | None = None
    lang: str | None = None
    updated: bool = False  # a new version of an article the index already held

    def to_json(self) -> dict[str, Any]:
        """The match as ``alerts new --json`` prints it."""
        out = dict(self.__dict__)
        out["score"] = round(self.score, 6)
        return out


@dataclass(frozen=True)
class FrameState:
    """What the percolator keeps per search between builds (percolate.py)."""

    fingerprint: str | None = None
    vector: np.ndarray | None = None
    frame: Frame = field(default_factory=Frame)
    key: str | None = None
    cuts: Cuts | None = None  # None: rank it again before trusting the frame
    lexical: dict[str, Any] | None = None  # the query's lexical analysis, kept (percolate.py)
    lost: int = 0  # frame members deleted since the frame was taken from the whole version: its margin's wear


@dataclass(frozen=True)
class Cuts:
    """What a new passage must score to enter a search's frame: each side's 100th and 200th best.

    BM25 scores move a little with the collection's statistics: ``passages`` is the
    collection's size when they were taken, so the percolator knows when to rank again.
    """

    dense: tuple[float, float]
    lexical: tuple[float, float]
    passages: int


@dataclass(frozen=True)
class NewMatch:
    """A match to record: the search it belongs to, and what it found."""

    search: int
    article_id: str
    title: str
    passage_id: int
    passage: str
    score: float
    url: str | None
    date: str | None
    source: str | None
    lang: str | None
    updated: bool


@dataclass(frozen=True)
class RunRecord:
    """One build's percolation, written in one transaction: its matches, the searches' states, the statistics."""

    version: str
    at: str
    matches: list[NewMatch]
    states: dict[int, FrameState]
    stats_key: str
    stats: dict[str, Any]
    searches: int
    passages: int
    seconds: float
    full: bool


def version_number(version: str) -> int:
    """``000014-20261203T100000`` → 14 (versions are numbered in publishing order)."""
    head = version.split("-", 1)[0]
    return int(head) if head.isdigit() else 0
