"""Answer queries against an index directory, following it when a build publishes."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import fusion, vectors
from .analysis import query_groups
from .embedding import Embedder, Encoder
from .errors import ModelMismatchError, ModelNotFoundError, QueryError
from .highlight import Highlighter, unpack_sentences
from .index import IndexDir, Snapshot
from .language import scripts
from .models import resolve
from .records import Article, Hit
from .store import Filters

if TYPE_CHECKING:
    from .milvus import MilvusStore

MODES = ("hybrid", "dense", "bm25")
CANDIDATES = 100  # passages taken from each side before fusion
MAX_QUERY_CHARS = 2000  # the model reads 512 tokens at most; longer queries only cost time
MAX_K = 1000


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    per_article: int = 1  # passages allowed from the same article
    mode: str = "hybrid"
    filters: Filters = field(default_factory=Filters)
    offset: int = 0  # for paging: skip this many results
    highlight: bool = True  # find each hit's best sentences (one extra model call per page)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= MAX_K:
            raise QueryError(f"-k must be between 1 and {MAX_K}")
        if self.per_article < 1:
            raise QueryError("--per-article must be at least 1")
        if self.offset < 0:
            raise QueryError("offset cannot be negative")
        if self.mode not in MODES:
            raise QueryError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    took_ms: float
    truncated: bool = False  # the query was cut to MAX_QUERY_CHARS
    mode: str = "hybrid"

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "hits": [h.to_json() for h in self.hits]}


def clean_query(query: str) -> tuple[str, bool]:
    """Drop control characters, collapse whitespace, cap the length; reject empty queries."""
    if not isinstance(query, str):
        raise QueryError("the query must be text")
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in query)
    text = " ".join(text.split())
    if not text:
        raise QueryError("empty query — type a few words to search for")
    truncated = len(text) > MAX_QUERY_CHARS
    return text[:MAX_QUERY_CHARS], truncated


class DenseBackend(Protocol):
    """Where dense candidates come from: the version's FAISS index, or an external store (milvus.py)."""

    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (scores, ids) among passages matching ``filters`` (whose ids are ``allowed``)."""
        ...


class TermBackend(Protocol):
    """A store that scores BM25 itself, per analysed term (the local index's terms and parameters)."""

    def bm25_top(self, texts: list[str], n: int, filters: Filters) -> list[dict[int, float]]: ...

    def bm25_scores(self, terms: list[str], pids: list[int]) -> list[dict[int, float]]: ...


class FaissDense:
    """The default: the published version's own FAISS index, filtered by passage ids.

    For an index of PQ codes, the best ``rerank`` candidates by code are re-scored with
    the exact vectors SQLite keeps, so scores and order are those of an exact search.
    """

    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        depth = int(snap.manifest.vectors.get("rerank") or 0)
        scores, ids = vectors.search(snap.vectors, qvec, max(n, depth), allowed)
        if not depth or not len(ids):
            return scores, ids
        exact = snap.store.vectors(ids.tolist(), len(qvec)) @ np.asarray(qvec, np.float32)
        top = np.argsort(-exact, kind="stable")[:n]
        return exact[top].astype(np.float32), ids[top]


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
    ) -> None:
        self.idx = IndexDir(index_dir)
        self._store: MilvusStore | None = None
        self._dense: DenseBackend = FaissDense()
        if store is not None:
            from .milvus import MilvusStore, parse_uri

            target = parse_uri(store)  # a bad URI fails before the index is opened
            self.idx.manifest()
            self._store = MilvusStore(target)
            self._dense = self._store
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._encoder = encoder
        self._model_arg = model
        self._backend = backend
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._highlighter: Highlighter | None = None
        self._qlock = threading.Lock()
        try:
            self.snapshot()  # fail now, with the index's own message, if it cannot be opened
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the external store's connection (a Milvus Lite server stops with its last user)."""
        if self._store is not None:
            self._store.close()

    @property
    def _terms(self) -> TermBackend | None:
        """The store's own BM25, when it has one; otherwise the version's local BM25 index serves."""
        return self._store if self._store is not None and self._store.has_bm25 else None

    # ------------------------------------------------------------- index
    def snapshot(self) -> Snapshot:
        """The live version, reopened if a build has published a new one."""
        with self._lock:
            if self._snap is None or self.idx.stamp() != self._snap.stamp:
                snap = self.idx.open()
                if self._store is not None:
                    try:
                        self._store.check(snap.manifest, self.idx.path)  # same index, same model
                    except BaseException:
                        snap.close()
                        raise
                if self._snap is not None and self._snap.manifest.model != snap.manifest.model:
                    self._encoder = None  # rebuilt with another model: load that one
                    self._qcache.clear()
                self._snap = snap
            return self._snap

    @property
    def encoder(self) -> Encoder:
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
        """Load everything a search touches now (model, lexical index, language identifier,
        stemmers, sentence vectors), so the first real question is as fast as the next ones."""
        self.search("warm up the search engine", SearchOptions(k=3))

    # ------------------------------------------------------------ search
    def search(self, query: str, options: SearchOptions | None = None) -> SearchResult:
        options = options or SearchOptions()
        t0 = time.perf_counter()
        text, truncated = clean_query(query)
        snap = self.snapshot()
        filters = self._check_filters(snap, options.filters)
        allowed = snap.store.passage_ids(filters) if filters else None
        qvec = self.query_vector(text) if options.mode != "bm25" else None
        lq = lexical_query(text, snap) if options.mode != "dense" else None
        need = options.offset + options.k
        total = snap.vectors.ntotal if allowed is None else len(allowed)
        n = min(total, max(CANDIDATES, need * options.per_article * 3))
        while True:
            ranked = self._rank(snap, options.mode, qvec, lq, n, filters, allowed)
            grouped = _group(snap, ranked, options.per_article)
            if len(grouped) >= need or n >= total:
                break
            n = min(total, n * 4)
        page = grouped[options.offset : need]
        terms = lq.terms if lq is not None and options.highlight else []
        hits = self._hits(snap, page, options.offset, qvec if options.highlight else None, terms)
        return SearchResult(text, hits, (time.perf_counter() - t0) * 1000, truncated, options.mode)

    def _check_filters(self, snap: Snapshot, filters: Filters) -> Filters:
        if not filters:
            return filters
        f = filters.normalized()
        facets = snap.store.facets()
        missing = [code for code in f.langs if code not in facets["langs"]]
        if missing and len(missing) == len(f.langs):
            raise QueryError(
                f"no articles in language {', '.join(missing)} — this index has {', '.join(facets['langs']) or 'none'}"
            )
        unknown = [src for src in f.sources if src not in facets["sources"]]
        if unknown and len(unknown) == len(f.sources):
            known = ", ".join(facets["sources"][:8]) or "none"
            raise QueryError(f"no articles from source {', '.join(unknown)} — sources include: {known}")
        return f

    def _rank(
        self,
        snap: Snapshot,
        mode: str,
        qvec: np.ndarray | None,
        lq: LexicalQuery | None,
        n: int,
        filters: Filters,
        allowed: np.ndarray | None,
    ) -> list[tuple[int, float]]:
        """Passages ranked by the mode's scores (best first), at least ``n`` deep when available."""
        if mode == "dense":
            assert qvec is not None
            scores, ids = self._dense.search(snap, qvec, n, filters, allowed)
            return list(zip(ids.tolist(), scores.tolist()))
        assert lq is not None
        dense: dict[int, float] = {}
        if mode == "hybrid":
            assert qvec is not None
            d_scores, d_ids = self._dense.search(snap, qvec, n, filters, allowed)
            dense = dict(zip(d_ids.tolist(), d_scores.tolist()))
        engine = self._terms
        if engine is None:
            lex_all = snap.lexical.grouped_scores(lq.groups)
            lex = _top(snap, lex_all, n, allowed)
            pos = snap.lexical.position
            lex_of = {pid: float(lex_all[i]) if (i := pos.get(pid)) is not None else 0.0 for pid in dense}
            known = sum(1 for g in lq.groups if snap.lexical.known(list(g)))
        else:
            lex, lex_of, known = _engine_lexical(engine, lq, n, filters, list(dense))
            present = snap.store.article_keys(list(lex))  # a store still syncing may name dropped passages
            lex = {pid: score for pid, score in lex.items() if pid in present}
        if mode == "bm25":
            return sorted(lex.items(), key=lambda kv: (-kv[1], kv[0]))
        assert qvec is not None
        # every candidate needs both scores: the dense side for lexical-only ones, and back
        only_lex = [pid for pid in lex if pid not in dense]
        if only_lex:
            vecs = snap.store.vectors(only_lex, snap.manifest.model.dimension)
            dense.update(zip(only_lex, (vecs @ qvec).tolist()))
        for pid in dense:
            if pid not in lex:
                lex[pid] = lex_of.get(pid, 0.0)
        langs = snap.store.passage_langs(list(dense))
        cov = fusion.coverage(known, len(lq.groups))
        weights = {pid: cov * fusion.language_weight(lq.probs, langs.get(pid), lq.scripts) for pid in dense}
        return fusion.convex(dense, lex, weights)

    def _hits(
        self,
        snap: Snapshot,
        page: list[tuple[int, float, int]],
        offset: int,
        qvec: np.ndarray | None,
        terms: list[str],
    ) -> list[Hit]:
        rows = snap.store.passages([pid for pid, _, _ in page])
        if qvec is None and not terms:
            spans: list[list[tuple[int, int]]] = [[] for _ in page]
        else:
            passages = [(rows[p].text, rows[p].start, rows[p].lang) for p, _, _ in page]
            blobs = snap.store.sentence_blobs([p for p, _, _ in page])
            dim = snap.manifest.model.dimension
            stored = [unpack_sentences(blobs[p], dim) if p in blobs else None for p, _, _ in page]
            spans = self.highlighter().best(qvec, terms, passages, stored)
        hits = []
        for rank, ((pid, score, article_key), marks) in enumerate(zip(page, spans), start=offset + 1):
            r = rows[pid]
            hits.append(
                Hit(rank=rank, score=float(score), article_id=r.article_id, title=r.title, passage_id=pid,
                    text=r.text, start=r.start, end=r.end, url=r.url, date=r.date, source=r.source,
                    lang=r.lang, author=r.author, highlights=marks, duplicates=snap.store.duplicates(article_key))
            )  # fmt: skip
        return hits

    def highlighter(self) -> Highlighter:
        if self._highlighter is None or self._highlighter.encoder is not self.encoder:
            self._highlighter = Highlighter(self.encoder)
        return self._highlighter

    def article(self, article_id: str) -> Article | None:
        return self.snapshot().store.article(article_id)

    def info(self) -> dict[str, Any]:
        snap = self.snapshot()
        return {"manifest": snap.manifest, "counts": snap.store.counts(), "facets": snap.store.facets()}


def query_language_probs(text: str) -> dict[str, float]:
    """The query's language distribution (flat for names and numbers, peaked for sentences)."""
    from .language import _identifier

    return {lang: float(p) for lang, p in _identifier().rank(text)[:20]}


@dataclass(frozen=True)
class LexicalQuery:
    """A query as the lexical side sees it."""

    groups: list[dict[str, float]]  # per query word: its term under each language, with that language's weight
    probs: dict[str, float]  # the query's language distribution
    scripts: set[str]  # writing systems the query uses

    @property
    def terms(self) -> list[str]:
        return list(dict.fromkeys(t for g in self.groups for t in g))


def lexical_query(text: str, snap: Snapshot) -> LexicalQuery:
    """Analyse the query as its likely language and as the collection's main languages."""
    probs = query_language_probs(text)
    qscripts = scripts(text)
    likely = [lang for lang, p in sorted(probs.items(), key=lambda kv: -kv[1])[:2] if p > 0.2]
    langs = list(dict.fromkeys(likely + list(snap.languages)[:3])) or [""]
    weights = {lang: fusion.language_weight(probs, lang or None, qscripts) for lang in langs}
    return LexicalQuery(query_groups(text, weights), probs, qscripts)


def _top(snap: Snapshot, scores: np.ndarray, n: int, allowed: np.ndarray | None) -> dict[int, float]:
    """The ``n`` best BM25 passages with a positive score, restricted to ``allowed`` ids."""
    pids = snap.lexical.pids
    if allowed is not None:
        mask = np.isin(pids, allowed)
        scores = np.where(mask, scores, 0.0)
    positive = np.flatnonzero(scores > 0)
    if len(positive) > n:
        positive = positive[np.argpartition(-scores[positive], n - 1)[:n]]
    return {int(pids[i]): float(scores[i]) for i in positive}


def _engine_lexical(
    engine: TermBackend, lq: LexicalQuery, n: int, filters: Filters, extra: list[int]
) -> tuple[dict[int, float], dict[int, float], int]:
    """BM25 scored by the store, combined as ``LexicalIndex.grouped_scores`` does.

    Returns the ``n`` best passages (with a positive score), the scores of the
    ``extra`` passages (dense candidates), and how many query words the passages
    matching the filters know. Candidates are each term's ``n`` best and the ``n``
    best for all terms at once (strong on several terms without topping any); each
    is then scored for every term, so its sum is exact.
    """
    terms = lq.terms
    if not terms:
        return {}, {pid: 0.0 for pid in extra}, 0
    tops = engine.bm25_top([*terms, " ".join(terms)], n, filters)
    found = {t for t, hits in zip(terms, tops) if hits}
    known = sum(1 for g in lq.groups if found.intersection(g))
    scored = [t for t in terms if t in found and any(g.get(t, 0.0) > 0 for g in lq.groups)]
    cands = set().union(*tops)
    per_term = dict(zip(scored, engine.bm25_scores(scored, sorted(cands | set(extra)))))
    total: dict[int, float] = {}
    for group in lq.groups:
        best: dict[int, float] = {}
        for term, weight in group.items():
            if weight <= 0 or term not in per_term:
                continue
            for pid, score in per_term[term].items():
                best[pid] = max(best.get(pid, 0.0), score * weight)
        for pid, score in best.items():
            total[pid] = total.get(pid, 0.0) + score
    positive = sorted(((p, total[p]) for p in cands if total.get(p, 0.0) > 0), key=lambda kv: (-kv[1], kv[0]))
    return dict(positive[:n]), {pid: total.get(pid, 0.0) for pid in extra}, known


def _group(snap: Snapshot, ranked: list[tuple[int, float]], per_article: int) -> list[tuple[int, float, int]]:
    """Keep ranked passages in order, at most ``per_article`` per article; near-duplicate
    articles (syndicated copies) count as one, represented by the best-ranked copy."""
    keys = snap.store.article_keys([pid for pid, _ in ranked])
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
            out.append((pid, float(score), article))
        count[article] = count.get(article, 0) + 1
    return out
