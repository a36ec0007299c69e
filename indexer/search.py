"""Answer queries against an index directory, following it when a build publishes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import calibration, facet_counts, fusion, recency, similar, story_search
from .backends import Backends, open_backends
from .embedding import Embedder, Encoder
from .errors import ModelMismatchError, ModelNotFoundError, QueryError
from .highlight import Highlighter, term_spans, unpack_sentences
from .index import IndexDir, IndexInfo, Snapshot
from .models import resolve
from .query import (
    MAX_QUERY_CHARS,
    Filters,
    LexicalQuery,
    clean_query,
    lexical_query,
    matched_share,
    matched_terms,
)
from .question import Question, QuestionCache
from .records import Article, Evidence, Explanation, Hit
from .settings import MAX_K, MODES
from .store import DB_FILE, ArticleKey
from .story_index import Story
from .story_search import StoryHit

__all__ = ["MAX_K", "MAX_QUERY_CHARS", "MODES", "IndexInfo", "SearchOptions", "SearchResult", "Searcher", "clean_query"]

CANDIDATES = 100  # passages taken from each side before fusion
#: the stages a search's time is broken into (``SearchResult.timings``), in the order they run
STAGES = (
    "filters", "embed", "dense", "lexical", "sentences", "fusion", "grouping", "calibration", "highlights",
    "duplicates", "hits", "stories",
)  # fmt: skip


@dataclass(frozen=True)
class SearchOptions:
    """What one search asks for."""

    k: int = 10
    per_article: int = 1  # passages allowed from the same article
    mode: str = "hybrid"
    filters: Filters = field(default_factory=Filters)
    offset: int = 0  # for paging: skip this many results
    highlight: bool = True  # find each hit's best sentences (one extra model call per page)
    explain: bool = False  # give each hit an Explanation: each side's evidence, matched terms, scores
    recency: float | None = None  # half-life in days of a recency boost (recency.py); None: off
    group: str = "article"  # "story": one result per story (story_search.py), k and offset count stories

    def __post_init__(self) -> None:
        recency.check(self.recency)
        if not 1 <= self.k <= MAX_K:
            raise QueryError(f"-k must be between 1 and {MAX_K}")
        if self.per_article < 1:
            raise QueryError("--per-article must be at least 1")
        if self.offset < 0:
            raise QueryError("offset cannot be negative")
        if self.mode not in MODES:
            raise QueryError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        story_search.check_group(self.group)
        if self.group == "story" and self.per_article != 1:
            raise QueryError("--per-article (per_article) applies to grouping by article: a story shows its best "
                             "passage — leave it at 1 with --group story")  # fmt: skip


@dataclass
class SearchResult:
    """The hits of one search, and what it cost."""

    query: str
    hits: list[Hit]
    took_ms: float
    truncated: bool = False  # the query was cut to MAX_QUERY_CHARS
    mode: str = "hybrid"
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage (STAGES)
    #: the query's best hit (on any page) scores below the calibration's threshold, or there is none
    no_close_match: bool = False
    calibrated: bool = True  # scores are calibrated for the index's model (else the generic mapping)
    group: str = "article"
    #: with ``group="story"``: the stories, each with its best passage (``hits`` holds those passages)
    stories: list[StoryHit] | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as ``--json`` prints it: its ``hits``, or by story its ``stories``."""
        out = {
            "query": self.query,
            "mode": self.mode,
            "group": self.group,
            "truncated": self.truncated,
            "took_ms": round(self.took_ms, 3),
            "no_close_match": self.no_close_match,
            "calibrated": self.calibrated,
        }
        if self.stories is not None:
            return {**out, "stories": [s.to_json() for s in self.stories]}
        return {**out, "hits": [h.to_json() for h in self.hits]}


@dataclass(frozen=True)
class Candidate:
    """An article's best passage among a search's candidates, with its calibrated score."""

    passage_id: int
    article: int  # the article's row
    score: float  # as ``Hit.score``


@dataclass(frozen=True)
class Candidates:
    """What a search ranks before it cuts a page out (``Searcher.candidates``)."""

    ranked: fusion.Fused  # every candidate either side gave, in ranking order, with its evidence
    scored: list[Candidate]  # per article, in ranking order: those asked for
    threshold: float  # the calibration's no-close-match threshold for the search's mode


class _Clock:
    """Adds the time since the last mark to a stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self.last) * 1000
        self.last = now


class Searcher:
    """Search an index directory; reopens it when a new version is published.

    ``store`` (e.g. ``milvus://host:19530/passages``) takes the candidates from that
    vector store instead of the index's FAISS and BM25 files; the index directory
    still supplies passages, grouping, duplicates and highlights.
    """

    def __init__(
        self,
        index_dir: Path | str,
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
        backend: str | None = None,
        store: str | None = None,
        warm_new_versions: bool = False,
    ) -> None:
        self.idx = IndexDir(index_dir)
        # a long-lived server (the page, the API) keeps answering from the version it has while
        # a new one is opened, checked and loaded in the background, as Lucene's warmers do:
        # no reader waits for the vectors or postings of a freshly merged segment
        self.warm_new_versions = warm_new_versions
        self._warmer: threading.Thread | None = None
        self._warm_failed: tuple[tuple[int, int], BaseException] | None = None
        # a bad URI fails before the index is opened, a missing index before the store is reached
        self.backends: Backends = open_backends(store, index=self.idx)
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._encoder = encoder
        self._model_arg = model
        self._backend = backend
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        # a question's reads, shared by its search, its pages and its facet counts (question.py)
        self._questions = QuestionCache()
        self._highlighter: Highlighter | None = None
        self._qlock = threading.Lock()
        self._similar = similar.SimilarCache()
        try:
            self.snapshot()  # fail now, with the index's own message, if it cannot be opened
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the external store's connection (a Milvus Lite server stops with its last user)."""
        self.backends.close()

    # ------------------------------------------------------------- index
    def snapshot(self) -> Snapshot:
        """The live version, reopened if a build has published a new one.

        With ``warm_new_versions``, the version in use stays until the new one is open,
        verified and warm (see ``refresh``); it is left at once only when its folder is gone.
        """
        with self._lock:
            stamp = self.idx.stamp()
            if self._snap is not None and stamp != self._snap.stamp and self.warm_new_versions:
                failed = self._warm_failed
                if failed is not None and failed[0] == stamp:
                    raise failed[1]  # the new version is damaged: refused, as an immediate switch would
                if self._snap.path.is_dir():
                    self._start_warmer()
                    self._snap.raise_if_damaged()
                    return self._snap
            if self._snap is None or stamp != self._snap.stamp:
                # moving to a new version: the segments it shares with the last one are kept as
                # they are, and a new segment's database (most of its bytes) is verified in the
                # background, so the first question after a publish does not wait for it
                defer = frozenset({DB_FILE}) if self._snap is not None else frozenset()
                self._move_to(self._open(defer))
            assert self._snap is not None
            self._snap.raise_if_damaged()
            return self._snap

    def refresh(self) -> Snapshot:
        """Move to the live version now, loading what it added before the next search uses it.

        A server calls nothing: with ``warm_new_versions`` a search that notices a new
        version starts this in a background thread and is answered from the current one.
        """
        snap = self._open(frozenset())
        self._warm(snap)
        with self._lock:
            if self._snap is None or self._snap.stamp != self.idx.stamp():  # unless already on the live one
                self._move_to(snap)
            assert self._snap is not None
            return self._snap

    def _open(self, defer: frozenset[str]) -> Snapshot:
        snap = self.idx.open(defer=defer, reuse=self._snap)
        try:
            self.backends.check(snap, self.idx)  # an external store: same index, same model
        except BaseException:
            snap.close()
            raise
        return snap

    def _move_to(self, snap: Snapshot) -> None:
        if self._snap is not None and self._snap.manifest.model != snap.manifest.model:
            self._encoder = None  # rebuilt with another model: load that one
            self._highlighter = None
            self._qcache.clear()
            self._questions.clear()
        self._snap = snap

    def _start_warmer(self) -> None:
        if self._warmer is not None and self._warmer.is_alive():
            return
        self._warmer = threading.Thread(target=self._warm_loop, name="indexer-warm", daemon=True)
        self._warmer.start()

    def _warm_loop(self) -> None:
        """Warm the live version, and again if another was published meanwhile."""
        while True:
            stamp = self.idx.stamp()
            with self._lock:
                if self._snap is not None and self._snap.stamp == stamp:
                    return
            try:
                self.refresh()
            except BaseException as exc:  # the searches raise it, with its own message, for this version only
                with self._lock:
                    self._warm_failed = (stamp, exc)
                return

    def _warm(self, snap: Snapshot) -> None:
        """Load what a search of ``snap`` reads: its columns, postings and vectors, then ask it one question."""
        snap.checked.wait()  # a version is used only once every byte of it is verified
        snap.raise_if_damaged()
        _ = snap.columns, snap.facets, snap.clusters, snap.lexical, snap.stories
        for seg in snap.segments:
            _ = seg.vectors
        current = self._snap
        if current is None or current.manifest.model == snap.manifest.model:
            self._search(snap, "warm up the search engine", SearchOptions(k=3))
        if self._similar.used:  # someone asked for similar articles: have the new version's ready too
            self._similar.prepare(snap)

    @property
    def encoder(self) -> Encoder:
        """The index's model, loaded on first use and checked against the manifest."""
        snap = self.snapshot()
        if self._encoder is None:
            info = snap.manifest.model
            if self._model_arg and self._model_arg != info.name:
                requested = resolve(self._model_arg)
                if requested.fingerprint != info.fingerprint:
                    raise ModelMismatchError(
                        f"the index was built with {info.name!r}, not {self._model_arg!r} — search without "
                        f'--model, or rebuild with "indexer build --full --model {self._model_arg}"'
                    )
            try:
                resolved = resolve(info.name)
            except ModelNotFoundError:
                raise ModelNotFoundError(
                    f"the index was built with {info.name!r}, which is not on this machine — put it back, "
                    'or rebuild with another model: "indexer build --full --model NAME"'
                ) from None
            if resolved.fingerprint != info.fingerprint:
                raise ModelMismatchError(
                    f"the index was built with {info.name!r} ({info.fingerprint}), but that name now resolves "
                    f'to different weights at {resolved.path} — rebuild with "indexer build --full"'
                )
            encoder: Encoder = Embedder(resolved, backend=self._backend or info.backend)
            self._encoder = encoder
            return encoder
        return self._encoder

    def query_vector(self, text: str) -> np.ndarray:
        """Embed a query once; paging through its results does not embed it again."""
        with self._qlock:  # one Searcher serves every session of the page, from several threads
            vec = self._qcache.get(text)
            if vec is not None:
                self._qcache.move_to_end(text)
                return vec
        vec = self.encoder.embed_queries([text])[0]
        with self._qlock:
            self._qcache[text] = vec
            while len(self._qcache) > 256:
                self._qcache.popitem(last=False)
        return vec

    def warm_up(self) -> None:
        """Load everything a search touches now, so the first real question is as fast as the next ones.

        That is the model, every segment's vectors and postings, the metadata columns, the
        language identifier, stemmers and sentence vectors.
        """
        self._warm(self.snapshot())

    # ------------------------------------------------------------ search
    def search(self, query: str, options: SearchOptions | None = None) -> SearchResult:
        """The best passages for ``query``, at most ``per_article`` per article, highlighted."""
        return self._search(self.snapshot(), query, options or SearchOptions())

    def candidates(
        self,
        snap: Snapshot,
        query: str,
        options: SearchOptions,
        *,
        depth: int = CANDIDATES,
        qvec: np.ndarray | None = None,
        lq: LexicalQuery | None = None,
        among: Collection[int] | None = None,
    ) -> Candidates:
        """Every article among the ``depth`` best candidates of each side, with its calibrated score.

        At the default depth these are what ``search`` cuts its first page from, with the same
        scores. ``snap`` and ``self.backends`` may be restricted to a few passages: the
        percolator (percolate.py) ranks a saved search among a build's new passages and its
        last candidates, passing the query's kept vector (``qvec``) and analysis (``lq``), and
        scoring only the articles of the new passages (``among``, passage ids).
        """
        text, _ = clean_query(query)
        filters = options.filters.normalized() if options.filters else options.filters
        allowed = snap.allowed(filters) if filters else None
        question = self._ask(snap, text, options.mode, _Clock(), qvec=qvec, lq=lq)
        lq = question.inputs(options.mode)[1]
        ranked = self._rank(snap, options.mode, question, depth, filters, allowed, _Clock())
        everyone = _group(snap, ranked.order, options.per_article)
        grouped = everyone if among is None else [g for g in everyone if g[0] in among]
        evidence = self._evidence(snap, ranked, lq, grouped, everyone)
        cal = calibration.for_model(snap.manifest.model.name, snap.manifest.model.fingerprint)
        scored = [
            Candidate(pid, key.article, cal.probability(options.mode, e)) for (pid, _, key), e in zip(grouped, evidence)
        ]
        return Candidates(ranked, scored, cal.modes[options.mode].threshold)

    def _search(self, snap: Snapshot, query: str, options: SearchOptions) -> SearchResult:
        t0 = time.perf_counter()
        clock = _Clock()
        text, truncated = clean_query(query)
        by_story = options.group == "story"
        stories = story_search.require(snap) if by_story else snap.stories
        filters = self._check_filters(snap, options.filters)
        allowed = snap.allowed(filters) if filters else None
        clock.mark("filters")
        question = self._ask(snap, text, options.mode, clock)
        qvec, lq = question.inputs(options.mode)
        kept: dict[int, bytes] = {}  # the candidates' sentence blobs: the page's highlights read them
        need = options.offset + options.k
        total = snap.ntotal if allowed is None else len(allowed)
        n = min(total, max(CANDIDATES, need * options.per_article * 3))
        fresh: dict[int, float] = {}  # passage → its freshness factor, with recency
        while True:
            ranked = self._rank(snap, options.mode, question, n, filters, allowed, clock, keep=kept)
            if options.recency is not None:
                now = recency.reference_day(snap.columns)
                order, fresh = recency.reorder(snap.columns, ranked.order, options.recency, now)
                ranked = replace(ranked, order=order)
            if by_story and stories is not None:
                grouped = story_search.group(snap, stories, ranked.order)
            else:
                grouped = _group(snap, ranked.order, options.per_article)
            clock.mark("grouping")
            # fewer passages than asked for: every candidate either side has is in, none to widen to
            if len(grouped) >= need or n >= total or len(ranked.order) < n:
                break
            n = min(total, n * 4)
        page = grouped[options.offset : need]
        # the query's best hit decides whether anything is close, whichever page is asked for
        judged = page if options.offset == 0 or not grouped else [grouped[0], *page]
        evidence = self._evidence(snap, ranked, lq, judged, grouped)
        cal = calibration.for_model(snap.manifest.model.name, snap.manifest.model.fingerprint)
        scores = [cal.probability(options.mode, e) for e in evidence]
        # closeness is a matter of relevance: with recency the best is not necessarily ranked first
        best = (max(scores) if fresh else scores[0]) if scores else None
        if len(judged) > len(page):
            evidence, scores = evidence[1:], scores[1:]
        clock.mark("calibration")
        terms = lq.terms if lq is not None and options.highlight else []
        scored = lq.scored_terms if lq is not None and options.highlight else []
        hits = self._hits(snap, page, scores, ranked, qvec if options.highlight else None, terms, scored, clock,
                          offset=options.offset, kept=kept)  # fmt: skip
        if options.explain:
            hits = self._explain(snap, hits, page, evidence, ranked, lq, text, cal)
        if fresh:  # the explanation keeps the calibrated relevance; the score is it times freshness
            hits = [replace(h, score=h.score * fresh[pid]) for h, (pid, _, _) in zip(hits, page)]
        hits = story_search.label(hits, [key for _, _, key in page], stories)
        found = story_search.describe(snap, stories, hits) if by_story and stories is not None else None
        clock.mark("stories")
        took = (time.perf_counter() - t0) * 1000
        close = cal.no_close_match(options.mode, best)
        return SearchResult(text, hits, took, truncated, options.mode, clock.timings, close, cal.fitted, options.group,
                            found)  # fmt: skip

    def match_counts(
        self, query: str, options: SearchOptions | None = None, *, depth: int = facet_counts.DEPTH
    ) -> facet_counts.MatchCounts:
        """Matching articles per language, source and period among the question's top ``depth`` passages.

        Disjunctive: each facet applies the other filters of ``options``, not its own (facet_counts.py).
        """
        facet_counts.check_depth(depth)
        snap = self.snapshot()
        options = options or SearchOptions()
        text, _ = clean_query(query)
        clock = _Clock()
        question = self._ask(snap, text, options.mode, clock)

        def rank(filters: Filters) -> list[int]:
            f = self._check_filters(snap, filters)
            allowed = snap.allowed(f) if f else None
            n = min(depth, snap.ntotal if allowed is None else len(allowed))
            if n <= 0:
                return []
            return [pid for pid, _ in self._rank(snap, options.mode, question, n, f, allowed, clock).order]

        return facet_counts.count(snap.columns, self._check_filters(snap, options.filters), rank, depth)

    def _ask(
        self,
        snap: Snapshot,
        text: str,
        mode: str,
        clock: _Clock,
        *,
        qvec: np.ndarray | None = None,
        lq: LexicalQuery | None = None,
    ) -> Question:
        """The question ``text`` (cleaned) of ``snap`` with what ``mode`` needs: kept, unless the caller brings its own.

        A caller's vector or analysis (the percolator's, kept from another build) makes a
        question of its own, shared with no other call.
        """
        if qvec is None and lq is None:
            question = self._questions.get(snap, text)
        else:
            question = Question(text, snap.manifest.model.dimension)
            question.qvec, question.lq = qvec, lq
        if mode != "bm25" and question.qvec is None:
            question.qvec = self.query_vector(text)
        clock.mark("embed")
        if mode != "dense" and question.lq is None:
            question.lq = lexical_query(text, snap)
        clock.mark("lexical")
        return question

    def _check_filters(self, snap: Snapshot, filters: Filters) -> Filters:
        if not filters:
            return filters
        f = filters.normalized()
        facets = snap.facets
        missing = [code for code in f.langs if code not in facets.langs]
        if missing and len(missing) == len(f.langs):
            raise QueryError(
                f"no articles in language {', '.join(missing)} — this index has {', '.join(facets.langs) or 'none'}"
            )
        unknown = [src for src in f.sources if src not in facets.sources]
        if unknown and len(unknown) == len(f.sources):
            known = ", ".join(facets.sources[:8]) or "none"
            raise QueryError(f"no articles from source {', '.join(unknown)} — sources include: {known}")
        return f

    def _rank(
        self,
        snap: Snapshot,
        mode: str,
        question: Question,
        n: int,
        filters: Filters,
        allowed: np.ndarray | None,
        clock: _Clock,
        *,
        keep: dict[int, bytes] | None = None,
    ) -> fusion.Fused:
        """Passages ranked by the mode's scores (best first), at least ``n`` deep when available.

        What the question's other rankings read of a candidate is not read again; ``keep``
        receives the sentence blobs this one reads (for the highlights).
        """
        qvec, lq = question.inputs(mode)
        dense: dict[int, float] = {}
        top = mean = spread = None
        if mode != "bm25":
            assert qvec is not None
            d_scores, d_ids = self.backends.dense.search(snap, qvec, n, filters, allowed)
            clock.mark("dense")
            top, mean, spread = fusion.background(d_scores)
            dense = dict(zip(d_ids.tolist(), d_scores.tolist()))
            if mode == "dense":
                sent = question.sentence_cosines(snap.store, list(dense), keep=keep)
                clock.mark("sentences")
                order = fusion.by_score(fusion.with_sentences(dense, sent))
                return fusion.Fused(order, dense, sent, dense_top=top, dense_background=mean,
                                    dense_spread=spread)  # fmt: skip
        assert lq is not None
        side = self.backends.lexical.scores(snap, lq.groups, n, filters, allowed, list(dense))
        clock.mark("lexical")
        lex = dict(side.top)
        bm25_top = max(lex.values(), default=0.0)
        cov = fusion.coverage(side.known, len(lq.groups))
        if mode == "bm25":
            order = sorted(lex.items(), key=lambda kv: (-kv[1], kv[0]))
            return fusion.Fused(order, lexical=lex, coverage=cov, bm25_top=bm25_top)
        assert qvec is not None
        # every candidate needs both scores: the dense side for lexical-only ones, and back
        only_lex = [pid for pid in lex if pid not in dense]
        if only_lex:
            dense.update(question.stored_cosines(snap.store, only_lex))
        for pid in dense:
            if pid not in lex:
                lex[pid] = side.of.get(pid, 0.0)
        langs = snap.columns.langs_of(list(dense))
        # a weight depends on the passage's language alone: one call per language, not per passage
        per_lang = {lang: fusion.language_weight(lq.probs, lang, lq.scripts) for lang in {langs.get(p) for p in dense}}
        lang_weights = {pid: per_lang[langs.get(pid)] for pid in dense}
        clock.mark("fusion")
        sent = question.sentence_cosines(snap.store, list(dense), keep=keep)
        clock.mark("sentences")
        similar = fusion.with_sentences(dense, sent)
        fused = fusion.convex(similar, lex, {pid: cov * w for pid, w in lang_weights.items()})
        clock.mark("fusion")
        return fusion.Fused(fused, dense, sent, lex, lang_weights, coverage=cov, dense_top=top,
                            dense_background=mean, dense_spread=spread, bm25_top=bm25_top)  # fmt: skip

    def _hits(
        self,
        snap: Snapshot,
        page: list[tuple[int, float, ArticleKey]],
        scores: list[float],
        ranked: fusion.Fused,
        qvec: np.ndarray | None,
        terms: list[str],
        scored: list[str],
        clock: _Clock,
        *,
        offset: int,
        kept: dict[int, bytes],
    ) -> list[Hit]:
        """The page's hits; ``kept`` holds sentence blobs the search's rankings read (the rest are read here)."""
        rows = snap.store.passages([pid for pid, _, _ in page])
        if qvec is None and not terms:
            spans: list[list[tuple[int, int]]] = [[] for _ in page]
            words: list[list[tuple[int, int]]] = [[] for _ in page]
        else:
            passages = [(rows[p].text, rows[p].start, rows[p].lang) for p, _, _ in page]
            missing = [p for p, _, _ in page if p not in kept]
            blobs = {**kept, **snap.store.sentence_blobs(missing)} if missing else kept
            dim = snap.manifest.model.dimension
            stored = [unpack_sentences(blobs[p], dim) if p in blobs else None for p, _, _ in page]
            spans = self.highlighter().best(qvec, terms, passages, stored)
            # the words BM25 matched, where it counted: not in a passage whose language weight is 0
            words = [
                term_spans(text, start, lang, scored) if ranked.lang_weights.get(pid, 1.0) > 0 else []
                for (text, start, lang), (pid, _, _) in zip(passages, page)
            ]
        clock.mark("highlights")
        dups = _duplicates(snap, [key for _, _, key in page])
        clock.mark("duplicates")
        hits = []
        for rank, ((pid, _, key), score, marks, found) in enumerate(zip(page, scores, spans, words), start=offset + 1):
            r = rows[pid]
            hits.append(
                Hit(rank=rank, score=float(score), article_id=r.article_id, title=r.title, passage_id=pid,
                    text=r.text, start=r.start, end=r.end, url=r.url, date=r.date, source=r.source,
                    lang=r.lang, author=r.author, highlights=marks, duplicates=dups.get(key.article, []),
                    term_highlights=found)
            )  # fmt: skip
        clock.mark("hits")
        return hits

    @staticmethod
    def _evidence(
        snap: Snapshot,
        ranked: fusion.Fused,
        lq: LexicalQuery | None,
        page: list[tuple[int, float, ArticleKey]],
        grouped: list[tuple[int, float, ArticleKey]],
    ) -> list[Evidence]:
        """Each hit's evidence, with the share of the query's words it holds (read from its BM25 terms).

        ``grouped`` is every article's best passage (page's among them): what a hit's
        ``runner_up`` is read from.
        """
        matched: dict[int, float] = {}
        if lq is not None and page:
            matched = matched_share(lq, snap.store.passage_terms([pid for pid, _, _ in page]))
        top, mean, spread = _sentence_background(ranked)
        # the two best articles by ranking score (with recency, the order is not the score's)
        best = sorted(grouped, key=lambda g: -g[1])[:2]
        out = []
        for pid, score, key in page:
            others = [s for _, s, k in best if k.article != key.article]
            e = ranked.evidence(pid, score, matched.get(pid, 0.0) if lq else None)
            out.append(replace(e, sentence_top=top, sentence_mean=mean, sentence_spread=spread,
                               runner_up=others[0] if others else None, dense_rank=ranked.dense_rank(pid),
                               bm25_rank=ranked.bm25_rank(pid) if lq is not None else None))  # fmt: skip
        return out

    def _explain(
        self,
        snap: Snapshot,
        hits: list[Hit],
        page: list[tuple[int, float, ArticleKey]],
        evidence: list[Evidence],
        ranked: fusion.Fused,
        lq: LexicalQuery | None,
        text: str,
        cal: calibration.Calibration,
    ) -> list[Hit]:
        """The hits with their explanations: each side's evidence and rank, the matched terms, the scores."""
        pids = [pid for pid, _, _ in page]
        terms = matched_terms(snap.lexical, lq, text, pids) if lq is not None else {}
        out = []
        for hit, pid, e in zip(hits, pids, evidence):
            why = Explanation(
                evidence=e,
                dense_rank=e.dense_rank,
                bm25_rank=e.bm25_rank,
                terms=terms.get(pid, []),
                calibrated=hit.score,
                calibration=cal.label,
            )
            out.append(replace(hit, explanation=why))
        return out

    def highlighter(self) -> Highlighter:
        """The highlighter of the current model."""
        if self._highlighter is None or self._highlighter.encoder is not self.encoder:
            self._highlighter = Highlighter(self.encoder)
        return self._highlighter

    def similar(self, article_id: str, *, k: int = 10, filters: Filters | None = None) -> similar.SimilarResult:
        """The ``k`` articles nearest to this one in any language, less its near-duplicates (similar.py).

        Raises ``similar.UnknownArticleError`` for an id the live version does not hold.
        """
        return self._similar.similar(self.snapshot(), article_id, k=k, filters=filters)

    def article(self, article_id: str) -> Article | None:
        """One whole article of the live version, or None."""
        return self.snapshot().store.article(article_id)

    def story(self, story_id: int) -> Story | None:
        """One story of the live version (its members in date order), or None; ``NoStoriesError`` without stories."""
        return story_search.story(self.snapshot(), story_id)

    def info(self) -> IndexInfo:
        """The live version's manifest, counts and facets."""
        return self.snapshot().info()


def _sentence_background(ranked: fusion.Fused) -> tuple[float | None, float | None, float | None]:
    """The best, the mean and the spread of the best-sentence cosines of the query's background.

    The background is the ``fusion.BACKGROUND`` best dense candidates by passage cosine, as for
    ``dense_mean``: the passages any search of the query ranks (a percolator's frame holds them too).
    """
    if not ranked.sentence:
        return None, None, None
    head = sorted(ranked.dense.items(), key=lambda kv: (-kv[1], kv[0]))[: fusion.BACKGROUND]
    vals = np.array([ranked.sentence[pid] for pid, _ in head if pid in ranked.sentence], dtype=np.float64)
    if not len(vals):
        return None, None, None
    return float(vals.max()), float(vals.mean()), float(vals.std())


def _group(snap: Snapshot, ranked: list[tuple[int, float]], per_article: int) -> list[tuple[int, float, ArticleKey]]:
    """Keep ranked passages in order, at most ``per_article`` per article.

    Near-duplicate articles (syndicated copies) count as one, represented by the best-ranked copy.
    """
    keys = snap.columns.article_keys([pid for pid, _ in ranked])
    chosen: dict[int, int] = {}  # duplicate group -> the article representing it
    count: dict[int, int] = {}
    out = []
    for pid, score in ranked:
        key = keys.get(pid)
        if key is None:
            continue
        article, group = key
        rep = chosen.setdefault(group, article)
        if rep != article:
            continue  # a copy of an article already shown: listed in its hit's duplicates
        if count.get(article, 0) < per_article:
            out.append((pid, float(score), key))
        count[article] = count.get(article, 0) + 1
    return out


def _duplicates(snap: Snapshot, keys: list[ArticleKey]) -> dict[int, list[str]]:
    """For each article shown, the ids of the other articles of its near-duplicate cluster (oldest first).

    The clusters come from the version's columns, so only the copies' ids and dates are
    read, by row id, in one statement for the whole page; a singleton costs nothing.
    """
    members = {key.article: snap.clusters.get(key.group, []) for key in keys}
    wanted = sorted({row for rows in members.values() for row in rows})
    if not wanted:
        return {}
    facts = snap.store.article_ids(wanted)
    out = {}
    for article, rows in members.items():
        others = [facts[r] for r in rows if r != article and r in facts]
        out[article] = [aid for _, aid in sorted(others, key=lambda f: (f[0] is not None, f[0] or "", f[1]))]
    return out
