"""The SQLite side of an index version: articles, passages and their vectors.

A published version is immutable and opened read-only (``immutable=1``), so any
number of readers can use it while a build writes the next version elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .records import Article, Chunk

DB_FILE = "store.sqlite"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    url TEXT, date TEXT, source TEXT, author TEXT, lang TEXT, path TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    dup_group INTEGER  -- rowid of the first article of its near-duplicate cluster (dedup.py)
);
CREATE INDEX IF NOT EXISTS articles_lang ON articles(lang);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE INDEX IF NOT EXISTS articles_date ON articles(date);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the FAISS id of the passage's vector
    article INTEGER NOT NULL REFERENCES articles(rowid),
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    text_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_article ON passages(article, ord);
CREATE INDEX IF NOT EXISTS passages_text_hash ON passages(text_hash);
-- kept apart so scans of passages never page through 1.5 KB blobs
CREATE TABLE IF NOT EXISTS vectors (passage INTEGER PRIMARY KEY, vector BLOB NOT NULL);
-- each passage's sentences (spans relative to the passage) with their late-chunked vectors (highlight.py)
CREATE TABLE IF NOT EXISTS sentences (passage INTEGER PRIMARY KEY, data BLOB NOT NULL);
-- analysed BM25 terms of each passage (title + text), space separated (lexical.py)
CREATE TABLE IF NOT EXISTS terms (passage INTEGER PRIMARY KEY, terms TEXT NOT NULL);
-- MinHash signatures and their LSH band keys, for near-duplicate clusters (dedup.py)
CREATE TABLE IF NOT EXISTS minhash (article INTEGER PRIMARY KEY, sig BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bands (band INTEGER NOT NULL, bucket INTEGER NOT NULL, article INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS bands_bucket ON bands(band, bucket);
CREATE INDEX IF NOT EXISTS bands_article ON bands(article);
"""


def article_hash(a: Article) -> str:
    """Content hash of everything about an article that ends up in the index."""
    payload = json.dumps(
        [a.id, a.title, a.text, a.url, a.date, a.source, a.author, a.lang, a.meta],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class PassageRow:
    """A passage joined with its article's metadata, as search returns it."""

    id: int
    article_id: str
    title: str
    text: str
    start: int
    end: int
    url: str | None
    date: str | None
    source: str | None
    author: str | None
    lang: str | None


@dataclass(frozen=True)
class Filters:
    """Restrictions applied inside the search, not after it."""

    langs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    date_from: str | None = None  # inclusive, ISO date
    date_to: str | None = None  # inclusive, ISO date

    def __bool__(self) -> bool:
        return bool(self.langs or self.sources or self.date_from or self.date_to)

    def normalized(self) -> Filters:
        """Checked and canonical: language codes lower-cased, dates completed to full days.

        Raises ``QueryError`` naming the bad value.
        """
        from .errors import QueryError
        from .language import normalize_code

        langs = []
        for raw in self.langs:
            code = normalize_code(str(raw))
            if code is None:
                raise QueryError(f"invalid language {raw!r}: use a two-letter code such as fr, en, de")
            langs.append(code)
        lo = _iso_day(self.date_from, end=False, flag="--date-from")
        hi = _iso_day(self.date_to, end=True, flag="--date-to")
        if lo and hi and lo > hi:
            raise QueryError(f"--date-from {lo} is after --date-to {hi}")
        sources = tuple(s.strip() for s in self.sources if s and s.strip())
        return Filters(langs=tuple(dict.fromkeys(langs)), sources=sources, date_from=lo, date_to=hi)

    def sql(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.langs:
            clauses.append(f"a.lang IN ({','.join('?' * len(self.langs))})")
            params += list(self.langs)
        if self.sources:
            clauses.append(f"a.source IN ({','.join('?' * len(self.sources))})")
            params += list(self.sources)
        if self.date_from:
            clauses.append("a.date >= ?")
            params.append(self.date_from)
        if self.date_to:
            # full timestamps sort after their date; compare on the date part
            clauses.append("substr(a.date, 1, 10) <= ?")
            params.append(self.date_to)
        return (" AND ".join(clauses) or "1"), params


def _iso_day(value: str | None, *, end: bool, flag: str) -> str | None:
    """``2024`` / ``2024-05`` / ``2024-05-17`` → a full ISO day (first or last of the period)."""
    import calendar
    import re
    from datetime import date

    from .errors import QueryError

    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", text)
    try:
        if not m:
            raise ValueError
        year, month, day = int(m[1]), int(m[2] or (12 if end else 1)), m[3]
        last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
        d = date(year, month, int(day) if day else (last if end else 1))
    except ValueError:
        raise QueryError(f"invalid date {text!r} for {flag}: use YYYY-MM-DD (or YYYY-MM, YYYY)") from None
    return d.isoformat()


def connect_readonly(path: Path) -> sqlite3.Connection:
    uri = f"file:{path.resolve().as_posix()}?mode=ro&immutable=1"
    con = sqlite3.connect(uri, uri=True, check_same_thread=False)
    con.execute("PRAGMA query_only = 1")
    return con


class Store:
    """Read access to one published version's database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = connect_readonly(path)
        self.con.execute("SELECT count(*) FROM info").fetchone()  # fails fast on a garbled file

    def close(self) -> None:
        self.con.close()

    def counts(self) -> dict[str, int]:
        a = self.con.execute("SELECT count(*) FROM articles").fetchone()[0]
        p = self.con.execute("SELECT count(*) FROM passages").fetchone()[0]
        return {"articles": int(a), "passages": int(p)}

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, tuple[bytes, bytes | None]]:
        return vectors_by_text_hash(self.con, hashes)

    def sentence_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            q = f"SELECT passage, data FROM sentences WHERE passage IN ({','.join('?' * len(part))})"
            out.update(self.con.execute(q, part))
        return out

    def known_articles(self) -> dict[str, tuple[int, str]]:
        """Article id → (row id, content hash), to tell what a build must change."""
        return {r[0]: (int(r[1]), r[2]) for r in self.con.execute("SELECT id, rowid, content_hash FROM articles")}

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]:
        out: dict[int, PassageRow] = {}
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self.con.execute(
                f"""SELECT p.id, a.id, a.title, substr(a.text, p.start + 1, p.end - p.start),
                           p.start, p.end, a.url, a.date, a.source, a.author, a.lang
                    FROM passages p JOIN articles a ON a.rowid = p.article
                    WHERE p.id IN ({",".join("?" * len(part))})""",
                part,
            )
            for r in rows:
                out[int(r[0])] = PassageRow(*r)
        return out

    def article_keys(self, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Passage id → (article row id, near-duplicate group) — cheap: no text is read."""
        out: dict[int, tuple[int, int]] = {}
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            rows = self.con.execute(
                f"""SELECT p.id, p.article, coalesce(a.dup_group, p.article)
                    FROM passages p JOIN articles a ON a.rowid = p.article
                    WHERE p.id IN ({",".join("?" * len(part))})""",
                part,
            )
            out.update((r[0], (r[1], r[2])) for r in rows)
        return out

    def duplicates(self, article_rowid: int) -> list[str]:
        """Ids of the other articles in the same near-duplicate cluster."""
        rows = self.con.execute(
            """SELECT b.id FROM articles a JOIN articles b ON b.dup_group = a.dup_group AND b.rowid != a.rowid
               WHERE a.rowid = ? ORDER BY b.date, b.id""",
            (article_rowid,),
        )
        return [r[0] for r in rows]

    def passage_terms(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            q = f"SELECT passage, terms FROM terms WHERE passage IN ({','.join('?' * len(part))})"
            out.update(self.con.execute(q, part))
        return out

    def passage_ids(self, filters: Filters) -> np.ndarray:
        where, params = filters.sql()
        rows = self.con.execute(
            f"SELECT p.id FROM passages p JOIN articles a ON a.rowid = p.article WHERE {where}", params
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def article(self, article_id: str) -> Article | None:
        r = self.con.execute(
            "SELECT id, text, title, url, date, source, author, lang, path, meta FROM articles WHERE id = ?",
            (article_id,),
        ).fetchone()
        if r is None:
            return None
        return Article(
            id=r[0],
            text=r[1],
            title=r[2],
            url=r[3],
            date=r[4],
            source=r[5],
            author=r[6],
            lang=r[7],
            path=r[8],
            meta=json.loads(r[9] or "{}"),
        )

    def language_counts(self) -> dict[str, int]:
        """Passages per article language, most frequent first."""
        rows = self.con.execute(
            """SELECT a.lang, count(*) FROM passages p JOIN articles a ON a.rowid = p.article
               WHERE a.lang IS NOT NULL GROUP BY a.lang ORDER BY 2 DESC"""
        )
        return {r[0]: int(r[1]) for r in rows}

    def passage_langs(self, ids: Sequence[int]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), 900):
            part = ids[i : i + 900]
            q = f"""SELECT p.id, a.lang FROM passages p JOIN articles a ON a.rowid = p.article
                    WHERE p.id IN ({",".join("?" * len(part))})"""
            out.update(self.con.execute(q, part))
        return out

    def facets(self) -> dict[str, list[str]]:
        """Distinct languages and sources, and the date range, for filter widgets."""
        langs = [r[0] for r in self.con.execute("SELECT DISTINCT lang FROM articles WHERE lang IS NOT NULL ORDER BY 1")]
        sources = [
            r[0] for r in self.con.execute("SELECT DISTINCT source FROM articles WHERE source IS NOT NULL ORDER BY 1")
        ]
        lo, hi = self.con.execute("SELECT min(substr(date,1,10)), max(substr(date,1,10)) FROM articles").fetchone()
        return {"langs": langs, "sources": sources, "dates": [d for d in (lo, hi) if d]}

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored float32 vectors for passage ids, in the given order."""
        found = dict(iter_vectors(self.con, ids))
        return (
            np.stack([np.frombuffer(found[int(i)], dtype=np.float32, count=dim) for i in ids])
            if ids
            else np.zeros((0, dim), np.float32)
        )


def vectors_by_text_hash(con: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, tuple[bytes, bytes | None]]:
    """Stored vector (and sentence blob) of passages whose embedded text has one of these hashes."""
    out: dict[str, tuple[bytes, bytes | None]] = {}
    for i in range(0, len(hashes), 500):
        part = list(hashes[i : i + 500])
        for h, v, sent in con.execute(
            f"""SELECT p.text_hash, v.vector, s.data FROM passages p JOIN vectors v ON v.passage = p.id
                LEFT JOIN sentences s ON s.passage = p.id
                WHERE p.text_hash IN ({",".join("?" * len(part))})""",
            part,
        ):
            out[h] = (v, sent)
    return out


def iter_vectors(con: sqlite3.Connection, ids: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    ids = [int(i) for i in ids]
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        yield from con.execute(
            f"SELECT passage, vector FROM vectors WHERE passage IN ({','.join('?' * len(part))})", part
        )


class Writer:
    """Writes one new version's database; only ever a private, unpublished file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The file is invisible to readers until published and thrown away if the
        # build dies, so durability comes from one fsync at the end, not a journal.
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("PRAGMA journal_mode = OFF")
        self.con.execute("PRAGMA synchronous = OFF")
        self.con.execute("PRAGMA cache_size = -65536")
        self.con.executescript(SCHEMA)
        self.con.execute("INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.con.execute("BEGIN")

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, tuple[bytes, bytes | None]]:
        return vectors_by_text_hash(self.con, hashes)

    def delete_article(self, rowid: int) -> list[int]:
        """Remove an article and its passages; returns the passage ids to drop from FAISS."""
        ids = [r[0] for r in self.con.execute("SELECT id FROM passages WHERE article = ?", (rowid,))]
        self.con.execute("DELETE FROM vectors WHERE passage IN (SELECT id FROM passages WHERE article = ?)", (rowid,))
        self.con.execute("DELETE FROM terms WHERE passage IN (SELECT id FROM passages WHERE article = ?)", (rowid,))
        self.con.execute("DELETE FROM sentences WHERE passage IN (SELECT id FROM passages WHERE article = ?)", (rowid,))
        self.con.execute("DELETE FROM passages WHERE article = ?", (rowid,))
        self.con.execute("DELETE FROM minhash WHERE article = ?", (rowid,))
        self.con.execute("DELETE FROM bands WHERE article = ?", (rowid,))
        self.con.execute("DELETE FROM articles WHERE rowid = ?", (rowid,))
        return ids

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

        cur = self.con.execute(
            """INSERT INTO articles (id, title, text, url, date, source, author, lang, path, meta, content_hash)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (a.id, a.title, a.text, a.url, a.date, a.source, a.author, a.lang, a.path,
             json.dumps(a.meta, ensure_ascii=False, default=str), content_hash),
        )  # fmt: skip
        rowid = int(cur.lastrowid or 0)
        self.con.execute("UPDATE articles SET dup_group = rowid WHERE rowid = ?", (rowid,))
        ids = []
        blobs = sentence_blobs or [None] * len(chunks)
        for c, h, v, t, blob in zip(chunks, hashes, vectors, terms, blobs):
            cur = self.con.execute(
                "INSERT INTO passages (article, ord, start, end, n_tokens, text_hash) VALUES (?, ?, ?, ?, ?, ?)",
                (rowid, c.ordinal, c.start, c.end, c.n_tokens, h),
            )
            pid = int(cur.lastrowid or 0)
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
        a = self.con.execute("SELECT count(*) FROM articles").fetchone()[0]
        p = self.con.execute("SELECT count(*) FROM passages").fetchone()[0]
        return {"articles": int(a), "passages": int(p)}

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

    def commit_and_close(self) -> None:
        self.con.execute("COMMIT")
        self.con.execute("PRAGMA optimize")
        self.con.close()
