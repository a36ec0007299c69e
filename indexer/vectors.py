"""The FAISS side of an index version.

Vectors are L2-normalised and searched by inner product, which equals cosine
similarity on unit vectors. FAISS ids are the passages' SQLite row ids (int64),
so a hit maps straight back to its passage.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

VECTORS_FILE = "vectors.faiss"


def _faiss() -> Any:
    import faiss

    return faiss


def new_index(dim: int) -> Any:
    """An exact inner-product index with explicit ids (removals supported)."""
    faiss = _faiss()
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def load(path: Path) -> Any:
    return _faiss().read_index(str(path))


def save(index: Any, path: Path) -> None:
    try:
        _faiss().write_index(index, str(path))
    except RuntimeError as exc:
        # FAISS reports a failed write as C++ text ending in "(No space left on device)";
        # an OSError with its errno lets callers treat it as any other failed write
        text = str(exc)
        reason = text[text.rfind("(") + 1 : -1] if text.endswith(")") else text.splitlines()[0]
        code = next((e for e in sorted(errno.errorcode) if os.strerror(e) == reason), errno.EIO)
        raise OSError(code, reason, str(path)) from None


def add(index: Any, ids: np.ndarray, vecs: np.ndarray) -> None:
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, dtype=np.int64))


def remove(index: Any, ids: list[int] | np.ndarray) -> None:
    if len(ids):
        index.remove_ids(np.asarray(ids, dtype=np.int64))


def search(index: Any, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (scores, ids) for one query; ``allowed`` restricts the search to those ids."""
    faiss = _faiss()
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    k = max(1, min(k, index.ntotal))
    if allowed is None:
        scores, ids = index.search(q, k)
    else:
        if len(allowed) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        # the filter runs inside FAISS, so k hits come back whenever k ids match
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        scores, ids = index.search(q, min(k, len(allowed)), params=faiss.SearchParameters(sel=sel))
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]
