"""An index directory: a manifest naming one immutable data folder per published version.

index/
  manifest.json        the switch (replaced atomically by each build)
  versions/<name>/     store.sqlite, vectors.faiss, manifest.json (a copy)
  .work/               build lock and the resumable embedding cache
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import manifest as manifest_mod
from . import vectors
from .errors import IndexCorruptError, IndexLockedError
from .faults import checkpoint
from .locking import FileLock, LockHeld
from .manifest import Manifest
from .store import DB_FILE, Store

VERSIONS = "versions"
WORK = ".work"
PARTIAL = ".partial"


@dataclass
class Snapshot:
    """One published version, opened for reading: its manifest, database and vectors."""

    manifest: Manifest
    path: Path
    store: Store
    vectors: Any  # faiss.Index
    stamp: tuple[int, int]  # identity of the manifest file it was opened from

    def close(self) -> None:
        self.store.close()


class IndexDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def versions(self) -> Path:
        return self.path / VERSIONS

    @property
    def work(self) -> Path:
        return self.path / WORK

    def exists(self) -> bool:
        return (self.path / manifest_mod.MANIFEST).exists()

    def manifest(self) -> Manifest:
        return manifest_mod.read(self.path)

    def stamp(self) -> tuple[int, int]:
        """Changes whenever a build publishes (the manifest is replaced, never edited)."""
        try:
            st = os.stat(self.path / manifest_mod.MANIFEST)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def open(self) -> Snapshot:
        """Open the live version; retried once if a build switches versions meanwhile."""
        for attempt in range(3):
            stamp = self.stamp()
            m = self.manifest()
            folder = self.versions / m.version
            try:
                return self._open_version(m, folder, stamp)
            except IndexCorruptError:
                if self.stamp() == stamp or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _open_version(self, m: Manifest, folder: Path, stamp: tuple[int, int]) -> Snapshot:
        db, vec = folder / DB_FILE, folder / vectors.VECTORS_FILE
        for f in (db, vec):
            if not f.is_file():
                raise IndexCorruptError(self.path, f"{f.relative_to(self.path)} is missing")
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
        return Snapshot(m, folder, store, index, stamp)

    # ---------------------------------------------------------------- writing
    def lock(self) -> FileLock:
        lock = FileLock(self.work / "build.lock", blocking=False)
        try:
            lock.acquire()
        except LockHeld as held:
            raise IndexLockedError(
                f"another build is running on {self.path} ({held.holder or 'unknown process'}) — "
                "wait for it to finish, then run this build again"
            ) from None
        return lock

    def clean_partials(self) -> None:
        """Drop folders left by builds that were killed (called under the build lock)."""
        if self.versions.is_dir():
            for p in self.versions.iterdir():
                if p.name.endswith(PARTIAL):
                    shutil.rmtree(p, ignore_errors=True)

    def publish(self, partial: Path, m: Manifest) -> None:
        """Make a completed data folder the live version, atomically."""
        final = partial.with_name(m.version)
        os.replace(partial, final)
        manifest_mod.fsync_dir(self.versions)
        checkpoint("rename")
        manifest_mod.write_atomic(self.path / manifest_mod.MANIFEST, m.to_json())
        checkpoint("manifest")

    def collect_garbage(self, *, keep: int = 2) -> None:
        """Keep the live version and the one before it (readers may still be on it)."""
        try:
            live = self.manifest().version
        except Exception:
            return
        others = sorted(
            (p for p in self.versions.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL) and p.name != live),
            key=lambda p: p.name,
        )
        # folders newer than the live one were never published (a build died before its switch)
        olds = [p for p in others if p.name < live]
        doomed = [p for p in others if p.name > live] + olds[: max(0, len(olds) - (keep - 1))]
        for p in doomed:
            shutil.rmtree(p, ignore_errors=True)
