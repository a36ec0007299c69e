"""A query as the engine reads it: its cleaned text, its analysis for BM25, and its filters."""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from . import fusion
from .analysis import query_groups
from .errors import QueryError
from .language import normalize_code, scripts

if TYPE_CHECKING:
    from .index import Snapshot

MAX_QUERY_CHARS = 2000  # the model reads 512 tokens at most; longer queries only cost time


@dataclass(frozen=True)
class Filters:
    """Restrictions applied inside the search, not after it."""

    langs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    date_from: str | None = None  # inclusive, ISO date
    date_to: str | None = None  # inclusive, ISO date

    def __bool__(self) -> bool:
        return bool(self.langs or self.sources or self.date_from or self.date_to)

    def normalized(self) -> Filters:
        """Checked and canonical: language codes lower-cased, dates completed to full days.

        Raises ``QueryError`` naming the bad value.
        """
        langs = []
        for raw in self.langs:
            code = normalize_code(str(raw))
            if code is None:
                raise QueryError(f"invalid language {raw!r}: use a two-letter code such as fr, en, de")
            langs.append(code)
        lo = _iso_day(self.date_from, end=False, flag="--date-from")
        hi = _iso_day(self.date_to, end=True, flag="--date-to")
        if lo and hi and lo > hi:
            raise QueryError(f"--date-from {lo} is after --date-to {hi}")
        sources = tuple(s.strip() for s in self.sources if s and s.strip())
        return Filters(langs=tuple(dict.fromkeys(langs)), sources=sources, date_from=lo, date_to=hi)


def _iso_day(value: str | None, *, end: bool, flag: str) -> str | None:
    """``2024`` / ``2024-05`` / ``2024-05-17`` → a full ISO day (first or last of the period)."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", text)
    try:
        if not m:
            raise ValueError
        year, month, day = int(m[1]), int(m[2] or (12 if end else 1)), m[3]
        last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
        d = date(year, month, int(day) if day else (last if end else 1))
    except ValueError:
        raise QueryError(f"invalid date {text!r} for {flag}: use YYYY-MM-DD (or YYYY-MM, YYYY)") from None
    return d.isoformat()


def clean_query(query: str) -> tuple[str, bool]:
    """Drop control characters, collapse whitespace, cap the length; reject empty queries."""
    if not isinstance(query, str):
        raise QueryError("the query must be text")
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in query)
    text = " ".join(text.split())
    if not text:
        raise QueryError("empty query — type a few words to search for")
    truncated = len(text) > MAX_QUERY_CHARS
    return text[:MAX_QUERY_CHARS], truncated


def query_language_probs(text: str) -> dict[str, float]:
    """The query's language distribution (flat for names and numbers, peaked for sentences)."""
    from .language import _identifier

    return {lang: float(p) for lang, p in _identifier().rank(text)[:20]}


@dataclass(frozen=True)
class LexicalQuery:
    """A query as the lexical side sees it."""

    groups: list[dict[str, float]]  # per query word: its term under each language, with that language's weight
    probs: dict[str, float]  # the query's language distribution
    scripts: set[str]  # writing systems the query uses

    @property
    def terms(self) -> list[str]:
        """Every analysed term, once, in query order (what highlights look for)."""
        return list(dict.fromkeys(t for g in self.groups for t in g))


def lexical_query(text: str, snap: Snapshot) -> LexicalQuery:
    """Analyse the query as its likely language and as the collection's main languages."""
    probs = query_language_probs(text)
    qscripts = scripts(text)
    likely = [lang for lang, p in sorted(probs.items(), key=lambda kv: -kv[1])[:2] if p > 0.2]
    langs = list(dict.fromkeys(likely + list(snap.languages)[:3])) or [""]
    weights = {lang: fusion.language_weight(probs, lang or None, qscripts) for lang in langs}
    return LexicalQuery(query_groups(text, weights), probs, qscripts)
