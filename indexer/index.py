"""An index directory: a manifest naming one immutable data folder per published version.

Its layout is in layout.py; a data folder holds store.sqlite, vectors.faiss, lexical/
and a copy of its manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import manifest as manifest_mod
from . import vectors
from .columns import Columns
from .errors import BuildError, IndexCorruptError, IndexLockedError
from .faults import crash_point
from .layout import MANIFEST, IndexLayout, is_partial
from .lexical import LEXICAL_DIR, LexicalIndex
from .locking import FileLock, LockHeld
from .manifest import Manifest
from .query import Filters
from .records import Facets
from .store import DB_FILE, Store

_CHUNK = 1 << 20
_ALLOWED_CACHE = 8  # filters whose passage ids a version keeps


def file_digest(path: Path, *, sync: bool = False) -> str:
    """``sha256:<hex>`` of a file's content (about 1.5 GB/s); ``sync`` also flushes it to disk."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
        if sync:
            os.fsync(f.fileno())
    return "sha256:" + h.hexdigest()


def _data_files(folder: Path) -> list[Path]:
    """Every file of a version folder but its manifest copy, in a stable order."""
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


@dataclass(frozen=True)
class IndexInfo:
    """What a version is: its manifest, counts and facets (``indexer info``, the page's sidebar)."""

    manifest: Manifest
    counts: dict[str, int]
    facets: Facets


@dataclass
class Snapshot:
    """One published version, opened for reading: its manifest, database and vectors."""

    manifest: Manifest
    path: Path
    store: Store
    vectors: Any  # faiss.Index
    stamp: tuple[int, int]  # identity of the manifest file it was opened from
    _lexical: Any = None
    _langs: dict[str, int] | None = None
    _facets: Facets | None = None
    _clusters: dict[int, list[int]] | None = None
    _columns: Columns | None = None
    _allowed: OrderedDict[Filters, np.ndarray] = field(default_factory=OrderedDict)
    damage: IndexCorruptError | None = None  # set when a file verified after opening failed its check
    checked: threading.Event = field(default_factory=threading.Event)  # set once every file is verified

    def raise_if_damaged(self) -> None:
        """Refuse a version whose deferred check found a file that differs from its checksum."""
        if self.damage is not None:
            raise self.damage

    @property
    def lexical(self) -> LexicalIndex:
        """The version's BM25 index, loaded on first use."""
        if self._lexical is None:
            folder = self.path / LEXICAL_DIR
            try:
                self._lexical = LexicalIndex(folder)
            except (OSError, ValueError, KeyError) as exc:
                raise IndexCorruptError(self.path.parent.parent, f"lexical index unreadable: {exc}") from None
        return self._lexical

    @property
    def languages(self) -> dict[str, int]:
        """Passages per language (most frequent first), cached for the version's lifetime."""
        if self._langs is None:
            self._langs = self.store.language_counts()
        return self._langs

    @property
    def facets(self) -> Facets:
        """Languages, sources and date range, cached for the version's lifetime (a scan of the articles)."""
        if self._facets is None:
            self._facets = self.store.facets()
        return self._facets

    @property
    def columns(self) -> Columns:
        """Filterable metadata as arrays, read on first use: a filter is then a mask, not a query."""
        if self._columns is None:
            self._columns = Columns.load(self.store.con)
        return self._columns

    def allowed(self, filters: Filters) -> np.ndarray:
        """Sorted ids of the passages that ``filters`` (normalised) keep; the last few filters are cached.

        A page session repeats its sidebar filters on every question, so they are computed once.
        """
        ids = self._allowed.get(filters)
        if ids is None:
            ids = self.columns.passage_ids(filters)
            self._allowed[filters] = ids
            while len(self._allowed) > _ALLOWED_CACHE:
                self._allowed.popitem(last=False)
        return ids

    @property
    def clusters(self) -> dict[int, list[int]]:
        """Near-duplicate group → its articles' rows, for groups of two or more (a singleton has no copies)."""
        if self._clusters is None:
            self._clusters = self.columns.clusters()
        return self._clusters

    def info(self) -> IndexInfo:
        """The version's manifest, counts and facets (the counts as published: a version never changes)."""
        counts = self.manifest.counts if self.manifest.counts else self.store.counts()
        return IndexInfo(self.manifest, dict(counts), self.facets)

    def close(self) -> None:
        """Close the database."""
        self.store.close()


class IndexDir:
    """An index directory: open its live version, publish new ones, collect old ones."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.layout = IndexLayout(self.path)

    @property
    def versions(self) -> Path:
        """The folder of data folders."""
        return self.layout.versions

    @property
    def work(self) -> Path:
        """Private build state."""
        return self.layout.work

    def exists(self) -> bool:
        """Whether a version was ever published here."""
        return self.layout.manifest.exists()

    def manifest(self) -> Manifest:
        """The live version's manifest, checked."""
        return manifest_mod.read(self.path)

    def info(self) -> IndexInfo:
        """The live version's manifest, counts and facets."""
        snap = self.open()
        try:
            return snap.info()
        finally:
            snap.close()

    def stamp(self) -> tuple[int, int]:
        """Changes whenever a build publishes (the manifest is replaced, never edited)."""
        try:
            st = os.stat(self.layout.manifest)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def open(self, *, defer: frozenset[str] = frozenset()) -> Snapshot:
        """Open the live version; retried once if a build switches versions meanwhile.

        Files named in ``defer`` (e.g. the database, by far the largest) are verified
        in a background thread instead of before the version is returned: a search
        process moving to a new version answers at once, and refuses the version
        (``Snapshot.raise_if_damaged``) as soon as the check fails.
        """
        for attempt in range(3):
            stamp = self.stamp()
            m = self.manifest()
            folder = self.layout.version(m.version)
            try:
                return self._open_version(m, folder, stamp, defer)
            except IndexCorruptError:
                if self.stamp() == stamp or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _open_version(self, m: Manifest, folder: Path, stamp: tuple[int, int], defer: frozenset[str]) -> Snapshot:
        db, vec = folder / DB_FILE, folder / vectors.VECTORS_FILE
        for f in (db, vec):
            if not f.is_file():
                raise IndexCorruptError(self.path, f"{f.relative_to(self.path)} is missing")
        later = {rel: digest for rel, digest in m.files.items() if rel in defer}
        self._verify({rel: d for rel, d in m.files.items() if rel not in later}, folder)
        try:
            store = Store(db)
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(self.path, f"database unreadable: {exc}") from None
        try:
            index = vectors.load(vec)
        except Exception as exc:  # faiss raises RuntimeError with C++ text on any damage
            store.close()
            raise IndexCorruptError(self.path, f"vector file unreadable: {str(exc).splitlines()[0][:80]}") from None
        try:
            counts = store.counts()
        except sqlite3.DatabaseError as exc:
            store.close()
            raise IndexCorruptError(self.path, f"database unreadable: {exc}") from None
        if index.ntotal != counts["passages"] or index.d != m.model.dimension:
            store.close()
            raise IndexCorruptError(
                self.path,
                f"{index.ntotal} vectors of dimension {index.d} for {counts['passages']} passages "
                f"of dimension {m.model.dimension}",
            )
        snap = Snapshot(m, folder, store, index, stamp)
        if later:
            threading.Thread(target=self._verify_later, args=(snap, later), daemon=True).start()
        else:
            snap.checked.set()
        return snap

    def _verify_later(self, snap: Snapshot, files: dict[str, str]) -> None:
        try:
            self._verify(files, snap.path)
        except IndexCorruptError as exc:
            snap.damage = exc
        finally:
            snap.checked.set()

    def _verify(self, files: dict[str, str], folder: Path) -> None:
        """Refuse a version whose files differ from the checksums it was published with.

        Reading every byte costs about as much as FAISS loading its vectors does anyway;
        without it a garbled vector file would be searched and answer nonsense silently.
        Versions published before checksums existed (no ``files``) are not checked.
        """
        for rel, expected in files.items():
            path = folder / rel
            try:
                inside = path.resolve().is_relative_to(folder.resolve())
            except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
                inside = False
            if not inside:
                raise IndexCorruptError(self.path, "manifest.json names a file outside its data folder")
            try:
                actual = file_digest(path)
            except FileNotFoundError:
                raise IndexCorruptError(self.path, f"{path.relative_to(self.path)} is missing") from None
            except OSError as exc:
                raise IndexCorruptError(self.path, f"{rel} unreadable ({exc.strerror or exc})") from None
            if actual != expected:
                raise IndexCorruptError(self.path, f"{rel} does not match its checksum: truncated or overwritten")

    # ---------------------------------------------------------------- writing
    def lock(self) -> FileLock:
        """Take the build lock, or say which process holds it."""
        lock = FileLock(self.layout.lock, blocking=False)
        try:
            lock.acquire()
        except LockHeld as held:
            raise IndexLockedError(
                f"another build is running on {self.path} ({held.holder or 'unknown process'}) — "
                "wait for it to finish, then run this build again"
            ) from None
        except OSError as exc:  # a read-only or full file system, or no permission
            raise BuildError(
                f"cannot write to {self.path} ({exc.strerror or exc}) — make the index folder writable "
                "or choose another with --index; the previous index is unchanged"
            ) from None
        return lock

    def clean_partials(self) -> None:
        """Drop what killed builds left (called under the build lock, so no build is running).

        That is ``.partial`` folders, a manifest's temporary, and complete folders newer
        than the live version: a build killed between renaming its folder and switching
        the manifest never published it, and keeping it would make garbage collection
        drop the real previous version instead.
        """
        for tmp in self.layout.manifest_temporaries():  # killed while writing the switch
            tmp.unlink(missing_ok=True)
        if not self.versions.is_dir():
            return
        try:
            live: str | None = self.manifest().version
        except Exception:
            live = None  # unreadable: keep every complete folder, it may be all that is left
        for p in self.versions.iterdir():
            if is_partial(p) or (live is not None and p.is_dir() and p.name > live):
                shutil.rmtree(p, ignore_errors=True)

    def publish(self, partial: Path, m: Manifest) -> Manifest:
        """Make a completed data folder the live version, atomically; returns its manifest.

        The manifest gains the checksum of every data file, and reading them for it
        flushes each to disk first.
        """
        files = {p.relative_to(partial).as_posix(): file_digest(p, sync=True) for p in _data_files(partial)}
        m = replace(m, files=files)
        with open(partial / MANIFEST, "w", encoding="utf-8") as f:  # the copy, with them
            f.write(m.to_json())
            f.flush()
            os.fsync(f.fileno())
        final = partial.with_name(m.version)
        os.replace(partial, final)
        try:
            manifest_mod.fsync_dir(self.versions)
            crash_point("rename")
            manifest_mod.write_atomic(self.layout.manifest, m.to_json())
        except BaseException:
            # not published (a full disk, say): do not leave a complete but unused folder behind
            try:
                live: str | None = self.manifest().version
            except Exception:
                live = None
            if live != m.version:
                shutil.rmtree(final, ignore_errors=True)
            raise
        crash_point("manifest")
        return m

    def collect_garbage(self, *, keep: int = 2) -> None:
        """Keep the live version and the one before it (readers may still be on it)."""
        try:
            live = self.manifest().version
        except Exception:
            return
        others = sorted(
            (p for p in self.versions.iterdir() if p.is_dir() and not is_partial(p) and p.name != live),
            key=lambda p: p.name,
        )
        # folders newer than the live one were never published (a build died before its switch)
        olds = [p for p in others if p.name < live]
        doomed = [p for p in others if p.name > live] + olds[: max(0, len(olds) - (keep - 1))]
        for p in doomed:
            shutil.rmtree(p, ignore_errors=True)
