"""Writing one new segment's database: the only code that changes a store.

The file is private until its segment is complete and thrown away if the build
dies, so durability comes from one fsync at the end (build.py), not a journal.
Row ids and passage ids are given from outside: they continue the version's, so
each segment covers ranges above the ones before it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .records import Article, Chunk, StoredVector
from .store import SCHEMA, SCHEMA_VERSION, counts, signatures, vectors_by_text_hash


class Writer:
    """Writes one new segment's database; only ever a private, unpublished file."""

    def __init__(self, path: Path, *, first_row: int = 1, first_id: int = 1) -> None:
        self.path = path
        self.first_row, self.first_id = first_row, first_id
        self.next_row, self.next_id = first_row, first_id
        self.groups: dict[int, int] = {}  # the last near-duplicate groups set (set_duplicate_groups)
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("PRAGMA journal_mode = OFF")
        self.con.execute("PRAGMA synchronous = OFF")
        self.con.execute("PRAGMA cache_size = -65536")
        # on a copy of an older version this adds what the newer schema has (CREATE … IF NOT EXISTS)
        self.con.executescript(SCHEMA)
        self.con.execute("INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.con.execute("BEGIN")

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, StoredVector]:
        """Vectors this version already holds, by the hash of their embedded text."""
        return vectors_by_text_hash(self.con, hashes)

    def add_article(
        self,
        a: Article,
        content_hash: str,
        chunks: Sequence[Chunk],
        hashes: Sequence[str],
        vectors: np.ndarray,
        terms: Sequence[Sequence[str]],
        signature: np.ndarray,
        sentence_blobs: Sequence[bytes | None] | None = None,
    ) -> list[int]:
        """Insert an article with its passages, vectors, BM25 terms and MinHash; returns the passage ids."""
        from .dedup import band_keys

        rowid = self.next_row
        self.next_row += 1
        self.con.execute(
            """INSERT INTO articles (rowid, id, title, text, url, date, source, author, lang, path, meta,
                                     content_hash, dup_group)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (rowid, a.id, a.title, a.text, a.url, a.date, a.source, a.author, a.lang, a.path,
             json.dumps(a.meta, ensure_ascii=False, default=str), content_hash, rowid),
        )  # fmt: skip
        ids = []
        blobs = sentence_blobs or [None] * len(chunks)
        for c, h, v, t, blob in zip(chunks, hashes, vectors, terms, blobs):
            pid = self.next_id
            self.next_id += 1
            self.con.execute(
                "INSERT INTO passages (id, article, ord, start, end, n_tokens, text_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (pid, rowid, c.ordinal, c.start, c.end, c.n_tokens, h),
            )
            self.con.execute("INSERT INTO vectors VALUES (?, ?)", (pid, np.asarray(v, np.float32).tobytes()))
            self.con.execute("INSERT INTO terms VALUES (?, ?)", (pid, " ".join(t)))
            if blob is not None:
                self.con.execute("INSERT INTO sentences VALUES (?, ?)", (pid, blob))
            ids.append(pid)
        self.con.execute("INSERT INTO minhash VALUES (?, ?)", (rowid, signature.astype(np.uint64).tobytes()))
        self.con.executemany(
            "INSERT INTO bands VALUES (?, ?, ?)", [(i, key, rowid) for i, key in enumerate(band_keys(signature))]
        )
        return ids

    def counts(self) -> dict[str, int]:
        """Articles and passages held so far."""
        return counts(self.con)

    def all_vectors(self, dim: int, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, for building a vector index from scratch."""
        cur = self.con.execute("SELECT passage, vector FROM vectors ORDER BY passage")
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            yield ids, vecs

    def all_terms(self) -> Iterator[tuple[int, str]]:
        """(passage id, space-separated analysed terms) of every passage, by id (postings.py)."""
        yield from self.con.execute("SELECT passage, terms FROM terms ORDER BY passage")

    # ------------------------------------------------------- near-duplicates
    def band_pairs(self) -> list[tuple[int, int]]:
        """Article pairs sharing an LSH band key: the near-duplicate candidates (dedup.py)."""
        return self.con.execute(
            """WITH shared AS (SELECT band, bucket FROM bands GROUP BY band, bucket HAVING count(*) > 1)
               SELECT DISTINCT x.article, y.article FROM shared s
               JOIN bands x ON x.band = s.band AND x.bucket = s.bucket
               JOIN bands y ON y.band = s.band AND y.bucket = s.bucket AND y.article > x.article"""
        ).fetchall()

    def signatures(self, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """MinHash signatures of articles."""
        return signatures(self.con, rowids)

    def set_duplicate_groups(self, groups: dict[int, int]) -> None:
        """Every article its own group, except those given: article row → its cluster's first row."""
        self.groups = dict(groups)
        self.con.execute("UPDATE articles SET dup_group = rowid")
        self.con.executemany("UPDATE articles SET dup_group = ? WHERE rowid = ?", [(g, a) for a, g in groups.items()])

    def copy_segment(self, path: Path, dead_rows: Sequence[int]) -> None:
        """Copy a segment's rows, but those of ``dead_rows`` (a merge)."""
        self.con.execute("COMMIT")  # ATTACH cannot run inside a transaction
        self.con.execute("ATTACH DATABASE ? AS src", (f"file:{path.resolve().as_posix()}?mode=ro&immutable=1",))
        try:
            self.con.execute("BEGIN")
            self.con.execute("CREATE TEMP TABLE IF NOT EXISTS dead (rowid INTEGER PRIMARY KEY)")
            self.con.execute("DELETE FROM dead")
            self.con.executemany("INSERT INTO dead VALUES (?)", [(int(r),) for r in dead_rows])
            live_ids = "SELECT id FROM src.passages WHERE article NOT IN (SELECT rowid FROM dead)"
            statements = [
                "INSERT INTO articles SELECT * FROM src.articles WHERE rowid NOT IN (SELECT rowid FROM dead)",
                "INSERT INTO passages SELECT * FROM src.passages WHERE article NOT IN (SELECT rowid FROM dead)",
                f"INSERT INTO vectors SELECT * FROM src.vectors WHERE passage IN ({live_ids})",
                f"INSERT INTO sentences SELECT * FROM src.sentences WHERE passage IN ({live_ids})",
                f"INSERT INTO terms SELECT * FROM src.terms WHERE passage IN ({live_ids})",
                "INSERT INTO minhash SELECT * FROM src.minhash WHERE article NOT IN (SELECT rowid FROM dead)",
                "INSERT INTO bands SELECT * FROM src.bands WHERE article NOT IN (SELECT rowid FROM dead)",
            ]
            for sql in statements:
                self.con.execute(sql)
            self.con.execute("COMMIT")
        finally:
            self.con.execute("DETACH DATABASE src")
        self.con.execute("BEGIN")

    def commit_and_close(self) -> None:
        """Commit, let SQLite refresh its statistics, close."""
        self.con.execute("COMMIT")
        self.con.execute("PRAGMA optimize")
        self.con.close()
