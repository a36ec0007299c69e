"""A version seen through a few of its passages: what the percolator ranks a saved search on.

``view`` is the version with the metadata columns of those passages only (and the
whole version's languages); ``Dense`` and ``Lexical`` are search backends
(``backends.DenseBackend``, ``backends.LexicalBackend``) that score those passages
only — cosines of their stored vectors, BM25 with the whole version's statistics
(percolate_stats.py) — so ``Searcher.candidates`` ranks them as a search of the whole
version would, at the cost of the passages alone.
"""

from __future__ import annotations

import numpy as np

from .backends import Groups, LexicalScores, combine
from .columns import Columns, locate
from .index import Snapshot
from .percolate_stats import CorpusStats
from .postings import length_norm, term_scores
from .query import Filters
from .store import PassageFacts


def view(snap: Snapshot, columns: Columns | None, languages: dict[str, int]) -> Snapshot:
    """``snap`` as a search of a few passages sees it: their ``columns``, the whole version's ``languages``."""
    return Snapshot(snap.manifest, snap.path, snap.segments, snap.state, snap.stamp, _store=snap.store,
                    _columns=columns, _langs=languages)  # fmt: skip


class Passages:
    """Vectors, term counts and filter facts of passages, read once per run from the version's store."""

    def __init__(self, snap: Snapshot) -> None:
        self.store = snap.store
        self.dim = snap.manifest.model.dimension
        self._vectors: dict[int, np.ndarray] = {}
        self._terms: dict[int, tuple[int, dict[str, int]]] = {}
        self._facts: dict[int, PassageFacts] = {}

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The passages' stored vectors, in order."""
        todo = [int(i) for i in ids.tolist() if i not in self._vectors]
        if todo:
            self._vectors.update(zip(todo, self.store.vectors(todo, self.dim)))
        return np.stack([self._vectors[i] for i in ids.tolist()]) if len(ids) else np.zeros((0, self.dim), np.float32)

    def terms(self, ids: np.ndarray) -> list[tuple[int, dict[str, int]]]:
        """Each passage's length in terms and its term frequencies."""
        todo = [i for i in ids.tolist() if i not in self._terms]
        if todo:
            found = self.store.passage_terms(todo)
            for i in todo:
                words = found.get(i, "").split()
                counts: dict[str, int] = {}
                for w in words:
                    counts[w] = counts.get(w, 0) + 1
                self._terms[i] = (len(words), counts)
        return [self._terms[i] for i in ids.tolist()]

    def columns(self, ids: np.ndarray, groups: dict[int, int]) -> Columns:
        """The passages' metadata columns, with the version's near-duplicate ``groups``."""
        todo = [i for i in ids.tolist() if i not in self._facts]
        if todo:
            self._facts.update(self.store.passage_facts(todo))
        return Columns.of_passages([self._facts[i] for i in ids.tolist() if i in self._facts], groups)


class Dense:
    """Dense candidates among given passages: their stored vectors against the query's."""

    def __init__(self, ids: np.ndarray, passages: Passages) -> None:
        self.ids, self.passages = ids, passages
        self.scored: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.float32))

    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best (scores, ids) among the passages ``allowed`` keeps; every score is kept in ``scored``."""
        ids = within(self.ids, allowed)
        scores = (self.passages.vectors(ids) @ np.asarray(qvec, np.float32)).astype(np.float32)
        self.scored = (ids, scores)
        top = np.argsort(-scores, kind="stable")[:n]
        return scores[top], ids[top]


class Lexical:
    """BM25 among given passages, scored with the whole version's statistics (``percolate_stats``)."""

    def __init__(self, ids: np.ndarray, passages: Passages, stats: CorpusStats, *, k1: float, b: float) -> None:
        self.ids, self.passages, self.stats, self.k1, self.b = ids, passages, stats, k1, b
        self.scored: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.float32))

    def scores(
        self, snap: Snapshot, groups: Groups, n: int, filters: Filters, allowed: np.ndarray | None, extra: list[int]
    ) -> LexicalScores:
        """The ``n`` best passages for the grouped query terms, the scores of ``extra``; all kept in ``scored``."""
        ids = within(self.ids, allowed)
        terms = self.passages.terms(ids)
        lengths = np.fromiter((n for n, _ in terms), np.float64, count=len(terms))
        norm = length_norm(lengths, self.stats.avgdl, k1=self.k1, b=self.b)
        counts = [c for _, c in terms]
        df = self.stats.df

        def postings(term: str) -> tuple[np.ndarray, np.ndarray] | None:
            if df.get(term, 0) <= 0:
                return None  # the collection lacks it, as ``Collection.postings`` says
            pos = np.array([i for i, c in enumerate(counts) if term in c], np.int64)
            tf = np.array([counts[i][term] for i in pos.tolist()], np.float64)
            return pos, term_scores(tf, norm[pos], documents=self.stats.passages, df=df[term])

        total = combine(groups, postings, len(ids))
        self.scored = (ids, total)
        positive = np.flatnonzero(total > 0)
        if len(positive) > n:
            positive = positive[np.argpartition(-total[positive], n - 1)[:n]]
        top = {int(ids[i]): float(total[i]) for i in positive}
        where = {int(p): i for i, p in enumerate(ids.tolist())}
        of = {pid: float(total[where[pid]]) if pid in where else 0.0 for pid in extra}
        known = sum(1 for g in groups if any(df.get(t, 0) > 0 for t in g))
        return LexicalScores(top, of, known)


def within(ids: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """The ``ids`` that ``allowed`` (sorted; None: all) holds."""
    return ids if allowed is None else ids[locate(allowed, ids)[1]]


def best(scored: tuple[np.ndarray, np.ndarray], n: int, *, positive: bool) -> np.ndarray:
    """The ids of one side's ``n`` best scores (only those above 0 for BM25, which ranks no other)."""
    ids, scores = scored
    if positive:
        ids, scores = ids[scores > 0], scores[scores > 0]
    return ids[np.argsort(-scores, kind="stable")[:n]]
