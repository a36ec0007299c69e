"""What a search may be restricted to: languages, sources, a date range."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from .errors import QueryError
from .language import normalize_code


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

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause on ``articles a`` and its parameters."""
        clauses, params = [], []
        if self.langs:
            clauses.append(f"a.lang IN ({','.join('?' * len(self.langs))})")
            params += list(self.langs)
        if self.sources:
            clauses.append(f"a.source IN ({','.join('?' * len(self.sources))})")
            params += list(self.sources)
        if self.date_from:
            clauses.append("a.date >= ?")
            params.append(self.date_from)
        if self.date_to:
            # a full timestamp sorts after its day but before "<day>\uffff", so the bound keeps
            # every time of the last day and still lets SQLite search the date index
            clauses.append("a.date <= ?")
            params.append(self.date_to + "\uffff")
        return (" AND ".join(clauses) or "1"), params


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
