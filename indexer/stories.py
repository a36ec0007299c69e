"""Stories: the articles about one event, from any source and in any language.

Two articles are *linked* when the evidence says they report the same thing:

* **Article vectors, centred per language** (``article_vectors.py``). e5's vectors carry a
  strong language component: a German paragraph and its Chinese translation have cosine
  0.80–0.85, less than two unrelated German paragraphs (0.85–0.90). Subtracting each
  language's mean vector (``Calibration``) removes it: translations then score 0.66 (median),
  unrelated pairs 0.0 ± 0.08, whatever the two languages.
* **The best match in the other language.** A translation, or another outlet's report of
  the event, is about the closest article of its language; a merely topical neighbour
  (another paragraph of the same Wikipedia article, another summit) is not. A
  cross-language pair links when its score is at least ``min_similarity`` and within
  ``best_margin`` of the best score each article has in the other's language (the
  mutual-best criterion of bitext mining). One language offers no such contrast, so a
  same-language pair links only above ``same_language_similarity``.
* **Numbers**, the rare terms that survive translation in every script: when both articles
  mention numbers of two or more digits, sharing some adds up to ``number_weight`` to the
  score and sharing none takes it off. Capitalised words are not used: German capitalises
  every noun, Russian and Chinese transliterate names.
* **Dates.** Only articles at most ``window_days`` apart are compared. An undated article
  is compared with undated ones only: it has no place in any window, and letting it link
  dated articles would let one text bridge two events a year apart.
* **Near-duplicates** (``dedup.py``) are always in one story, whatever their dates.

A story is a connected component of the links; its id is its smallest article row (as
near-duplicate groups are named) and its representative the member closest to the
story's mean centred vector. A link depends only on the two articles, the articles within
their windows and the language centroids, so stories do not depend on the order articles
came in. ``update`` recomputes only what an update can change — the stories of the
deleted, added and recalibrated articles and of their neighbours — and gives exactly what
``cluster`` gives with the same centroids. A language's centroid is re-taken (its articles
then count as changed) when the running mean of its articles has moved by more than
``recalibrate_drift`` from it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .article_vectors import read_database
from .errors import IndexerError
from .store import select_in
from .story_index import (  # re-exported: what stories are made of and stored as
    FILE,
    FILES,
    ArticleMeta,
    Calibration,
    RowTable,
    Story,
    StoryIndex,
    day_number,
    exists,
    sorted_member,
)

if TYPE_CHECKING:
    from .index import Snapshot


_NUMBER = re.compile(r"\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+(?!\d)|\d+")
_QUERIES = 512  # query articles per matrix product
_POOL = 8192  # compared articles per matrix product


class StoryError(IndexerError):
    """Story settings that cannot be used."""


@dataclass(frozen=True, kw_only=True)
class StorySettings:
    """What links two articles into one story (tuned on XQuAD + PIAF: README, "Stories")."""

    window_days: int = 7
    min_similarity: float = 0.425
    best_margin: float = 0.02
    same_language_similarity: float = 0.80
    number_weight: float = 0.10
    centroid_prior: float = 5.0  # articles' worth of the global mean in a language's centroid
    recalibrate_drift: float = 0.04

    def __post_init__(self) -> None:
        if isinstance(self.window_days, bool) or not isinstance(self.window_days, int):
            raise StoryError(f"story window {self.window_days!r} — give a whole number of days")
        if not 0 <= self.window_days <= 36_500:
            raise StoryError(f"story window of {self.window_days} days — use 0 to 36500 days")
        for name in ("min_similarity", "same_language_similarity"):
            if not -1 <= getattr(self, name) <= 1:
                raise StoryError(f"{name} {getattr(self, name)} — a similarity lies between -1 and 1")
        for name in ("best_margin", "number_weight", "centroid_prior", "recalibrate_drift"):
            if not getattr(self, name) >= 0:
                raise StoryError(f"{name} {getattr(self, name)} — use a value of 0 or more")


DEFAULT_STORIES = StorySettings()


def numbers(text: str) -> frozenset[str]:
    """The numbers of two or more digits a text mentions, thousands separators dropped."""
    # int() reads any script's digits, and drops leading zeros
    found = (str(int(re.sub(r"\D", "", m.group()))) for m in _NUMBER.finditer(text))
    return frozenset(n for n in found if len(n) >= 2)


def agreement(a: frozenset[str], b: frozenset[str]) -> float:
    """The share of the shorter number list found in the other; -1 when none is; 0 when one has none."""
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / min(len(a), len(b)) if shared else -1.0


# ---------------------------------------------------------------- what stories read


@dataclass(frozen=True)
class Facts:
    """Articles as stories compare them: rows (sorted), day numbers (0: undated), languages, vectors."""

    rows: np.ndarray  # int64
    days: np.ndarray  # int64
    langs: np.ndarray  # str, "" when unknown
    vectors: np.ndarray | None = None  # float32 unit article vectors (None in a catalog)

    def take(self, keep: np.ndarray) -> Facts:
        """The articles a mask or positions select."""
        return Facts(self.rows[keep], self.days[keep], self.langs[keep],
                     None if self.vectors is None else self.vectors[keep])  # fmt: skip

    def without_vectors(self) -> Facts:
        """The same articles, as a catalog."""
        return Facts(self.rows, self.days, self.langs)

    def updated(self, added: Facts, removed: np.ndarray) -> Facts:
        """These articles (a catalog) less ``removed`` rows, plus ``added`` ones, in row order."""
        base = _without(self, removed)
        rows = np.concatenate([base.rows, added.rows])
        days = np.concatenate([base.days, added.days])
        langs = np.concatenate([base.langs, added.langs])
        if len(rows) > 1 and not (rows[1:] > rows[:-1]).all():  # new rows come after every old one
            order = np.argsort(rows, kind="stable")
            rows, days, langs = rows[order], days[order], langs[order]
        return Facts(rows, days, langs)


class Archive(Protocol):
    """The articles of the version whose stories are made."""

    def catalog(self) -> Facts:
        """Every live article, without vectors."""
        ...

    def facts(self, rows: Sequence[int]) -> Facts:
        """Those of ``rows`` held, with vectors: live articles, and those the update deletes."""
        ...

    def texts(self, rows: Sequence[int]) -> dict[int, str]:
        """Title and text of articles."""
        ...

    def groups(self) -> Mapping[int, int]:
        """Near-duplicate groups: article row → its cluster's smallest row."""
        ...


@dataclass
class MemoryArchive:
    """An archive in memory (tests, benches): every article it was given, and which are live."""

    all: Facts
    text: Mapping[int, str]
    live: np.ndarray  # sorted rows
    dup_groups: Mapping[int, int] = field(default_factory=dict)

    def catalog(self) -> Facts:
        """The live articles."""
        return self.all.take(np.isin(self.all.rows, self.live)).without_vectors()

    def facts(self, rows: Sequence[int]) -> Facts:
        """Articles among ``rows``, live or not."""
        want = np.unique(np.asarray(rows, np.int64))
        pos = np.minimum(np.searchsorted(self.all.rows, want), max(len(self.all.rows) - 1, 0))
        return self.all.take(pos[self.all.rows[pos] == want] if len(self.all.rows) else pos[:0])

    def texts(self, rows: Sequence[int]) -> dict[int, str]:
        """Texts of articles."""
        return {int(r): self.text.get(int(r), "") for r in rows}

    def groups(self) -> Mapping[int, int]:
        """Near-duplicate groups."""
        return self.dup_groups


class IndexArchive:
    """A version's articles, read from its segments' databases (a build adds its new segment's).

    Lookups by row ask each database for the rows it holds (primary-key reads); only the
    catalog scans every article's date and language, once, on first use — unless it is
    given (a build derives it from the live version's stories and its own new segment).
    """

    def __init__(
        self,
        databases: Sequence[sqlite3.Connection],
        *,
        dim: int,
        deleted_rows: Iterable[int] = (),
        groups: Mapping[int, int] | None = None,
        catalog: Facts | None = None,
    ) -> None:
        self.databases, self.dim = list(databases), dim
        self.deleted = np.unique(np.fromiter(deleted_rows, np.int64))
        self._groups = groups if groups is not None else {}
        self._catalog = catalog

    @classmethod
    def of_snapshot(cls, snap: Snapshot) -> IndexArchive:
        """A published version's articles."""
        return cls([s.store.con for s in snap.segments], dim=snap.manifest.model.dimension,
                   deleted_rows=snap.state.deleted_rows.tolist(), groups=snap.state.groups)  # fmt: skip

    @staticmethod
    def _facts(found: Iterable[tuple[int, str | None, str]]) -> Facts:
        got = sorted(found)
        return Facts(np.array([r[0] for r in got], np.int64), np.array([day_number(r[1]) for r in got], np.int64),
                     np.array([r[2] for r in got], dtype=str).reshape(-1))  # fmt: skip

    def catalog(self) -> Facts:
        """The live articles."""
        if self._catalog is None:
            sql = "SELECT rowid, date, coalesce(lang, '') FROM articles"
            every = self._facts(r for con in self.databases for r in con.execute(sql))
            self._catalog = every.take(~np.isin(every.rows, self.deleted))
        return self._catalog

    def _select(self, rows: Sequence[int], columns: str) -> list[tuple[Any, ...]]:
        want = sorted({int(r) for r in rows})
        sql = f"SELECT rowid, {columns} FROM articles WHERE rowid IN ({{marks}})"
        return [r for con in self.databases for r in select_in(con, sql, want)] if want else []

    def facts(self, rows: Sequence[int]) -> Facts:
        """Articles held among ``rows``, live or deleted, with their vectors."""
        f = self._facts(self._select(rows, "date, coalesce(lang, '')"))
        vecs = np.zeros((len(f.rows), self.dim), np.float32)
        for con in self.databases:
            got = read_database(con, self.dim, f.rows.tolist())
            vecs[np.searchsorted(f.rows, got.rows)] = got.vectors
        return Facts(f.rows, f.days, f.langs, vecs)

    def texts(self, rows: Sequence[int]) -> dict[int, str]:
        """Title and text of articles."""
        return {int(r[0]): f"{r[1]}\n{r[2]}" for r in self._select(rows, "title, text")}

    def meta(self, rows: Sequence[int]) -> dict[int, ArticleMeta]:
        """What stories show of articles."""
        found = self._select(rows, "id, title, date, lang, source, url")
        return {int(r[0]): ArticleMeta(int(r[0]), *r[1:]) for r in found}

    def groups(self) -> Mapping[int, int]:
        """The version's near-duplicate groups."""
        return self._groups


# ---------------------------------------------------------------- linking


@dataclass(frozen=True)
class _Pairs:
    """Candidate links: query row ``a``, compared row ``b``, and their score."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[_Pairs]) -> _Pairs:
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("a", "b", "score")))

    def keep(self, mask: np.ndarray | slice) -> _Pairs:
        return _Pairs(self.a[mask], self.b[mask], self.score[mask])


class _Vectors:
    """Centred vectors of one set of articles in a fixed order, fetched from the archive on first use."""

    def __init__(self, archive: Archive, rows: np.ndarray, calibration: Calibration, dim: int) -> None:
        self.archive, self.rows, self.calibration = archive, rows, calibration
        self.matrix = np.zeros((len(rows), dim), np.float32)
        self.have = np.zeros(len(rows), bool)

    def fetch(self, positions: np.ndarray) -> None:
        """Make sure the vectors at ``positions`` are read (in one request for all that are missing)."""
        todo = positions[~self.have[positions]]
        if len(todo):
            f = self.archive.facts(self.rows[todo].tolist())
            assert f.vectors is not None
            order = np.argsort(self.rows[todo], kind="stable")
            at = todo[order][np.searchsorted(self.rows[todo][order], f.rows)]
            self.matrix[at] = self.calibration.centre(f.langs, f.vectors)
            self.have[todo] = True  # an article without vectors stays zero: it links with nothing

    def block(self, lo: int, hi: int) -> np.ndarray:
        """The vectors of positions [lo, hi), a view."""
        self.fetch(np.arange(lo, hi))
        return self.matrix[lo:hi]


def _chunks(pick: np.ndarray, days: np.ndarray, pool_days: np.ndarray | None, window: int) -> list[np.ndarray]:
    """``pick`` (in day order) cut into runs of at most ``_QUERIES`` articles whose windows hold ``_POOL``.

    An update's articles scattered over years are so compared with the months around them
    in a few products, not with the whole archive, nor in one product per article.
    """
    if pool_days is None:
        return [pick[i : i + _QUERIES] for i in range(0, len(pick), _QUERIES)]
    out, start = [], 0
    lo = np.searchsorted(pool_days, days - window, "left")
    hi = np.searchsorted(pool_days, days + window, "right")
    for i in range(1, len(pick) + 1):
        if i == len(pick) or i - start == _QUERIES or hi[i] - lo[start] > _POOL:
            out.append(pick[start:i])
            start = i
    return out


class _Linker:
    """The links among one set of live articles (``pool``) under one calibration."""

    def __init__(self, archive: Archive, pool: Facts, calibration: Calibration, settings: StorySettings) -> None:
        if len(pool.rows) > 1 and not (pool.rows[1:] > pool.rows[:-1]).all():
            pool = pool.take(np.argsort(pool.rows, kind="stable"))  # lookups by row are binary searches
        self.archive, self.pool, self.calibration, self.settings = archive, pool, calibration, settings
        dim = calibration.centroids.shape[1]
        # dated articles in date order, so a window is one slice; undated ones apart (they meet only each other)
        dated = np.flatnonzero(pool.days > 0)
        self.dated = dated[np.argsort(pool.days[dated], kind="stable")]
        self.dated_days = pool.days[self.dated]
        self.undated = np.flatnonzero(pool.days == 0)
        self.by_date = _Vectors(archive, pool.rows[self.dated], calibration, dim)
        self.apart = _Vectors(archive, pool.rows[self.undated], calibration, dim)
        # where each pool article's vector is kept: arrays, not a dict of the archive (an update costs the change)
        self._slot = np.zeros(len(pool.rows), np.int64)
        self._slot[self.dated] = np.arange(len(self.dated))
        self._slot[self.undated] = np.arange(len(self.undated))
        self._extra: dict[int, tuple[int, np.ndarray, str]] = {}  # articles outside the pool (deleted ones)
        self._near: dict[int, _Pairs] = {}
        self._numbers: dict[int, frozenset[str]] = {}

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's position in the pool, and whether the pool holds it."""
        held = sorted_member(self.pool.rows, rows)
        pos = np.searchsorted(self.pool.rows, rows) if len(self.pool.rows) else np.zeros(len(rows), np.int64)
        return np.where(held, pos, 0), held

    def langs_of(self, rows: np.ndarray) -> list[str]:
        """The languages of articles (live or deleted)."""
        pos, held = self._locate(np.asarray(rows, np.int64))
        found = self.pool.langs[pos].tolist() if len(self.pool.rows) else [""] * len(pos)
        return [v if h else self._extra[r][2] for r, v, h in zip(np.asarray(rows).tolist(), found, held.tolist())]

    def vectors(self, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Centred vectors and day numbers of articles (live or deleted)."""
        want = np.asarray(rows, np.int64).reshape(-1)
        pos, held = self._locate(want)
        missing = [r for r, h in zip(want.tolist(), held.tolist()) if not h and r not in self._extra]
        if missing:
            f = self.archive.facts(missing)
            assert f.vectors is not None
            for r, d, v, c in zip(f.rows.tolist(), f.days.tolist(), f.langs.tolist(),
                                  self.calibration.centre(f.langs, f.vectors)):  # fmt: skip
                self._extra[r] = (d, c, v)
        dim = self.by_date.matrix.shape[1]
        dated = held & (self.pool.days[pos] > 0) if len(self.pool.rows) else held
        apart = held & ~dated
        slots = self._slot[pos] if len(self.pool.rows) else pos
        self.by_date.fetch(slots[dated])
        self.apart.fetch(slots[apart])
        vecs, days = np.zeros((len(want), dim), np.float32), np.zeros(len(want), np.int64)
        vecs[dated], days[dated] = self.by_date.matrix[slots[dated]], self.dated_days[slots[dated]]
        vecs[apart] = self.apart.matrix[slots[apart]]
        for i in np.flatnonzero(~held).tolist():
            extra = self._extra.get(int(want[i]))
            if extra is not None:  # else: a deleted article a merge dropped, which links with nothing
                days[i], vecs[i] = extra[0], extra[1]
        return vecs, days

    def neighbours(self, rows: np.ndarray) -> _Pairs:
        """Every (a in ``rows``, b in the pool, b ≠ a) within each other's window whose score reaches the floor."""
        todo = [r for r in np.unique(rows).tolist() if r not in self._near]
        if todo:
            self._search(np.array(todo, np.int64))
        return _Pairs.concat([self._near[r] for r in np.unique(rows).tolist()])

    def _search(self, rows: np.ndarray) -> None:
        s = self.settings
        qv, qd = self.vectors(rows.tolist())
        floor = min(s.min_similarity, s.same_language_similarity)
        found: list[_Pairs] = []
        for dated in (True, False):
            pick = np.flatnonzero((qd > 0) == dated)
            pick = pick[np.argsort(qd[pick], kind="stable")]
            for part in _chunks(pick, qd[pick], self.dated_days if dated else None, s.window_days):
                if dated:
                    lo = int(np.searchsorted(self.dated_days, qd[part].min() - s.window_days, "left"))
                    hi = int(np.searchsorted(self.dated_days, qd[part].max() + s.window_days, "right"))
                    store, pool_days = self.by_date, self.dated_days
                else:
                    lo, hi, store, pool_days = 0, len(self.undated), self.apart, None
                found += self._compare(rows[part], qv[part], qd[part], store, pool_days, lo, hi)
        pairs = self._score(_Pairs.concat(found), floor)
        order = np.argsort(pairs.a, kind="stable")
        pairs = pairs.keep(order)
        starts = np.searchsorted(pairs.a, rows)
        ends = np.searchsorted(pairs.a, rows, side="right")
        for r, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist()):
            self._near[r] = pairs.keep(slice(a, b))

    def _compare(self, q: np.ndarray, qv: np.ndarray, qd: np.ndarray, store: _Vectors,
                 pool_days: np.ndarray | None, lo: int, hi: int) -> list[_Pairs]:  # fmt: skip
        s = self.settings
        out = []
        for j in range(lo, hi, _POOL):
            k = min(hi, j + _POOL)
            sim = qv @ store.block(j, k).T
            prow = store.rows[j:k]
            keep = sim >= min(s.min_similarity, s.same_language_similarity) - s.number_weight
            keep &= q[:, None] != prow[None, :]
            if pool_days is not None:
                keep &= np.abs(qd[:, None] - pool_days[None, j:k]) <= s.window_days
            ia, ib = np.nonzero(keep)
            out.append(_Pairs(q[ia], prow[ib], sim[ia, ib].astype(np.float32)))
        return out

    def _score(self, pairs: _Pairs, floor: float) -> _Pairs:
        """The pairs with their number evidence added, at or above ``floor``."""
        w = self.settings.number_weight
        if len(pairs.a) and w:
            need = [r for r in np.union1d(pairs.a, pairs.b).tolist() if r not in self._numbers]
            if need:
                texts = self.archive.texts(need)
                self._numbers.update((r, numbers(texts.get(r, ""))) for r in need)
            bonus = [agreement(self._numbers[a], self._numbers[b]) for a, b in zip(pairs.a.tolist(), pairs.b.tolist())]
            pairs = _Pairs(pairs.a, pairs.b, pairs.score + np.float32(w) * np.array(bonus, np.float32))
        return pairs.keep(pairs.score >= floor)

    def partners(self, rows: np.ndarray) -> np.ndarray:
        """The pool articles that ``rows`` could link with."""
        return np.unique(self.neighbours(rows).b) if len(rows) else np.zeros(0, np.int64)

    def links(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """Every link of ``rows`` with live articles, near-duplicates included."""
        s = self.settings
        near = self.neighbours(rows)
        others = np.setdiff1d(near.b, rows)
        # a cross-language link is judged against the best match of both ends: b's neighbours are needed too
        every = _Pairs.concat([near, self.neighbours(others)])
        la, lb = self.langs_of(every.a), self.langs_of(every.b)
        best: dict[tuple[int, str], float] = {}
        for a, lang_b, lang_a, v in zip(every.a.tolist(), lb, la, every.score.tolist()):
            if lang_a != lang_b and v >= s.min_similarity and v > best.get((a, lang_b), -9.0):
                best[(a, lang_b)] = v
        out = []
        for a, b, v, lang_a, lang_b in zip(near.a.tolist(), near.b.tolist(), near.score.tolist(), la, lb):
            if lang_a == lang_b:
                linked = v >= s.same_language_similarity
            else:
                linked = v >= s.min_similarity and v >= best[(a, lang_b)] - s.best_margin
                linked = linked and v >= best.get((b, lang_a), 9.0) - s.best_margin
            if linked:
                out.append((a, b))
        return out + self._copies(rows)

    def _copies(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """Links between near-duplicates (a cluster's first row may be absent from the group map)."""
        groups = self.archive.groups()
        if not groups:
            return []
        live = set(self.pool.rows.tolist())
        clusters: dict[int, set[int]] = {}
        for r, g in groups.items():
            clusters.setdefault(g, {g}).add(r)
        out = []
        for r in rows.tolist():
            for other in clusters.get(groups.get(r, r), ()):
                if other != r and other in live:
                    out.append((r, other))
        return out


class _Components:
    """Union-find whose root is the smallest node of its component."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while a != root:
            self.parent[a], a = root, self.parent.get(a, a)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster(
    archive: Archive, settings: StorySettings = DEFAULT_STORIES, *, calibration: Calibration | None = None
) -> StoryIndex:
    """The stories of every live article, from scratch (with the language centroids of ``calibration``, if given)."""
    if calibration is None:
        return update(None, archive, added=(), removed=(), settings=settings)
    none = archive.facts([])
    return _relink(StoryIndex(calibration=calibration), archive, archive.catalog().rows, none.rows, none, calibration,
                   set(), settings)  # fmt: skip


def update(
    previous: StoryIndex | None,
    archive: Archive,
    *,
    added: Sequence[int] | np.ndarray,
    removed: Sequence[int] | np.ndarray,
    settings: StorySettings = DEFAULT_STORIES,
) -> StoryIndex:
    """The stories after an update that added and deleted these article rows.

    ``archive`` is the new version: its catalog holds the added rows and not the removed
    ones, whose facts it must still give. Only the stories the change can reach are
    recomputed, and the result is what ``cluster`` gives with the returned calibration.
    ``previous`` None clusters every live article.
    """
    live = archive.catalog()
    if previous is None:
        previous, added, removed = StoryIndex(), live.rows, ()
    add = np.unique(np.asarray(added, np.int64))
    gone = np.setdiff1d(np.asarray(removed, np.int64), add)
    if not sorted_member(live.rows, add).all() or sorted_member(live.rows, gone).any():
        raise ValueError("added rows must be live articles of the archive, removed rows must not")
    gone_f = archive.facts(gone.tolist())  # a deleted article a merge already dropped has none: it only leaves
    calibration, retaken = previous.calibration.advance(archive.facts(add.tolist()), gone_f, settings)
    return _relink(previous, archive, add, gone, gone_f, calibration, retaken, settings)


def _relink(
    previous: StoryIndex,
    archive: Archive,
    add: np.ndarray,
    gone: np.ndarray,
    gone_f: Facts,
    calibration: Calibration,
    retaken: set[str],
    settings: StorySettings,
) -> StoryIndex:
    """Re-derive the stories the change reaches; the others stay as they are.

    The archive-wide steps are array operations (masks, binary searches, one date sort per
    linker); Python objects are made only for the changed articles and their stories.
    """
    live = archive.catalog()
    before = _without(live, add)
    if not set(np.unique(before.langs).tolist()) | set(gone_f.langs.tolist()) <= set(previous.calibration.langs):
        raise ValueError("the previous stories are not those of this archive — cluster it from scratch")
    new = _Linker(archive, live, calibration, settings)
    dissolved: set[int] = set()
    if len(before.rows) or len(gone):
        # the stories whose links may change: those of deleted and recalibrated articles, and of the
        # neighbours of deleted, added and recalibrated ones (their best matches may change)
        recal = before.rows[np.isin(before.langs, sorted(retaken))] if retaken else before.rows[:0]
        found = [gone, recal, new.partners(np.union1d(add, recal))]
        old_rows = before.rows
        if len(gone) or len(recal):  # links lost: the old neighbours of what left or moved (none for additions)
            at = np.searchsorted(before.rows, gone_f.rows)  # both sorted: the old pool, in row order
            cols = ("rows", "days", "langs")
            old_pool = Facts(*(np.insert(getattr(before, k), at, getattr(gone_f, k)) for k in cols))
            lost = np.union1d(gone, recal)
            old = _Linker(archive, _around(old_pool, lost, settings.window_days), previous.calibration, settings)
            found.append(old.partners(lost))
            old_rows = old_pool.rows
        seeds = np.unique(np.concatenate(found))
        alive_before = sorted_member(old_rows, seeds) | sorted_member(np.sort(gone), seeds)
        dissolved = set(previous.stories_of(seeds[alive_before]).tolist())
    gone_set = set(gone.tolist())
    redo = {r for sid in dissolved for r in previous.members(sid) if r not in gone_set} | set(add.tolist())

    def node(r: int) -> int:
        # an untouched story stays whole: its id stands for all its members
        return r if r in redo else previous.story_of(r)

    comp = _Components()
    nodes = set(redo)
    for a, b in new.links(np.array(sorted(redo), np.int64)):
        nodes.update((node(a), node(b)))
        comp.union(node(a), node(b))
    parts: dict[int, list[int]] = {}
    for n in nodes:
        parts.setdefault(comp.find(n), []).extend([n] if n in redo else previous.members(n))
    return _assemble(previous, parts, gone_set, new, calibration, live)


def _assemble(previous: StoryIndex, parts: dict[int, list[int]], gone: set[int], new: _Linker,
              calibration: Calibration, live: Facts) -> StoryIndex:  # fmt: skip
    """The previous stories less those the change touched, plus the re-derived ``parts``."""
    prev, cent = previous.table, RowTable.of(previous.central)
    touched = np.array(sorted({r for members in parts.values() for r in members} | gone), np.int64)
    drop = np.zeros(len(prev.key_array), bool)
    hit = sorted_member(prev.key_array, touched)
    drop[np.searchsorted(prev.key_array, touched[hit])] = True
    lost = np.unique(prev.value_array[drop])  # stories that lost or changed a member: their representative goes
    keep_c = ~sorted_member(lost, cent.key_array)
    rows, sids, c_sids, c_rows = [], [], [], []
    for members in parts.values():
        if len(members) > 1:
            members.sort()
            rows += members
            sids += [members[0]] * len(members)
            c_sids.append(members[0])
            c_rows.append(_central(members, new.vectors(members)[0]))
    story = _merged(prev.key_array[~drop], prev.value_array[~drop], np.array(rows, np.int64), np.array(sids, np.int64))
    central = _merged(cent.key_array[keep_c], cent.value_array[keep_c], np.array(c_sids, np.int64),
                      np.array(c_rows, np.int64))  # fmt: skip
    return StoryIndex(story, central, calibration, live)


def _merged(keys: np.ndarray, values: np.ndarray, more_keys: np.ndarray, more_values: np.ndarray) -> RowTable:
    """A sorted table with more (new, unsorted) keys put in place: a copy of the table, no sort of it."""
    order = np.argsort(more_keys, kind="stable")
    at = np.searchsorted(keys, more_keys[order])
    return RowTable(np.insert(keys, at, more_keys[order]), np.insert(values, at, more_values[order]))


def _around(pool: Facts, rows: np.ndarray, window: int) -> Facts:
    """The articles of ``pool`` (in row order) that ``rows`` of it can be compared with: those in their windows.

    ``partners`` of ``rows`` are the same with this pool as with the whole one, and it is
    sorted and searched in what the windows hold, not the archive.
    """
    held = sorted_member(pool.rows, rows)
    days = np.unique(pool.days[np.searchsorted(pool.rows, np.asarray(rows, np.int64)[held])])
    dated = days[days > 0]
    keep = np.zeros(len(pool.rows), bool)
    if len(days) and days[0] == 0:
        keep |= pool.days == 0  # an undated article meets every undated one
    if len(dated):
        i = np.searchsorted(dated, pool.days)
        below = np.abs(pool.days - dated[np.maximum(i - 1, 0)])
        above = np.abs(dated[np.minimum(i, len(dated) - 1)] - pool.days)
        keep |= (pool.days > 0) & (np.minimum(below, above) <= window)
    return pool.take(keep)


def _without(facts: Facts, rows: np.ndarray) -> Facts:
    """Articles (in row order) less ``rows``."""
    rows = np.asarray(rows, np.int64)
    held = sorted_member(facts.rows, rows)
    if not held.any():
        return facts
    keep = np.ones(len(facts.rows), bool)
    keep[np.searchsorted(facts.rows, rows[held])] = False
    return facts.take(keep)


def _central(rows: list[int], vectors: np.ndarray) -> int:
    """The member closest to the mean of the story's centred vectors (the smallest row on a tie)."""
    return rows[int(np.argmax(vectors @ vectors.mean(axis=0)))]


__all__ = [
    "DEFAULT_STORIES",
    "FILE",
    "FILES",
    "Archive",
    "ArticleMeta",
    "Calibration",
    "Facts",
    "IndexArchive",
    "MemoryArchive",
    "RowTable",
    "Story",
    "StoryError",
    "StoryIndex",
    "StorySettings",
    "agreement",
    "cluster",
    "day_number",
    "exists",
    "numbers",
    "sorted_member",
    "update",
]
