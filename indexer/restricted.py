"""A version seen through a few of its passages: what the percolator ranks a saved search on.

``view`` is the version with the metadata columns of those passages only (and the whole
version's languages); ``Dense`` and ``Lexical`` are search backends
(``backends.DenseBackend``, ``backends.LexicalBackend``) over a ``Frame`` of passages —
their kept cosines, BM25 from their kept term frequencies with the whole version's
statistics (percolate_stats.py) — so ``Searcher.candidates`` ranks them as a search of
the whole version would, at the cost of those passages alone. ``Passages`` reads the
frames of a build's new passages from the index, once per build.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .backends import Groups, LexicalScores, combine
from .columns import day_number, locate
from .frame import Frame
from .index import Snapshot
from .percolate_stats import CorpusStats
from .postings import length_norm, term_scores
from .query import Filters
from .store import PassageFacts


def view(snap: Snapshot, frame: Frame | None, languages: dict[str, int]) -> Snapshot:
    """``snap`` as a search of ``frame``'s passages sees it: their columns, the whole version's ``languages``."""
    columns = frame.columns(snap.state.groups) if frame is not None else None
    return Snapshot(snap.manifest, snap.path, snap.segments, snap.state, snap.stamp, _store=snap.store,
                    _columns=columns, _langs=languages)  # fmt: skip


class Passages:
    """Vectors, term counts and filter facts of passages, read once per run from the version's store."""

    def __init__(self, snap: Snapshot) -> None:
        self.store = snap.store
        self.dim = snap.manifest.model.dimension
        self._vectors: dict[int, np.ndarray] = {}
        self._terms: dict[int, tuple[int, Counter[str]]] = {}
        self._facts: dict[int, PassageFacts] = {}
        self._bases: dict[bytes, tuple[Frame, np.ndarray | None, list[Counter[str]]]] = {}

    def frame(self, ids: np.ndarray, qvec: np.ndarray | None, terms: Sequence[str]) -> Frame:
        """The passages ``ids`` (sorted) as a frame for the query of vector ``qvec`` and ``terms``."""
        key = np.asarray(ids, np.int64).tobytes()
        base = self._bases.get(key)
        if base is None:  # a build's new passages are framed once for every search, then only scored
            base = self._bases[key] = self._base(np.asarray(ids, np.int64))
        frame, vectors, counted = base
        cos = np.zeros(len(frame), np.float32)
        if qvec is not None and len(frame):
            if vectors is None:
                vectors = self._stack(frame.ids)
                self._bases[key] = (frame, vectors, counted)
            cos = (vectors @ np.asarray(qvec, np.float32)).astype(np.float32)
        tf = np.array([[c.get(t, 0) for t in terms] for c in counted], np.uint16).reshape(len(frame), len(terms))
        return replace(frame, cos=cos, terms=tuple(terms), tf=tf)

    def _base(self, ids: np.ndarray) -> tuple[Frame, np.ndarray | None, list[Counter[str]]]:
        """A frame of ``ids`` without a query's scores, their term counts (vectors: read when first needed)."""
        todo = [i for i in ids.tolist() if i not in self._facts]
        if todo:
            self._facts.update(self.store.passage_facts(todo))
            found = self.store.passage_terms(todo)
            for i in todo:
                words = found.get(i, "").split()
                self._terms[i] = (len(words), Counter(words))
        ids = ids[np.fromiter((i in self._facts for i in ids.tolist()), bool, count=len(ids))]  # no longer there
        counted = [self._terms[i] for i in ids.tolist()]
        facts = [self._facts[i] for i in ids.tolist()]
        langs = tuple(sorted({f.lang for f in facts if f.lang is not None}))
        sources = tuple(sorted({f.source for f in facts if f.source is not None}))
        li, si = {v: k for k, v in enumerate(langs)}, {v: k for k, v in enumerate(sources)}
        n = len(ids)
        frame = Frame(
            ids=ids,
            cos=np.zeros(n, np.float32),
            lengths=np.fromiter((length for length, _ in counted), np.int32, count=n),
            tf=np.zeros((n, 0), np.uint16),
            rows=np.fromiter((f.article for f in facts), np.int64, count=n),
            lang=np.fromiter((-1 if f.lang is None else li[f.lang] for f in facts), np.int32, count=n),
            langs=langs,
            source=np.fromiter((-1 if f.source is None else si[f.source] for f in facts), np.int32, count=n),
            sources=sources,
            day=np.fromiter((day_number(f.date) for f in facts), np.int32, count=n),
        )
        return frame, None, [c for _, c in counted]

    def _stack(self, ids: np.ndarray) -> np.ndarray:
        need = [i for i in ids.tolist() if i not in self._vectors]
        if need:
            self._vectors.update(zip(need, self.store.vectors(need, self.dim)))
        return np.stack([self._vectors[i] for i in ids.tolist()])


def bm25(frame: Frame, groups: Groups, stats: CorpusStats, *, k1: float, b: float) -> np.ndarray:
    """BM25 (float32) of a frame's passages, as ``postings.Collection`` scores them with these ``stats``.

    The frame must count every term of ``groups``.
    """
    norm = length_norm(frame.lengths, stats.avgdl, k1=k1, b=b)
    column = {t: j for j, t in enumerate(frame.terms)}
    df = stats.df

    def postings(term: str) -> tuple[np.ndarray, np.ndarray] | None:
        if df.get(term, 0) <= 0:
            return None  # the collection lacks it, as ``Collection.postings`` says
        j = column[term]
        pos = np.flatnonzero(frame.tf[:, j])
        tf = frame.tf[pos, j].astype(np.float64)
        return pos, term_scores(tf, norm[pos], documents=stats.passages, df=df[term])

    return combine(groups, postings, len(frame))


def known(groups: Groups, stats: CorpusStats) -> int:
    """Query words of which some passage of the version holds a variant (``LexicalScores.known``)."""
    return sum(1 for g in groups if any(stats.df.get(t, 0) > 0 for t in g))


def _allowed(frame: Frame, allowed: np.ndarray | None) -> np.ndarray:
    """Positions of the frame's passages that ``allowed`` (sorted ids; None: all) holds."""
    if allowed is None:
        return np.arange(len(frame))
    return np.flatnonzero(locate(allowed, frame.ids)[1])


class Dense:
    """Dense candidates among a frame's passages, by their kept cosine to the query."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.scored: tuple[np.ndarray, np.ndarray] = (frame.ids[:0], frame.cos[:0])  # every score, once searched

    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best (scores, ids) among the passages ``allowed`` keeps."""
        pos = _allowed(self.frame, allowed)
        scores = self.frame.cos[pos]
        self.scored = (self.frame.ids[pos], scores)
        top = pos[np.argsort(-scores, kind="stable")[:n]]
        return self.frame.cos[top], self.frame.ids[top]


class Lexical:
    """BM25 among a frame's passages, with the whole version's statistics."""

    def __init__(self, frame: Frame, stats: CorpusStats, *, k1: float, b: float) -> None:
        self.frame, self.stats, self.k1, self.b = frame, stats, k1, b
        self.scored: tuple[np.ndarray, np.ndarray] = (frame.ids[:0], np.zeros(0, np.float32))  # once scored

    def scores(
        self, snap: Snapshot, groups: Groups, n: int, filters: Filters, allowed: np.ndarray | None, extra: list[int]
    ) -> LexicalScores:
        """The ``n`` best passages for the grouped query terms, and the scores of ``extra``."""
        everything = bm25(self.frame, groups, self.stats, k1=self.k1, b=self.b)
        pos = _allowed(self.frame, allowed)
        total, ids = everything[pos], self.frame.ids[pos]
        self.scored = (ids, total)
        positive = np.flatnonzero(total > 0)
        if len(positive) > n:
            positive = positive[np.argpartition(-total[positive], n - 1)[:n]]
        top = {int(ids[i]): float(total[i]) for i in positive}
        at, held = locate(self.frame.ids, np.asarray(extra, np.int64))
        of = {pid: float(everything[a]) if h else 0.0 for pid, a, h in zip(extra, at.tolist(), held.tolist())}
        return LexicalScores(top, of, known(groups, self.stats))


def best(scored: tuple[np.ndarray, np.ndarray], n: int, *, positive: bool) -> np.ndarray:
    """The ids of one side's ``n`` best scores (only those above 0 for BM25, which ranks no other)."""
    ids, scores = scored
    if positive:
        ids, scores = ids[scores > 0], scores[scores > 0]
    return ids[np.argsort(-scores, kind="stable")[:n]]


def cuts(scores: np.ndarray, depths: tuple[int, int], *, asked: bool, positive: bool) -> tuple[float, float]:
    """One side's scores at the two ``depths``: what a passage must beat to be ranked that deep.

    -inf where the side holds fewer (anything gets in), +inf for a side the search's mode
    does not use (nothing does); BM25 ranks only positive scores.
    """
    if not asked:
        return (math.inf, math.inf)
    kept = np.sort(scores[scores > 0] if positive else scores)[::-1]

    def at(depth: int) -> float:
        return float(kept[depth - 1]) if len(kept) >= depth else -math.inf

    return at(depths[0]), at(depths[1])
