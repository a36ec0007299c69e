"""Retrieval metrics over labelled queries: R@k, MRR@10, nDCG@10 and latency."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import IndexerError, QueryError
from .search import Searcher, SearchOptions


@dataclass(frozen=True)
class LabelledQuery:
    """A question and the ids of the articles that answer it."""
    query: str
    relevant: frozenset[str]  # article ids
    answer: str | None = None  # text the returned passage should contain, when known
    answer_at: int | None = None  # offset of the answer in the relevant article's text, when known


@dataclass(frozen=True)
class Metrics:
    """Retrieval quality and latency of one mode over a query set."""
    queries: int
    r1: float
    r5: float
    r10: float
    mrr10: float
    ndcg10: float
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    answer_in_passage: float | None = None  # share of top-1 passages containing the answer
    highlight_accuracy: float | None = None  # top-1 right: share whose highlight holds the answer

    def to_json(self) -> dict[str, float | int | None]:
        """The metrics, rounded, as ``--json`` prints them."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def load_queries(path: Path) -> list[LabelledQuery]:
    """JSONL lines ``{"query": ..., "relevant": [article ids], "answer": optional}``."""
    if not path.is_file():
        raise IndexerError(f"evaluation file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise IndexerError(f"{path} is not UTF-8 text: expected JSON lines of labelled queries") from None
    except OSError as exc:
        raise IndexerError(f"cannot read {path} ({exc.strerror or exc})") from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            query, relevant = doc["query"], doc["relevant"]
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, RecursionError):
            raise IndexerError(f'{path} line {n}: expected {{"query": ..., "relevant": [article ids]}}') from None
        if isinstance(relevant, str | int) and not isinstance(relevant, bool):
            relevant = [relevant]
        if not isinstance(query, str) or not isinstance(relevant, list) or not relevant:
            raise IndexerError(f"{path} line {n}: 'query' must be text and 'relevant' a non-empty list of ids")
        # ids are compared as text: a number is taken as written, anything else is a mistake
        if any(isinstance(r, bool) or not isinstance(r, str | int) for r in relevant):
            raise IndexerError(f"{path} line {n}: 'relevant' must list article ids (text), as search prints them")
        answer = doc.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise IndexerError(f"{path} line {n}: 'answer' must be text")
        out.append(LabelledQuery(query, frozenset(str(r) for r in relevant), answer))
    if not out:
        raise IndexerError(f"{path} holds no queries")
    return out


def score_rankings(rankings: Sequence[Sequence[str]], relevant: Sequence[frozenset[str]]) -> Metrics:
    """Metrics of ranked article ids against relevant sets (binary relevance)."""
    r1 = r5 = r10 = mrr = ndcg = 0.0
    for ranked, rel in zip(rankings, relevant):
        top = list(ranked[:10])
        hits = [a in rel for a in top]
        r1 += sum(hits[:1]) / len(rel)
        r5 += sum(hits[:5]) / len(rel)
        r10 += sum(hits[:10]) / len(rel)
        first = next((i for i, h in enumerate(hits) if h), None)
        mrr += 0.0 if first is None else 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits) if h)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg += dcg / ideal
    n = max(len(rankings), 1)
    return Metrics(len(rankings), r1 / n, r5 / n, r10 / n, mrr / n, ndcg / n)


@dataclass(frozen=True)
class QueryRun:
    """One labelled query as a search answered it."""

    ranked: list[str]  # article ids, best first (at least the top 10 when there are that many)
    ms: float  # the library's own search time
    answered: bool | None = None  # the top passage holds the answer (None: no answer given)
    marked: bool | None = None  # the top hit is right and its highlight holds the answer (None: not known)


def first_relevant(ranked: Sequence[str], relevant: frozenset[str], depth: int = 10) -> int | None:
    """Rank (1-based) of the first relevant article within ``depth``, or None."""
    return next((i for i, a in enumerate(ranked[:depth], start=1) if a in relevant), None)


def run_queries(searcher: Searcher, queries: Sequence[LabelledQuery], options: SearchOptions) -> list[QueryRun]:
    """Ask every query, in order; an invalid one (an empty text, say) counts as answered by nothing."""
    options = replace(options, k=max(options.k, 10), offset=0)
    runs = []
    for q in queries:
        t0 = time.perf_counter()
        try:
            hits = searcher.search(q.query, options).hits
        except QueryError:
            hits = []
        ms = (time.perf_counter() - t0) * 1000
        answered = None if q.answer is None else bool(hits) and q.answer.lower() in hits[0].text.lower()
        marked = None
        if options.highlight and q.answer_at is not None and hits and hits[0].article_id in q.relevant:
            marked = any(s <= q.answer_at < e for s, e in hits[0].highlights)
        runs.append(QueryRun([h.article_id for h in hits], ms, answered, marked))
    return runs


def summarize(queries: Sequence[LabelledQuery], runs: Sequence[QueryRun]) -> Metrics:
    """The metrics of a run of ``queries`` (as ``evaluate`` reports them)."""
    m = score_rankings([r.ranked for r in runs], [q.relevant for q in queries])
    lat = np.asarray([r.ms for r in runs] or [0.0])
    answered = [r.answered for r in runs if r.answered is not None]
    marked = [r.marked for r in runs if r.marked is not None]
    return replace(
        m,
        p50_ms=float(np.percentile(lat, 50)),
        p95_ms=float(np.percentile(lat, 95)),
        answer_in_passage=(sum(answered) / len(answered)) if answered else None,
        highlight_accuracy=(sum(marked) / len(marked)) if marked else None,
    )


def evaluate(searcher: Searcher, queries: Sequence[LabelledQuery], options: SearchOptions) -> Metrics:
    """Run every query and score the article rankings; latency is the library's own search time.

    Pass ``SearchOptions(highlight=False)`` to measure ranking alone (highlights cost a little).
    """
    return summarize(queries, run_queries(searcher, queries, options))
