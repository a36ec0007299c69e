"""Incremental, atomic, resumable index builds, in five steps.

1. plan: read the sources and compare each article's hash with the live version's
   (``_plan``); changed and new articles are chunked and gathered in windows.
2. embed: each window's passages get vectors — reused when their exact text was
   embedded before (``VectorReuse``), else computed and committed to the resume cache.
3. write: the window's articles go into the new version's database (a copy of the
   live one, made on the first change) and into the live vector index, edited in place.
4. finalize: near-duplicate groups, BM25 matrices and the vector index (updated, or
   rebuilt from the stored vectors and tuned) for the whole new version.
5. publish: fsync, checksums, and the manifest switch (``IndexDir.publish``).

A killed or failed build leaves the live version untouched.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, corpus, dedup, lexical, vectors
from .analysis import ANALYZER_VERSION, analyze
from .backends import open_backends
from .chunking import ChunkSettings, chunk_article
from .corpus import ReadSettings
from .draft import Context, Draft, Spans, passage_inputs, prepare, publish
from .embedding import Encoder
from .errors import BuildError, IndexerError
from .faults import crash_point
from .highlight import pack_sentences
from .index import IndexDir
from .manifest import FORMAT_VERSION, LexicalInfo, Manifest, ModelInfo, now
from .models import ResolvedModel
from .records import Article, KnownArticle, PendingArticle, Skipped, StoredVector
from .resume import ResumeCache, VectorReuse, drop_resume_cache
from .store import SCHEMA_VERSION, article_hash
from .vector_plan import IndexPolicy, VectorIndexInfo, outdated

WINDOW = 256  # passages gathered before embedding, so batches can be sorted by length
EMBED_BATCH = 64  # passages per model call; the resume cache commits after each


@dataclass(frozen=True)
class BuildSettings:
    """How to build; None means "as the index was built", else the default."""

    model: str | None = None
    backend: str | None = None
    chunk: ChunkSettings | None = None
    read: ReadSettings = field(default_factory=ReadSettings)
    full: bool = False  # ignore the existing index and rebuild everything
    strict: bool = False  # any skipped file fails the build
    # FAISS factory string ("IVF4096,SQ8", "HNSW32,SQ8"…); None: the index's forced one, else
    # chosen by size (vector_plan.plan); "auto": chosen by size
    faiss: str | None = None
    # how the vector index is chosen and tuned; recorded in the manifest and kept by later builds
    policy: IndexPolicy | None = None


@dataclass
class BuildProgress:
    """Where a build is, for progress bars."""

    files_done: int
    files_total: int
    passages_embedded: int
    elapsed: float


@dataclass
class BuildReport:
    """What a build did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    articles: int = 0
    passages: int = 0
    embedded: int = 0  # passages sent through the model in this build
    reused: int = 0  # new passages whose vectors were already known
    tokens: int = 0  # tokens sent through the model
    seconds: float = 0.0
    embed_seconds: float = 0.0
    full: bool = False
    duplicate_clusters: int = 0  # groups of near-identical articles (syndicated copies)
    reason: str = ""  # why a full rebuild happened
    version: str = ""
    published: bool = False  # False when nothing changed and the live version was kept
    store: Any = None  # milvus_sync.SyncReport, when the build was asked to sync a vector store

    @property
    def tokens_per_second(self) -> float:
        """Embedding throughput of this build."""
        return self.tokens / self.embed_seconds if self.embed_seconds > 0 else 0.0


# ---------------------------------------------------------- 1. plan
class _Run:
    """One build: the steps, run in order by ``run``."""

    def __init__(self, ctx: Context, progress: Callable[[BuildProgress], None] | None) -> None:
        self.ctx = ctx
        self.progress = progress
        self.report = BuildReport(full=not ctx.incremental)
        self.report.reason = ctx.reason or ("no index yet" if ctx.prev is None and not ctx.settings.full else "--full")
        self.started = time.perf_counter()
        self.files = [0, 0]  # done, total

    def run(self, sources: list[Path]) -> BuildReport:
        """Plan, embed, write, finalize, publish (or keep the live version when nothing changed)."""
        ctx, rep = self.ctx, self.report
        draft = Draft(ctx)
        try:
            cache = ResumeCache(ctx.idx.layout.resume, f"{ctx.model.fingerprint}|{ctx.backend}")
            try:
                self._plan(sources, draft, VectorReuse(draft, draft.previous, cache))
            finally:
                cache.close()
            self._check_strict()
            if not draft.changed and self._needs_new_version(draft):
                draft.writer()  # only the vector index (another --faiss) or the schema changes
            if not draft.changed:
                return self._unchanged(draft)
            manifest = self._finalize(draft, sources)
            publish(ctx.idx, draft.folder, manifest)
        except BaseException:
            shutil.rmtree(draft.folder, ignore_errors=True)
            raise
        finally:
            draft.close()
        # the build is durable now: its resume cache and old versions can go
        drop_resume_cache(ctx.idx.work)
        ctx.idx.collect_garbage()
        rep.version, rep.published = draft.name, True
        rep.seconds = time.perf_counter() - self.started
        return rep

    def _plan(self, sources: list[Path], draft: Draft, reuse: VectorReuse) -> None:
        """Read every source; queue new and changed articles in windows; remove vanished ones."""
        rep, known = self.report, draft.known()
        seen: set[str] = set()
        self.files[1] = corpus.count_files(sources, self.ctx.settings.read)
        window: list[PendingArticle] = []
        for art in corpus.read_sources(sources, self.ctx.settings.read, on_file=self._file_done):
            if isinstance(art, Skipped):
                rep.skipped.append(art)
                continue
            seen.add(art.id)
            pending = self._pending(art, known.get(art.id))
            if pending is None:
                continue
            window.append(pending)
            if sum(len(p.chunks) for p in window) >= WINDOW:
                self._flush(draft, window, reuse)
                window = []
        if window:
            self._flush(draft, window, reuse)
        gone = [aid for aid in known if aid not in seen]
        for aid in gone:
            draft.remove(known[aid].rowid)
        rep.removed = len(gone)

    def _pending(self, art: Article, previous: KnownArticle | None) -> PendingArticle | None:
        """The article chunked, or None when it is unchanged or holds no sentence."""
        h = article_hash(art)
        if previous is not None and previous.content_hash == h:
            self.report.unchanged += 1
            return None
        chunks = chunk_article(art, self.ctx.encoder, self.ctx.chunk)
        if not chunks:
            self.report.skipped.append(Skipped(art.path or art.id, "no sentences found in the text"))
            return None
        return PendingArticle(art, h, chunks, previous)

    def _file_done(self, _: Path) -> None:
        crash_point("read")
        self.files[0] += 1
        self._tick()

    def _tick(self) -> None:
        if self.progress:
            elapsed = time.perf_counter() - self.started
            self.progress(BuildProgress(self.files[0], self.files[1], self.report.embedded, elapsed))

    def _check_strict(self) -> None:
        skipped = self.report.skipped
        if self.ctx.settings.strict and skipped:
            raise BuildError(
                f"{len(skipped)} file(s) skipped and --strict is set (first: {skipped[0].path}: "
                f"{skipped[0].reason}); the previous index is unchanged"
            )

    def _needs_new_version(self, draft: Draft) -> bool:
        """Nothing in the sources changed, but the vector index type or the database schema must."""
        ctx = self.ctx
        if draft.live is None or ctx.prev is None:
            return False
        n = int(draft.live.vectors.ntotal)
        policy = ctx.policy
        vectors_change = outdated(n, dim=ctx.dim, forced=ctx.faiss, previous=ctx.prev.vectors, policy=policy)
        return vectors_change or draft.live.store.schema_version < SCHEMA_VERSION

    def _unchanged(self, draft: Draft) -> BuildReport:
        """Keep the live version; tidy what a build killed after its switch left behind."""
        assert draft.live is not None and self.ctx.prev is not None
        rep = self.report
        counts = draft.live.store.counts()
        rep.articles, rep.passages, rep.version = counts["articles"], counts["passages"], self.ctx.prev.version
        shutil.rmtree(draft.folder, ignore_errors=True)
        drop_resume_cache(self.ctx.idx.work)
        self.ctx.idx.collect_garbage()
        rep.seconds = time.perf_counter() - self.started
        return rep

    def _flush(self, draft: Draft, window: list[PendingArticle], reuse: VectorReuse) -> None:
        """Embed a window's passages, then write its articles."""
        texts, spans, hashes = passage_inputs(window)
        self._write(draft, window, texts, hashes, self._embed(texts, spans, hashes, reuse))

    # ------------------------------------------------------- 2. embed
    def _embed(
        self, texts: list[str], spans: list[Spans], hashes: list[str], reuse: VectorReuse
    ) -> dict[str, StoredVector]:
        """Vectors (and sentence vectors) for every passage of the window, by text hash."""
        found = reuse.lookup(hashes)
        todo = sorted({h: i for i, h in enumerate(hashes) if h not in found}.values(), key=lambda i: len(texts[i]))
        rep, enc = self.report, self.ctx.encoder
        rep.reused += sum(1 for h in hashes if h in found)
        if todo:
            enc.load()  # model loading is not embedding time: keep it out of tokens/s
        for i in range(0, len(todo), EMBED_BATCH):
            part = todo[i : i + EMBED_BATCH]
            batch = [texts[j] for j in part]
            t0 = time.perf_counter()
            vecs, sent = enc.embed_passages_with_sentences(batch, [spans[j].embedded for j in part])
            rep.embed_seconds += time.perf_counter() - t0
            if vecs.shape != (len(part), self.ctx.dim):
                raise IndexerError(f"the model returned vectors of shape {vecs.shape}, expected (n, {self.ctx.dim})")
            # sentence spans are kept relative to the passage, so a passage reused elsewhere
            # (same text, other offsets) keeps its sentence vectors
            items = {
                hashes[j]: StoredVector(
                    np.asarray(vecs[k], np.float32).tobytes(),
                    pack_sentences(spans[j].relative, sent[k]) if sent is not None and spans[j].relative else None,
                )
                for k, j in enumerate(part)
            }
            reuse.keep(items)  # committed: a kill after this line loses none of it
            crash_point("embed")
            found.update(items)
            rep.embedded += len(part)
            rep.tokens += sum(len(s) + 2 for s in enc.token_spans(batch))
            self._tick()
        return found

    # ------------------------------------------------------- 3. write
    def _write(
        self,
        draft: Draft,
        window: list[PendingArticle],
        texts: list[str],
        hashes: list[str],
        found: dict[str, StoredVector],
    ) -> None:
        """Put the window's articles into the new version, replacing their old versions."""
        end = 0
        for p in window:
            start, end = end, end + len(p.chunks)
            embedded, hs = texts[start:end], hashes[start:end]
            if p.previous is not None:
                draft.remove(p.previous.rowid)
                self.report.updated += 1
            else:
                self.report.added += 1
            art = p.article
            vecs = np.frombuffer(b"".join(found[h].vector for h in hs), np.float32).reshape(len(hs), self.ctx.dim)
            terms = [analyze(t, art.lang) for t in embedded]
            blobs = [found[h].sentences for h in hs]
            ids = draft.writer().add_article(
                art, p.content_hash, p.chunks, hs, vecs, terms, dedup.signature(art.text), blobs
            )
            if draft.vindex is not None:
                vectors.add(draft.vindex, np.asarray(ids, dtype=np.int64), vecs)

    # ---------------------------------------------------- 4. finalize
    def _finalize(self, draft: Draft, sources: list[Path]) -> Manifest:
        """Duplicates, BM25 and the vector index of the whole new version; returns its manifest."""
        ctx, rep, writer = self.ctx, self.report, draft.writer()
        counts = writer.counts()
        if counts["articles"] == 0:
            raise BuildError("no articles found in the sources — check the paths, or see the skipped files above")
        rep.articles, rep.passages = counts["articles"], counts["passages"]
        rep.duplicate_clusters = dedup.regroup(writer)
        lex = lexical.build(writer.all_terms(), draft.folder / lexical.LEXICAL_DIR, analyzer=ANALYZER_VERSION)
        crash_point("lexical")
        # the updated index, or one rebuilt from the stored vectors (type change, growth, HNSW
        # removals), tuned to recall@10 ≥ 0.97: its entry goes into the manifest
        vindex, vinfo = vectors.finalize(
            draft.vindex,
            lambda: writer.all_vectors(ctx.dim),
            counts["passages"],
            ctx.dim,
            forced=ctx.faiss,
            previous=ctx.previous_vectors,
            policy=ctx.policy,
        )
        writer.commit_and_close()
        crash_point("sqlite")
        vectors.save(vindex, draft.folder / vectors.VECTORS_FILE)
        crash_point("faiss")
        return self._manifest(draft.name, counts, sources, vinfo, lex)

    def _manifest(
        self, version: str, counts: dict[str, int], sources: list[Path], vinfo: VectorIndexInfo, lex: LexicalInfo
    ) -> Manifest:
        ctx = self.ctx
        created = ctx.prev.created_at if ctx.prev is not None and ctx.incremental else now()
        model = ModelInfo(
            name=ctx.model.name,
            fingerprint=ctx.model.fingerprint,
            dimension=ctx.dim,
            backend=ctx.backend,
            origin=ctx.model.origin,
            max_seq_length=int(ctx.encoder.max_seq_length),
        )
        return Manifest(
            format_version=FORMAT_VERSION,
            package_version=__version__,
            version=version,
            created_at=created,
            built_at=now(),
            model=model,
            chunker=ctx.chunk,
            vectors=vinfo,
            counts=counts,
            sources=[corpus.display_path(s) for s in sources],
            lexical=lex,
            policy=ctx.policy,
        )


def _cannot_write(path: Path, exc: BaseException) -> BuildError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return BuildError(
        f"cannot write the index at {path} ({' '.join(reason.split())}) — free some disk space or make "
        "the folder writable, then build again; the previous index is unchanged"
    )


def _check_target(idx: IndexDir) -> None:
    if idx.path.exists() and not idx.path.is_dir():
        raise BuildError(f"{idx.path} is a file; --index takes a folder")
    if idx.path.is_dir() and not idx.exists():
        strangers = idx.layout.foreign_entries()
        if strangers:
            raise BuildError(
                f"{idx.path} is not an index folder and not empty (it holds {strangers[0]!r}) — "
                "choose a new or empty folder for --index"
            )


def build(
    sources: Iterable[Path | str],
    index_dir: Path | str,
    settings: BuildSettings | None = None,
    *,
    encoder: Encoder | None = None,
    model: ResolvedModel | None = None,
    progress: Callable[[BuildProgress], None] | None = None,
    store: str | None = None,
) -> BuildReport:
    """Build or update the index at ``index_dir`` from ``sources``; publish atomically.

    ``store`` (a ``milvus://`` or ``milvus-lite://`` URI) is then synced to the live version.
    """
    settings = settings or BuildSettings()
    srcs = corpus.check_sources(Path(s) for s in sources)
    idx = IndexDir(index_dir)
    _check_target(idx)
    # a bad URI or an unreachable server fails before any work
    backends = open_backends(store) if store is not None else None
    try:
        try:
            idx.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_write(idx.path, exc) from None
        lock = idx.lock()
        try:
            try:
                report = _Run(prepare(idx, settings, encoder, model), progress).run(srcs)
            except (OSError, sqlite3.OperationalError) as exc:
                # a full disk, a read-only file system, a permission: the new version's folder
                # is already gone and the live one untouched, which is what the user must know
                raise _cannot_write(idx.path, exc) from None
            if backends is not None:  # still under the lock: one sync at a time, of the version just published
                report.store = backends.sync(idx)
            return report
        finally:
            lock.release()
    finally:
        if backends is not None:
            backends.close()
