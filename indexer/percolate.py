"""Percolation: each published build runs the saved searches against only the passages it added or changed.

Elasticsearch's percolator turned around: instead of every saved search asking the
whole archive after each build, each one is ranked among the build's new passages
and the candidates it was last ranked against (its *frame*: its best 200 passages of
each side, kept in the alerts database). That is the search ``Searcher.search`` runs,
through the same ranking, fusion and calibration (``Searcher.candidates``), on a
version restricted to those passages: dense scores are the stored vectors of the
candidates against the query's kept vector, BM25 scores use the whole version's
statistics, carried forward by each build (percolate_stats.py). With the frame
holding a full search's candidates, a new passage gets the calibrated score a search
of the whole version would give it. The cost is the change times the saved searches.

A rebuild (``--full``, another model or chunker) renumbers every passage: each
search is then ranked against the whole new version (what a rebuild already pays
for), and what is *new* is told apart by content hash — an article the previous
version held with the same content is not news, so a rebuild does not flood anyone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from . import calibration
from .alert_store import AlertStore, FrameState, NewMatch, RunRecord, SavedSearch
from .backends import Backends
from .columns import Columns, locate
from .embedding import Encoder
from .index import IndexDir, Snapshot
from .layout import MANIFEST, is_partial
from .manifest import Manifest, load_json, now
from .percolate_stats import CorpusStats, corpus_key
from .query import clean_query, lexical_query
from .restricted import Dense, Lexical, Passages, best, view
from .search import CANDIDATES, Candidate, Searcher, SearchOptions
from .segments import SegmentReader
from .version_state import VersionState
from .version_store import VersionStore

FRAME = 2 * CANDIDATES  # passages of each side a search's frame keeps: a margin for the ones later deleted


@dataclass(frozen=True)
class PercolationReport:
    """What running the saved searches against a build cost and found."""

    searches: int
    passages: int  # the build's new or changed passages they were run against
    matches: int  # matches recorded
    seconds: float
    full: bool = False  # a rebuild: what is new was told by content hash
    error: str = ""  # why they could not run (the version is published all the same)


def options(s: SavedSearch) -> SearchOptions:
    """The search a saved one runs: a default search's ranking, one passage per article, no highlights."""
    return SearchOptions(mode=s.mode, filters=s.filters, highlight=False)


def first_state(searcher: Searcher, snap: Snapshot, s: SavedSearch) -> FrameState:
    """A new saved search's state: its query vector and its frame in ``snap`` (one search of the version)."""
    text, _ = clean_query(s.query)
    qvec = searcher.query_vector(text) if s.mode != "bm25" else None
    found = searcher.candidates(snap, s.query, options(s), depth=FRAME, qvec=qvec, among=frozenset())
    frame = np.unique(np.fromiter((pid for pid, _ in found.ranked.order), np.int64))
    return FrameState(snap.manifest.model.fingerprint, qvec, frame, corpus_key(snap))


def after_publish(idx: IndexDir, live: Snapshot | None, encoder: Encoder) -> PercolationReport | None:
    """Run the saved searches against what the version just published added; None when none is saved.

    ``live`` is the version the build updated (None: a rebuild). Never raises for a
    failure of its own: the version is published, and the report says what went wrong.
    """
    if not idx.layout.alerts.is_file():
        return None
    t0 = time.perf_counter()
    try:
        store = AlertStore(idx.layout.alerts)
    except Exception as exc:
        return PercolationReport(0, 0, 0, time.perf_counter() - t0, live is None, error=_why(exc))
    try:
        searches = store.searches()
        if not searches:
            return None
        snap = idx.open(reuse=live)  # shares the live version's open segments: opens only the new one
        try:
            return _Run(idx, store, snap, live, encoder, searches).execute(t0)
        finally:
            kept = {id(s) for s in live.segments} if live is not None else set()
            for seg in snap.segments:
                if id(seg) not in kept:
                    seg.close()
    except Exception as exc:
        return PercolationReport(len(searches), 0, 0, time.perf_counter() - t0, live is None, error=_why(exc))
    finally:
        store.close()


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Pinned(Searcher):
    """A searcher of one open version that does not follow the index (a build's own)."""

    def __init__(self, snap: Snapshot, encoder: Encoder) -> None:
        self._pinned = snap
        super().__init__(snap.path.parent.parent, encoder=encoder)

    def snapshot(self) -> Snapshot:
        """The version it was made for."""
        return self._pinned


class _Run:
    """One build's percolation: find the new passages, carry the statistics, rank every search, record."""

    def __init__(
        self,
        idx: IndexDir,
        store: AlertStore,
        snap: Snapshot,
        live: Snapshot | None,
        encoder: Encoder,
        searches: list[SavedSearch],
    ) -> None:
        self.idx, self.store, self.snap, self.live, self.searches = idx, store, snap, live, searches
        self.ranker = _Pinned(snap, encoder)
        self.default = self.ranker.backends
        self.passages = Passages(snap)
        self.key = corpus_key(snap)
        self.live_key = corpus_key(live) if live is not None else None
        self.full = live is None
        self.known: set[str] = set()  # ids of the new articles the previous version held

    def execute(self, t0: float) -> PercolationReport:
        new, stats = self._rebuilt() if self.full else self._updated()
        stats = stats.tracking(self.snap, self._terms(stats))
        new_set = frozenset(new.tolist())
        states = self.store.states()
        matches: list[NewMatch] = []
        kept: dict[int, FrameState] = {}
        for s in self.searches:
            state = states.get(s.id, FrameState())
            if state.key == self.key:
                continue  # saved against this very version: what it holds is not news to it
            if len(new):
                found, kept[s.id] = self._percolate(s, state, new, new_set, stats)
                matches += self._matches(s, found)
            elif self.full:  # nothing new, but its frame names passages of the old numbering
                kept[s.id] = self._refreshed(s, state)
            elif state.key == self.live_key:  # deletions only: its frame loses them, and still holds
                kept[s.id] = replace(state, frame=self._alive(state.frame), key=self.key)
        run = RunRecord(
            version=self.snap.manifest.version,
            at=now(),
            matches=matches,
            states=kept,
            stats_key=self.key,
            stats=stats.to_json(),
            searches=len(self.searches),
            passages=len(new),
            seconds=time.perf_counter() - t0,
            full=self.full,
        )
        recorded = self.store.record(run)
        return PercolationReport(len(self.searches), len(new), recorded, time.perf_counter() - t0, self.full)

    def _alive(self, ids: np.ndarray) -> np.ndarray:
        return ids[~locate(self.snap.state.deleted_ids, ids)[1]]

    # ------------------------------------------------------------ what is new
    def _updated(self) -> tuple[np.ndarray, CorpusStats]:
        """An update: its new segment holds exactly the passages it added or changed."""
        snap, live = self.snap, self.live
        assert live is not None
        before = {s.info.name for s in live.segments}
        parts = [self._ids_of(seg) for seg in snap.segments if seg.info.name not in before]
        new = self._alive(np.unique(np.concatenate(parts))) if parts else np.zeros(0, np.int64)
        removed = np.setdiff1d(snap.state.deleted_ids, live.state.deleted_ids)
        kept = self._kept_stats()
        if kept is None:
            stats = CorpusStats.exact(snap, ())  # a first run, or the one after a failed run: paid once
        elif kept[0] == self.live_key:
            stats = kept[1].advanced(self._described(new), self._described(removed))
        else:
            stats = kept[1]  # this version's already
        if len(new):
            self.known = set(live.store.known_by_id(self._article_ids(new)))
        return new, stats

    def _kept_stats(self) -> tuple[str, CorpusStats] | None:
        """The statistics the last run left, if they describe the live version (or already this one)."""
        found = self.store.stats()
        if found is None or found[0] not in (self.live_key, self.key):
            return None
        try:
            return found[0], CorpusStats.from_json(found[1])
        except (KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def _ids_of(seg: SegmentReader) -> np.ndarray:
        lo, hi = seg.info.ids
        if hi - lo == seg.info.passages:  # a build's segment numbers its passages without gaps
            return np.arange(lo, hi, dtype=np.int64)
        return np.asarray(seg.postings.pids, np.int64)

    def _described(self, ids: np.ndarray) -> list[tuple[str, str | None]]:
        """Each passage's analysed terms and language (deleted ones too: their segments keep them)."""
        terms = self.snap.store.passage_terms(ids.tolist())
        langs = self.snap.store.passage_langs(ids.tolist())
        return [(terms.get(i, ""), langs.get(i)) for i in ids.tolist()]

    def _article_ids(self, pids: np.ndarray) -> list[str]:
        rows = self.snap.store.passages(pids.tolist())
        return sorted({r.article_id for r in rows.values()})

    def _rebuilt(self) -> tuple[np.ndarray, CorpusStats]:
        """A rebuild: the passages of the articles whose content the previous version did not hold."""
        snap = self.snap
        stats = CorpusStats.exact(snap, ())
        before = _previous_hashes(self.idx, snap.manifest)
        if before is None:
            return np.zeros(0, np.int64), stats  # no previous version: nothing is news
        held = snap.store.known_articles()
        fresh = [k.rowid for aid, k in held.items() if before.get(aid) != k.content_hash]
        self.known = {aid for aid, k in held.items() if aid in before and before[aid] != k.content_hash}
        return np.asarray(snap.store.article_passages(fresh), np.int64), stats

    def _terms(self, stats: CorpusStats) -> list[str]:
        """Every term the saved searches' lexical side looks up, analysed for the collection's main languages."""
        view = self._view(None, stats)
        out: list[str] = []
        for s in self.searches:
            if s.mode != "dense":
                out += [t for g in lexical_query(clean_query(s.query)[0], view).groups for t in g]
        return out

    # ---------------------------------------------------------------- ranking
    def _view(self, columns: Columns | None, stats: CorpusStats) -> Snapshot:
        return view(self.snap, columns, stats.ranked_languages())

    def _vector(self, s: SavedSearch, state: FrameState) -> np.ndarray | None:
        if s.mode == "bm25":
            return None
        if state.vector is not None and state.fingerprint == self.snap.manifest.model.fingerprint:
            return state.vector
        return self.ranker.query_vector(clean_query(s.query)[0])  # another model: embedded once, then kept

    def _percolate(
        self, s: SavedSearch, state: FrameState, new: np.ndarray, new_set: frozenset[int], stats: CorpusStats
    ) -> tuple[list[tuple[int, float]], FrameState]:
        """The new passages' articles that ``s`` ranks, with their calibrated scores, and its next state."""
        qvec = self._vector(s, state)
        if state.key is None or state.key != self.live_key or len(new) > self.snap.ntotal // 2:
            # a rebuild, a frame of an older version (a run missed), or a change as big as what it joins:
            # ranked against the whole version, which costs no more than the change then
            found = self.ranker.candidates(self.snap, s.query, options(s), qvec=qvec, among=new_set)
            return _above(found.scored, s, found.threshold), self._refreshed(s, state, qvec)
        ids = np.union1d(self._alive(state.frame), new)
        view = self._view(self.passages.columns(ids, self.snap.state.groups), stats)
        lex = self.snap.manifest.lexical
        dense, lexical = Dense(ids, self.passages), Lexical(ids, self.passages, stats, k1=lex.k1, b=lex.b)
        self.ranker.backends = Backends(dense, lexical)
        try:
            found = self.ranker.candidates(view, s.query, options(s), qvec=qvec, among=new_set)
        finally:
            self.ranker.backends = self.default
        sides = [best(dense.scored, FRAME, positive=False), best(lexical.scored, FRAME, positive=True)]
        frame = np.unique(np.concatenate(sides))
        return _above(found.scored, s, found.threshold), FrameState(state.fingerprint or None, qvec, frame, self.key)

    def _refreshed(self, s: SavedSearch, state: FrameState, qvec: np.ndarray | None = None) -> FrameState:
        """A new frame, from the whole version."""
        if qvec is None:
            qvec = self._vector(s, state)
        found = self.ranker.candidates(self.snap, s.query, options(s), depth=FRAME, qvec=qvec, among=frozenset())
        frame = np.unique(np.fromiter((pid for pid, _ in found.ranked.order), np.int64))
        return FrameState(self.snap.manifest.model.fingerprint, qvec, frame, self.key)

    def _matches(self, s: SavedSearch, found: list[tuple[int, float]]) -> list[NewMatch]:
        if not found:
            return []
        rows = self.snap.store.passages([pid for pid, _ in found])
        out = []
        for pid, score in found:
            r = rows.get(pid)
            if r is not None:
                out.append(NewMatch(s.id, r.article_id, r.title, pid, r.text, score, r.url, r.date, r.source,
                                    r.lang, r.article_id in self.known))  # fmt: skip
        return out


def _above(scored: Iterable[Candidate], s: SavedSearch, threshold: float) -> list[tuple[int, float]]:
    """The (passage, score) of the candidates at or above the search's threshold."""
    bar = s.min_score if s.min_score is not None else threshold
    return [(c.passage_id, c.score) for c in scored if c.score >= bar]


def threshold(s: SavedSearch, manifest: Manifest) -> float:
    """The score a match of ``s`` needs: its own, else the calibration's no-close-match threshold."""
    if s.min_score is not None:
        return s.min_score
    cal = calibration.for_model(manifest.model.name, manifest.model.fingerprint)
    return cal.modes[s.mode].threshold


def _previous_hashes(idx: IndexDir, current: Manifest) -> dict[str, str] | None:
    """Article id → content hash in the version published before ``current`` (None: there is none).

    A rebuild runs before the garbage collection, so that version and its segments are still there.
    """
    if not idx.versions.is_dir():
        return None
    older = sorted(p for p in idx.versions.iterdir() if p.is_dir() and not is_partial(p) and p.name < current.version)
    if not older:
        return None
    folder = older[-1]
    m = Manifest.from_dict(load_json(folder / MANIFEST))
    state = VersionState.load(folder)
    readers = [
        SegmentReader(info, idx.layout.segment(info.name), idx.path, dim=m.model.dimension) for info in m.segments
    ]
    try:
        return {aid: k.content_hash for aid, k in VersionStore(readers, state).known_articles().items()}
    finally:
        for r in readers:
            r.close()
