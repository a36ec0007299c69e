"""What a build works with and on: its fixed context, and the version it writes.

``prepare`` settles, before any work, the model, backend, chunker, vector policy
and whether the live version can be updated; ``Draft`` is the new version's
private folder, its new segment (written only when articles are added) and the
articles it deletes from the live segments; ``publish`` makes it live.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import vectors
from .analysis import ANALYZER_VERSION
from .chunking import ChunkSettings
from .embedding import Embedder, Encoder, body_offset, passage_text
from .errors import IndexerError, IndexNotFoundError, IndexVersionError
from .index import IndexDir, Snapshot
from .manifest import FORMAT_VERSION, Manifest, SegmentInfo
from .models import DEFAULT_MODEL, ResolvedModel, resolve
from .records import KnownArticle, PendingArticle, StoredVector
from .segments import segment_name
from .settings import DEFAULT_BACKEND
from .store import DB_FILE, text_hash
from .vector_plan import DEFAULT_POLICY, IndexPolicy, VectorIndexInfo
from .version_state import VersionState
from .version_store import VersionStore
from .writer import Writer

if TYPE_CHECKING:
    from .build import BuildSettings


@dataclass(frozen=True)
class Context:
    """Everything fixed before a build starts: what it builds with, and against what."""

    idx: IndexDir
    settings: BuildSettings
    model: ResolvedModel
    encoder: Encoder
    backend: str
    dim: int
    faiss: str | None  # the checked --faiss value
    policy: IndexPolicy
    chunk: ChunkSettings
    prev: Manifest | None  # the live version's manifest (None: none, or --full)
    reason: str  # why the live version cannot be updated in place ("" when it can)

    @property
    def incremental(self) -> bool:
        """Whether the live version is updated rather than rebuilt."""
        return self.prev is not None and not self.reason

    @property
    def previous_vectors(self) -> VectorIndexInfo | None:
        """The live version's vector entry, when it still describes vectors of this size."""
        return self.prev.vectors if self.prev is not None and self.prev.model.dimension == self.dim else None


def prepare(
    idx: IndexDir, settings: BuildSettings, encoder: Encoder | None, model: ResolvedModel | None
) -> Context:
    """Settle what the build uses; fails (a bad --faiss, an unknown model) before any work."""
    prev = None if settings.full else _live_manifest(idx)
    resolved = model or resolve(settings.model or (prev.model.name if prev else DEFAULT_MODEL))
    backend = settings.backend or (prev.model.backend if prev else DEFAULT_BACKEND)
    enc: Encoder = encoder or Embedder(resolved, backend=backend)
    dim = int(enc.dimension)
    # checked before any work: a typo in --faiss must not cost an embedding run
    faiss = None if settings.faiss is None else vectors.check_factory(settings.faiss, dim)
    requested = settings.chunk or (prev.chunker if prev is not None else ChunkSettings())
    # leave room for the special tokens, the prompt and a title within the model's window
    room = int(enc.max_seq_length) - 2 - 8 - 48
    chunk = replace(requested, max_tokens=max(8, min(requested.max_tokens, room)))
    reason = _incompatibility(prev, resolved, backend, chunk)
    older = _older_format(idx) if prev is None and not settings.full else None
    if older is not None:
        reason = f"index format v{older} is older than v{FORMAT_VERSION}"
    policy = settings.policy or (prev.policy if prev is not None else DEFAULT_POLICY)
    return Context(idx, settings, resolved, enc, backend, dim, faiss, policy, chunk, prev, reason)


def _live_manifest(idx: IndexDir) -> Manifest | None:
    try:
        return idx.manifest()
    except IndexNotFoundError:
        return None  # a damaged or newer-format index raises: "indexer build --full" is the fix
    except IndexVersionError:
        if _older_format(idx):
            return None  # an index of an older layout is rebuilt, as by --full
        raise


def _older_format(idx: IndexDir) -> int | None:
    """The format of an index written by an older indexer, or None."""
    try:
        fv = json.loads(idx.layout.manifest.read_text(encoding="utf-8")).get("format_version")
    except (OSError, ValueError, AttributeError):
        return None
    return fv if isinstance(fv, int) and not isinstance(fv, bool) and fv < FORMAT_VERSION else None


def _incompatibility(prev: Manifest | None, model: ResolvedModel, backend: str, chunk: ChunkSettings) -> str:
    """Why the live version's passages or vectors cannot be kept ("" when they can)."""
    if prev is None:
        return ""
    if prev.model.fingerprint != model.fingerprint or prev.model.name != model.name:
        return f"model changed ({prev.model.name} → {model.name})"
    if prev.model.backend != backend:
        return f"backend changed ({prev.model.backend} → {backend})"
    if prev.chunker != chunk:
        return "chunker settings changed"
    if prev.lexical.analyzer != ANALYZER_VERSION:
        return "text analysis changed"
    return ""


class Draft:
    """The version being written: its folder, its new segment (made on the first change), its deletions."""

    def __init__(self, ctx: Context) -> None:
        ctx.idx.versions.mkdir(parents=True, exist_ok=True)
        ctx.idx.layout.segments.mkdir(parents=True, exist_ok=True)
        self.ctx = ctx
        self.live: Snapshot | None = None
        self._old: Snapshot | None = None
        self.previous: VersionStore | None = None  # the old version, for vectors of identical passages
        self._writer: Writer | None = None
        self.removed: list[int] = []  # article rows this version deletes
        self._open(ctx)  # opening verifies the live version: the clean-up need not open it again
        try:
            ctx.idx.clean_partials(sound=self.live or self._old)
            self.name = version_name(ctx.idx.versions)
            self.folder = ctx.idx.layout.partial(self.name)
            self.folder.mkdir()
        except BaseException:
            for snap in (self.live, self._old):  # no segment folder is named yet: only these to release
                if snap is not None:
                    snap.close()
            raise
        self.segment = segment_name(ctx.idx.layout.segments)
        self.segment_folder = ctx.idx.layout.segment_partial(self.segment)

    def _open(self, ctx: Context) -> None:
        if ctx.incremental:
            self.live = ctx.idx.open()  # opening checks the live version
            return
        prev, same = ctx.prev, (ctx.model.fingerprint, ctx.backend)
        if prev is not None and (prev.model.fingerprint, prev.model.backend) == same:
            try:
                self._old = ctx.idx.open()
                self.previous = self._old.store
            except IndexerError:
                self.previous = None

    @property
    def changed(self) -> bool:
        """Whether anything was written or deleted, so there is a version to publish."""
        return self._writer is not None or bool(self.removed)

    @property
    def segments(self) -> list[SegmentInfo]:
        """The live version's segments this version keeps (all of them; merges replace some later)."""
        return list(self.live.manifest.segments) if self.live is not None else []

    @property
    def state(self) -> VersionState:
        """The live version's deletions and groups (empty for a rebuild)."""
        return self.live.state if self.live is not None else VersionState()

    def writer(self) -> Writer:
        """The new segment's database, created on the first change; its ids continue the live version's."""
        if self._writer is None:
            segs = self.segments
            first_row = max((s.rows[1] for s in segs), default=1)
            first_id = max((s.ids[1] for s in segs), default=1)
            self.segment_folder.mkdir()
            self._writer = Writer(self.segment_folder / DB_FILE, first_row=first_row, first_id=first_id)
        return self._writer

    def has_segment(self) -> bool:
        """Whether this version adds a segment."""
        return self._writer is not None

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, StoredVector]:
        """Vectors the new version already holds: in its new segment, or in the live version's."""
        found = self._writer.vectors_by_text_hash(hashes) if self._writer is not None else {}
        if self.live is not None:
            todo = [h for h in hashes if h not in found]
            if todo:
                found.update(self.live.store.vectors_by_text_hash(todo))
        return found

    def known(self) -> dict[str, KnownArticle]:
        """The live version's articles (none for a rebuild)."""
        return self.live.store.known_articles() if self.live is not None else {}

    def remove(self, rowid: int) -> None:
        """Delete a live article: a marker in the new version, its segment is left as it is."""
        self.removed.append(rowid)

    def close(self) -> None:
        """Release the live and previous versions, and drop an unfinished segment."""
        for snap in (self.live, self._old):
            if snap is not None:
                snap.close()
        shutil.rmtree(self.segment_folder, ignore_errors=True)


def version_name(versions: Path) -> str:
    """Next version folder name: numbers increase even across --full rebuilds."""
    numbers = [int(p.name.split("-", 1)[0]) for p in versions.iterdir() if p.name.split("-", 1)[0].isdigit()]
    return f"{max(numbers, default=0) + 1:06d}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"


@dataclass(frozen=True)
class Spans:
    """A passage's sentences: relative to the passage, and within its embedded text (after the title)."""

    relative: list[tuple[int, int]]
    embedded: list[tuple[int, int]]


def passage_inputs(window: list[PendingArticle]) -> tuple[list[str], list[Spans], list[str]]:
    """Each passage's embedded text, sentence spans and text hash, in window order."""
    texts, spans = [], []
    for p in window:
        shift = body_offset(p.article.title)
        for c in p.chunks:
            texts.append(passage_text(p.article.title, c.text))
            rel = [(a - c.start, b - c.start) for a, b in c.sentences]
            spans.append(Spans(rel, [(a + shift, b + shift) for a, b in rel]))
    return texts, spans, [text_hash(t) for t in texts]

def publish(idx: IndexDir, folder: Path, manifest: Manifest) -> None:
    """Flush the version folder to disk and switch the manifest to it."""
    (folder / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    fsync_tree(folder)
    idx.publish(folder, manifest)


def fsync_tree(folder: Path) -> None:
    """Fsync every file and folder below ``folder``."""
    for p in folder.iterdir():
        if p.is_dir():
            fsync_tree(p)
        elif p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
