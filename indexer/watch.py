"""Follow the sources and publish what changes: the library behind ``indexer watch``.

File events (inotify through watchdog, or polling) only say *that* a path changed and
when. What changed is the build's business: each batch is an ordinary incremental build
of all the sources, which skips unchanged files by size and mtime, so it costs what
changed and also catches anything an event missed. The watcher decides *when* to build:
once the files a batch touched have settled, never while a source root is missing
(a build without a root would delete its articles), and again after an error.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .build import BuildProgress, BuildReport, BuildSettings, build
from .corpus import EXTENSIONS, check_sources, display_path
from .embedding import Embedder, Encoder
from .errors import IndexerError, IndexLockedError, SourceNotFoundError
from .index import IndexDir
from .models import DEFAULT_MODEL, ResolvedModel, resolve
from .settings import DEFAULT_BACKEND

HOLD_INTERVALS = 30  # a batch waits at most this many intervals for its files to settle
MAX_BACKOFF = 60.0  # seconds between retries of a failing build, at most
RESCAN = 600.0  # seconds between builds that no event asked for (what events missed)
# File systems where changes made by other machines send no inotify event: poll them.
REMOTE_FS = frozenset(
    ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "virtiofs", "vboxsf", "afs", "ceph", "glusterfs", "lustre",
     "gpfs", "beegfs", "davfs", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.vmhgfs-fuse")
)  # fmt: skip

NoticeKind = Literal["watching", "published", "unchanged", "waiting", "failed", "gone", "back"]


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    """How to follow the sources; ``build`` is how each batch is built (the index's own settings by default)."""

    interval: float = 1.0  # seconds a changed file must stay unchanged before it is published; the polling period
    poll: bool = False  # poll even where inotify works
    hold: float | None = None  # the longest a batch waits for its files to settle (None: 30 intervals)
    rescan: float | None = RESCAN  # build this often even without events (None: never)
    build: BuildSettings = field(default_factory=BuildSettings)

    def __post_init__(self) -> None:
        for name in ("interval", "hold", "rescan"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if not 0.01 <= self.interval <= 3600:
            raise ValueError(f"interval must be between 0.01 and 3600 seconds, not {self.interval!r}")
        if self.build.full:
            raise ValueError('a watcher updates the index; rebuild it once with "indexer build --full" instead')

    @property
    def max_hold(self) -> float:
        """Seconds after which a batch is published even if one of its files is still changing."""
        return self.hold if self.hold is not None else HOLD_INTERVALS * self.interval


@dataclass(frozen=True)
class Notice:
    """One line of the watcher's log: a batch's outcome, a source gone or back, a retry."""

    kind: NoticeKind
    text: str
    error: bool = False  # shown on stderr, and with ``-q``
    report: BuildReport | None = None  # the build behind a "published" or "unchanged" notice
    batch: Batch | None = None  # the changes it built


@dataclass(frozen=True)
class WatchSummary:
    """How a watcher ended."""

    builds: int  # builds run (catch-up and retries included)
    published: int  # builds that published a version
    abandoned: bool  # a build was running when the stop came, and was abandoned (the index is unchanged by it)
    version: str  # the live version at the end ("" when there is no index)


@dataclass(frozen=True)
class Batch:
    """Changed paths built together."""

    paths: frozenset[str]
    first: float  # monotonic time of its first and last change
    last: float
    settled: bool = True  # False: built after ``max_hold`` while some file was still changing
    reason: str = ""  # why a build ran without changes: "catch-up", "rescan", "source back", …


def signature(path: str) -> tuple[int, int] | None:
    """A file's size and mtime, or None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class _Change:
    first: float
    last: float  # the last event, or the last time a look found the file different
    sig: tuple[int, int] | None  # at the last event (or look)
    settle: bool  # a file that must stop changing first (not a deletion or a folder)
    writing: bool = False  # inotify saw a write and not yet its close


class Changes:
    """Changed paths waiting to settle: fed by the observers' threads, taken by the build loop.

    A batch is ready once nothing changed for ``quiet`` seconds, every file it touched
    still has the size and mtime it had at its last event, and no file is still open
    for writing (inotify reports the close). It is taken anyway ``hold`` seconds after
    its first change, so a file that never settles cannot hold the others forever.
    """

    def __init__(self, *, quiet: float, hold: float, stat: Callable[[str], tuple[int, int] | None] = signature) -> None:
        self.quiet, self.hold, self._stat = quiet, hold, stat
        self._lock = threading.Lock()
        self._items: dict[str, _Change] = {}
        self.wake = threading.Event()  # set on every change, so the loop looks at once

    def __len__(self) -> int:
        """How many paths are pending."""
        return len(self._items)

    def note(self, path: str, now: float, *, settle: bool = True, writing: bool | None = None) -> None:
        """Record a change at ``path``; ``writing`` True/False when inotify saw a write/its close."""
        sig = self._stat(path) if settle else None
        with self._lock:
            c = self._items.get(path)
            if c is None:
                c = self._items[path] = _Change(now, now, sig, settle)
            else:
                c.last, c.sig, c.settle = now, sig, settle
            if writing is not None:
                c.writing = writing and settle
        self.wake.set()

    def ready(self, now: float) -> Batch | None:
        """The pending paths as a batch, taken, if each has settled or waited ``hold``; else None."""
        with self._lock:
            if not self._items or not all(self._calm(c, now) for c in self._items.values()):
                return None
            looks = [(p, c.sig) for p, c in self._items.items() if c.settle and not self._overdue(c, now)]
        fresh = [(p, old, self._stat(p)) for p, old in looks]  # outside the lock: events keep coming
        with self._lock:
            for p, old, sig in fresh:
                c = self._items.get(p)
                if c is not None and c.sig == old and sig != old:
                    c.sig, c.last = sig, now  # a change no event reported (yet): quiet starts again
                if c is None or sig != old:
                    return None
            if not all(self._calm(c, now) for c in self._items.values()):
                return None  # changed meanwhile
            return self._take(
                settled=not any(self._overdue(c, now) and self._busy(c, now) for c in self._items.values())
            )

    def _busy(self, c: _Change, now: float) -> bool:
        return now - c.last < self.quiet or c.writing

    def _overdue(self, c: _Change, now: float) -> bool:
        return now - c.first >= self.hold

    def _calm(self, c: _Change, now: float) -> bool:
        """Quiet and closed, or waited long enough: a file that never settles must not hold the others forever."""
        return not self._busy(c, now) or self._overdue(c, now)

    def _take(self, *, settled: bool) -> Batch:
        items, self._items = self._items, {}
        return Batch(
            frozenset(items), min(c.first for c in items.values()), max(c.last for c in items.values()), settled
        )


def ignored(path: str, root: str, index: str, *, folder: bool) -> bool:
    """Whether a change at ``path`` (under ``root``) cannot change the index.

    The same files ``corpus`` never reads: hidden files and folders (editor swap files,
    ``.part`` downloads kept hidden), unsupported extensions (``~``, ``.part``, ``.tmp``,
    ``.crdownload``, ``.swp``), and the index folder itself when it lies inside a source.
    """
    if path == index or path.startswith(index + os.sep):
        return True
    rel = os.path.relpath(path, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return True
    if any(part.startswith(".") for part in rel.split(os.sep) if part != os.curdir):
        return True
    return not folder and Path(path).suffix.lower() not in EXTENSIONS


# ------------------------------------------------------------------ observers
def _native_observer() -> Any:
    """The default observer of watchdog: inotify on Linux (native events elsewhere)."""
    from watchdog.observers import Observer

    return Observer()


def _polling_observer(interval: float) -> Any:
    from watchdog.observers.polling import PollingObserver

    return PollingObserver(timeout=interval)


def _event_filter() -> list[type]:
    """The events that can change the index.

    Opens and read-only closes are left out of the inotify mask itself: each build reads
    every changed file, and must not wake the watcher again.
    """
    from watchdog import events as ev

    return [
        ev.FileCreatedEvent, ev.FileDeletedEvent, ev.FileModifiedEvent, ev.FileMovedEvent, ev.FileClosedEvent,
        ev.FileAttribEvent, ev.DirCreatedEvent, ev.DirDeletedEvent, ev.DirMovedEvent,
    ]  # fmt: skip


def file_system(path: str, mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the file system holding ``path`` (Linux), or None when unknown."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            rows = [line.split() for line in f]
    except OSError:
        return None
    best, kind = "", None
    for row in rows:
        if len(row) < 3:
            continue
        point = row[1].replace("\\040", " ")
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, row[2]
    return kind


def _watch_limit() -> int | None:
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except (OSError, ValueError):
        return None


def _more_folders_than(root: str, limit: int) -> bool:
    """Whether ``root`` holds more than ``limit`` folders (inotify needs a watch for each)."""
    n = 0
    for _, dirs, _ in os.walk(root):
        n += len(dirs) + (n == 0)
        if n > limit:
            return True
    return False


@dataclass
class _Root:
    """A source as watched: where it is, and how it is followed."""

    given: Path
    is_file: bool
    mount: bool  # a mount point when watching began: an unmounted share leaves an empty folder behind
    identity: tuple[str, int, int] | None = None  # (resolved path, device, inode) of the watched folder
    watch: Any = None
    observer: Any = None
    method: str = ""

    @property
    def shown(self) -> str:
        """The root as the user gave it."""
        return display_path(self.given)

    @property
    def folder(self) -> str:
        """The folder the watch is on (a file source's parent)."""
        assert self.identity is not None
        return os.path.dirname(self.identity[0]) if self.is_file else self.identity[0]

    def probe(self) -> tuple[str, int, int] | None:
        """Where the root is now, or None when it is gone (or its share unmounted)."""
        try:
            path = os.path.realpath(self.given)
            st = os.stat(path)
            if self.is_file:
                if not stat.S_ISREG(st.st_mode):
                    return None
                st = os.stat(os.path.dirname(path))
            elif not stat.S_ISDIR(st.st_mode) or (self.mount and not os.path.ismount(path)):
                return None
        except OSError:
            return None
        return path, st.st_dev, st.st_ino


class _Handler:
    """Turns one root's watchdog events into notes on ``Changes``."""

    def __init__(self, changes: Changes, root: _Root, index: str, *, closes: bool) -> None:
        self.changes, self.root, self.index, self.closes = changes, root, index, closes
        self.top = root.identity[0] if root.identity else ""

    def dispatch(self, event: Any) -> None:  # watchdog's handler protocol
        """Note the paths an event touched."""
        kind, folder = event.event_type, event.is_directory
        if kind in ("opened", "closed_no_write") or (folder and kind in ("modified", "attrib")):
            return
        now = time.monotonic()
        src = os.fsdecode(event.src_path)
        if kind == "moved":
            self._note(src, now, folder=folder, settle=False)
            self._note(os.fsdecode(event.dest_path), now, folder=folder, settle=not folder)
        elif kind == "deleted":
            self._note(src, now, folder=folder, settle=False, writing=False)
        elif kind == "closed":
            self._note(src, now, folder=False, settle=True, writing=False)
        elif kind == "modified" and self.closes:
            self._note(src, now, folder=False, settle=True, writing=True)
        else:
            self._note(src, now, folder=folder, settle=not folder)

    def _note(self, path: str, now: float, *, folder: bool, settle: bool, writing: bool | None = None) -> None:
        if self.root.is_file:
            if path != self.top:
                return
        elif ignored(path, self.top, self.index, folder=folder):
            return
        self.changes.note(path, now, settle=settle, writing=writing)


class _Overflow(logging.Handler):
    """Hears watchdog say the kernel's inotify queue overflowed: events were lost, so build once it is quiet.

    Attached to watchdog's logger, it also keeps watchdog's own warnings off the watcher's output.
    """

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        """On an overflow, note every root as changed (a build then reads them all)."""
        if "overflow" in record.getMessage().lower():
            self.watcher.events_lost()


class _Abandon(Exception):
    """Raised from a build's progress callback when the watcher is asked to stop."""


# ------------------------------------------------------------------- watcher
class Watcher:
    """Follows ``sources`` and publishes their changes to the index at ``index_dir``, batch by batch.

    ``run()`` builds once to catch up with what changed while nobody watched, then follows
    the sources until ``stop()``. Each outcome is handed to ``on_notice`` as one ``Notice``.
    ``encoder``/``model`` (tests) replace the model the index names, which is otherwise
    loaded once and kept while watching.
    """

    def __init__(
        self,
        sources: Iterable[Path | str],
        index_dir: Path | str,
        settings: WatchSettings | None = None,
        *,
        on_notice: Callable[[Notice], None] | None = None,
        encoder: Encoder | None = None,
        model: ResolvedModel | None = None,
    ) -> None:
        self.sources = check_sources(Path(s) for s in sources)
        self.index_dir = Path(index_dir)
        self.settings = settings or WatchSettings()
        self.on_notice = on_notice or (lambda _: None)
        self.changes = Changes(quiet=self.settings.interval, hold=self.settings.max_hold)
        self._index = os.path.realpath(self.index_dir)
        self._given = encoder is not None
        self._encoder, self._model = encoder, model
        self._key: tuple[str, str] | None = None
        self._stop = threading.Event()
        self._roots = [self._root(p) for p in self.sources]
        self._observers: dict[str, Any] = {}
        self._due = "catch-up"  # a build wanted without new changes, and why
        self._carry: Batch | None = None  # a failed batch, built again with the next
        self._not_before = 0.0
        self._failures = 0
        self._waiting = False
        self._rescan_at: float | None = None
        self._builds = self._published = 0
        self._abandoned = False

    @staticmethod
    def _root(path: Path) -> _Root:
        resolved = os.path.realpath(path)
        is_file = not os.path.isdir(resolved)
        root = _Root(path, is_file, mount=not is_file and os.path.ismount(resolved))
        root.identity = root.probe()
        if root.identity is None:  # neither a folder nor a regular file (a socket, a device)
            raise SourceNotFoundError(path)
        return root

    def stop(self) -> None:
        """Ask ``run`` to return within a tick; a build in progress is abandoned at its next step.

        Abandoning is safe (builds are atomic) and cheap: the vectors it computed are kept
        in the resume cache for the next build. Safe to call from a signal handler: it only
        sets a flag, where waking the loop would take a lock the interrupted thread may hold.
        """
        self._stop.set()

    def events_lost(self) -> None:
        """Events were lost (inotify's queue overflowed): build once every root has been quiet a while."""
        now = time.monotonic()
        for root in self._roots:
            if root.identity is not None:
                self.changes.note(root.folder, now, settle=False)
        self._due = "events lost: inotify's queue overflowed"

    def run(self) -> WatchSummary:
        """Catch up, then follow the sources until ``stop()``; returns how it ended."""
        overflow = _Overflow(self)
        logging.getLogger("watchdog").addHandler(overflow)
        try:
            for root in self._roots:
                try:
                    self._notice("watching", f"watching {root.shown} {self._watch(root)}")
                except OSError:
                    pass  # gone since the start was checked: the first look says so, and waits for it
            tick = min(self.settings.interval / 4, 0.5)
            while not self._stop.is_set():
                self._step(time.monotonic())
                self.changes.wake.wait(tick)
                self.changes.wake.clear()
        finally:
            logging.getLogger("watchdog").removeHandler(overflow)
            for observer in self._observers.values():
                observer.stop()
            for observer in self._observers.values():
                observer.join(timeout=5)
        return WatchSummary(self._builds, self._published, self._abandoned, self._live_version())

    # ------------------------------------------------------------ watches
    def _watch(self, root: _Root) -> str:
        """Start following ``root``: inotify where it works, else polling; says which, and why."""
        if root.watch is not None:
            with contextlib.suppress(KeyError):  # already dropped by its observer
                root.observer.unschedule(root.watch)
            root.watch = root.observer = None
        native, why = self._native_or_why(root)
        observer = None
        if native:
            try:
                observer = self._observer("native")
                root.watch = self._schedule(observer, root)
            except OSError as exc:  # the watch or instance limit reached, or no inotify at all
                why, observer = f"inotify unavailable: {exc.strerror or exc}", None
        if observer is None:
            observer = self._observer("polling")
            root.watch = self._schedule(observer, root)
        root.observer, root.method = observer, method_name(observer)
        how = f"by polling every {self.settings.interval:g} s" if root.method == "polling" else f"with {root.method}"
        return how + (f" ({why})" if why else "")

    def _native_or_why(self, root: _Root) -> tuple[bool, str]:
        """Whether native events can follow ``root``, else why it is polled."""
        if self.settings.poll:
            return False, "--poll"
        kind = file_system(root.folder)
        if kind in REMOTE_FS:
            return False, f"{kind}: changes made on other machines send no events"
        limit = _watch_limit()
        if not root.is_file and limit is not None and _more_folders_than(root.folder, limit):
            return False, f"more folders than the inotify watch limit, fs.inotify.max_user_watches = {limit}"
        return True, ""

    def _observer(self, kind: str) -> Any:
        if kind not in self._observers:
            observer = _polling_observer(self.settings.interval) if kind == "polling" else _native_observer()
            observer.start()
            self._observers[kind] = observer
        return self._observers[kind]

    def _schedule(self, observer: Any, root: _Root) -> Any:
        # only inotify reports closes, which tell a file still open for writing from a finished one
        handler = _Handler(self.changes, root, self._index, closes=method_name(observer) == "inotify")
        return observer.schedule(handler, root.folder, recursive=not root.is_file, event_filter=_event_filter())

    def _roots_present(self) -> bool:
        """Check every root; a root gone pauses publishing, one back (or replaced) is watched again."""
        present = True
        for root in self._roots:
            where = root.probe()
            if where is None:
                present = False
                if root.identity is not None:
                    root.identity = None
                    self._notice(
                        "gone",
                        f"source {root.shown} is gone — its articles are kept, and nothing is published "
                        "until it is back",
                        error=True,
                    )
            elif where != root.identity or not _following(root):
                back = root.identity is None
                root.identity = where
                # a new folder (or the share mounted again) needs a new watch; so does a folder deleted
                # and made again between two looks (its inode number may even be reused)
                try:
                    how = self._watch(root)
                except OSError:  # gone again already: the next look tries again
                    root.identity, present = None if back else root.identity, False
                    continue
                state = "is back" if back else "was replaced"
                self._notice("back", f"source {root.shown} {state}, watching it again {how}")
                self._due = self._due or "source back"
        return present

    # --------------------------------------------------------------- loop
    def _step(self, now: float) -> None:
        """Build when a batch is ready, a catch-up or retry is due, and every root is there."""
        if not self._roots_present() or now < self._not_before:
            return
        batch: Batch | None = None
        if len(self.changes):
            batch = self.changes.ready(now)
            if batch is None:
                return
        elif not self._due and self._carry is None:
            if self._rescan_at is None or now < self._rescan_at:
                return
            self._due = "rescan"
        batch = _merge(self._carry, batch, self._due, now)
        self._carry, self._due = None, ""
        self._build(batch)

    def _build(self, batch: Batch) -> None:
        self._builds += 1
        started = time.monotonic()
        try:
            encoder, model = self._model_for_index()
            report = build(
                self.sources, self.index_dir, self.settings.build, encoder=encoder, model=model, progress=self._progress
            )
        except _Abandon:
            self._abandoned = True
            return
        except IndexLockedError:
            self._retry(batch, self.settings.interval)
            if not self._waiting:
                self._waiting = True
                self._notice(
                    "waiting",
                    f"another build is running on {display_path(self.index_dir)} — retrying every "
                    f"{self.settings.interval:g} s",
                )
            return
        except Exception as exc:
            # an index to keep serving: never exit, retry later; none yet: the setup cannot work, say so now
            if batch.reason == "catch-up" and not IndexDir(self.index_dir).exists() and isinstance(exc, IndexerError):
                raise
            self._failures += 1
            delay = min(MAX_BACKOFF, self.settings.interval * 2 ** (self._failures - 1))
            self._retry(batch, delay)
            if all(r.probe() is not None for r in self._roots):  # else the root check says why
                message = str(exc) if isinstance(exc, IndexerError) else f"{type(exc).__name__}: {exc}"
                self._notice("failed", f"error: {' '.join(message.split())} (retrying in {delay:.2g} s)", error=True)
            return
        self._failures, self._waiting = 0, False
        if self.settings.rescan is not None:
            self._rescan_at = time.monotonic() + self.settings.rescan
        if report.published:
            self._published += 1
        if report.published or batch.reason != "rescan":
            self._notice(*_describe(report, batch, started, self.settings.max_hold), report=report, batch=batch)
        if batch.reason == "catch-up":
            self._preload()

    def _preload(self) -> None:
        """Load the model after the catch-up, so the first change costs its embedding, not a model load."""
        if self._encoder is not None:
            try:
                self._encoder.load()
            except Exception:
                pass  # the next build that needs the model reports why it cannot load

    def _retry(self, batch: Batch, delay: float) -> None:
        self._carry = batch
        self._not_before = time.monotonic() + delay

    def _progress(self, _: BuildProgress) -> None:
        if self._stop.is_set():
            raise _Abandon

    def _model_for_index(self) -> tuple[Encoder | None, ResolvedModel | None]:
        """The encoder of the index's model, loaded once and kept (again when the index moves to another)."""
        if self._given:
            return self._encoder, self._model
        wanted = self.settings.build
        name, backend = wanted.model, wanted.backend
        if name is None or backend is None:
            try:
                live = IndexDir(self.index_dir).manifest().model
                name, backend = name or live.name, backend or live.backend
            except IndexerError:
                pass  # no index yet, or one the build will refuse with its own message
        key = (name or DEFAULT_MODEL, backend or DEFAULT_BACKEND)
        if key != self._key:
            self._model = resolve(key[0])
            self._encoder = Embedder(self._model, backend=key[1])
            self._key = key
        return self._encoder, self._model

    def _live_version(self) -> str:
        try:
            return IndexDir(self.index_dir).manifest().version
        except IndexerError:
            return ""

    def _notice(
        self,
        kind: NoticeKind,
        text: str,
        *,
        error: bool = False,
        report: BuildReport | None = None,
        batch: Batch | None = None,
    ) -> None:
        self.on_notice(Notice(kind, text, error, report, batch))


def _following(root: _Root) -> bool:
    """Whether the root's watch still runs (an emitter stops itself when its folder is deleted)."""
    return root.observer is not None and any(e.watch == root.watch and e.is_alive() for e in root.observer.emitters)


def method_name(observer: Any) -> str:
    """How an observer follows files: "inotify", "polling", or its class name."""
    name = type(observer).__name__
    return {"InotifyObserver": "inotify", "PollingObserver": "polling"}.get(name, name)


def _merge(carry: Batch | None, batch: Batch | None, reason: str, now: float) -> Batch:
    parts = [b for b in (carry, batch) if b is not None]
    if not parts:
        return Batch(frozenset(), now, now, reason=reason)
    return Batch(
        frozenset().union(*(b.paths for b in parts)),
        min(b.first for b in parts),
        max(b.last for b in parts),
        all(b.settled for b in parts),
        reason or next((b.reason for b in parts if b.reason), ""),
    )


def _describe(report: BuildReport, batch: Batch, started: float, hold: float) -> tuple[NoticeKind, str]:
    """A batch's log line: what it published (or that nothing changed), how fast, and why it ran."""
    version = report.version.split("-", 1)[0]
    files = len(batch.paths)
    what = batch.reason or f"{files} changed path{'s' * (files != 1)}"
    if batch.paths:
        skipped = [s for s in report.skipped if os.path.realpath(s.path) in batch.paths]
    else:
        skipped = list(report.skipped)
    if not report.published:
        return "unchanged", f"up to date at {version or '-'} ({what}: no article added, changed or removed)"
    counts = f"+{report.added} added, {report.updated} changed, {report.removed} removed, {len(skipped)} skipped" + (
        f" (first: {skipped[0].path}: {skipped[0].reason})" if skipped and batch.paths else ""
    )
    timing = [f"embedding {report.embed_seconds:.1f} s"]
    if batch.paths:
        live = started + report.publish_seconds - batch.last
        timing.insert(0, f"live {max(live, 0.0):.1f} s after the last change")
    if not batch.settled:
        timing.append(f"published although a file was still changing after {hold:g} s")
    if report.merge is not None and report.merge.merges:
        timing.append(f"then {report.merge.merges} merge(s)")
    alerts = report.alerts
    if alerts is not None:  # saved searches: what they found, or why they could not run
        timing.append(f"saved searches failed: {alerts.error}" if alerts.error else f"{alerts.matches} alert match(es)")
    return "published", f"published {version} ({what}): {counts} ({', '.join(timing)})"
