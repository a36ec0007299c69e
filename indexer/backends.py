"""Where a search's candidates come from: the version's own FAISS and BM25 files, or a vector store.

``open_backends`` is the one place that picks them, for searches and for builds
(which sync an external store after publishing). The index directory always
supplies passages, grouping, duplicates and highlights.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import vectors
from .columns import locate
from .query import Filters
from .threads import faiss_threads

if TYPE_CHECKING:
    from .index import IndexDir, Snapshot
    from .milvus import MilvusStore
    from .milvus_sync import SyncReport

#: per query word, its analysed term under each language, with that language's weight
Groups = list[dict[str, float]]


class DenseBackend(Protocol):
    """Dense candidates: the version's FAISS index, or an external store (milvus.py)."""

    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (scores, ids) among passages matching ``filters`` (whose ids are ``allowed``)."""
        ...


class TermBackend(Protocol):
    """A store that scores BM25 itself, per analysed term (the local index's terms and parameters)."""

    def bm25_top(self, texts: list[str], n: int, filters: Filters) -> list[dict[int, float]]:
        """Per text (terms joined by spaces), its ``n`` best passages among the filtered."""
        ...

    def bm25_scores(self, terms: list[str], pids: list[int]) -> list[dict[int, float]]:
        """Per term, the score of each of ``pids`` that contains it."""
        ...


@dataclass(frozen=True)
class LexicalScores:
    """What the lexical side gives fusion."""

    top: dict[int, float]  # the n best passages with a positive score
    of: dict[int, float]  # the score of each extra passage asked about (dense candidates)
    known: int  # query words that some passage holds


class LexicalBackend(Protocol):
    """BM25 candidates and scores."""

    def scores(
        self, snap: Snapshot, groups: Groups, n: int, filters: Filters, allowed: np.ndarray | None, extra: list[int]
    ) -> LexicalScores:
        """The ``n`` best passages for the grouped query terms, and the scores of ``extra``."""
        ...


#: one term's postings: positions of the passages holding it, and their BM25 scores
Postings = tuple[np.ndarray, np.ndarray]


def combine(groups: Groups, postings: Callable[[str], Postings | None], size: int) -> np.ndarray:
    """Sum over query words of the best weighted score among the word's variants, for ``size`` passages.

    ``postings(term)`` gives one term's postings (None: the collection lacks it). The one
    rule both lexical backends score by; its cost follows the postings touched, plus
    one pass over the passages per query word.
    """
    total = np.zeros(size, dtype=np.float32)
    cache: dict[str, Postings | None] = {}
    for group in groups:
        best: np.ndarray | None = None
        for term, weight in group.items():
            if weight <= 0:
                continue
            if term not in cache:
                cache[term] = postings(term)
            found = cache[term]
            if found is None:
                continue
            idx, val = found
            if best is None:
                best = np.zeros(size, dtype=np.float32)
            # a term's postings name each passage once, so this is an element-wise max
            best[idx] = np.maximum(best[idx], val * np.float32(weight))
        if best is not None:
            total += best
    return total


class FaissDense:
    """The default: the version's own FAISS indexes, one per segment, filtered by passage ids.

    Each segment is searched for the ``n`` best of its allowed (or not deleted)
    passages and the lists are merged. For an index of PQ codes, the best
    ``rerank`` candidates by code are re-scored with the exact vectors SQLite
    keeps, so scores and order are those of an exact search.
    """

    def __init__(self) -> None:
        # FAISS selectors of the last filters' allowed ids per segment, and of each segment's deletions
        self._selectors: OrderedDict[tuple[str, int], tuple[np.ndarray, Any]] = OrderedDict()
        # each segment's last re-scored lists: (its FAISS index, the ids the search was limited by
        # or excluded, scores, ids) by (index, those ids, query vector, depth); see ``_rescore``
        self._rescored: OrderedDict[tuple[int, int, bytes, int], tuple[Any, np.ndarray, np.ndarray, np.ndarray]]
        self._rescored = OrderedDict()
        self._lock = threading.Lock()

    def _selector(self, segment: str, ids: np.ndarray, *, exclude: bool = False) -> Any:
        key = (segment, id(ids))
        with self._lock:
            kept = self._selectors.get(key)
            if kept is not None and kept[0] is ids:
                return kept[1]
        sel = vectors.excluding(ids) if exclude else vectors.selector(ids)
        with self._lock:
            self._selectors[key] = (ids, sel)
            while len(self._selectors) > 64:
                self._selectors.popitem(last=False)
        return sel

    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (scores, ids) over every segment, exact scores for re-scored types."""
        found_s, found_i = [], []
        # one OpenMP thread: right after the query's embedding, ONNX Runtime's spinning workers
        # hold the cores a second FAISS thread would wait for (threads.py has the figures)
        with faiss_threads("query"):
            for seg in snap.segments:
                lo, hi = seg.info.ids
                depth = int(seg.info.vectors.rerank or 0)
                if allowed is not None:
                    a, b = np.searchsorted(allowed, [lo, hi])
                    if a == b:
                        continue
                    part = allowed if (a, b) == (0, len(allowed)) else snap.slice_of(allowed, seg.info.name, a, b)
                    sel = self._selector(seg.info.name, part)
                    limit, limited = part, part
                else:
                    dead = snap.dead_ids(seg)
                    if len(dead) >= seg.info.passages:
                        continue
                    sel = self._selector(seg.info.name, dead, exclude=True) if len(dead) else None
                    limit, limited = dead, None
                if depth:
                    scores, ids = self._rescore(seg, qvec, max(n, depth), limit, limited, sel)
                    scores, ids = scores[:n], ids[:n]
                else:
                    scores, ids = vectors.search(seg.vectors, qvec, n, limited, sel=sel)
                found_s.append(scores)
                found_i.append(ids)
        if not found_s:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        if len(found_s) == 1:
            return found_s[0].astype(np.float32), found_i[0]
        scores, ids = np.concatenate(found_s), np.concatenate(found_i)
        top = np.argsort(-scores, kind="stable")[:n]  # ties keep FAISS's order, older segments first
        return scores[top].astype(np.float32), ids[top]

    def _rescore(
        self, seg: Any, qvec: np.ndarray, k: int, limit: np.ndarray, limited: np.ndarray | None, sel: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best by code, re-scored with the exact vectors, best first (stable: FAISS's order on ties).

        Any ``n`` up to the re-scoring depth asks FAISS for the same ``k``, so a question's
        search (100 deep) and its facet counts (500 deep) under the same filters share one
        search and one read of the vectors: the shorter list is the longer one's head.
        """
        key = (id(seg.vectors), id(limit), qvec.tobytes(), k)
        with self._lock:
            kept = self._rescored.get(key)
        if kept is not None and kept[0] is seg.vectors and kept[1] is limit:
            return kept[2], kept[3]
        scores, ids = vectors.search(seg.vectors, qvec, k, limited, sel=sel)
        if len(ids):
            exact = seg.store.vectors(ids.tolist(), len(qvec)) @ np.asarray(qvec, np.float32)
            top = np.argsort(-exact, kind="stable")
            scores, ids = exact[top].astype(np.float32), ids[top]
        with self._lock:
            self._rescored[key] = (seg.vectors, limit, scores, ids)
            while len(self._rescored) > 32:  # a few questions × filter sets × segments
                self._rescored.popitem(last=False)
        return scores, ids


class LocalLexical:
    """BM25 from the segments' postings, with collection-wide statistics."""

    def scores(
        self, snap: Snapshot, groups: Groups, n: int, filters: Filters, allowed: np.ndarray | None, extra: list[int]
    ) -> LexicalScores:
        """Every passage scored, the best ``n`` kept (restricted to ``allowed``)."""
        lex = snap.lexical
        everything = lex.grouped_scores(groups)
        of = {pid: 0.0 for pid in extra}
        if extra and len(everything):
            pos, held = lex.position(np.asarray(extra, dtype=np.int64))
            of.update(zip(extra, np.where(held, everything[pos], 0.0).tolist()))
        known = sum(1 for g in groups if lex.known(list(g)))
        return LexicalScores(_top(lex.pids, everything, n, allowed), of, known)


def _top(pids: np.ndarray, scores: np.ndarray, n: int, allowed: np.ndarray | None) -> dict[int, float]:
    """The ``n`` best passages with a positive score, restricted to ``allowed`` ids (sorted)."""
    positive = np.flatnonzero(scores > 0)
    if allowed is not None and len(positive):
        # only the scored passages are looked up among the allowed ones, not every passage
        positive = positive[locate(allowed, pids[positive])[1]]
    if len(positive) > n:
        positive = positive[np.argpartition(-scores[positive], n - 1)[:n]]
    return {int(pids[i]): float(scores[i]) for i in positive}


class EngineLexical:
    """BM25 scored by the store itself, combined by the same rule as the local index.

    Candidates are each term's ``n`` best and the ``n`` best for all terms at once
    (strong on several terms without topping any); each is then scored for every
    term, so its sum is exact. Falls back to the local index when the store has no BM25.
    """

    def __init__(self, engine: MilvusStore) -> None:
        self.engine = engine
        self.local = LocalLexical()

    @property
    def active(self) -> bool:
        """Whether the store scores BM25 (else the local index serves)."""
        return self.engine.has_bm25

    def scores(
        self, snap: Snapshot, groups: Groups, n: int, filters: Filters, allowed: np.ndarray | None, extra: list[int]
    ) -> LexicalScores:
        """The store's candidates, scored term by term and combined."""
        if not self.active:
            return self.local.scores(snap, groups, n, filters, allowed, extra)
        terms = list(dict.fromkeys(t for g in groups for t in g))
        if not terms:
            return LexicalScores({}, {pid: 0.0 for pid in extra}, 0)
        tops = self.engine.bm25_top([*terms, " ".join(terms)], n, filters)
        found = {t for t, hits in zip(terms, tops) if hits}
        known = sum(1 for g in groups if found.intersection(g))
        scored = [t for t in terms if t in found and any(g.get(t, 0.0) > 0 for g in groups)]
        cands = set().union(*tops)
        pids = sorted(cands | set(extra))
        where = {pid: i for i, pid in enumerate(pids)}
        per_term = dict(zip(scored, self.engine.bm25_scores(scored, pids)))

        def term_postings(term: str) -> Postings | None:
            hits = per_term.get(term)
            if hits is None:
                return None
            kept = [(where[pid], score) for pid, score in hits.items() if pid in where]
            return np.array([k for k, _ in kept], np.int64), np.array([s for _, s in kept], np.float32)

        total = combine(groups, term_postings, len(pids))
        ranked = sorted((p for p in cands if total[where[p]] > 0), key=lambda p: (-total[where[p]], p))
        # a store still syncing may name passages the version dropped
        present = snap.columns.article_keys(ranked[:n])
        top = {p: float(total[where[p]]) for p in ranked[:n] if p in present}
        return LexicalScores(top, {pid: float(total[where[pid]]) for pid in extra}, known)


@dataclass
class Backends:
    """The candidates' sources for one searcher (or a build's sync target)."""

    dense: DenseBackend
    lexical: LexicalBackend
    store: MilvusStore | None = None  # the external store, when there is one

    @property
    def engine_bm25(self) -> bool:
        """Whether BM25 candidates come from the external store."""
        return isinstance(self.lexical, EngineLexical) and self.lexical.active

    def check(self, snap: Snapshot, idx: IndexDir) -> None:
        """Refuse an external store that holds another index's or another model's vectors."""
        if self.store is not None:
            self.store.check(snap.manifest, idx.path)

    def sync(self, idx: IndexDir) -> SyncReport | None:
        """Bring the external store in step with the live version (the caller holds the build lock)."""
        if self.store is None:
            return None
        from .milvus_sync import sync_index

        return sync_index(self.store, idx)

    def close(self) -> None:
        """Release the external store's connection (a Milvus Lite server stops with its last user)."""
        if self.store is not None:
            self.store.close()


def open_backends(store: str | None, *, index: IndexDir | None = None) -> Backends:
    """The backends for ``store`` (a ``milvus://`` or ``milvus-lite://`` URI), or the index's own files.

    A bad URI fails before anything is opened; ``index``, when given, is checked
    next (its own message for a missing or damaged index), then the store is reached.
    """
    if store is None:
        return Backends(FaissDense(), LocalLexical())
    from .milvus import MilvusStore, parse_uri

    target = parse_uri(store)
    if index is not None:
        index.manifest()
    ms = MilvusStore(target)
    return Backends(ms, EngineLexical(ms), ms)
