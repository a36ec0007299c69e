"""Incremental, atomic, resumable index builds, in five steps.

1. plan: read the sources and compare each article's hash with the live version's
   (``_plan``); changed and new articles are chunked and gathered in windows.
2. embed: each window's passages get vectors — reused when their exact text was
   embedded before (``VectorReuse``), else computed and committed to the resume cache.
3. write: the window's articles go into the new version's own segment; the articles
   they replace, and the vanished ones, are marked deleted in the live segments.
4. finalize: the new segment is sealed (its BM25 postings and its vector index,
   tuned once: segments never change); near-duplicate groups and stories
   (story_versions.py) are updated for what was added and deleted only.
5. gate (only with ``BuildSettings(gate=...)``): the new version and the live one answer
   labelled queries; a new version that ranks them worse than allowed is kept aside, not
   published (gate.py).
6. publish: checksums of the new files, and the manifest switch (``IndexDir.publish``).
7. merge: segments of one size tier are merged (merge.py), each merge a version of its own.

An update therefore costs what changed, not what the archive holds. A killed or
failed build leaves the live version untouched.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from . import __version__, corpus, dedup, gate, percolate, postings, story_versions, vectors
from .analysis import ANALYZER_VERSION, analyze
from .backends import open_backends
from .chunking import ChunkSettings, chunk_article
from .corpus import ReadSettings, Unchanged
from .draft import Context, Draft, Spans, passage_inputs, prepare, publish
from .embedding import Encoder, context_title
from .errors import BuildError, IndexerError
from .evaluate import LabelledQuery
from .faults import crash_point
from .filecache import FileCache, FileState
from .gate import GateError, GatePlan, GateRefusedError, GateReport, GateSettings
from .highlight import pack_sentences
from .index import IndexDir, VerifiedFiles
from .manifest import FORMAT_VERSION, LexicalInfo, Manifest, ModelInfo, now
from .merge import MergeReport, merge
from .models import ResolvedModel
from .pipeline import prefetch
from .records import Article, KnownArticle, PendingArticle, Skipped, StoredVector
from .resume import ResumeCache, VectorReuse, drop_resume_cache
from .segment_write import VectorChoice, seal
from .store import SCHEMA_VERSION, article_hash
from .vector_plan import AUTO, EXACT, IndexPolicy, VectorIndexInfo, is_auto
from .version_state import VersionState
from .writer import Writer

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
    # re-read every file; else a file whose size and modification time are those the last
    # build recorded is taken as unchanged without being opened (as make and rsync reason)
    check: bool = False
    # publish only if the new version answers these labelled queries about as well as the live one
    # (gate.py); otherwise the live version stays and the new one is kept under .work/rejected/
    gate: GateSettings | None = None


@dataclass(frozen=True)
class Window:
    """New and changed articles ready for the model: what the write step needs is computed already."""

    pending: list[PendingArticle]
    texts: list[str]  # each passage's embedded text
    spans: list[Spans]
    hashes: list[str]
    tokens: list[int]  # what the model sees of each passage, special tokens included
    terms: list[list[str]]  # analysed BM25 terms
    signatures: list[np.ndarray]  # MinHash, per article


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
    kept: int = 0  # articles of files that did not read cleanly, kept as the last build indexed them
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
    stories: int = 0  # stories of two or more articles (story_versions.py)
    story_seconds: float = 0.0  # making them (included in ``seconds``)
    reason: str = ""  # why a full rebuild happened
    version: str = ""
    published: bool = False  # False when nothing changed and the live version was kept
    store: Any = None  # milvus_sync.SyncReport, when the build was asked to sync a vector store
    publish_seconds: float = 0.0  # until the update was live (merges, if any, follow)
    merge: MergeReport | None = None  # the merges run after publishing
    warnings: list[str] = field(default_factory=list)  # promises the new segments could not keep
    gate: GateReport | None = None  # with --gate: passed (both versions' metrics), or not applied (no live version)
    alerts: percolate.PercolationReport | None = None  # the saved searches run against what it added (percolate.py)

    @property
    def tokens_per_second(self) -> float:
        """Embedding throughput of this build."""
        return self.tokens / self.embed_seconds if self.embed_seconds > 0 else 0.0


# ---------------------------------------------------------- 1. plan
class _Run:
    """One build: the steps, run in order by ``run``."""

    def __init__(
        self,
        ctx: Context,
        progress: Callable[[BuildProgress], None] | None,
        *,
        queries: list[LabelledQuery] | None = None,
        live_encoder: Encoder | None = None,
    ) -> None:
        self.ctx = ctx
        self.progress = progress
        self.queries = queries  # the gate's labelled queries, loaded before any work
        self.live_encoder = live_encoder
        self.report = BuildReport(full=not ctx.incremental)
        self.report.reason = ctx.reason or ("no index yet" if ctx.prev is None and not ctx.settings.full else "--full")
        self.started = time.perf_counter()
        self.files = [0, 0]  # done, total
        self.cache_path = ctx.idx.layout.filecache
        self.filecache = FileCache()
        self.previous_files = self.filecache  # what the last build recorded per file (empty without one)
        self.cache_key = ""
        self.seen: set[str] = set()  # ids of every article read (or taken as unchanged)
        self.loaded_key = ""

    def run(self, sources: list[Path]) -> BuildReport:
        """Plan, embed, write, finalize, publish (or keep the live version when nothing changed)."""
        ctx, rep = self.ctx, self.report
        self._trust()
        self._load_cache(sources)
        gate.clean(ctx.idx)  # a candidate that a killed gated build left staged
        draft = Draft(ctx)
        try:
            plan = self._gate_plan(draft)  # the live version checked before any embedding
            cache = ResumeCache(ctx.idx.layout.resume, f"{ctx.model.fingerprint}|{ctx.backend}")
            try:
                self._plan(sources, draft, VectorReuse(draft, draft.previous, cache))
            finally:
                cache.close()
            self._check_strict()
            if not draft.changed and draft.live is None:  # a first build or --full that found nothing
                drop_resume_cache(ctx.idx.work)  # nothing was embedded: no work to resume
                raise BuildError(f"no articles found in the sources{_skips_in_brief(rep.skipped)} — check the paths")
            reindex = not draft.changed and self._needs_new_version(draft)
            if not draft.changed and not story_versions.missing(draft.live):
                self._unchanged(draft)
                return self._merge(reindex)
            manifest = self._finalize(draft, sources)
            if plan is not None:
                rep.gate = self._judge(plan, draft, manifest)
            publish(ctx.idx, draft.folder, manifest)
        except BaseException:
            shutil.rmtree(draft.folder, ignore_errors=True)
            draft.close()
            raise
        published = time.perf_counter()
        # published: nothing from here on may report the build as failed
        rep.version, rep.published = draft.name, True
        try:
            interrupted = self._percolate(draft)  # before the live version closes: it reads what it held
        finally:
            draft.close()
        # the build is durable now: its resume cache and old versions can go
        drop_resume_cache(ctx.idx.work)
        ctx.idx.collect_garbage()
        rep.seconds = time.perf_counter() - self.started
        rep.publish_seconds = published - self.started
        return self._merge(reindex, run=not interrupted)

    def _percolate(self, draft: Draft) -> bool:
        """Run the saved searches against what this version added; returns whether Ctrl-C stopped them.

        Neither a failure nor Ctrl-C here is the build's: the version is published, and its
        report says so, with a warning. The alert store records a run in one transaction,
        so a run cut short recorded nothing, and the next run (the next build that
        publishes) takes what this version added as news too (``percolate._Run._search``).
        """
        rep = self.report
        later = (
            f"version {draft.name} is published, and the next build that publishes runs them against its articles "
            "too (then see indexer alerts new)"
        )
        try:
            rep.alerts = percolate.after_publish(self.ctx.idx, draft.live, self.ctx.encoder)
        except KeyboardInterrupt:
            rep.warnings.append(f"interrupted while running the saved searches: {later}; merges were not run")
            return True
        except Exception as exc:  # after_publish reports its own failures: this is the last resort
            rep.alerts = percolate.PercolationReport(0, 0, 0, 0.0, draft.live is None, error=percolate.why(exc))
        if rep.alerts is not None and rep.alerts.error:
            rep.warnings.append(f"the saved searches could not be run ({rep.alerts.error}): {later}")
        return False

    def _gate_plan(self, draft: Draft) -> GatePlan | None:
        settings = self.ctx.settings.gate
        if settings is None:
            return None
        assert self.queries is not None
        return gate.plan(
            self.ctx.idx, settings, self.queries, live=draft.live, model=self.ctx.model, live_encoder=self.live_encoder
        )

    def _judge(self, plan: GatePlan, draft: Draft, manifest: Manifest) -> GateReport:
        """The gate's verdict on the finalized version; raises when it is not to be published."""
        ctx = self.ctx
        try:
            return gate.judge(
                ctx.idx, plan, draft.folder, manifest, encoder=ctx.encoder, live_encoder=self.live_encoder
            )
        except (GateError, GateRefusedError):
            # not published: the new segment lives on only in the kept candidate (hard links), and
            # the file cache is not saved, so the next build reads the refused change again; the
            # resume cache stays, so that build embeds none of it again
            if draft.has_segment():
                shutil.rmtree(ctx.idx.layout.segment(draft.segment), ignore_errors=True)
            self._save_trust()
            raise

    def _trust(self) -> None:
        """Let the build skip re-hashing segment files it verified before (not with ``--check``)."""
        idx = self.ctx.idx
        idx.trust = None if self.ctx.settings.check else VerifiedFiles(idx.layout.verified)

    def _load_cache(self, sources: list[Path]) -> None:
        """What each file looked like at the live version: unchanged ones are not opened again.

        The cache holds for the same sources read the same way only: article ids and
        languages depend on the roots and the read settings.
        """
        ctx = self.ctx
        read = ctx.settings.read
        self.cache_key = json.dumps(
            [[str(p.resolve()) for p in sources], read.follow_symlinks, read.max_file_mb, read.detect_language]
        )
        if ctx.incremental and ctx.prev is not None:
            key = f"{ctx.prev.version}|{self.cache_key}"
            # which articles each file held: a file that fails to read keeps them (even with --check)
            self.previous_files = FileCache.load(self.cache_path, version=key)
            if not ctx.settings.check:
                self.loaded_key, self.filecache = key, self.previous_files

    def _save_cache(self) -> None:
        """Record the files as read, for the live version (a failure costs the next build a full read)."""
        idx = self.ctx.idx
        try:
            version = f"{idx.manifest().version}|{self.cache_key}"
            fresh = self.filecache.loaded and not self.filecache.dirty and version == self.loaded_key
            if not fresh:  # a build that read nothing and published nothing writes nothing
                self.filecache.save(self.cache_path, version=version, seen=self.seen)
        except (OSError, IndexerError):
            pass
        self._save_trust()

    def _save_trust(self) -> None:
        """Record the checksums verified by this build (only a cache: a failure costs a re-read)."""
        idx = self.ctx.idx
        try:
            (idx.trust or VerifiedFiles(idx.layout.verified)).save([idx.layout.segments, idx.versions])
        except (OSError, IndexerError):
            pass

    def _merge(self, everything: bool, *, run: bool = True) -> BuildReport:
        """Run the merges now due (all segments into one for another ``--faiss``); ``run=False``: leave them."""
        ctx, rep = self.ctx, self.report
        if run:
            choice = VectorChoice(dim=ctx.dim, forced=ctx.faiss, previous=None, policy=ctx.policy)
            merged = merge(ctx.idx, choice=choice if everything else None, everything=everything)
            rep.merge = merged
            if merged.merges:
                rep.version, rep.published = ctx.idx.manifest().version, True
        self._save_cache()
        rep.seconds = time.perf_counter() - self.started
        return rep

    def _plan(self, sources: list[Path], draft: Draft, reuse: VectorReuse) -> None:
        """Read every source; embed and write new and changed articles by windows; remove vanished ones.

        Windows are read, chunked and analysed in a background thread (``prefetch``)
        while the model embeds the one before. With a file cache of the live version,
        only the articles read are looked up in the index, and only the articles of
        changed or vanished files can be gone: the work follows the change, not the archive.
        """
        live = draft.live
        lazy = live is not None and self.filecache.loaded
        known: dict[str, KnownArticle] = {} if lazy else draft.known()

        def lookup(ids: list[str]) -> dict[str, KnownArticle]:
            if not lazy:
                return {a: known[a] for a in ids if a in known}
            assert live is not None
            return live.store.known_by_id(ids)

        self.files[1] = corpus.count_files(sources, self.ctx.settings.read)
        for window in prefetch(self._windows(sources, lookup), depth=3):
            if window is not None:
                self._flush(draft, window, reuse)
            self._tick()  # here, not in the reading thread: a progress widget belongs to the caller's
        if lazy:
            candidates = [a for a in dict.fromkeys(self.filecache.dropped()) if a not in self.seen]
            gone = lookup(candidates)
        else:
            gone = {a: k for a, k in known.items() if a not in self.seen}
        for k in gone.values():
            draft.remove(k.rowid)
        self.report.removed = len(gone)

    def _windows(
        self, sources: list[Path], lookup: Callable[[list[str]], dict[str, KnownArticle]]
    ) -> Iterator[Window | None]:
        """New and changed articles, chunked and analysed, about ``WINDOW`` passages at a time.

        Articles are looked up in the index a batch at a time; None now and then while
        files go by with nothing to embed, so progress is shown.
        """
        rep, cache, seen = self.report, self.filecache, self.seen
        pending: list[PendingArticle] = []
        batch: list[Article] = []
        shown = time.perf_counter()

        def settle() -> Iterator[Window]:
            nonlocal pending
            found = lookup([a.id for a in batch])
            for art in batch:
                p = self._pending(art, found.get(art.id))
                if p is not None:
                    pending.append(p)
            batch.clear()
            if sum(len(x.chunks) for x in pending) >= WINDOW:
                yield self._prepare(pending)
                pending = []

        for art in corpus.read_sources(sources, self.ctx.settings.read, on_file=self._file_done, skip=cache.unchanged,
                                       on_read=cache.record, on_problem=self._keep_articles_of):  # fmt: skip
            if time.perf_counter() - shown > 0.25:
                shown = time.perf_counter()
                yield None
            if isinstance(art, Unchanged):
                state = cast(FileState, art.state)
                cache.keep(art.path, state)
                seen.update(state.articles)
                rep.unchanged += len(state.articles)
                continue
            if isinstance(art, Skipped):
                rep.skipped.append(art)
                continue
            seen.add(art.id)
            batch.append(art)
            if len(batch) >= 256:
                yield from settle()
        yield from settle()
        if pending:
            yield self._prepare(pending)

    def _keep_articles_of(self, file: Path, shown: str) -> None:
        """A file that did not read cleanly keeps the articles the last build took from it.

        Unparseable, cut short, unreadable or still being written may all be temporary: only a
        file that is gone, or that reads cleanly to fewer records, removes articles.
        """
        before = self.previous_files.previous(file)
        if before is None or not before.articles:
            return
        kept = [a for a in before.articles if a not in self.seen]
        self.seen.update(before.articles)
        # its old entry stays, so the next build reads the file again (its size or mtime differ by then)
        self.filecache.keep(file, before)
        if kept:
            self.report.kept += len(kept)
            self.report.skipped.append(
                Skipped(shown, f"{len(kept)} article(s) from the last build kept until the file reads cleanly")
            )

    def _prepare(self, pending: list[PendingArticle]) -> Window:
        """A window's passage texts, hashes, token counts, BM25 terms and MinHash signatures."""
        texts, spans, hashes = passage_inputs(pending)
        # a passage's tokens are its sentences' (counted by the chunker) plus its title's: tokenising
        # every passage again only to count them cost ~10 % of the model's time (equal on data/articles)
        titles = [context_title(p.article.title) for p in pending]
        counted = iter(len(t) for t in self.ctx.encoder.token_spans([t for t in titles if t]))
        per_article = [next(counted) if t else 0 for t in titles]
        tokens = [c.n_tokens + n + 2 for p, n in zip(pending, per_article) for c in p.chunks]
        terms: list[list[str]] = []
        end = 0
        for p in pending:
            start, end = end, end + len(p.chunks)
            terms.extend(analyze(t, p.article.lang) for t in texts[start:end])
        signatures = [dedup.signature(p.article.text) for p in pending]
        return Window(pending, texts, spans, hashes, tokens, terms, signatures)

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
        """Nothing in the sources changed, but another ``--faiss`` type or a newer database schema is due.

        An automatic type is the segments' own business: each gets the type its size
        calls for when it is written or merged, so no size change rebuilds anything here.
        """
        ctx = self.ctx
        if draft.live is None or ctx.prev is None:
            return False
        if draft.live.store.schema_version < SCHEMA_VERSION:
            return True  # rewriting the segments migrates their databases
        if ctx.faiss is None:
            return False
        prev = ctx.prev.vectors
        if ctx.faiss == AUTO:
            return not prev.auto
        return prev.auto or any(s.vectors.faiss != ctx.faiss for s in ctx.prev.segments if s.vectors.faiss != EXACT)

    def _unchanged(self, draft: Draft) -> BuildReport:
        """Keep the live version; tidy what a build killed after its switch left behind."""
        assert draft.live is not None and self.ctx.prev is not None
        rep = self.report
        counts = draft.live.store.counts()
        rep.articles, rep.passages, rep.version = counts["articles"], counts["passages"], self.ctx.prev.version
        draft.close()
        shutil.rmtree(draft.folder, ignore_errors=True)
        drop_resume_cache(self.ctx.idx.work)
        self.ctx.idx.collect_garbage()
        rep.seconds = time.perf_counter() - self.started
        return rep

    def _flush(self, draft: Draft, window: Window, reuse: VectorReuse) -> None:
        """Embed a window's passages, then write its articles."""
        self._write(draft, window, self._embed(window, reuse))

    # ------------------------------------------------------- 2. embed
    def _embed(self, window: Window, reuse: VectorReuse) -> dict[str, StoredVector]:
        """Vectors (and sentence vectors) for every passage of the window, by text hash."""
        texts, spans, hashes = window.texts, window.spans, window.hashes
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
            rep.tokens += sum(window.tokens[j] for j in part)
            self._tick()
        return found

    # ------------------------------------------------------- 3. write
    def _write(self, draft: Draft, window: Window, found: dict[str, StoredVector]) -> None:
        """Put the window's articles into the new segment; the versions they replace are deleted."""
        end = 0
        for p, signature in zip(window.pending, window.signatures):
            start, end = end, end + len(p.chunks)
            hs = window.hashes[start:end]
            if p.previous is not None:
                draft.remove(p.previous.rowid)
                self.report.updated += 1
            else:
                self.report.added += 1
            vecs = np.frombuffer(b"".join(found[h].vector for h in hs), np.float32).reshape(len(hs), self.ctx.dim)
            blobs = [found[h].sentences for h in hs]
            draft.writer().add_article(
                p.article, p.content_hash, p.chunks, hs, vecs, window.terms[start:end], signature, blobs
            )

    # ---------------------------------------------------- 4. finalize
    def _finalize(self, draft: Draft, sources: list[Path]) -> Manifest:
        """Seal the new segment, record the deletions and groups; returns the new version's manifest."""
        ctx, rep = self.ctx, self.report
        live = draft.live
        removed = sorted(set(draft.removed))
        state = draft.state.deleting(removed, live.store.article_passages(removed) if live and removed else [])
        segments = draft.segments
        if draft.has_segment():
            writer = draft.writer()
            if live is None:
                dedup.regroup(writer)  # a rebuild: the whole collection is in this one segment
                groups = writer.groups
            else:
                groups = self._regroup(draft, writer, state, removed)
            rows, ids = (writer.first_row, writer.next_row), (writer.first_id, writer.next_id)
            choice = VectorChoice(
                dim=ctx.dim, forced=ctx.faiss, previous=ctx.previous_vectors, policy=ctx.policy, small=live is not None
            )
            segments.append(seal(ctx.idx, writer, draft.segment, rows=rows, ids=ids, choice=choice))
        else:
            groups = self._regroup(draft, None, state, removed)
        state = state.with_groups(groups)
        rep.duplicate_clusters = len(set(groups.values()))
        articles = sum(s.articles for s in segments) - len(state.deleted_rows)
        passages = sum(s.passages for s in segments) - len(state.deleted_ids)
        if articles == 0:
            raise BuildError(f"no articles found in the sources{_skips_in_brief(rep.skipped)} — check the paths")
        rep.articles, rep.passages = articles, passages
        state.save(draft.folder)
        segment = ctx.idx.layout.segment(draft.segment) if draft.has_segment() else None
        made = story_versions.make(draft.folder, live, segment, dim=ctx.dim, state=state, removed=removed)
        rep.stories, rep.story_seconds = made.stories, made.seconds
        counts = {"articles": articles, "passages": passages}
        auto = is_auto(ctx.faiss, ctx.previous_vectors)
        vinfo = vectors.summary([s.vectors for s in segments], passages, auto=auto)
        lex = LexicalInfo(kind="postings", k1=postings.K1, b=postings.B, documents=passages, analyzer=ANALYZER_VERSION)
        rep.warnings.extend(s.vectors.warning for s in segments if s.vectors.warning)
        return replace(self._manifest(draft.name, counts, sources, vinfo, lex), segments=segments)

    def _regroup(self, draft: Draft, writer: Writer | None, state: VersionState, removed: list[int]) -> dict[int, int]:
        """The near-duplicate groups after this update, from the added and deleted articles only."""
        live = draft.live
        assert live is not None
        gone = set(removed)
        added = writer.signatures(list(range(writer.first_row, writer.next_row))) if writer is not None else {}

        def candidates(keys: list[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
            found = live.store.band_articles(keys)
            return {k: kept for k, rows in found.items() if (kept := [r for r in rows if r not in gone])}

        return dedup.update_groups(
            draft.state.groups, added, removed, candidates=candidates, signatures=live.store.signatures
        )

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


def _skips_in_brief(skipped: list[Skipped], shown: int = 3) -> str:
    """The first skips, for a message that has no report printed above it."""
    if not skipped:
        return " (no file of a supported type: txt, md, html, json, jsonl, csv)"
    listed = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:shown])
    more = f"; and {len(skipped) - shown:,} more" if len(skipped) > shown else ""
    return f" ({len(skipped):,} skipped: {listed}{more})"


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
    live_encoder: Encoder | None = None,
) -> BuildReport:
    """Build or update the index at ``index_dir`` from ``sources``; publish atomically.

    ``store`` (a ``milvus://`` or ``milvus-lite://`` URI) is then synced to the live version.
    With ``settings.gate``, a new version that answers the labelled queries worse than the
    live one raises ``GateRefusedError`` (carrying the report) and is not published;
    ``live_encoder`` then searches the live version when the model changed (by default
    its model is resolved by name, as a ``Searcher`` does).
    """
    settings = settings or BuildSettings()
    srcs = corpus.check_sources(Path(s) for s in sources)
    # a missing, garbled or empty labelled file fails before any work
    queries = gate.load(settings.gate) if settings.gate is not None else None
    idx = IndexDir(index_dir)
    _check_target(idx)
    # a bad URI or an unreachable server fails before any work
    backends = open_backends(store) if store is not None else None
    created = not idx.path.exists()
    try:
        try:
            idx.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_write(idx.path, exc) from None
        lock = idx.lock()
        try:
            try:
                ctx = prepare(idx, settings, encoder, model)
                report = _Run(ctx, progress, queries=queries, live_encoder=live_encoder).run(srcs)
            except (OSError, sqlite3.OperationalError) as exc:
                # a full disk, a read-only file system, a permission: the new version's folder
                # is already gone and the live one untouched, which is what the user must know
                raise _cannot_write(idx.path, exc) from None
            if backends is not None:  # still under the lock: one sync at a time, of the version just published
                report.store = backends.sync(idx)
            return report
        except IndexerError:
            # a folder this build made, never published to, holding no work worth resuming
            if created and not idx.exists() and not idx.layout.resume.exists():
                shutil.rmtree(idx.path, ignore_errors=True)
            raise
        finally:
            lock.release()
    finally:
        if backends is not None:
            backends.close()
