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
class TermMatch:
    """A query term found in a passage: the analysed form, the query word it came from, and how."""

    term: str  # as the index holds it (stemmed, folded), e.g. ``arctiqu``
    word: str  # the query word it was analysed from, e.g. ``l'Arctique``
    analysis: str  # which analysis produced it, e.g. ``fr stemmer``, ``character bigrams``
    bm25: float  # its share of the passage's BM25 score (weighted by the analysis language)

    def to_json(self) -> dict[str, Any]:
        """The match as ``--json --explain`` prints it."""
        return {"term": self.term, "word": self.word, "analysis": self.analysis, "bm25": round(self.bm25, 6)}


@dataclass(frozen=True)
class Evidence:
    """What a hit was ranked on, in raw terms that mean the same thing across queries (calibration's input)."""

    fused: float  # the mode's ranking score (min-max normalised per query in hybrid)
    dense: float | None = None  # cosine of the question's and the passage's vectors
    sentence: float | None = None  # cosine of the question's and the passage's closest sentence's (when stored)
    bm25: float | None = None  # the passage's BM25 score
    lang_weight: float | None = None  # how much BM25 counts for the passage's language (hybrid; × coverage)
    coverage: float | None = None  # share of the query's words found anywhere in the collection
    matched: float | None = None  # share of the query's words the passage holds (BM25 terms, title included)
    # the query's candidates as a whole: what a hit must stand out from
    dense_top: float | None = None  # the best cosine
    dense_mean: float | None = None  # mean cosine of the 100 most similar passages
    dense_spread: float | None = None  # their standard deviation
    bm25_top: float | None = None  # the best BM25 score
    # the best sentences of the query's BACKGROUND best dense candidates (by passage cosine), when stored
    sentence_top: float | None = None  # the best of their best-sentence cosines
    sentence_mean: float | None = None  # their mean
    sentence_spread: float | None = None  # their standard deviation
    runner_up: float | None = None  # the best ranking score of any other article among the candidates
    dense_rank: int | None = None  # rank among the dense candidates by what the dense side ranks on (1 = first)
    bm25_rank: int | None = None  # rank among the BM25 candidates; None when it holds no query term

    def to_json(self) -> dict[str, float | None]:
        """The evidence, rounded."""
        return {k: (None if v is None else round(v, 6)) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Explanation:
    """Why a hit ranks where it does: the evidence of each side, how it was weighed, and the scores.

    A side the mode does not use (BM25 in dense mode, the vectors in bm25 mode) is None.
    """

    evidence: Evidence  # each side's raw scores and the query's background (see ``Evidence``)
    dense_rank: int | None  # rank of the passage among the dense candidates (1 = most similar)
    bm25_rank: int | None  # rank among the BM25 candidates; None when it holds no query term
    terms: list[TermMatch]  # the query terms the passage holds, best first
    calibrated: float  # ``Hit.score``: the estimated chance that the hit answers the question
    calibration: str  # what the score is: fitted for the index's model, or the generic mapping

    def to_json(self) -> dict[str, Any]:
        """The explanation as ``--json --explain`` prints it."""
        e = self.evidence.to_json()
        return {
            "dense": e["dense"],
            "dense_rank": self.dense_rank,
            "bm25": e["bm25"],
            "bm25_rank": self.bm25_rank,
            "terms": [t.to_json() for t in self.terms],
            "lang_weight": e["lang_weight"],
            "coverage": e["coverage"],
            "fused": e["fused"],
            "calibrated": round(self.calibrated, 6),
            "calibration": self.calibration,
            "evidence": e,
        }


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
    #: the query terms BM25 matched, as character offsets in the article (the page's lighter highlight)
    term_highlights: list[tuple[int, int]] = field(default_factory=list)
    explanation: Explanation | None = None  # with ``SearchOptions(explain=True)``
    story_id: int | None = None  # the story of its article (story_index.py); None for an index without stories

    def to_json(self) -> dict[str, Any]:
        """The hit as ``--json`` prints it (``explanation`` only when asked for)."""
        out = {
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
            "term_highlights": [list(h) for h in self.term_highlights],
            "duplicates": list(self.duplicates),
            "story_id": self.story_id,
        }
        if self.explanation is not None:
            out["explanation"] = self.explanation.to_json()
        return out


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
