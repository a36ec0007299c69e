"""Article-level dense vectors: the normalised mean of an article's passage vectors.

Passages are what search ranks, but some questions are about whole articles: which
articles tell the same story (``stories.py``), which cover the same ground as this
one ("similar coverage"). The mean of an article's unit passage vectors, normalised
again, is the usual article embedding for mean-pooled models such as e5: each
passage counts once whatever its length, and a one-passage article's vector is its
passage's. The vectors are read from the segments' SQLite (exact float32, not the
compressed FAISS codes), by article row, so a caller pays for the articles it asks
about, not the archive.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .store import select_in

if TYPE_CHECKING:
    from .version_store import VersionStore

_BATCH = 16_384  # passage vectors fetched at a time when a whole database is read

_FOR_ROWS = """SELECT p.article, v.vector FROM passages p JOIN vectors v ON v.passage = p.id
               WHERE p.article IN ({marks})"""
_ALL = "SELECT p.article, v.vector FROM passages p JOIN vectors v ON v.passage = p.id"


@dataclass(frozen=True)
class ArticleVectors:
    """Article rows (sorted, unique) and their unit vectors, one row of ``vectors`` per article."""

    rows: np.ndarray  # int64
    vectors: np.ndarray  # float32, shape (len(rows), dim)

    @classmethod
    def empty(cls, dim: int) -> ArticleVectors:
        """No article."""
        return cls(np.zeros(0, np.int64), np.zeros((0, dim), np.float32))

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int | np.integer):
            return False
        i = int(np.searchsorted(self.rows, row))
        return i < len(self.rows) and int(self.rows[i]) == int(row)

    def positions(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Where each of ``rows`` stands in ``self.rows``; raises ``KeyError`` for a row not held."""
        want = np.asarray(rows, dtype=np.int64)
        if not len(want):
            return np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.rows, want), max(len(self.rows) - 1, 0))
        held = self.rows[pos] == want if len(self.rows) else np.zeros(len(want), bool)
        if not held.all():
            raise KeyError(f"no vector for article rows {want[~held][:5].tolist()}")
        return pos

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The vectors of ``rows``, in that order."""
        return self.vectors[self.positions(rows)]

    def union(self, other: ArticleVectors) -> ArticleVectors:
        """Both sets of articles; a row held by both keeps ``other``'s vector (the newer reading)."""
        if not len(other):
            return self
        keep = ~np.isin(self.rows, other.rows)
        rows = np.concatenate([self.rows[keep], other.rows])
        vecs = np.concatenate([self.vectors[keep], other.vectors])
        order = np.argsort(rows, kind="stable")
        return ArticleVectors(rows[order], vecs[order])

    def without(self, rows: Iterable[int]) -> ArticleVectors:
        """These articles less ``rows``."""
        drop = np.fromiter(rows, np.int64)
        keep = ~np.isin(self.rows, drop)
        return ArticleVectors(self.rows[keep], self.vectors[keep])


def mean_vectors(owners: np.ndarray, vectors: np.ndarray) -> ArticleVectors:
    """Per article row in ``owners``, the normalised mean of its passages' ``vectors``."""
    owners = np.asarray(owners, dtype=np.int64)
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(owners) != len(vectors):
        raise ValueError(f"{len(owners)} owners for {len(vectors)} vectors")
    rows, where = np.unique(owners, return_inverse=True)
    sums = np.zeros((len(rows), vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    np.add.at(sums, where, vectors)
    return ArticleVectors(rows, _unit(sums))


def _unit(sums: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    # a zero sum (opposite passages, or none stored) has no direction: leave it zero, it then matches nothing
    return np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)


def _accumulate(pairs: Iterable[tuple[int, bytes]], dim: int, rows: np.ndarray, sums: np.ndarray) -> None:
    owners: list[int] = []
    blobs: list[bytes] = []

    def flush() -> None:
        if owners:
            vecs = np.frombuffer(b"".join(blobs), np.float32).reshape(len(blobs), dim)
            np.add.at(sums, np.searchsorted(rows, np.asarray(owners, np.int64)), vecs)
            owners.clear()
            blobs.clear()

    for owner, blob in pairs:
        if len(blob) != 4 * dim:
            raise ValueError(f"a stored vector of article row {owner} has {len(blob) // 4} values, not {dim}")
        owners.append(int(owner))
        blobs.append(blob)
        if len(owners) == _BATCH:
            flush()
    flush()


def read_database(con: sqlite3.Connection, dim: int, rows: Sequence[int] | None = None) -> ArticleVectors:
    """Article vectors from one segment's database (a published ``Store``'s or a ``Writer``'s connection).

    ``rows`` None reads every article of the database; otherwise those of ``rows`` it holds
    (an article without passages is left out).
    """
    if rows is None:
        held = np.fromiter((r[0] for r in con.execute("SELECT DISTINCT article FROM passages")), np.int64)
        held.sort()
        sums = np.zeros((len(held), dim), np.float32)
        cur = con.execute(_ALL)
        _accumulate(_rows_of(cur), dim, held, sums)
        return ArticleVectors(held, _unit(sums))
    want = np.unique(np.asarray(rows, dtype=np.int64))
    found = list(select_in(con, _FOR_ROWS, want.tolist()))
    held = np.unique(np.fromiter((r[0] for r in found), np.int64, count=len(found)))
    sums = np.zeros((len(held), dim), np.float32)
    _accumulate(((int(a), b) for a, b in found), dim, held, sums)
    return ArticleVectors(held, _unit(sums))


def _rows_of(cur: sqlite3.Cursor) -> Iterable[tuple[int, bytes]]:
    while batch := cur.fetchmany(_BATCH):
        yield from batch


def read_version(store: VersionStore, dim: int, rows: Sequence[int] | None = None) -> ArticleVectors:
    """Article vectors of a version's live articles: all of them (``rows`` None), or those of ``rows``.

    Deleted articles are left out, as are rows the version does not hold. Each segment is
    asked only for the rows in its range.
    """
    parts: list[ArticleVectors] = []
    want = None if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    dead = store.state.deleted_rows
    for seg in store.segments:
        lo, hi = seg.info.rows
        if want is None:
            part = read_database(seg.store.con, dim)
        else:
            mine = want[(want >= lo) & (want < hi)]
            if not len(mine):
                continue
            part = read_database(seg.store.con, dim, mine.tolist())
        if len(dead) and len(part):
            part = part.without(dead[(dead >= lo) & (dead < hi)].tolist())
        parts.append(part)
    if not parts:
        return ArticleVectors.empty(dim)
    # segments cover increasing, disjoint row ranges: concatenating keeps the rows sorted
    return ArticleVectors(np.concatenate([p.rows for p in parts]), np.concatenate([p.vectors for p in parts]))


__all__ = ["ArticleVectors", "mean_vectors", "read_database", "read_version"]
