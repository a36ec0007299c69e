"""Immutable segments: the pieces an index version is made of, as in Lucene.

A segment is a folder under ``segments/`` holding the articles of one build (or of
one merge): their SQLite rows, their FAISS index and their BM25 postings. It is
written once, checksummed, and never changed again; a version lists its segments
in id order (each covers a range of article rows and passage ids above the one
before it) and marks the articles it deleted from them (``deletions.py``). An
update therefore writes what changed, and a process that follows new versions
keeps every segment it already opened.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import postings as postings_mod
from . import vectors
from .columns import Columns
from .errors import IndexCorruptError, IndexVersionError
from .manifest import SegmentInfo
from .store import DB_FILE, Store

POSTINGS_DIR = "postings"


class SegmentReader:
    """One segment opened for reading; shared by every version that lists it."""

    def __init__(self, info: SegmentInfo, folder: Path, index_path: Path, *, dim: int) -> None:
        self.info = info
        self.dim = dim
        self.folder = folder
        db, vec = folder / DB_FILE, folder / vectors.VECTORS_FILE
        for f in (db, vec):
            if not f.is_file():
                raise IndexCorruptError(index_path, f"{f.relative_to(index_path)} is missing")
        try:
            self.store = Store(db)
        except IndexVersionError:
            raise  # its own message: upgrade, or rebuild
        except Exception as exc:  # sqlite3.DatabaseError, or a garbled header
            raise IndexCorruptError(index_path, f"database unreadable: {exc}") from None
        self._index_path = index_path
        self._vectors: Any = None
        self._postings: postings_mod.SegmentPostings | None = None
        self._columns: Columns | None = None
        self._lock = threading.Lock()

    @property
    def vectors(self) -> Any:
        """The segment's FAISS index, loaded on first use (a build that only adds never loads it)."""
        with self._lock:
            if self._vectors is None:
                try:
                    index = vectors.load(self.folder / vectors.VECTORS_FILE)
                except Exception as exc:  # faiss raises RuntimeError with C++ text on any damage
                    detail = str(exc).splitlines()[0][:80]
                    raise IndexCorruptError(self._index_path, f"vector file unreadable: {detail}") from None
                if index.ntotal != self.info.passages or index.d != self.dim:
                    raise IndexCorruptError(
                        self._index_path,
                        f"segment {self.info.name}: {index.ntotal} vectors of dimension {index.d} for "
                        f"{self.info.passages} passages of dimension {self.dim}",
                    )
                self._vectors = index
            return self._vectors

    @property
    def postings(self) -> postings_mod.SegmentPostings:
        """The segment's BM25 postings, loaded on first use."""
        if self._postings is None:
            try:
                self._postings = postings_mod.SegmentPostings(self.folder / POSTINGS_DIR)
            except (OSError, ValueError, KeyError) as exc:
                raise IndexCorruptError(self._index_path, f"lexical index unreadable: {exc}") from None
        return self._postings

    @property
    def columns(self) -> Columns:
        """The segment's metadata columns (every row, deleted ones included), read on first use."""
        with self._lock:
            if self._columns is None:
                self._columns = Columns.load(self.store.con)
            return self._columns

    def close(self) -> None:
        """Close the segment's database."""
        self.store.close()


def segment_name(folder: Path) -> str:
    """The next segment folder name: numbers only increase, so names sort in creation order."""
    numbers = [int(p.name[1:7]) for p in folder.iterdir() if p.name[:1] == "s" and p.name[1:7].isdigit()]
    return f"s{max(numbers, default=0) + 1:06d}"


def route(bounds: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which segment (index into the list whose range starts are ``bounds``) holds each id."""
    return np.searchsorted(bounds, ids, side="right") - 1
