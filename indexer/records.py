"""Typed records that cross module boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Article:
    """One article as read from a source, before chunking."""

    id: str
    text: str
    title: str = ""
    url: str | None = None
    date: str | None = None  # ISO 8601 (YYYY-MM-DD or a full timestamp) when known
    source: str | None = None
    author: str | None = None
    lang: str | None = None
    path: str | None = None  # file it came from, relative to its source root
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A file (or record) that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: ``text == article.text[start:end]``."""

    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    n_tokens: int
    sentences: tuple[tuple[int, int], ...] = ()  # the sentences it holds, as offsets in the article


@dataclass(frozen=True)
class Hit:
    """One search result: a passage and the article it comes from."""

    rank: int
    score: float
    article_id: str
    title: str
    passage_id: int
    text: str
    start: int
    end: int
    url: str | None = None
    date: str | None = None
    source: str | None = None
    lang: str | None = None
    author: str | None = None
    highlights: list[tuple[int, int]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The hit as ``--json`` prints it."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "article_id": self.article_id,
            "title": self.title,
            "passage_id": self.passage_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "url": self.url,
            "date": self.date,
            "source": self.source,
            "lang": self.lang,
            "author": self.author,
            "highlights": [list(h) for h in self.highlights],
            "duplicates": list(self.duplicates),
        }


@dataclass(frozen=True)
class KnownArticle:
    """An article the live version holds: its row and its content hash, to tell what a build must change."""

    rowid: int
    content_hash: str


@dataclass(frozen=True)
class StoredVector:
    """A passage's embedding as stored: float32 bytes, and its sentences' packed vectors (highlight.py)."""

    vector: bytes
    sentences: bytes | None = None


@dataclass(frozen=True)
class PendingArticle:
    """An article read and chunked, waiting for its passages' vectors."""

    article: Article
    content_hash: str
    chunks: list[Chunk]
    previous: KnownArticle | None = None  # the version it replaces; None for a new article

    @property
    def is_update(self) -> bool:
        """Whether it replaces an article of the live version."""
        return self.previous is not None


@dataclass(frozen=True)
class Facets:
    """What an index holds, for filter widgets: languages, sources and the date range."""

    langs: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)  # [first, last] ISO days, or empty
