"""A version's filterable metadata as numpy columns, so a filter costs a vector operation, not a query.

Restricting a search to a language, a few sources or a date range used to fetch
the matching passage ids from SQLite on every query: hundreds of thousands of
rows for a common language in a large archive, and a table scan for a broad date
range. A published version never changes, so its passage → article map and each
article's language, source and day are read once (on the first filtered search,
or at warm-up) and every filter after that is a mask over them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .query import Filters
from .records import Facets
from .store import ArticleKey

if TYPE_CHECKING:
    from .version_state import VersionState


def locate(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``ids`` stands in ``sorted_ids``, and which of them it holds at all."""
    if not len(sorted_ids):
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return pos, sorted_ids[pos] == ids


def _day(value: str | None) -> int:
    """``2024-05-17…`` → 20240517; 0 when the article has no (readable) date."""
    if not value or len(value) < 10:
        return 0
    digits = value[:4] + value[5:7] + value[8:10]
    return int(digits) if digits.isdigit() else 0


def day_number(value: str | None) -> int:
    """A date as the day column holds it: ``2024-05-17…`` → 20240517, 0 without a readable one."""
    return _day(value)


@dataclass(frozen=True)
class Columns:
    """Passage ids (sorted) with their article's position; per article its row, group, lang, source, day."""

    pids: np.ndarray  # int64, sorted
    article: np.ndarray  # int32: each passage's row in the article columns
    rowid: np.ndarray  # int64: the article's row id in SQLite
    group: np.ndarray  # int64: its near-duplicate group (the rowid of the cluster's first article)
    langs: list[str]  # distinct languages; ``lang`` holds indexes into it (-1: none)
    lang: np.ndarray
    sources: list[str]
    source: np.ndarray
    day: np.ndarray  # int32 YYYYMMDD, 0 without a date

    @classmethod
    def load(cls, con: sqlite3.Connection) -> Columns:
        """Read the columns of a version's database (two sequential scans)."""
        rows = con.execute(
            "SELECT rowid, lang, source, date, coalesce(dup_group, rowid) FROM articles ORDER BY rowid"
        ).fetchall()
        rowids = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        group = np.fromiter((r[4] for r in rows), np.int64, count=len(rows))
        langs = sorted({r[1] for r in rows if r[1] is not None})
        sources = sorted({r[2] for r in rows if r[2] is not None})
        li, si = {v: i for i, v in enumerate(langs)}, {v: i for i, v in enumerate(sources)}
        lang = np.fromiter((li.get(r[1], -1) for r in rows), np.int32, count=len(rows))
        source = np.fromiter((si.get(r[2], -1) for r in rows), np.int32, count=len(rows))
        day = np.fromiter((_day(r[3]) for r in rows), np.int32, count=len(rows))
        prow = con.execute("SELECT id, article FROM passages ORDER BY id").fetchall()
        pids = np.fromiter((r[0] for r in prow), np.int64, count=len(prow))
        owners = np.fromiter((r[1] for r in prow), np.int64, count=len(prow))
        article = np.searchsorted(rowids, owners).astype(np.int32)
        return cls(pids, article, rowids, group, langs, lang, sources, source, day)

    @classmethod
    def merge(cls, parts: Sequence[Columns], state: VersionState) -> Columns:
        """A version's columns: its segments' (in id order), less deleted articles, with its groups."""
        langs = sorted({v for p in parts for v in p.langs})
        sources = sorted({v for p in parts for v in p.sources})
        li, si = {v: i for i, v in enumerate(langs)}, {v: i for i, v in enumerate(sources)}
        out: dict[str, list[np.ndarray]] = {k: [] for k in ("pids", "article", "rowid", "lang", "source", "day")}
        offset = 0
        for p in parts:
            alive = ~locate(state.deleted_rows, p.rowid)[1]
            # -1 (no value) indexes the table's last entry, which is -1 again
            lang_map = np.array([li[v] for v in p.langs] + [-1], np.int32)
            source_map = np.array([si[v] for v in p.sources] + [-1], np.int32)
            new_row = (np.cumsum(alive) - 1 + offset).astype(np.int32)
            keep = alive[p.article] if len(p.article) else np.zeros(0, bool)
            out["pids"].append(p.pids[keep])
            out["article"].append(new_row[p.article[keep]])
            out["rowid"].append(p.rowid[alive])
            out["lang"].append(lang_map[p.lang[alive]])
            out["source"].append(source_map[p.source[alive]])
            out["day"].append(p.day[alive])
            offset += int(alive.sum())
        empty = {"pids": np.int64, "article": np.int32, "rowid": np.int64, "lang": np.int32, "source": np.int32,
                 "day": np.int32}  # fmt: skip
        arr = {k: np.concatenate(v).astype(empty[k]) if v else np.zeros(0, empty[k]) for k, v in out.items()}
        group = arr["rowid"].copy()
        if state.groups:
            keys = np.fromiter(state.groups.keys(), np.int64, count=len(state.groups))
            vals = np.fromiter(state.groups.values(), np.int64, count=len(state.groups))
            pos, held = locate(arr["rowid"], keys)
            group[pos[held]] = vals[held]
        return cls(arr["pids"], arr["article"], arr["rowid"], group, langs, arr["lang"], sources, arr["source"],
                   arr["day"])  # fmt: skip

    def language_counts(self) -> dict[str, int]:
        """Passages per article language, most frequent first."""
        codes = self.lang[self.article]
        counts = np.bincount(codes[codes >= 0], minlength=len(self.langs))
        order = sorted((-int(c), v) for v, c in zip(self.langs, counts) if c)
        return {v: -c for c, v in order}

    def facets(self) -> Facets:
        """Distinct languages and sources of the articles held, and their date range."""
        langs = [self.langs[i] for i in np.unique(self.lang[self.lang >= 0]).tolist()]
        sources = [self.sources[i] for i in np.unique(self.source[self.source >= 0]).tolist()]
        days = self.day[self.day > 0]
        ends = (int(days.min()), int(days.max())) if len(days) else ()
        dates = [f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in ends]
        return Facets(langs=langs, sources=sources, dates=dates)

    def articles_matching(self, filters: Filters) -> np.ndarray:
        """A boolean mask over the articles that ``filters`` (normalised) keep."""
        keep = np.ones(len(self.lang), dtype=bool)
        if filters.langs:
            codes = [i for i, v in enumerate(self.langs) if v in filters.langs]
            keep &= np.isin(self.lang, codes)
        if filters.sources:
            codes = [i for i, v in enumerate(self.sources) if v in filters.sources]
            keep &= np.isin(self.source, codes)
        if filters.date_from:
            keep &= self.day >= _day(filters.date_from)
        if filters.date_to:
            keep &= (self.day > 0) & (self.day <= _day(filters.date_to))
        return keep

    def passage_ids(self, filters: Filters) -> np.ndarray:
        """Sorted ids of the passages whose article ``filters`` keep."""
        return self.pids[self.articles_matching(filters)[self.article]]

    def _rows(self, pids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The article rows of ``pids`` that the version holds, and which of ``pids`` those are."""
        pos, held = locate(self.pids, np.asarray(pids, dtype=np.int64))
        return self.article[pos[held]], held

    def article_keys(self, pids: Sequence[int]) -> dict[int, ArticleKey]:
        """Passage id → its article row and near-duplicate group (ids the version lacks are left out)."""
        rows, held = self._rows(pids)
        kept = np.asarray(pids, dtype=np.int64)[held].tolist()
        return {p: ArticleKey(r, g) for p, r, g in zip(kept, self.rowid[rows].tolist(), self.group[rows].tolist())}

    def langs_of(self, pids: Sequence[int]) -> dict[int, str | None]:
        """Passage id → its article's language."""
        rows, held = self._rows(pids)
        kept = np.asarray(pids, dtype=np.int64)[held].tolist()
        return {p: (self.langs[c] if c >= 0 else None) for p, c in zip(kept, self.lang[rows].tolist())}

    def clusters(self) -> dict[int, list[int]]:
        """Near-duplicate group → the row ids of its articles, for groups holding more than one."""
        order = np.argsort(self.group, kind="stable")
        groups, starts, counts = np.unique(self.group[order], return_index=True, return_counts=True)
        rows = self.rowid[order]
        return {int(g): rows[s : s + c].tolist() for g, s, c in zip(groups, starts, counts) if c > 1}
