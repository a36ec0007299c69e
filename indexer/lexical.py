"""The BM25 side of an index version (bm25s), built from the passages' analysed terms.

Each passage's terms (title + text, analysed in the article's language) are kept
in SQLite, so a build analyses only new passages; the BM25 matrix itself is
recomputed from the stored terms at every build, since document frequencies —
and so every weight — change whenever the collection does.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

LEXICAL_DIR = "lexical"
PIDS_FILE = "passage_ids.npy"
K1, B = 1.2, 0.75  # the usual Lucene/Elasticsearch values; not tuned to any benchmark


def build(con: sqlite3.Connection, folder: Path) -> dict[str, Any]:
    """Write the BM25 index of every passage's stored terms into ``folder``."""
    import bm25s

    vocab: dict[str, int] = {}
    ids: list[list[int]] = []
    pids: list[int] = []
    for pid, terms in con.execute("SELECT passage, terms FROM terms ORDER BY passage"):
        ids.append([vocab.setdefault(t, len(vocab)) for t in terms.split()])
        pids.append(pid)
    folder.mkdir(parents=True, exist_ok=True)
    retriever = bm25s.BM25(k1=K1, b=B)
    if ids:
        retriever.index((ids, vocab), show_progress=False)
        retriever.save(str(folder), show_progress=False)
    np.save(folder / PIDS_FILE, np.asarray(pids, dtype=np.int64), allow_pickle=False)
    return {"kind": "bm25s", "k1": K1, "b": B, "documents": len(pids), "vocabulary": len(vocab)}


class LexicalIndex:
    """Read-only BM25 scores over a version's passages."""

    def __init__(self, folder: Path) -> None:
        import bm25s

        self.pids = np.load(folder / PIDS_FILE, allow_pickle=False)
        self.position = {int(p): i for i, p in enumerate(self.pids)}
        self.bm25 = bm25s.BM25.load(str(folder), mmap=False, allow_pickle=False) if len(self.pids) else None
        self.vocab: dict[str, int] = getattr(self.bm25, "vocab_dict", {}) or {}
        if self.bm25 is not None:
            params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
            self.n_docs = int(params.get("num_docs", len(self.pids)))
        else:
            self.n_docs = 0

    def known(self, terms: list[str]) -> list[str]:
        return [t for t in terms if t in self.vocab]

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every passage (in ``pids`` order) for the query terms."""
        known = self.known(terms)
        if self.bm25 is None or not known:
            return np.zeros(len(self.pids), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(known), dtype=np.float32)

    def grouped_scores(self, groups: list[dict[str, float]]) -> np.ndarray:
        """Sum over query words of the best weighted score among the word's variants."""
        total = np.zeros(len(self.pids), dtype=np.float32)
        if self.bm25 is None:
            return total
        cache: dict[str, np.ndarray] = {}
        for group in groups:
            best: np.ndarray | None = None
            for term, weight in group.items():
                if term not in self.vocab or weight <= 0:
                    continue
                if term not in cache:
                    cache[term] = np.asarray(self.bm25.get_scores([term]), dtype=np.float32)
                s = cache[term] * np.float32(weight)
                best = s if best is None else np.maximum(best, s)
            if best is not None:
                total += best
        return total

    def idf(self, terms: list[str]) -> np.ndarray:
        """Inverse document frequency of each term (0 for terms the collection lacks)."""
        if self.bm25 is None:
            return np.zeros(len(terms), dtype=np.float32)
        indptr = self.bm25.scores["indptr"]
        out = np.zeros(len(terms), dtype=np.float32)
        for i, t in enumerate(terms):
            tid = self.vocab.get(t)
            if tid is not None:
                df = int(indptr[tid + 1] - indptr[tid])
                out[i] = np.log(1 + (self.n_docs - df + 0.5) / (df + 0.5))
        return out
