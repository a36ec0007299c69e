"""The resume cache: vectors a build computed, committed in chunks outside the version folder.

A build killed before it publishes leaves them in ``.work/``; the next build looks
every new passage up by its text hash before embedding it, so work done before a
kill is not done again.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

RESUME_FILE = "embeddings.sqlite"


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

    def get(self, hashes: list[str]) -> dict[str, tuple[bytes, bytes | None]]:
        out: dict[str, tuple[bytes, bytes | None]] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            q = f"SELECT hash, vector, sentences FROM vectors WHERE hash IN ({','.join('?' * len(part))})"
            out.update((h, (v, sent)) for h, v, sent in self.con.execute(q, part))
        return out

    def put(self, items: list[tuple[str, tuple[bytes, bytes | None]]]) -> None:
        self.con.execute("BEGIN")
        self.con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", [(h, v, s) for h, (v, s) in items])
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


def drop_resume_cache(work: Path) -> None:
    """Remove the cache once its vectors are published (or can no longer be used)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(work / f"{RESUME_FILE}{suffix}")
        except FileNotFoundError:
            pass
