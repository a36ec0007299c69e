"""Incremental, atomic, resumable index builds.

A build copies the live version's database and vectors into a private folder,
applies the differences (added, changed and vanished articles), and publishes
the folder by replacing the manifest. Passages whose text was embedded before —
in the live index or by an earlier build that was killed — are not embedded again.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, corpus, dedup, lexical, vectors
from .analysis import ANALYZER_VERSION, analyze
from .chunking import ChunkSettings, chunk_article
from .corpus import ReadSettings
from .embedding import DEFAULT_BACKEND, Embedder, Encoder, body_offset, passage_text
from .errors import BuildError, IndexerError, IndexNotFoundError
from .faults import checkpoint
from .highlight import pack_sentences
from .index import PARTIAL, IndexDir
from .manifest import FORMAT_VERSION, Manifest, ModelInfo, now
from .models import DEFAULT_MODEL, ResolvedModel, resolve
from .records import Article, Chunk, Skipped
from .resume import RESUME_FILE, ResumeCache, drop_resume_cache
from .store import DB_FILE, Store, Writer, article_hash, text_hash

_WINDOW = 256  # passages gathered before embedding, so batches can be sorted by length


@dataclass(frozen=True)
class BuildSettings:
    model: str | None = None  # None: the index's current model, else the default
    backend: str | None = None  # None: the index's current backend, else the default
    chunk: ChunkSettings | None = None  # None: the index's current settings, else the defaults
    read: ReadSettings = field(default_factory=ReadSettings)
    full: bool = False  # ignore the existing index and rebuild everything
    strict: bool = False  # any skipped file fails the build
    # FAISS factory string ("IVF4096,SQ8", "HNSW32,SQ8"…); None: the index's forced one, else
    # chosen by size (vectors.plan); "auto": chosen by size
    faiss: str | None = None


@dataclass
class BuildProgress:
    files_done: int
    files_total: int
    passages_embedded: int
    elapsed: float


@dataclass
class BuildReport:
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
    store: Any = None  # milvus.SyncReport, when the build was asked to sync a vector store

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.embed_seconds if self.embed_seconds > 0 else 0.0


def _version_name(versions: Path) -> str:
    """Next version folder name: numbers increase even across --full rebuilds."""
    numbers = [int(p.name.split("-", 1)[0]) for p in versions.iterdir() if p.name.split("-", 1)[0].isdigit()]
    return f"{max(numbers, default=0) + 1:06d}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"


def _previous(idx: IndexDir, full: bool) -> Manifest | None:
    if full:
        return None
    try:
        return idx.manifest()
    except IndexNotFoundError:
        return None  # a damaged or newer-format index raises: "indexer build --full" is the fix


class _Builder:
    def __init__(
        self,
        idx: IndexDir,
        settings: BuildSettings,
        encoder: Encoder | None,
        model: ResolvedModel | None,
        progress: Callable[[BuildProgress], None] | None,
    ) -> None:
        self.idx = idx
        self.settings = settings
        self.progress = progress
        self.report = BuildReport()
        self.started = time.perf_counter()
        prev = _previous(idx, settings.full)
        name = settings.model or (prev.model.name if prev else DEFAULT_MODEL)
        self.backend = settings.backend or (prev.model.backend if prev else DEFAULT_BACKEND)
        self.model = model or resolve(name)
        self.encoder: Encoder = encoder or Embedder(self.model, backend=self.backend)
        self.dim = int(self.encoder.dimension)
        # checked before any work: a typo in --faiss must not cost an embedding run
        self.faiss = None if settings.faiss is None else vectors.check_factory(settings.faiss, self.dim)
        requested = settings.chunk
        if requested is None:
            requested = ChunkSettings(**prev.chunker) if prev is not None and prev.chunker else ChunkSettings()
        self.chunk = self._effective_chunk(requested)
        self.prev = prev
        self.reason = self._incompatibility(prev)
        self.report.full = prev is None or bool(self.reason)
        self.report.reason = self.reason or ("no index yet" if prev is None and not settings.full else "--full")

    def _effective_chunk(self, cs: ChunkSettings) -> ChunkSettings:
        # leave room for the special tokens, the prompt and a title within the model's window
        room = int(self.encoder.max_seq_length) - 2 - 8 - 48
        return replace(cs, max_tokens=max(8, min(cs.max_tokens, room)))

    def _incompatibility(self, prev: Manifest | None) -> str:
        if prev is None:
            return ""
        if prev.model.fingerprint != self.model.fingerprint or prev.model.name != self.model.name:
            return f"model changed ({prev.model.name} → {self.model.name})"
        if prev.model.backend != self.backend:
            return f"backend changed ({prev.model.backend} → {self.backend})"
        if prev.chunker != self.chunk.to_dict():
            return "chunker settings changed"
        if prev.lexical.get("analyzer") != ANALYZER_VERSION:
            return "text analysis changed"
        return ""

    # ------------------------------------------------------------------ run
    def run(self, sources: list[Path]) -> BuildReport:
        idx, rep = self.idx, self.report
        idx.versions.mkdir(parents=True, exist_ok=True)
        idx.clean_partials()
        version = _version_name(idx.versions)
        self.partial = idx.versions / f"{version}{PARTIAL}"
        self.partial.mkdir()
        self.writer: Writer | None = None
        self.live = None
        self.reuse: Any = None
        self.lexical: dict[str, Any] = {}
        self.vinfo: dict[str, Any] = {}  # the manifest's vectors entry (vectors.finalize)
        try:
            if self.prev is not None and not self.reason:
                # opening checks the live version; its vectors are then updated in memory
                self.live = idx.open()
                self.vindex = self.live.vectors
                known = self.live.store.known_articles()
            else:
                # built from the stored vectors once all are in (vectors.finalize): memory stays
                # bounded, and the index type fits the final size
                self.vindex = None
                self._writer()
                known = {}
                if (
                    self.prev is not None
                    and self.prev.model.fingerprint == self.model.fingerprint
                    and self.prev.model.backend == self.backend
                    and not self.settings.full
                ):
                    # same model: the old version's vectors are still right for identical passages
                    try:
                        self.reuse = Store(idx.versions / self.prev.version / DB_FILE)
                    except (OSError, sqlite3.DatabaseError):
                        self.reuse = None
            self.cache = ResumeCache(idx.work / RESUME_FILE, f"{self.model.fingerprint}|{self.backend}")
            try:
                self._apply(sources, known)
            finally:
                self.cache.close()
            if self.settings.strict and rep.skipped:
                first = rep.skipped[0]
                raise BuildError(
                    f"{len(rep.skipped)} file(s) skipped and --strict is set (first: {first.path}: {first.reason}); "
                    "the previous index is unchanged"
                )
            if self.writer is None and self.live is not None and self.prev is not None:
                n = int(self.live.vectors.ntotal)
                if vectors.outdated(n, dim=self.dim, forced=self.faiss, previous=self.prev.vectors):
                    self._writer()  # only the vector index changes (another --faiss): a new version carries it
            if self.writer is None:  # nothing changed: the live version stays as it is
                assert self.live is not None and self.prev is not None
                counts = self.live.store.counts()
                rep.articles, rep.passages, rep.version = counts["articles"], counts["passages"], self.prev.version
                shutil.rmtree(self.partial, ignore_errors=True)
                # a build killed after its switch left these for us
                drop_resume_cache(idx.work)
                idx.collect_garbage()
                rep.seconds = time.perf_counter() - self.started
                return rep
            counts = self.writer.counts()
            if counts["articles"] == 0:
                raise BuildError("no articles found in the sources — check the paths, or see the skipped files above")
            rep.articles, rep.passages = counts["articles"], counts["passages"]
            rep.duplicate_clusters = dedup.regroup(self.writer.con)
            self.lexical = {
                **lexical.build(self.writer.con, self.partial / lexical.LEXICAL_DIR),
                "analyzer": ANALYZER_VERSION,
            }
            checkpoint("lexical")
            # the updated index, or one rebuilt from the stored vectors (type change, growth, HNSW
            # removals), tuned to recall@10 ≥ 0.97: its entry goes into the manifest
            writer = self.writer
            same_dim = self.prev is not None and self.prev.model.dimension == self.dim
            self.vindex, self.vinfo = vectors.finalize(
                self.vindex,
                lambda: writer.all_vectors(self.dim),
                counts["passages"],
                self.dim,
                forced=self.faiss,
                previous=self.prev.vectors if self.prev is not None and same_dim else None,
            )
            self.writer.commit_and_close()
            checkpoint("sqlite")
            vectors.save(self.vindex, self.partial / vectors.VECTORS_FILE)
            checkpoint("faiss")
            m = self._manifest(version, counts, sources)
            (self.partial / "manifest.json").write_text(m.to_json(), encoding="utf-8")
            _fsync_tree(self.partial)
            idx.publish(self.partial, m)
        except BaseException:
            shutil.rmtree(self.partial, ignore_errors=True)
            raise
        finally:
            if self.live is not None:
                self.live.close()
            if self.reuse is not None:
                self.reuse.close()
        # the build is durable now: its resume cache and old versions can go
        drop_resume_cache(idx.work)
        idx.collect_garbage()
        rep.version, rep.published = version, True
        rep.seconds = time.perf_counter() - self.started
        return rep

    def _writer(self) -> Writer:
        """The new version's database, copied from the live one on the first change."""
        if self.writer is None:
            if self.live is not None:
                shutil.copyfile(self.live.path / DB_FILE, self.partial / DB_FILE)
            self.writer = Writer(self.partial / DB_FILE)
        return self.writer

    def _manifest(self, version: str, counts: dict[str, int], sources: list[Path]) -> Manifest:
        created = self.prev.created_at if self.prev and not self.reason else now()
        return Manifest(
            format_version=FORMAT_VERSION,
            package_version=__version__,
            version=version,
            created_at=created,
            built_at=now(),
            model=ModelInfo(
                name=self.model.name,
                fingerprint=self.model.fingerprint,
                dimension=self.dim,
                backend=self.backend,
                origin=self.model.origin,
                max_seq_length=int(self.encoder.max_seq_length),
            ),
            chunker=self.chunk.to_dict(),
            vectors=self.vinfo,  # factory, auto or forced, nlist/nprobe or efSearch, measured recall@10
            counts=counts,
            sources=[corpus.display_path(s) for s in sources],
            lexical=self.lexical,
        )

    def _apply(self, sources: list[Path], known: dict[str, tuple[int, str]]) -> None:
        rep = self.report
        seen: set[str] = set()
        self.files_total = corpus.count_files(sources, self.settings.read)
        self.files_done = 0
        self.pending: list[tuple[Article, str, list[Chunk], str]] = []
        self.pending_passages = 0

        def file_done(_: Path) -> None:
            checkpoint("read")
            self.files_done += 1
            self._tick()

        for art in corpus.read_sources(sources, self.settings.read, on_file=file_done):
            if isinstance(art, Skipped):
                rep.skipped.append(art)
                continue
            seen.add(art.id)
            h = article_hash(art)
            prev = known.get(art.id)
            if prev is not None and prev[1] == h:
                rep.unchanged += 1
                continue
            chunks = chunk_article(art, self.encoder, self.chunk)
            if not chunks:
                rep.skipped.append(Skipped(art.path or art.id, "no sentences found in the text"))
                continue
            self.pending.append((art, h, chunks, "updated" if prev is not None else "added"))
            self.pending_passages += len(chunks)
            if self.pending_passages >= _WINDOW:
                self._flush(known)
        self._flush(known)
        gone = [aid for aid in known if aid not in seen]
        drop: list[int] = []
        for aid in gone:
            drop += self._writer().delete_article(known[aid][0])
        if self.vindex is not None and not vectors.remove(self.vindex, drop):
            self.vindex = None  # this type cannot remove (HNSW): rebuilt from the stored vectors
        rep.removed = len(gone)

    def _tick(self) -> None:
        if self.progress:
            self.progress(
                BuildProgress(
                    self.files_done, self.files_total, self.report.embedded, time.perf_counter() - self.started
                )
            )

    def _flush(self, known: dict[str, tuple[int, str]]) -> None:
        if not self.pending:
            return
        rep = self.report
        texts: list[str] = []
        spans: list[list[tuple[int, int]]] = []  # each passage's sentences, relative to the passage
        shifts: list[int] = []  # where the passage starts in its embedded text (after the title)
        for art, _, chunks, _ in self.pending:
            for c in chunks:
                texts.append(passage_text(art.title, c.text))
                spans.append([(a - c.start, b - c.start) for a, b in c.sentences])
                shifts.append(body_offset(art.title))
        hashes = [text_hash(t) for t in texts]
        writer = self._writer()
        found = writer.vectors_by_text_hash(hashes)
        if self.reuse is not None:
            found.update(self.reuse.vectors_by_text_hash([h for h in hashes if h not in found]))
        found.update(self.cache.get([h for h in set(hashes) if h not in found]))
        todo_idx = sorted({h: i for i, h in enumerate(hashes) if h not in found}.values(), key=lambda i: len(texts[i]))
        rep.reused += sum(1 for h in hashes if h in found)
        if todo_idx and hasattr(self.encoder, "load"):
            self.encoder.load()  # model loading is not embedding time: keep it out of tokens/s
        late = getattr(self.encoder, "embed_passages_with_sentences", None)
        step = 64
        for i in range(0, len(todo_idx), step):
            part = todo_idx[i : i + step]
            batch = [texts[j] for j in part]
            t0 = time.perf_counter()
            if late is not None:
                vecs, sent = late(batch, [[(a + shifts[j], b + shifts[j]) for a, b in spans[j]] for j in part])
            else:
                vecs, sent = self.encoder.embed_passages(batch), None
            rep.embed_seconds += time.perf_counter() - t0
            if vecs.shape != (len(part), self.dim):
                raise IndexerError(f"the model returned vectors of shape {vecs.shape}, expected (n, {self.dim})")
            items = []
            for k, j in enumerate(part):
                # sentence spans are kept relative to the passage, so a passage reused
                # elsewhere (same text, other offsets) keeps its sentence vectors
                blob = pack_sentences(spans[j], sent[k]) if sent is not None and spans[j] else None
                items.append((hashes[j], (np.asarray(vecs[k], np.float32).tobytes(), blob)))
            self.cache.put(items)  # committed: a kill after this line loses none of it
            checkpoint("embed")
            found.update(items)
            rep.embedded += len(part)
            rep.tokens += sum(len(s) + 2 for s in self.encoder.token_spans(batch))
            self._tick()
        pos = 0
        for art, h, chunks, status in self.pending:
            hs = hashes[pos : pos + len(chunks)]
            pos += len(chunks)
            if status == "updated":
                old = writer.delete_article(known[art.id][0])
                if self.vindex is not None and not vectors.remove(self.vindex, old):
                    self.vindex = None  # this type cannot remove (HNSW): rebuilt from the stored vectors
                rep.updated += 1
            else:
                rep.added += 1
            vecs = np.frombuffer(b"".join(found[x][0] for x in hs), dtype=np.float32).reshape(len(hs), self.dim)
            terms = [analyze(passage_text(art.title, c.text), art.lang) for c in chunks]
            blobs = [found[x][1] for x in hs]
            ids = writer.add_article(art, h, chunks, hs, vecs, terms, dedup.signature(art.text), blobs)
            if self.vindex is not None:
                vectors.add(self.vindex, np.asarray(ids, dtype=np.int64), vecs)
        self.pending = []
        self.pending_passages = 0


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_dir():
            _fsync_tree(p)
        elif p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cannot_write(path: Path, exc: BaseException) -> BuildError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return BuildError(
        f"cannot write the index at {path} ({' '.join(reason.split())}) — free some disk space or make "
        "the folder writable, then build again; the previous index is unchanged"
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
    if idx.path.exists() and not idx.path.is_dir():
        raise BuildError(f"{idx.path} is a file; --index takes a folder")
    if idx.path.is_dir() and not idx.exists():
        strangers = [p.name for p in idx.path.iterdir() if p.name not in (".work", "versions")]
        if strangers:
            raise BuildError(
                f"{idx.path} is not an index folder and not empty (it holds {strangers[0]!r}) — "
                "choose a new or empty folder for --index"
            )
    sink = None
    if store is not None:
        from .milvus import MilvusStore
        from .milvus_sync import sync_index

        sink = MilvusStore(store)  # a bad URI or an unreachable server fails before any work
    try:
        try:
            idx.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _cannot_write(idx.path, exc) from None
        lock = idx.lock()
        try:
            try:
                report = _Builder(idx, settings, encoder, model, progress).run(srcs)
            except (OSError, sqlite3.OperationalError) as exc:
                # a full disk, a read-only file system, a permission: the new version's folder
                # is already gone and the live one untouched, which is what the user must know
                raise _cannot_write(idx.path, exc) from None
            if sink is not None:  # still under the lock: one sync at a time, of the version just published
                report.store = sync_index(sink, idx)
            return report
        finally:
            lock.release()
    finally:
        if sink is not None:
            sink.close()
