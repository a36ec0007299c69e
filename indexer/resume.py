"""The resume cache: vectors a build computed, committed in chunks outside the version folder.

A build killed before it publishes leaves them in ``.work/``; the next build looks
every new passage up by its text hash before embedding it, so work done before a
kill is not done again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .layout import RESUME as RESUME_FILE
from .records import StoredVector
from .store import select_in


class Lookup(Protocol):
    """A database that can find vectors by the hash of their embedded text."""

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, StoredVector]:
        """The vectors stored under these hashes."""
        ...


def _open(path: Path) -> sqlite3.Connection:
    """The resume cache's database; a garbled one (a disk error, a stray file) is only a cache: start afresh."""
    for attempt in (1, 2):
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            return con
        except sqlite3.DatabaseError:
            con.close()
            if attempt == 2:
                raise
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(f"{path}{suffix}")
                except FileNotFoundError:
                    pass
    raise AssertionError("unreachable")


class ResumeCache:
    """Vectors computed by this build, committed in chunks: a killed build resumes from them."""

    VERSION = "2"  # bump when the rows' layout changes: an older cache is then discarded

    def __init__(self, path: Path, key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = _open(path)
        self.con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self.con.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if row is None or row[0] != f"{key}|{self.VERSION}":  # another model's vectors are useless here
            self.con.execute("DROP TABLE IF EXISTS vectors")
            self.con.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (f"{key}|{self.VERSION}",))
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vector BLOB NOT NULL, sentences BLOB)"
        )

    def get(self, hashes: list[str]) -> dict[str, StoredVector]:
        """Vectors cached under these text hashes."""
        rows = select_in(self.con, "SELECT hash, vector, sentences FROM vectors WHERE hash IN ({marks})", hashes)
        return {h: StoredVector(v, sent) for h, v, sent in rows}

    def put(self, items: dict[str, StoredVector]) -> None:
        """Commit vectors: a kill after this returns loses none of them."""
        self.con.execute("BEGIN")
        rows = [(h, sv.vector, sv.sentences) for h, sv in items.items()]
        self.con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
        self.con.execute("COMMIT")

    def close(self) -> None:
        """Close the cache's database."""
        self.con.close()


def drop_resume_cache(work: Path) -> None:
    """Remove the cache once its vectors are published (or can no longer be used)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(work / f"{RESUME_FILE}{suffix}")
        except FileNotFoundError:
            pass


class VectorReuse:
    """Where a passage's vector may already be, asked in order before the model is.

    The version being written (an identical passage of another article), the
    previous version (a ``--full`` rebuild or a chunker change with the same model),
    then the resume cache (a build that was killed).
    """

    def __init__(self, current: Lookup, previous: Lookup | None, cache: ResumeCache) -> None:
        self.current, self.previous, self.cache = current, previous, cache

    def lookup(self, hashes: list[str]) -> dict[str, StoredVector]:
        """The stored vectors of as many of ``hashes`` as are known."""
        found = self.current.vectors_by_text_hash(hashes)
        if self.previous is not None:
            found.update(self.previous.vectors_by_text_hash([h for h in hashes if h not in found]))
        found.update(self.cache.get([h for h in dict.fromkeys(hashes) if h not in found]))
        return found

    def keep(self, items: dict[str, StoredVector]) -> None:
        """Commit freshly computed vectors to the resume cache."""
        self.cache.put(items)
