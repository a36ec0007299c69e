"""One question as the searcher reads it, and what its rankings have read of each candidate passage.

The page asks ``search()`` and then ``match_counts()`` of every new question: one ranking
100 deep, then one to three 500 deep (with and without the filters), over mostly the same
passages. What a ranking reads of a candidate does not depend on the ranking: its best
sentence's cosine (its sentence blob), its cosine from the stored vector (a candidate
only BM25 gave). A ``Question`` keeps those, with the query's vector and lexical
analysis, so each is read once per question whichever call needs it first;
``QuestionCache`` keeps the last questions asked of each version.

The cosines are products row by row (``np.einsum``), so a passage's value does not depend
on which passages were read with it (a BLAS matrix-vector product's rounding does): a
shared value is exactly the one a separate call computes.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import best_sentence

if TYPE_CHECKING:
    from .index import Snapshot
    from .query import LexicalQuery

__all__ = ["Question", "QuestionCache"]

KEPT = 16  # questions kept per searcher: a few sessions' last questions, each a few thousand floats


class PassageVectors(best_sentence.SentenceBlobs, Protocol):
    """What a question reads of a version's store."""

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored float32 vectors for passage ids, in the given order."""
        ...


class Question:
    """A cleaned question, its vector and lexical analysis (each made once), and what its rankings read.

    Shared by the threads of a server: every value is computed the same way by whoever
    computes it first, so a race only repeats a read, it never changes an answer.
    """

    def __init__(self, text: str, dim: int) -> None:
        self.text = text  # as ``query.clean_query`` gives it
        self.dim = dim
        self.qvec: np.ndarray | None = None  # set by the searcher when a mode needs it
        self.lq: LexicalQuery | None = None
        self._sentence: dict[int, float | None] = {}  # None: no usable sentence vectors
        self._stored: dict[int, float] = {}

    def inputs(self, mode: str) -> tuple[np.ndarray | None, LexicalQuery | None]:
        """The vector and the analysis ``mode`` ranks with; None for a side it does not use.

        A question asked in another mode before may hold both: a BM25 search must still
        see no vector (its highlights would use it), a dense one no analysis.
        """
        return (self.qvec if mode != "bm25" else None), (self.lq if mode != "dense" else None)

    def sentence_cosines(
        self, store: best_sentence.SentenceBlobs, pids: Sequence[int], *, keep: dict[int, bytes] | None = None
    ) -> dict[int, float]:
        """``best_sentence.cosines`` of ``pids``, reading only the passages no ranking of this question read."""
        assert self.qvec is not None, "a dense side needs the query vector"
        missing = [pid for pid in pids if pid not in self._sentence]
        if missing:
            found = best_sentence.cosines(store, self.qvec, missing, self.dim, keep=keep)
            self._sentence.update({pid: found.get(pid) for pid in missing})
        known = self._sentence
        return {pid: cos for pid in pids if (cos := known[pid]) is not None}

    def stored_cosines(self, store: PassageVectors, pids: Sequence[int]) -> dict[int, float]:
        """Each passage's cosine to the question from its stored vector (for candidates FAISS did not give)."""
        assert self.qvec is not None, "a dense side needs the query vector"
        missing = [pid for pid in pids if pid not in self._stored]
        if missing:
            vecs = store.vectors(missing, self.dim)
            self._stored.update(zip(missing, np.einsum("ij,j->i", vecs, self.qvec).tolist()))
        return {pid: self._stored[pid] for pid in pids}


class QuestionCache:
    """The last ``KEPT`` questions, each of one version (a new version starts its questions afresh)."""

    def __init__(self, size: int = KEPT) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[int, str], tuple[weakref.ref[Snapshot], Question]] = OrderedDict()

    def get(self, snap: Snapshot, text: str) -> Question:
        """The question ``text`` of version ``snap``, kept or new."""
        key = (id(snap), text)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0]() is snap:  # not another snapshot that reuses a freed id
                self._kept.move_to_end(key)
                return kept[1]
            question = Question(text, snap.manifest.model.dimension)
            self._kept[key] = (weakref.ref(snap), question)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
            return question

    def clear(self) -> None:
        """Forget every question (a bench that must time each search's reads calls this)."""
        with self._lock:
            self._kept.clear()
