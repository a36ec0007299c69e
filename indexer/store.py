"""The SQLite side of a segment: articles, passages and their vectors.

A written segment is immutable and opened read-only (``immutable=1``), so any
number of readers can use it while a build writes new segments elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import IndexVersionError
from .records import Article, Facets, KnownArticle, StoredVector

DB_FILE = "store.sqlite"
#: 1: the first layout. 2: + an index on ``articles.dup_group``. Readers accept every
#: version up to this one; a build migrates an older version by writing the next one.
SCHEMA_VERSION = 2
#: ids bound per ``IN (…)`` statement, well below SQLite's limit on host parameters
IN_BATCH = 900

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
-- a hit's near-duplicates are looked up by group: without it, every hit scans every article (schema 2)
CREATE INDEX IF NOT EXISTS articles_dup ON articles(dup_group);
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
-- analysed BM25 terms of each passage (title + text), space separated (postings.py)
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
    """Hash of a passage's embedded text: the key under which its vector is reused."""
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


class ArticleKey(NamedTuple):
    """What grouping needs of a passage: its article's row and its near-duplicate group."""

    article: int
    group: int


class PassageFacts(NamedTuple):
    """What filters and grouping read of a passage: its article's row, language, source and date."""

    id: int
    article: int
    lang: str | None
    source: str | None
    date: str | None


class PassageState(NamedTuple):
    """What tells whether a synced copy of a passage is still right (milvus_sync.py)."""

    id: int
    text_hash: str
    start: int
    end: int
    content_hash: str
    group: int


def chunks(values: Iterable[Any], size: int = IN_BATCH) -> Iterator[list[Any]]:
    """``values`` in lists of at most ``size``, numpy integers made plain (sqlite3 cannot bind them)."""
    part: list[Any] = []
    for v in values:
        part.append(int(v) if isinstance(v, np.integer) else v)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def select_in(con: sqlite3.Connection, sql: str, values: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql``, whose ``{marks}`` stands for an ``IN`` list, for all ``values``, a batch at a time."""
    for part in chunks(values):
        yield from con.execute(sql.format(marks=",".join("?" * len(part))), part)


def select_in_with(
    con: sqlite3.Connection, sql: str, first: tuple[Any, ...], values: Iterable[Any]
) -> Iterator[tuple[Any, ...]]:
    """As ``select_in``, with ``first`` bound to the placeholders before the ``IN`` list."""
    for part in chunks(values):
        yield from con.execute(sql.format(marks=",".join("?" * len(part))), (*first, *part))


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to a published (immutable) database."""
    uri = f"file:{path.resolve().as_posix()}?mode=ro&immutable=1"
    con = sqlite3.connect(uri, uri=True, check_same_thread=False)
    con.execute("PRAGMA query_only = 1")
    return con


def schema_version(con: sqlite3.Connection) -> int:
    """The layout version a database was written with (1 when it predates the record)."""
    row = con.execute("SELECT value FROM info WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else 1
    except ValueError:
        return 0


def vectors_by_text_hash(con: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, StoredVector]:
    """Stored vector (and sentence blob) of passages whose embedded text has one of these hashes."""
    sql = """SELECT p.text_hash, v.vector, s.data FROM passages p JOIN vectors v ON v.passage = p.id
             LEFT JOIN sentences s ON s.passage = p.id WHERE p.text_hash IN ({marks})"""
    return {h: StoredVector(v, sent) for h, v, sent in select_in(con, sql, list(hashes))}


def signatures(con: sqlite3.Connection, rowids: Sequence[int]) -> dict[int, np.ndarray]:
    """MinHash signatures of articles, by row (dedup.py)."""
    rows = select_in(con, "SELECT article, sig FROM minhash WHERE article IN ({marks})", rowids)
    return {int(a): np.frombuffer(blob, dtype=np.uint64) for a, blob in rows}


def counts(con: sqlite3.Connection) -> dict[str, int]:
    """Articles and passages held."""
    a = con.execute("SELECT count(*) FROM articles").fetchone()[0]
    p = con.execute("SELECT count(*) FROM passages").fetchone()[0]
    return {"articles": int(a), "passages": int(p)}


class Store:
    """Read access to one published version's database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = connect_readonly(path)
        self.con.execute("SELECT count(*) FROM info").fetchone()  # fails fast on a garbled file
        self.schema_version = schema_version(self.con)
        if self.schema_version > SCHEMA_VERSION or self.schema_version < 1:
            self.con.close()
            raise IndexVersionError(
                f"the database at {path} has schema v{self.schema_version}, which this indexer cannot read "
                f'(it reads v1 to v{SCHEMA_VERSION}) — upgrade indexer, or rebuild with "indexer build --full"'
            )

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def counts(self) -> dict[str, int]:
        """Articles and passages held."""
        return counts(self.con)

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, StoredVector]:
        """Stored vectors of passages by the hash of their embedded text."""
        return vectors_by_text_hash(self.con, hashes)

    def sentence_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Packed sentence vectors of passages (those that have them)."""
        return dict(select_in(self.con, "SELECT passage, data FROM sentences WHERE passage IN ({marks})", ids))

    def known_articles(self) -> dict[str, KnownArticle]:
        """Article id → its row and content hash, to tell what a build must change."""
        rows = self.con.execute("SELECT id, rowid, content_hash FROM articles")
        return {r[0]: KnownArticle(int(r[1]), r[2]) for r in rows}

    def known_by_id(self, article_ids: Sequence[str]) -> list[tuple[str, KnownArticle]]:
        """(article id, its row and content hash) of those of ``article_ids`` this segment holds."""
        sql = "SELECT id, rowid, content_hash FROM articles WHERE id IN ({marks})"
        return [(r[0], KnownArticle(int(r[1]), r[2])) for r in select_in(self.con, sql, article_ids)]

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]:
        """Passages with their article's metadata, by passage id."""
        sql = """SELECT p.id, a.id, a.title, substr(a.text, p.start + 1, p.end - p.start),
                        p.start, p.end, a.url, a.date, a.source, a.author, a.lang
                 FROM passages p JOIN articles a ON a.rowid = p.article WHERE p.id IN ({marks})"""
        return {int(r[0]): PassageRow(*r) for r in select_in(self.con, sql, ids)}

    def article_ids(self, rowids: Sequence[int]) -> dict[int, tuple[str | None, str]]:
        """Article row → (date, id), read by primary key."""
        rows = select_in(self.con, "SELECT rowid, date, id FROM articles WHERE rowid IN ({marks})", rowids)
        return {int(r[0]): (r[1], r[2]) for r in rows}

    def passage_terms(self, ids: Sequence[int]) -> dict[int, str]:
        """Analysed BM25 terms of passages, space separated."""
        return dict(select_in(self.con, "SELECT passage, terms FROM terms WHERE passage IN ({marks})", ids))

    def passage_facts(self, ids: Sequence[int]) -> dict[int, PassageFacts]:
        """Passage id → its article's row, language, source and date (``Columns.of_passages``)."""
        sql = """SELECT p.id, p.article, a.lang, a.source, a.date FROM passages p
                 JOIN articles a ON a.rowid = p.article WHERE p.id IN ({marks})"""
        return {int(r[0]): PassageFacts(*r) for r in select_in(self.con, sql, ids)}

    def article(self, article_id: str) -> Article | None:
        """One whole article, or None."""
        row = self.article_row(article_id)
        return row[1] if row is not None else None

    def article_row(self, article_id: str) -> tuple[int, Article] | None:
        """One whole article with its row id, or None."""
        r = self.con.execute(
            "SELECT id, text, title, url, date, source, author, lang, path, meta, rowid FROM articles WHERE id = ?",
            (article_id,),
        ).fetchone()
        if r is None:
            return None
        return int(r[10]), Article(
            id=r[0], text=r[1], title=r[2], url=r[3], date=r[4], source=r[5], author=r[6], lang=r[7], path=r[8],
            meta=json.loads(r[9] or "{}"),
        )  # fmt: skip

    def language_counts(self) -> dict[str, int]:
        """Passages per article language, most frequent first."""
        rows = self.con.execute(
            """SELECT a.lang, count(*) FROM passages p JOIN articles a ON a.rowid = p.article
               WHERE a.lang IS NOT NULL GROUP BY a.lang ORDER BY 2 DESC"""
        )
        return {r[0]: int(r[1]) for r in rows}

    def passage_langs(self, ids: Sequence[int]) -> dict[int, str | None]:
        """Passage id → its article's language."""
        sql = "SELECT p.id, a.lang FROM passages p JOIN articles a ON a.rowid = p.article WHERE p.id IN ({marks})"
        return dict(select_in(self.con, sql, ids))

    def facets(self) -> Facets:
        """Distinct languages and sources, and the date range, for filter widgets."""
        langs = [r[0] for r in self.con.execute("SELECT DISTINCT lang FROM articles WHERE lang IS NOT NULL ORDER BY 1")]
        sources = [
            r[0] for r in self.con.execute("SELECT DISTINCT source FROM articles WHERE source IS NOT NULL ORDER BY 1")
        ]
        lo, hi = self.con.execute("SELECT min(substr(date,1,10)), max(substr(date,1,10)) FROM articles").fetchone()
        return Facets(langs=langs, sources=sources, dates=[d for d in (lo, hi) if d])

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored float32 vectors for passage ids, in the given order."""
        if not len(ids):
            return np.zeros((0, dim), np.float32)
        found = dict(select_in(self.con, "SELECT passage, vector FROM vectors WHERE passage IN ({marks})", ids))
        return np.stack([np.frombuffer(found[int(i)], dtype=np.float32, count=dim) for i in ids])

    def band_articles(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
        """(LSH band, bucket) → the article rows holding that band key (near-duplicate candidates)."""
        out: dict[tuple[int, int], list[int]] = {}
        for band in sorted({b for b, _ in keys}):
            buckets = [k for b, k in keys if b == band]
            sql = "SELECT bucket, article FROM bands WHERE band = ? AND bucket IN ({marks})"
            for bucket, article in select_in_with(self.con, sql, (band,), buckets):
                out.setdefault((band, int(bucket)), []).append(int(article))
        return out

    def signatures(self, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """MinHash signatures of articles."""
        return signatures(self.con, rowids)

    def article_passages(self, rowids: Sequence[int]) -> list[int]:
        """The passage ids of articles."""
        return [int(r[0]) for r in select_in(self.con, "SELECT id FROM passages WHERE article IN ({marks})", rowids)]

    def passage_states(self) -> Iterator[PassageState]:
        """Every passage with what its synced copy depends on."""
        rows = self.con.execute(
            """SELECT p.id, p.text_hash, p.start, p.end, a.content_hash, coalesce(a.dup_group, p.article)
               FROM passages p JOIN articles a ON a.rowid = p.article"""
        )
        for r in rows:
            yield PassageState(*r)
