"""The BM25 side of an index version (bm25s), built from the passages' analysed terms.

Each passage's terms (title + text, analysed in the article's language) are kept
in SQLite, so a build analyses only new passages; the BM25 matrix itself is
recomputed from the stored terms at every build, since document frequencies —
and so every weight — change whenever the collection does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .manifest import LexicalInfo

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
        from .backends import combine

        return combine(groups, self.postings, len(self.pids))
