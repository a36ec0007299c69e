"""Similar coverage: the articles nearest to one article, in any language.

``Searcher.similar(article_id)`` ranks the version's other articles by the cosine of their
**article vectors** (``article_vectors.py``: the normalised mean of the passage vectors)
**centred per language** — each language's centroid subtracted, as ``stories.Calibration``
does and for the reason its docstring measures: e5 vectors carry a language component
strong enough that, uncentred, a translation scores below an unrelated article of the
query's own language, so the neighbours would all share its language. Centred, a
neighbour is found in whatever language it was written. The centroids are the version's
stories' own when it has stories (the same ``Calibration`` the stories were linked with),
otherwise taken from all its articles with ``Calibration.advance`` and the stories'
default prior.

The article itself and its near-duplicates (its ``dedup`` cluster: syndicated copies) are
left out; the neighbours' own copies are collapsed into the best-scoring one, listed in
its ``duplicates``, as search collapses them.

Cost: the raw article vectors are read once per **segment** (segments never change, and a
new version shares the old one's) and kept; a new version only recomputes the language
centroids and each article's centred norm, a small matrix product. A query is then one
matrix-vector product over the articles, without materialising the centred matrix (see
``_Segment.scores``), and one read of its results' metadata.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import stories
from .article_vectors import ArticleVectors, read_database
from .columns import locate
from .errors import IndexerError, QueryError
from .query import Filters
from .settings import MAX_K
from .store import select_in

if TYPE_CHECKING:
    from .index import Snapshot
    from .segments import SegmentReader

__all__ = ["SimilarArticle", "SimilarCache", "SimilarResult", "UnknownArticleError"]

_META = "SELECT rowid, id, title, url, date, source, lang FROM articles WHERE rowid IN ({marks})"


class UnknownArticleError(IndexerError):
    """No live article with that id."""

    def __init__(self, article_id: str) -> None:
        super().__init__(
            f"no article {article_id!r} in the index — use an article id as search prints it "
            '(under each hit, or "article_id" in indexer search --json)'
        )


@dataclass(frozen=True)
class SimilarArticle:
    """One neighbour: the article, and how close it is (cosine of centred article vectors, in [-1, 1])."""

    rank: int
    article_id: str
    title: str
    similarity: float
    source: str | None = None
    lang: str | None = None
    date: str | None = None
    url: str | None = None
    duplicates: list[str] = field(default_factory=list)  # its own near-duplicate copies, collapsed into it
    #: the story it belongs to when the version has stories (a lone article is its own), else None —
    #: the seam for grouping neighbours by story
    story_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The neighbour as ``indexer similar --json`` prints it."""
        return {"rank": self.rank, "article_id": self.article_id, "title": self.title,
                "similarity": round(self.similarity, 6), "source": self.source, "lang": self.lang,
                "date": self.date, "url": self.url, "duplicates": list(self.duplicates),
                "story_id": self.story_id}  # fmt: skip


@dataclass
class SimilarResult:
    """The neighbours of one article, best first, and what they cost."""

    article_id: str
    title: str
    lang: str | None
    hits: list[SimilarArticle]
    took_ms: float
    excluded: list[str] = field(default_factory=list)  # the article's own near-duplicates, left out

    def to_json(self) -> dict[str, Any]:
        """The result as ``indexer similar --json`` and ``GET /articles/{id}/similar`` give it."""
        return {"article_id": self.article_id, "title": self.title, "lang": self.lang,
                "took_ms": round(self.took_ms, 3), "excluded": list(self.excluded),
                "hits": [h.to_json() for h in self.hits]}  # fmt: skip


@dataclass(frozen=True)
class _Raw:
    """One segment's article vectors (deleted articles included: a version says which are live)."""

    rows: np.ndarray
    vectors: np.ndarray
    sqnorm: np.ndarray  # 1, or 0 for an article whose passages cancel out


@dataclass(frozen=True)
class _Segment:
    """One segment's articles as one version sees them: languages, centred norms, what is live."""

    raw: _Raw
    column: np.ndarray  # each article's position in the version's columns (valid where ``live``)
    live: np.ndarray  # bool: a live article of the version
    lang: np.ndarray  # index into the calibration's languages
    norm: np.ndarray  # norm of the centred vector

    def scores(self, query: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """Cosine of each centred article vector with the centred unit ``query``; -inf for those out of play.

        ``(v - c) · q / |v - c|``, as ``Calibration.centre(langs, vectors) @ query`` gives it
        (tested), without a centred copy of the vectors.
        """
        # einsum's own loop, one thread: numpy's OpenBLAS spreads a matrix-vector product over both cores
        # and then waits for the busy one (22k articles: 8.7 ms against 1.5 ms with the other core in use)
        dots = np.einsum("ij,j->i", self.raw.vectors, query) - (centroids @ query)[self.lang]
        out = np.full(len(dots), -np.inf, np.float32)
        ok = self.live & (self.norm > 1e-6)
        out[ok] = dots[ok] / self.norm[ok]
        return out


@dataclass(frozen=True)
class _Version:
    """A version's neighbours index: its segments' parts, the calibration, its stories if any."""

    snap: Snapshot
    segments: list[_Segment]
    calibration: stories.Calibration
    story_index: stories.StoryIndex | None

    def locate(self, row: int) -> tuple[int, int] | None:
        """(segment, position) of an article row with a vector, or None."""
        for i, seg in enumerate(self.segments):
            pos = int(np.searchsorted(seg.raw.rows, row))
            if pos < len(seg.raw.rows) and int(seg.raw.rows[pos]) == row and seg.live[pos]:
                return i, pos
        return None


class SimilarCache:
    """What ``Searcher.similar`` keeps between calls: raw vectors per segment, the last version's index."""

    def __init__(self) -> None:
        self._raw: dict[str, _Raw] = {}
        self._version: _Version | None = None
        self._lock = threading.Lock()

    @property
    def used(self) -> bool:
        """Whether any version was prepared (a server then prepares each new one in advance)."""
        return self._version is not None

    def prepare(self, snap: Snapshot) -> _Version:
        """The neighbours index of ``snap``, made on first use (reading only segments not seen before)."""
        with self._lock:
            if self._version is not None and self._version.snap is snap:
                return self._version
            dim = snap.manifest.model.dimension
            names = {str(seg.folder) for seg in snap.segments}
            self._raw = {k: v for k, v in self._raw.items() if k in names}
            for seg in snap.segments:
                if str(seg.folder) not in self._raw:
                    self._raw[str(seg.folder)] = _read_raw(seg, dim)
            raws = [self._raw[str(seg.folder)] for seg in snap.segments]
            self._version = _index_version(snap, raws, dim)
            return self._version

    def similar(self, snap: Snapshot, article_id: str, *, k: int = 10, filters: Filters | None = None) -> SimilarResult:
        """The ``k`` articles nearest to ``article_id`` that ``filters`` keep (see the module)."""
        t0 = time.perf_counter()
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise QueryError(f"-k must be between 1 and {MAX_K}")
        f = (filters or Filters()).normalized()
        found = _article_row(snap, article_id)
        if found is None:
            raise UnknownArticleError(article_id)
        row, title, lang = found
        v = self.prepare(snap)
        cols = snap.columns
        pos, held = locate(cols.rowid, np.array([row], np.int64))
        group = int(cols.group[pos[0]]) if held[0] else row
        copies = [r for r in snap.clusters.get(group, []) if r != row]
        excluded = _oldest_first(snap.store.article_ids(copies).values()) if copies else []
        at = v.locate(row)
        if at is None:  # an article without passages has no vector: nothing is near it
            return SimilarResult(article_id, title, lang, [], (time.perf_counter() - t0) * 1000, excluded)
        seg = v.segments[at[0]]
        query = v.calibration.centre(np.array([v.calibration.langs[seg.lang[at[1]]]]), seg.raw.vectors[at[1]][None])[0]
        keep = cols.articles_matching(f) if f else None
        parts = []
        for s in v.segments:
            sims = s.scores(query, v.calibration.centroids)
            col = s.column
            out = s.live & (cols.group[col] == group) if len(col) else s.live
            if keep is not None and len(col):
                out |= s.live & ~keep[col]
            sims[out] = -np.inf
            parts.append(sims)
        sims = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        rows = np.concatenate([s.raw.rows for s in v.segments]) if parts else np.zeros(0, np.int64)
        columns = np.concatenate([s.column for s in v.segments]) if parts else np.zeros(0, np.int64)
        picked = _best(sims, cols.group[columns] if len(columns) else columns, k)
        hits = _describe(snap, v, [(int(rows[i]), float(sims[i])) for i in picked])
        return SimilarResult(article_id, title, lang, hits, (time.perf_counter() - t0) * 1000, excluded)


def _read_raw(seg: SegmentReader, dim: int) -> _Raw:
    got: ArticleVectors = read_database(seg.store.con, dim)
    vecs = np.ascontiguousarray(got.vectors, np.float32)
    return _Raw(got.rows, vecs, np.einsum("ij,ij->i", vecs, vecs))


def _index_version(snap: Snapshot, raws: list[_Raw], dim: int) -> _Version:
    cols = snap.columns
    langs = np.array(["", *cols.langs], dtype=str)  # column code -1 → "" (no language)
    placed = []
    for raw in raws:
        pos, held = locate(cols.rowid, raw.rows)
        placed.append((pos, held, langs[cols.lang[pos] + 1] if len(pos) else np.zeros(0, str)))
    story_index = _stories(snap)
    held_langs = {x for _, held, ls in placed for x in ls[held].tolist()}
    if story_index is not None and set(story_index.calibration.langs) >= held_langs:
        cal = story_index.calibration
    else:
        live = [(raw.vectors[held], ls[held]) for raw, (_, held, ls) in zip(raws, placed)]
        vecs = np.concatenate([v for v, _ in live]) if live else np.zeros((0, dim), np.float32)
        of = np.concatenate([ls for _, ls in live]) if live else np.zeros(0, str)
        facts = stories.Facts(np.arange(len(of), dtype=np.int64), np.zeros(len(of), np.int64), of, vecs)
        none = stories.Facts(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, str), np.zeros((0, dim)))
        cal, _ = stories.Calibration().advance(facts, none, stories.DEFAULT_STORIES)
    where = {x: i for i, x in enumerate(cal.langs)}
    sq_c = np.einsum("ij,ij->i", cal.centroids, cal.centroids) if len(cal.langs) else np.zeros(0, np.float32)
    segments = []
    for raw, (pos, held, ls) in zip(raws, placed):
        code = np.array([where.get(x, 0) for x in ls.tolist()], np.int64)
        if len(cal.langs) and len(raw.rows):
            # |v - c|² = |v|² - 2 v·c + |c|²: one product with the few centroids, not a centred copy
            vc = (raw.vectors @ cal.centroids.T)[np.arange(len(code)), code]
            sq = raw.sqnorm - 2 * vc + sq_c[code]
        else:
            sq = raw.sqnorm
        segments.append(_Segment(raw, pos, held.copy(), code, np.sqrt(np.maximum(sq, 0)).astype(np.float32)))
    return _Version(snap, segments, cal, story_index)


def _stories(snap: Snapshot) -> stories.StoryIndex | None:
    """The version's stories, when its folder has them (versions built before stories do not)."""
    if not stories.exists(snap.path):
        return None
    try:
        return stories.StoryIndex.load(snap.path)
    except (OSError, ValueError):
        return None  # verified files that cannot be read as stories: neighbours do without them


def _article_row(snap: Snapshot, article_id: str) -> tuple[int, str, str | None] | None:
    """The live article's row, title and language (the newest segment holds an updated article's copy)."""
    for seg in reversed(snap.segments):
        r = seg.store.con.execute("SELECT rowid, title, lang FROM articles WHERE id = ?", (article_id,)).fetchone()
        if r is not None and not snap.state.row_deleted(int(r[0])):
            return int(r[0]), r[1] or "", r[2]
    return None


def _oldest_first(facts: Iterable[tuple[str | None, str]]) -> list[str]:
    """Article ids from (date, id) pairs in search's order for copies: undated first, then by date."""
    return [aid for _, aid in sorted(facts, key=lambda f: (f[0] is not None, f[0] or "", f[1]))]


def _best(sims: np.ndarray, groups: np.ndarray, k: int) -> list[int]:
    """Positions of the ``k`` best scores, one per near-duplicate group (its best), best first."""
    playable = int(np.isfinite(sims).sum())
    m = min(playable, 4 * k)
    while True:
        top = np.argpartition(-sims, m - 1)[:m] if m else np.zeros(0, np.int64)
        top = top[np.lexsort((top, -sims[top]))]
        seen: set[int] = set()
        out = []
        for i in top.tolist():
            g = int(groups[i])
            if g not in seen:
                seen.add(g)
                out.append(i)
                if len(out) == k:
                    return out
        if m >= playable:
            return out
        m = min(playable, m * 4)


def _describe(snap: Snapshot, v: _Version, picked: list[tuple[int, float]]) -> list[SimilarArticle]:
    rows = [r for r, _ in picked]
    meta: dict[int, tuple[Any, ...]] = {}
    for seg in snap.segments:
        lo, hi = seg.info.rows
        mine = [r for r in rows if lo <= r < hi]
        if mine:
            meta.update((int(m[0]), m) for m in select_in(seg.store.con, _META, mine))
    cols = snap.columns
    pos, held = locate(cols.rowid, np.asarray(rows, np.int64))
    groups = {r: int(cols.group[p]) for r, p, h in zip(rows, pos.tolist(), held.tolist()) if h}
    members = {r: [x for x in snap.clusters.get(groups.get(r, r), []) if x != r] for r in rows}
    wanted = sorted({x for xs in members.values() for x in xs})
    copies = snap.store.article_ids(wanted) if wanted else {}
    out = []
    for rank, (r, sim) in enumerate(picked, start=1):
        _, aid, title, url, day, source, lang = meta[r]
        dups = _oldest_first(copies[x] for x in members[r] if x in copies)
        sid = v.story_index.story_of(r) if v.story_index is not None else None
        out.append(SimilarArticle(rank, aid, title or "", sim, source, lang, day, url, dups, sid))
    return out
