"""Answer queries against an index directory, following it when a build publishes."""

from __future__ import annotations

import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import vectors
from .embedding import Embedder, Encoder
from .errors import ModelMismatchError, QueryError
from .index import IndexDir, Snapshot
from .models import resolve
from .records import Article, Hit
from .store import Filters

MODES = ("dense",)
MAX_QUERY_CHARS = 2000  # the model reads 512 tokens at most; longer queries only cost time
MAX_K = 1000


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    per_article: int = 1  # passages allowed from the same article
    mode: str = "dense"
    filters: Filters = field(default_factory=Filters)
    offset: int = 0  # for paging: skip this many results

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


class Searcher:
    """Search an index directory; reopens it when a new version is published."""

    def __init__(
        self,
        index_dir: Path | str,
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
        backend: str | None = None,
    ) -> None:
        self.idx = IndexDir(index_dir)
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._encoder = encoder
        self._model_arg = model
        self._backend = backend
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.snapshot()  # fail now, with the index's own message, if it cannot be opened

    # ------------------------------------------------------------- index
    def snapshot(self) -> Snapshot:
        """The live version, reopened if a build has published a new one."""
        with self._lock:
            if self._snap is None or self.idx.stamp() != self._snap.stamp:
                snap = self.idx.open()
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
            resolved = resolve(info.name)
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
        vec = self._qcache.get(text)
        if vec is None:
            vec = self.encoder.embed_queries([text])[0]
            self._qcache[text] = vec
            if len(self._qcache) > 256:
                self._qcache.popitem(last=False)
        else:
            self._qcache.move_to_end(text)
        return vec

    # ------------------------------------------------------------ search
    def search(self, query: str, options: SearchOptions | None = None) -> SearchResult:
        options = options or SearchOptions()
        t0 = time.perf_counter()
        text, truncated = clean_query(query)
        snap = self.snapshot()
        qvec = self.query_vector(text)
        allowed = snap.store.passage_ids(options.filters) if options.filters else None
        ranked = self._dense(snap, qvec, options, allowed)
        page = ranked[options.offset : options.offset + options.k]
        hits = self._hits(snap, page, options.offset)
        return SearchResult(text, hits, (time.perf_counter() - t0) * 1000, truncated)

    def _dense(
        self, snap: Snapshot, qvec: np.ndarray, options: SearchOptions, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """Best passages, each article kept at most ``per_article`` times, enough for the page."""
        need = options.offset + options.k
        total = snap.vectors.ntotal if allowed is None else len(allowed)
        n = min(total, need * options.per_article * 4 + 16)
        while True:
            scores, ids = vectors.search(snap.vectors, qvec, n, allowed)
            ranked = _per_article(snap, ids, scores, options.per_article)
            if len(ranked) >= need or n >= total:
                return ranked
            n = min(total, n * 4)

    def _hits(self, snap: Snapshot, page: list[tuple[int, float]], offset: int) -> list[Hit]:
        rows = snap.store.passages([pid for pid, _ in page])
        hits = []
        for rank, (pid, score) in enumerate(page, start=offset + 1):
            r = rows[pid]
            hits.append(
                Hit(
                    rank=rank,
                    score=float(score),
                    article_id=r.article_id,
                    title=r.title,
                    passage_id=pid,
                    text=r.text,
                    start=r.start,
                    end=r.end,
                    url=r.url,
                    date=r.date,
                    source=r.source,
                    lang=r.lang,
                    author=r.author,
                )
            )
        return hits

    def article(self, article_id: str) -> Article | None:
        return self.snapshot().store.article(article_id)

    def info(self) -> dict[str, Any]:
        snap = self.snapshot()
        return {"manifest": snap.manifest, "counts": snap.store.counts(), "facets": snap.store.facets()}


def _per_article(snap: Snapshot, ids: np.ndarray, scores: np.ndarray, per_article: int) -> list[tuple[int, float]]:
    """Keep ranked passages in order, at most ``per_article`` from any one article."""
    keys = snap.store.article_keys(ids.tolist())
    seen: dict[int, int] = {}
    out = []
    for pid, score in zip(ids.tolist(), scores.tolist()):
        key = keys.get(pid)
        if key is None:
            continue
        if seen.get(key, 0) < per_article:
            out.append((pid, float(score)))
        seen[key] = seen.get(key, 0) + 1
    return out
