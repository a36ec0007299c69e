"""A passage's best sentence as dense evidence: the cosine of its closest sentence to the question.

A question is usually answered by one sentence, and a passage's vector averages that
sentence with its neighbours. Sentence-level evidence next to the passage's own is a
long-standing remedy in passage and document ranking (e.g. Birch: the best sentences'
scores combined with the document's). The sentence vectors are already there: a
build stores, for every passage, one vector per sentence pooled from the same forward
pass as the passage's vector (for the highlights), so this costs one read of the
candidates' blobs and one matrix product, no model call.

How much it counts is ``fusion.SENTENCE_WEIGHT``; measured with ``bench/quality.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .highlight import sentence_vector_bytes


class SentenceBlobs(Protocol):
    """What this needs of a version's store."""

    def sentence_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Packed sentence vectors of passages (those that have them)."""
        ...


def cosines(
    store: SentenceBlobs, qvec: np.ndarray, pids: Sequence[int], dim: int, *, keep: dict[int, bytes] | None = None
) -> dict[int, float]:
    """For each of ``pids`` with stored sentence vectors, its best sentence's cosine to ``qvec`` (a unit vector).

    A passage without them (an index built by a backend that cannot pool sentences, or a
    blob of another dimension) is left out: it is judged on its passage vector alone.
    ``keep`` receives the blobs read, for the highlights of the same search (no second read).
    """
    if not pids:
        return {}
    blobs = store.sentence_blobs(list(pids))
    if keep is not None:
        keep.update(blobs)
    owners: list[int] = []
    counts: list[int] = []
    parts: list[bytes] = []
    for pid, blob in blobs.items():
        found = sentence_vector_bytes(blob, dim)
        if found is None:
            continue
        owners.append(pid)
        counts.append(found[0])
        parts.append(found[1])
    if not owners:
        return {}
    vecs = np.frombuffer(b"".join(parts), dtype="<f2").reshape(-1, dim).astype(np.float32)
    # row by row, not a BLAS matrix-vector product: that one's rounding depends on which rows
    # are read together, and a question's rankings share these cosines (question.py)
    sims = np.einsum("ij,j->i", vecs, np.asarray(qvec, dtype=np.float32))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    best = np.maximum.reduceat(sims, starts)
    return dict(zip(owners, best.astype(np.float64).tolist()))


__all__ = ["cosines"]
