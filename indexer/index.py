"""An index directory: a manifest naming the live version, made of immutable segments.

Its layout is in layout.py. A version's folder holds its manifest copy and the
small arrays of ``version_state.py`` (deletions, near-duplicate groups); its
articles, passages, vectors and postings are in the segments it lists
(``segments.py``), which several versions share.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import manifest as manifest_mod
from .columns import Columns, locate
from .errors import BuildError, IndexCorruptError, IndexLockedError
from .faults import crash_point
from .layout import MANIFEST, IndexLayout, is_partial
from .locking import FileLock, LockHeld
from .manifest import Manifest
from .postings import Collection
from .query import Filters
from .records import Facets
from .segments import SegmentReader
from .store import DB_FILE
from .version_state import VersionState
from .version_store import VersionStore

if TYPE_CHECKING:
    from .story_index import StoryIndex

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


def data_files(folder: Path) -> list[Path]:
    """Every file of a version or segment folder but a manifest copy, in a stable order."""
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def digests(folder: Path) -> dict[str, str]:
    """The checksum of each data file of a folder, each file flushed to disk on the way."""
    return {p.relative_to(folder).as_posix(): file_digest(p, sync=True) for p in data_files(folder)}


class VerifiedFiles:
    """Checksums a build already verified, by file identity: a later build need not read those bytes again.

    A file is taken as verified when its size, modification and change times and inode
    are those it had when it was hashed (the ctime moves on any write or ``touch``, and
    cannot be set back), as git trusts its index. Only builds use it, so an update does
    not re-read a whole archive; searchers verify every segment they open, and
    ``indexer build --check`` verifies everything again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                self.entries = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5}
        except (OSError, ValueError):
            pass  # only a cache: verify again

    @staticmethod
    def _identity(path: Path) -> list[int]:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def holds(self, path: Path, digest: str) -> bool:
        """Whether ``path`` was verified with ``digest`` and has not changed since."""
        entry = self.entries.get(str(path))
        try:
            return entry is not None and entry[4] == digest and entry[:4] == self._identity(path)
        except OSError:
            return False

    def note(self, path: Path, digest: str) -> None:
        """Record a file just verified (or just written with this digest)."""
        self.entries[str(path)] = [*self._identity(path), digest]
        self.dirty = True

    def save(self, keep: Iterable[Path]) -> None:
        """Write the entries of the files below ``keep`` (the others are gone)."""
        roots = [str(k) for k in keep]
        kept = {k: v for k, v in self.entries.items() if any(k.startswith(r) for r in roots)}
        if self.dirty or len(kept) != len(self.entries) or not self.path.exists():
            manifest_mod.write_atomic(self.path, json.dumps(kept))


@dataclass(frozen=True)
class IndexInfo:
    """What a version is: its manifest, counts and facets (``indexer info``, the page's sidebar)."""

    manifest: Manifest
    counts: dict[str, int]
    facets: Facets

    def to_json(self) -> dict[str, Any]:
        """What ``indexer info --json`` prints and ``GET /info`` answers."""
        from .calibration import for_model

        scores = for_model(self.manifest.model.name, self.manifest.model.fingerprint)
        facts = {"calibrated": scores.fitted, "calibration": scores.label, "fitted_on": scores.fitted_on}
        out = {"manifest": self.manifest.to_dict(), "counts": self.counts, "facets": asdict(self.facets)}
        return {**out, "scores": facts}


@dataclass
class Snapshot:
    """One published version, opened for reading: its manifest, segments and deletions."""

    manifest: Manifest
    path: Path  # the version's folder
    segments: list[SegmentReader]
    state: VersionState
    stamp: tuple[int, int]  # identity of the manifest file it was opened from
    _store: VersionStore | None = None
    _lexical: Collection | None = None
    _langs: dict[str, int] | None = None
    _facets: Facets | None = None
    _clusters: dict[int, list[int]] | None = None
    _columns: Columns | None = None
    _stories: tuple[StoryIndex | None] | None = None  # read on first use; (None,) for a version without
    _allowed: OrderedDict[Filters, np.ndarray] = field(default_factory=OrderedDict)
    _dead: dict[str, np.ndarray] = field(default_factory=dict)
    _slices: OrderedDict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=OrderedDict)
    damage: IndexCorruptError | None = None  # set when a file verified after opening failed its check
    checked: threading.Event = field(default_factory=threading.Event)  # set once every file is verified
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def raise_if_damaged(self) -> None:
        """Refuse a version whose deferred check found a file that differs from its checksum."""
        if self.damage is not None:
            raise self.damage

    @property
    def store(self) -> VersionStore:
        """The version's articles and passages, across its segments."""
        if self._store is None:
            self._store = VersionStore(self.segments, self.state)
        return self._store

    @property
    def ntotal(self) -> int:
        """Passages searchable in this version."""
        return sum(s.info.passages for s in self.segments) - len(self.state.deleted_ids)

    def slice_of(self, allowed: np.ndarray, segment: str, a: int, b: int) -> np.ndarray:
        """``allowed[a:b]``, the same array object for the same filter and segment (selectors are kept by it)."""
        key = (id(allowed), segment)
        with self._lock:
            kept = self._slices.get(key)
            if kept is not None and kept[0] is allowed:
                return kept[1]
            part = allowed[a:b]
            self._slices[key] = (allowed, part)
            while len(self._slices) > 8 * max(1, len(self.segments)):
                self._slices.popitem(last=False)
            return part

    def dead_ids(self, seg: SegmentReader) -> np.ndarray:
        """The deleted passage ids of one segment (the same array each time: selectors are kept by it)."""
        dead = self._dead.get(seg.info.name)
        if dead is None:
            dead = self._dead[seg.info.name] = self.state.dead_ids(*seg.info.ids)
        return dead

    @property
    def lexical(self) -> Collection:
        """BM25 over the live passages of every segment, with collection-wide statistics."""
        with self._lock:
            if self._lexical is None:
                parts, alive = [], []
                for seg in self.segments:
                    p = seg.postings
                    dead = self.dead_ids(seg)
                    parts.append(p)
                    alive.append(~locate(dead, p.pids)[1] if len(dead) else None)
                lex = self.manifest.lexical
                self._lexical = Collection(parts, alive, k1=lex.k1, b=lex.b)
            return self._lexical

    @property
    def columns(self) -> Columns:
        """Filterable metadata as arrays, read on first use: a filter is then a mask, not a query."""
        with self._lock:
            if self._columns is None:
                self._columns = Columns.merge([s.columns for s in self.segments], self.state)
            return self._columns

    @property
    def languages(self) -> dict[str, int]:
        """Passages per language (most frequent first), cached for the version's lifetime."""
        if self._langs is None:
            self._langs = self.columns.language_counts()
        return self._langs

    @property
    def facets(self) -> Facets:
        """Languages, sources and date range, cached for the version's lifetime."""
        if self._facets is None:
            self._facets = self.columns.facets()
        return self._facets

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

    @property
    def stories(self) -> StoryIndex | None:
        """The version's stories (story_index.py), read on first use; None for a version built before them."""
        with self._lock:
            if self._stories is None:
                from .story_versions import read

                self._stories = (read(self.path, self.manifest.files, self.path.parent.parent),)
            return self._stories[0]

    def info(self) -> IndexInfo:
        """The version's manifest, counts and facets (the counts as published: a version never changes)."""
        counts = self.manifest.counts if self.manifest.counts else self.store.counts()
        return IndexInfo(self.manifest, dict(counts), self.facets)

    def close(self) -> None:
        """Close the segments' databases (a searcher that moved on shares them: it never closes)."""
        for seg in self.segments:
            seg.close()


class IndexDir:
    """An index directory: open its live version, publish new ones, collect old ones."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.layout = IndexLayout(self.path)
        self.trust: VerifiedFiles | None = None  # set by a build: files it verified before are not read again

    @property
    def versions(self) -> Path:
        """The folder of version folders."""
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

    def open(self, *, defer: frozenset[str] = frozenset(), reuse: Snapshot | None = None) -> Snapshot:
        """Open the live version; retried if a build switches versions meanwhile.

        Segments that ``reuse`` (the version a searcher had open) already holds are
        shared, not opened nor verified again: following a new version costs what
        it added. Files named in ``defer`` (e.g. a segment's database, by far its
        largest file) are verified in a background thread: a search process moving
        to a new version answers at once, and refuses the version
        (``Snapshot.raise_if_damaged``) as soon as the check fails.
        """
        for attempt in range(3):
            stamp = self.stamp()
            m = self.manifest()
            try:
                return self._open_version(m, stamp, defer, reuse)
            except IndexCorruptError:
                if self.stamp() == stamp or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _open_version(
        self, m: Manifest, stamp: tuple[int, int], defer: frozenset[str], reuse: Snapshot | None
    ) -> Snapshot:
        folder = self.layout.version(m.version)
        self._check_inside(folder, self.versions)
        self._verify(m.files, folder)
        try:
            state = VersionState.load(folder)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(self.path, f"version state unreadable: {exc}") from None
        kept = {s.folder.name: s for s in reuse.segments} if reuse is not None else {}
        readers: list[SegmentReader] = []
        later: list[tuple[dict[str, str], Path]] = []
        try:
            for info in m.segments:
                old = kept.get(info.name)
                if old is not None and old.info == info:
                    readers.append(old)
                    continue
                seg_folder = self.layout.segment(info.name)
                self._check_inside(seg_folder, self.layout.segments)
                now = {rel: d for rel, d in info.files.items() if rel not in defer}
                self._verify(now, seg_folder)
                if len(now) < len(info.files):
                    later.append(({rel: d for rel, d in info.files.items() if rel in defer}, seg_folder))
                reader = SegmentReader(info, seg_folder, self.path, dim=m.model.dimension)
                readers.append(reader)
                self._check_segment(reader, m)
        except BaseException:
            for r in readers:
                if r.folder.name not in kept:
                    r.close()
            raise
        snap = Snapshot(m, folder, readers, state, stamp)
        if later:
            threading.Thread(target=self._verify_later, args=(snap, later), daemon=True).start()
        else:
            snap.checked.set()
        return snap

    def _check_inside(self, folder: Path, parent: Path) -> None:
        """A version or segment folder must be a real folder of the index, not a link to elsewhere."""
        if folder.is_symlink() or (folder.exists() and folder.resolve().parent != parent.resolve()):
            rel = folder.relative_to(self.path)
            raise IndexCorruptError(self.path, f"{rel} is a link to a folder outside the index; it is not searched")

    def _check_segment(self, reader: SegmentReader, m: Manifest) -> None:
        """The segment's database holds what its entry says (its vectors are checked when loaded)."""
        info = reader.info
        try:
            passages = reader.store.counts()["passages"]
            row = reader.store.con.execute("SELECT length(vector) FROM vectors LIMIT 1").fetchone()
        except Exception as exc:  # sqlite3.DatabaseError on a garbled page
            raise IndexCorruptError(self.path, f"database unreadable: {exc}") from None
        if passages != info.passages:
            detail = f"segment {info.name}: {passages} passages, its entry says {info.passages}"
            raise IndexCorruptError(self.path, detail)
        if row is not None and row[0] != 4 * m.model.dimension:
            raise IndexCorruptError(
                self.path, f"segment {info.name} holds vectors of dimension {row[0] // 4}, not {m.model.dimension}"
            )

    def _verify_later(self, snap: Snapshot, groups: list[tuple[dict[str, str], Path]]) -> None:
        try:
            for files, folder in groups:
                self._verify(files, folder)
        except IndexCorruptError as exc:
            snap.damage = exc
        finally:
            snap.checked.set()

    def _verify(self, files: dict[str, str], folder: Path) -> None:
        """Refuse a folder whose files differ from the checksums they were published with.

        Reading every byte costs about as much as FAISS loading its vectors does anyway;
        without it a garbled vector file would be searched and answer nonsense silently.
        """
        for rel, expected in files.items():
            path = folder / rel
            try:
                inside = path.resolve().is_relative_to(folder.resolve())
            except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
                inside = False
            if not inside:
                raise IndexCorruptError(self.path, "manifest.json names a file outside its data folder")
            if self.trust is not None and self.trust.holds(path, expected):
                continue
            try:
                actual = file_digest(path)
            except FileNotFoundError:
                raise IndexCorruptError(self.path, f"{path.relative_to(self.path)} is missing") from None
            except OSError as exc:
                raise IndexCorruptError(self.path, f"{rel} unreadable ({exc.strerror or exc})") from None
            if actual != expected:
                raise IndexCorruptError(self.path, f"{rel} does not match its checksum: truncated or overwritten")
            if self.trust is not None:
                self.trust.note(path, actual)

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

    def _retained(self) -> tuple[str | None, list[Path]]:
        """The live version's name and the complete version folders up to it, oldest first."""
        try:
            live: str | None = self.manifest().version
        except Exception:
            live = None
        if not self.versions.is_dir():
            return live, []
        folders = sorted((p for p in self.versions.iterdir() if p.is_dir() and not is_partial(p)), key=lambda p: p.name)
        return live, folders

    def _segments_of(self, folders: Iterable[Path]) -> set[str] | None:
        """The segments the versions of these folders list (None when one cannot be read: keep all)."""
        names: set[str] = set()
        for f in folders:
            try:
                m = Manifest.from_dict(manifest_mod.load_json(f / MANIFEST))
            except Exception:
                return None
            names.update(s.name for s in m.segments)
        return names

    def clean_partials(self, *, sound: Snapshot | None = None) -> None:
        """Drop what killed builds left (called under the build lock, so no build is running).

        That is ``.partial`` folders, a manifest's temporary, version folders newer than the
        live version (a build killed between renaming its folder and switching the manifest
        never published it), and segments that no remaining version lists. ``sound``: the live
        version as the caller opened it (then it is not opened again to know it is sound).
        """
        opened = sound is not None and sound.stamp == self.stamp()  # the live version, verified by its opening
        if not opened and (self.layout.manifest.exists() or self.layout.has_published()) and self._sound_live() is None:
            # a damaged index: its only good copy may be any of these folders (or a temporary of the
            # manifest), so nothing is deleted before a build has published a sound version again
            return
        for tmp in self.layout.manifest_temporaries():  # killed while writing the switch
            tmp.unlink(missing_ok=True)
        live, folders = self._retained()
        if self.versions.is_dir():
            for p in self.versions.iterdir():
                if is_partial(p) or (live is not None and p.is_dir() and p.name > live):
                    shutil.rmtree(p, ignore_errors=True)
        self._drop_segments([f for f in folders if live is None or f.name <= live], live)

    def _sound_live(self) -> str | None:
        """The live version's name when it opens and its files match their checksums, else None."""
        try:
            snap = self.open()
        except Exception:
            return None
        snap.close()
        return snap.manifest.version

    def _drop_segments(self, folders: list[Path], live: str | None) -> None:
        seg_root = self.layout.segments
        if not seg_root.is_dir():
            return
        used = self._segments_of(folders) if live is not None else None
        for p in seg_root.iterdir():
            if is_partial(p) or (used is not None and p.name not in used):
                shutil.rmtree(p, ignore_errors=True)

    def publish(self, partial: Path, m: Manifest) -> Manifest:
        """Make a completed version folder the live version, atomically; returns its manifest.

        The manifest gains the checksum of every file of the version folder (its segments
        carry their own, taken when each was written), and reading them flushes each to disk.
        """
        m = replace(m, files=digests(partial))
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
        """Keep the live version and the one before it (readers may still be on it), and their segments."""
        live, folders = self._retained()
        if live is None:
            return
        others = [p for p in folders if p.name != live]
        # folders newer than the live one were never published (a build died before its switch)
        olds = [p for p in others if p.name < live]
        doomed = [p for p in others if p.name > live] + olds[: max(0, len(olds) - (keep - 1))]
        for p in doomed:
            shutil.rmtree(p, ignore_errors=True)
        kept = [p for p in folders if p not in doomed]
        self._drop_segments(kept, live)


__all__ = ["DB_FILE", "IndexDir", "IndexInfo", "Snapshot", "data_files", "digests", "file_digest"]
