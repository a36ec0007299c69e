"""Percolation: each published build runs the saved searches against only the passages it added or changed.

Elasticsearch's percolator, adapted to a ranking that is relative to the whole archive
(min-max fusion, a background of the query's best candidates, calibrated scores): each
search keeps its *frame* — its best 200 passages of each side — with its query vector and
analysis, and the score a passage must beat to rank among its first 100 and 200 on each
side (``Cuts``). A build then costs each search what the build added:

1. *screen*: the new passages' cosines (their vectors against the kept query vector) and
   BM25 (with the whole version's statistics, carried forward by each build:
   percolate_stats.py). A new passage that beats neither side's 100th can be no
   candidate of a search of the whole version, so no match: nothing more is done,
   and the few that beat the 200th join the frame;
2. *rank*, for a search some new passage may enter: ``Searcher.candidates`` — the ranking,
   fusion and calibration of every search — on the version restricted to the frame and
   the new passages (restricted.py), which holds a full search's candidates: each new
   article gets the calibrated score a search of the whole version would give it.

A rebuild (``--full``, another model or chunker) renumbers every passage: each search is
ranked against the whole new version (what a rebuild pays for anyway), and only what the
previous version did not hold with the same content is news (delta.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import calibration, delta
from .alert_records import Cuts, FrameState, NewMatch, RunRecord, SavedSearch
from .alert_store import AlertStore
from .backends import Backends
from .embedding import Encoder
from .faults import crash_point
from .frame import Frame
from .index import IndexDir, Snapshot
from .manifest import Manifest, now
from .percolate_stats import CorpusStats, corpus_key, first_unseen
from .query import LexicalQuery, clean_query, lexical_query
from .restricted import Dense, Lexical, Passages, best, bm25, cuts, view
from .search import CANDIDATES, Candidate, Candidates, Searcher, SearchOptions

FRAME = 2 * CANDIDATES  # passages of each side a frame keeps: a margin for the ones deleted later
DEPTHS = (CANDIDATES, FRAME)
# BM25 scores drift with the statistics (the dense ones never do): a new passage within this share
# of the 100th is ranked, and a search is ranked again once the collection grew or shrank by DRIFT
SLACK, DRIFT = 0.9, 0.05


@dataclass(frozen=True)
class PercolationReport:
    """What running the saved searches against a build cost and found."""

    searches: int
    passages: int  # the build's new or changed passages they were run against
    matches: int  # matches recorded
    seconds: float
    full: bool = False  # a rebuild: what is new was told by content hash
    ranked: int = 0  # searches ranked (the others were screened out: nothing new could reach them)
    error: str = ""  # why they could not run (the version is published all the same)


def options(s: SavedSearch) -> SearchOptions:
    """The search a saved one runs: a default search's ranking, one passage per article, no highlights."""
    return SearchOptions(mode=s.mode, filters=s.filters, highlight=False)


def threshold(s: SavedSearch, manifest: Manifest) -> float:
    """The score a match of ``s`` needs: its own, else the calibration's no-close-match threshold."""
    if s.min_score is not None:
        return s.min_score
    return calibration.for_model(manifest.model.name, manifest.model.fingerprint).modes[s.mode].threshold


def first_state(searcher: Searcher, snap: Snapshot, s: SavedSearch) -> FrameState:
    """A new saved search's state: its query vector, analysis and frame in ``snap`` (one search of the version)."""
    qvec = searcher.query_vector(clean_query(s.query)[0]) if s.mode != "bm25" else None
    lq, kept = _analysis(s, None, snap)
    found = searcher.candidates(snap, s.query, options(s), depth=FRAME, qvec=qvec, lq=lq, among=frozenset())
    return _whole(s, snap, Passages(snap), found, qvec, lq, kept)


def after_publish(idx: IndexDir, live: Snapshot | None, encoder: Encoder) -> PercolationReport | None:
    """Run the saved searches against what the version just published added; None when none is saved.

    ``live`` is the version the build updated (None: a rebuild). Never raises for a
    failure of its own: the version is published, and the report says what went wrong.
    """
    if not idx.layout.alerts.is_file():
        return None
    t0 = time.perf_counter()
    searches: list[SavedSearch] = []
    try:
        store = AlertStore(idx.layout.alerts)
    except Exception as exc:
        return PercolationReport(0, 0, 0, time.perf_counter() - t0, live is None, error=why(exc))
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
        return PercolationReport(len(searches), 0, 0, time.perf_counter() - t0, live is None, error=why(exc))
    finally:
        store.close()


def why(exc: BaseException) -> str:
    """An exception as one line, for a report."""
    return " ".join(str(exc).split()) or type(exc).__name__


class _Pinned(Searcher):
    """A searcher of one open version that does not follow the index (a build's own)."""

    def __init__(self, snap: Snapshot, encoder: Encoder) -> None:
        self._pinned = snap
        super().__init__(snap.path.parent.parent, encoder=encoder)

    def snapshot(self) -> Snapshot:
        """The version it was made for."""
        return self._pinned


def _analysis(s: SavedSearch, kept: dict[str, Any] | None, snap: Snapshot) -> tuple[LexicalQuery | None, Any]:
    """The query as the lexical side reads it: kept while the collection's main languages stay the same."""
    if s.mode == "dense":
        return None, None
    main = list(snap.languages)[:3]  # what ``lexical_query`` analyses a query for, besides its own language
    if kept is not None and kept.get("main") == main:
        try:
            groups = [{str(t): float(w) for t, w in g.items()} for g in kept["groups"]]
            probs = {str(k): float(v) for k, v in kept["probs"].items()}
            return LexicalQuery(groups, probs, set(kept["scripts"]), tuple(kept["langs"])), kept
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # analysed again below
    lq = lexical_query(clean_query(s.query)[0], snap)
    saved = {"main": main, "groups": lq.groups, "probs": lq.probs, "scripts": sorted(lq.scripts),
             "langs": list(lq.langs)}  # fmt: skip
    return lq, saved


def _terms(lq: LexicalQuery | None) -> tuple[str, ...]:
    """Every term of the query's lexical side, once, in order (what a frame counts)."""
    return tuple(dict.fromkeys(t for g in lq.groups for t in g)) if lq is not None else ()


def _whole(
    s: SavedSearch,
    snap: Snapshot,
    passages: Passages,
    found: Candidates,
    qvec: np.ndarray | None,
    lq: LexicalQuery | None,
    lexical: Any,
) -> FrameState:
    """A search's state from a ranking of the whole version (``FRAME`` deep)."""
    r = found.ranked
    frame = passages.frame(np.unique(np.fromiter((pid for pid, _ in r.order), np.int64)), qvec, _terms(lq))
    # a side's candidates hold its FRAME best, and others only with lower scores: its cuts are exact
    d = cuts(np.fromiter(r.dense.values(), np.float64), DEPTHS, asked=s.mode != "bm25", positive=False)
    lex = cuts(np.fromiter(r.lexical.values(), np.float64), DEPTHS, asked=s.mode != "dense", positive=True)
    return FrameState(snap.manifest.model.fingerprint, qvec, frame, corpus_key(snap), Cuts(d, lex, snap.ntotal),
                      lexical)  # fmt: skip


class _Run:
    """One build's percolation: what is new, then each search screened, ranked if need be, and recorded."""

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
        self.lex = snap.manifest.lexical
        self.ranked = 0
        self._since: dict[int, np.ndarray] = {}  # passages added since a passage id (searches that missed runs)

    def execute(self, t0: float) -> PercolationReport:
        snap, live = self.snap, self.live
        change = (
            delta.of_update(snap, live, self._kept_stats()) if live is not None else delta.of_rebuild(self.idx, snap)
        )
        states = self.store.states()
        main = view(snap, None, change.stats.ranked_languages())  # the whole version's languages, no column read
        analysed = {s.id: _analysis(s, states.get(s.id, FrameState()).lexical, main) for s in self.searches}
        terms = [t for lq, _ in analysed.values() if lq is not None for g in lq.groups for t in g]
        stats = change.stats.tracking(snap, terms)
        matches: list[NewMatch] = []
        kept: dict[int, FrameState] = {}
        for s in self.searches:
            state = replace(states.get(s.id, FrameState()), lexical=analysed[s.id][1])
            if state.key == self.key:
                continue  # saved against this very version: what it holds is not news to it
            found, kept[s.id] = self._search(s, state, analysed[s.id][0], change, stats)
            matches += self._matches(s, found, change.changed)
        run = RunRecord(snap.manifest.version, now(), matches, kept, self.key, stats.to_json(), len(self.searches),
                        len(change.new), time.perf_counter() - t0, change.full)  # fmt: skip
        crash_point("alerts")
        recorded = self.store.record(run)
        took = time.perf_counter() - t0
        return PercolationReport(len(self.searches), len(change.new), recorded, took, change.full, self.ranked)

    def _kept_stats(self) -> tuple[str, CorpusStats] | None:
        """The statistics the last run left, and the passage set they describe."""
        found = self.store.stats()
        try:
            return (found[0], CorpusStats.from_json(found[1])) if found is not None else None
        except (KeyError, TypeError, ValueError):
            return None  # computed again

    def _search(
        self, s: SavedSearch, state: FrameState, lq: LexicalQuery | None, change: delta.Delta, stats: CorpusStats
    ) -> tuple[list[tuple[int, float]], FrameState]:
        """The new articles ``s`` finds (passage, calibrated score), and its next state."""
        new = change.new
        seen = first_unseen(state.key) if state.key is not None and not change.full else None
        if seen is not None and state.key != self.live_key:  # a run it missed: what came since is news
            if seen not in self._since:
                self._since[seen] = np.union1d(change.new, delta.added_since(self.snap, seen))
            new = self._since[seen]
        qvec = self._vector(s, state)
        if change.full or state.key != self.live_key or len(new) > self.snap.ntotal // 2:
            # a rebuild, a frame of an older version (a run missed), or a change as big as what it joins:
            # ranked against the whole version, which then costs no more than the change
            return self._whole(s, qvec, lq, state.lexical, frozenset(new.tolist()))
        frame = state.frame.without(self.snap.state.deleted_ids)
        lost = len(frame) < len(state.frame)  # a frame member deleted: the cuts may have dropped
        state = replace(state, lost=state.lost + len(state.frame) - len(frame))
        if state.lost > FRAME - CANDIDATES:  # as many gone as the margin held: take it from the whole version
            return self._whole(s, qvec, lq, state.lexical, frozenset(new.tolist()))
        if not len(new):
            return [], replace(state, frame=frame, key=self.key, cuts=None if lost else state.cuts)
        terms = _terms(lq)
        if frame.terms != terms:  # the query is analysed otherwise now (the collection's main languages moved)
            frame, lost = self.passages.frame(frame.ids, qvec, terms), True
        arrived = self.passages.frame(new, qvec, terms)
        joining = None if lost else self._screen(s, state, arrived, lq, stats)
        if joining is not None:
            return [], replace(state, frame=frame.joined(arrived.take(joining)), key=self.key)
        return self._rank(s, state, qvec, lq, frame.joined(arrived), frozenset(new.tolist()), stats)

    def _screen(
        self, s: SavedSearch, state: FrameState, arrived: Frame, lq: LexicalQuery | None, stats: CorpusStats
    ) -> np.ndarray | None:
        """Which new passages join the frame when none can rank among the first 100 of a side; else None."""
        c = state.cuts
        if c is None or abs(stats.passages - c.passages) > DRIFT * max(c.passages, 1):
            return None
        dense = arrived.cos.astype(np.float64) if s.mode != "bm25" else np.full(len(arrived), -np.inf)
        lexical = np.zeros(len(arrived), np.float32)
        if lq is not None:
            lexical = bm25(arrived, lq.groups, stats, k1=self.lex.k1, b=self.lex.b)
        if s.filters:
            allowed = arrived.columns(self.snap.state.groups).passage_ids(s.filters.normalized())
            out = ~np.isin(arrived.ids, allowed)
            dense[out], lexical[out] = -np.inf, 0.0
        hit = lexical > 0

        def beats(at: int) -> np.ndarray:
            return (dense >= c.dense[at]) | (hit & (lexical >= SLACK * c.lexical[at]))

        return None if beats(0).any() else beats(1)

    def _rank(
        self,
        s: SavedSearch,
        state: FrameState,
        qvec: np.ndarray | None,
        lq: LexicalQuery | None,
        candidates: Frame,
        new: frozenset[int],
        stats: CorpusStats,
    ) -> tuple[list[tuple[int, float]], FrameState]:
        """``s`` ranked among its frame and the new passages, as a search of the whole version ranks them."""
        self.ranked += 1
        restricted = view(self.snap, candidates, stats.ranked_languages())
        dense, lexical = Dense(candidates), Lexical(candidates, stats, k1=self.lex.k1, b=self.lex.b)
        self.ranker.backends = Backends(dense, lexical)
        try:
            found = self.ranker.candidates(restricted, s.query, options(s), qvec=qvec, lq=lq, among=new)
        finally:
            self.ranker.backends = self.default
        keep = np.concatenate([best(dense.scored, FRAME, positive=False), best(lexical.scored, FRAME, positive=True)])
        d = cuts(dense.scored[1], DEPTHS, asked=s.mode != "bm25", positive=False)
        lex = cuts(lexical.scored[1], DEPTHS, asked=s.mode != "dense", positive=True)
        state = replace(state, fingerprint=self.snap.manifest.model.fingerprint, vector=qvec,
                        frame=candidates.only(keep), key=self.key, cuts=Cuts(d, lex, stats.passages))  # fmt: skip
        return _above(found.scored, s, found.threshold), state

    def _whole(
        self, s: SavedSearch, qvec: np.ndarray | None, lq: LexicalQuery | None, lexical: Any, new: frozenset[int]
    ) -> tuple[list[tuple[int, float]], FrameState]:
        """``s`` ranked against the whole version: its matches among ``new``, and a fresh frame."""
        self.ranked += 1
        found: list[tuple[int, float]] = []
        if new:
            scored = self.ranker.candidates(self.snap, s.query, options(s), qvec=qvec, lq=lq, among=new)
            found = _above(scored.scored, s, scored.threshold)
        framed = self.ranker.candidates(self.snap, s.query, options(s), depth=FRAME, qvec=qvec, lq=lq,
                                        among=frozenset())  # fmt: skip
        return found, _whole(s, self.snap, self.passages, framed, qvec, lq, lexical)

    def _vector(self, s: SavedSearch, state: FrameState) -> np.ndarray | None:
        if s.mode == "bm25":
            return None
        if state.vector is not None and state.fingerprint == self.snap.manifest.model.fingerprint:
            return state.vector
        return self.ranker.query_vector(clean_query(s.query)[0])  # another model: embedded once, then kept

    def _matches(self, s: SavedSearch, found: list[tuple[int, float]], changed: frozenset[str]) -> list[NewMatch]:
        if not found:
            return []
        rows = self.snap.store.passages([pid for pid, _ in found])
        out = []
        for pid, score in found:
            r = rows.get(pid)
            if r is not None:
                out.append(NewMatch(s.id, r.article_id, r.title, pid, r.text, score, r.url, r.date, r.source,
                                    r.lang, r.article_id in changed))  # fmt: skip
        return out


def _above(scored: Iterable[Candidate], s: SavedSearch, bar: float) -> list[tuple[int, float]]:
    """The (passage, score) of the candidates at or above the search's threshold (``bar``: the calibration's)."""
    need = s.min_score if s.min_score is not None else bar
    return [(c.passage_id, c.score) for c in scored if c.score >= need]
