"""bm25s over one whole collection: the reference the segments' postings must score exactly like.

This was the index's BM25 until segments: one matrix with its weights baked in,
recomputed over the whole collection at every build. ``indexer.postings`` scores
at query time with collection-wide statistics instead; tests/test_postings.py
checks both give the same scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from indexer.manifest import LexicalInfo

LEXICAL_DIR = "lexical"
PIDS_FILE = "passage_ids.npy"
K1, B = 1.2, 0.75  # the usual Lucene/Elasticsearch values; not tuned to any benchmark


def build(terms: Iterable[tuple[int, str]], folder: Path, *, analyzer: int) -> LexicalInfo:
    """Write the BM25 index of every passage's stored terms (``(id, "t1 t2 …")``, by id) into ``folder``."""
    import bm25s

    vocab: dict[str, int] = {}
    ids: list[list[int]] = []
    pids: list[int] = []
    for pid, text in terms:
        ids.append([vocab.setdefault(t, len(vocab)) for t in text.split()])
        pids.append(pid)
    folder.mkdir(parents=True, exist_ok=True)
    retriever = bm25s.BM25(k1=K1, b=B)
    if ids:
        retriever.index((ids, vocab), show_progress=False)
        retriever.save(str(folder), show_progress=False)
    np.save(folder / PIDS_FILE, np.asarray(pids, dtype=np.int64), allow_pickle=False)
    return LexicalInfo(kind="bm25s", k1=K1, b=B, documents=len(pids), vocabulary=len(vocab), analyzer=analyzer)


class LexicalIndex:
    """Read-only BM25 scores over a version's passages."""

    def __init__(self, folder: Path) -> None:
        import bm25s

        self.pids = np.load(folder / PIDS_FILE, allow_pickle=False)
        self.position = {int(p): i for i, p in enumerate(self.pids)}
        self.bm25 = bm25s.BM25.load(str(folder), mmap=False, allow_pickle=False) if len(self.pids) else None
        self.vocab: dict[str, int] = getattr(self.bm25, "vocab_dict", {}) or {}

    def known(self, terms: list[str]) -> list[str]:
        """The terms the collection holds."""
        return [t for t in terms if t in self.vocab]

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Positions (in ``pids``) of the passages holding ``term``, with its BM25 score in each."""
        tid = self.vocab.get(term)
        if tid is None or self.bm25 is None:
            return None
        m = self.bm25.scores
        start, end = int(m["indptr"][tid]), int(m["indptr"][tid + 1])
        return m["indices"][start:end], m["data"][start:end]

    def grouped_scores(self, groups: list[dict[str, float]]) -> np.ndarray:
        """Sum over query words of the best weighted score among the word's variants (every passage)."""
        from indexer.backends import combine

        return combine(groups, self.postings, len(self.pids))
