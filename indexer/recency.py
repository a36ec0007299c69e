"""Recency: favour recent articles by blending a time decay into the ranking and the score.

``SearchOptions(recency=30.0)`` (CLI ``--recency 30d``, API ``recency=30d``) multiplies each
candidate's relevance by a freshness factor

    factor = FLOOR + (1 - FLOOR) * 0.5 ** (age_days / half_life)

so the recency advantage halves every ``half_life`` days and an old article keeps at least
``FLOOR`` (half) of its relevance: a very relevant old article still beats a weak new one,
while of two equally relevant articles the more recent ranks first. The candidates are the
search's usual ones (recency reorders them, it does not fetch others); they are reordered
by their min-max normalised ranking score times the factor, and ``Hit.score`` is the
calibrated score times the factor, so it stays in [0, 1] (``--explain`` still shows the
calibrated relevance, and "no close match" is judged on it).

Decisions:

* **"Now" is the newest article's day in the index** (but never after today, so one
  article dated 2099 by mistake cannot make the whole archive old). For an archive that
  ends in 2019, decay measured from today would give every article the floor and
  recency would do nothing; measured from the newest article it means "the latest in
  this collection", and the same index ranks the same way tomorrow. For an archive fed
  every day the two are the same.
* **Undated articles get the floor**: they cannot be shown to be recent, so they keep
  only their relevance-only standing, as the oldest dated articles do — neither boosted
  nor buried below them. (The date filters leave them out altogether.)
* Ages are whole days; an article dated after "now" counts as age 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date

import numpy as np

from .columns import Columns, locate
from .errors import QueryError

FLOOR = 0.5  # the factor of an infinitely old (or undated) article
MAX_DAYS = 1000 * 365.2425  # a thousand years: any longer half-life is "off" in all but name
#: days per suffix of ``--recency`` (a month and a year are their Gregorian averages)
UNITS = {"d": 1.0, "w": 7.0, "m": 30.436875, "y": 365.2425}
_HALF_LIFE = re.compile(r"(\d+(?:\.\d+)?)\s*([dwmy]?)")

__all__ = ["FLOOR", "UNITS", "check", "factors", "parse_half_life", "reference_day", "reorder"]


def _error(text: object) -> QueryError:
    return QueryError(f"invalid recency {text!r}: give a half-life such as 30d, 2w, 6m or 1y (d, w, m, y)")


def parse_half_life(text: str) -> float:
    """``30d`` / ``2w`` / ``6m`` / ``1y`` (a bare number is days) → days; a ``QueryError`` otherwise."""
    m = _HALF_LIFE.fullmatch(str(text).strip().lower())
    if not m:
        raise _error(text)
    days = float(m[1]) * UNITS[m[2] or "d"]
    if not 0 < days <= MAX_DAYS:
        raise _error(text)
    return days


def check(half_life: float | None) -> None:
    """Raise a ``QueryError`` unless ``half_life`` is None (off) or a positive number of days."""
    if half_life is None:
        return
    if isinstance(half_life, bool) or not isinstance(half_life, int | float) or not math.isfinite(half_life):
        raise _error(half_life)
    if not 0 < half_life <= MAX_DAYS:
        raise _error(half_life)


def _ordinal(yyyymmdd: int) -> int:
    """20240517 → its day ordinal; 0 for 0 (undated) or a day that does not exist."""
    try:
        return date(yyyymmdd // 10000, yyyymmdd // 100 % 100, yyyymmdd % 100).toordinal() if yyyymmdd > 0 else 0
    except ValueError:
        return 0


def reference_day(columns: Columns, today: date | None = None) -> int | None:
    """The decay's "now" as a day ordinal: the newest article's day (today if earlier); None if none is dated."""
    days = columns.day[columns.day > 0]
    newest = _ordinal(int(days.max())) if len(days) else 0
    if len(days) and not newest:  # the largest is no real day (20241399): the largest that is
        newest = next((o for d in np.unique(days)[::-1].tolist() if (o := _ordinal(d))), 0)
    return min(newest, (today or date.today()).toordinal()) if newest else None


def _ordinals(days: np.ndarray) -> np.ndarray:
    """YYYYMMDD ints → day ordinals (0 for undated), one conversion per distinct day."""
    distinct, at = np.unique(days, return_inverse=True)
    conv = np.array([_ordinal(int(d)) for d in distinct.tolist()], np.int64)
    return conv[at.reshape(-1)] if len(days) else np.zeros(0, np.int64)


def factors(columns: Columns, pids: Sequence[int], half_life: float, now: int | None) -> np.ndarray:
    """The freshness factor of each passage's article, in [FLOOR, 1]; FLOOR for an undated one."""
    ids = np.asarray(pids, dtype=np.int64)
    out = np.full(len(ids), FLOOR, np.float64)
    if not len(ids) or now is None:
        return out
    pos, held = locate(columns.pids, ids)
    days = np.where(held, columns.day[columns.article[pos]] if len(columns.article) else 0, 0)
    ordinals = _ordinals(days)
    dated = ordinals > 0
    age = np.maximum(now - ordinals[dated], 0)
    out[dated] = FLOOR + (1.0 - FLOOR) * np.power(0.5, age / half_life)
    return out


def reorder(
    columns: Columns, order: list[tuple[int, float]], half_life: float, now: int | None
) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """``order`` (best first) re-sorted by min-max normalised score × freshness, and each passage's factor.

    The pairs keep their original ranking score (calibration reads it as evidence of relevance).
    """
    if not order:
        return [], {}
    pids = [pid for pid, _ in order]
    f = factors(columns, pids, half_life, now)
    scores = np.array([s for _, s in order], np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    norm = (scores - lo) / (hi - lo) if hi - lo > 1e-12 else np.ones_like(scores)
    key = norm * f
    ranked = sorted(range(len(order)), key=lambda i: (-key[i], order[i][0]))
    return [order[i] for i in ranked], dict(zip(pids, f.tolist()))
