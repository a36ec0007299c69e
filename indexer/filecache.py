"""What each source file looked like when the live version was built, so unchanged files need not be read."""

from __future__ import annotations

import json
import operator
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from pathlib import Path
from typing import Any

from .manifest import write_atomic

FORMAT = "indexer-filecache/1"
# Saved as columns, one JSON list per field (row i of each is file i), with the files'
# folders stored once: 250,000 files are ten lists rather than a million small objects,
# which json parses and writes at C speed and the garbage collector never walks.
_COLUMNS = ("folders", "folder", "name", "size", "mtime_ns", "recorded_ns", "count", "articles")
# A file changed again within its filesystem's timestamp granularity (2 s on FAT, 1 s on
# some network mounts) keeps its size and mtime: git's "racy clean" problem. An entry
# whose mtime is that close to (or after) the moment it was recorded is never trusted.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class FileState:
    """One source file as a build read it: its size, mtime and the ids of its articles."""

    size: int
    mtime_ns: int
    articles: tuple[str, ...]  # in file order
    recorded_ns: int = 0  # when its stat was taken, at the latest; 0 (unknown) is never trusted

    def matches(self, st: os.stat_result) -> bool:
        """Whether ``st`` shows the file as it was, and was recorded safely after its last change."""
        return (
            st.st_size == self.size and st.st_mtime_ns == self.mtime_ns and self.mtime_ns + RACY_NS <= self.recorded_ns
        )


class FileCache:
    """Per source file: its size, mtime and the article ids it held, as of one published version."""

    def __init__(self, saved: _Saved | None = None) -> None:
        self.loaded = saved is not None  # a cache saved for the version asked for: its ids can be trusted
        self._saved = saved or _Saved({}, [], [], [], [], [0], [])
        self._new: dict[str, FileState] = {}
        self._kept: set[str] = set()  # files taken as unchanged, whose saved ids are all still there
        self.dirty = False  # a file was recorded (read) in this run: the saved cache is out of date
        # Entries recorded in this run are stamped with the time this cache was made, before
        # any file was stat'ed: an earlier stamp only makes the racy check stricter.
        self._started_ns = time.time_ns()

    def __len__(self) -> int:
        """How many files were loaded."""
        return len(self._saved.index)

    @classmethod
    def load(cls, path: Path, *, version: str) -> FileCache:
        """The cache saved for ``version``; empty when missing, unreadable, garbled or saved for another version."""
        try:
            data = json.loads(Path(path).read_bytes())
            if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != version:
                return cls()
            return cls(_Saved.parse(data))
        except (OSError, ValueError, TypeError, KeyError, IndexError, RecursionError, MemoryError):
            # a cache only saves work: any doubt about it means reading every file
            return cls()

    def unchanged(self, file: Path, st: os.stat_result) -> FileState | None:
        """The recorded state when size and mtime equal ``st``'s (and the entry is not racy), else None."""
        saved = self._saved
        i = saved.index.get(_key(file))
        if i is None or saved.sizes[i] != st.st_size or saved.mtimes[i] != st.st_mtime_ns:
            return None
        ids = tuple(saved.ids[saved.offsets[i] : saved.offsets[i + 1]])
        state = FileState(size=saved.sizes[i], mtime_ns=saved.mtimes[i], articles=ids, recorded_ns=saved.recorded[i])
        return state if state.matches(st) else None

    def record(self, file: Path, st: os.stat_result, articles: Sequence[str]) -> None:
        """Note what this build read from ``file``; ``st`` must be the stat taken before reading it."""
        self.dirty = True
        self._new[_key(file)] = FileState(
            size=st.st_size, mtime_ns=st.st_mtime_ns, articles=tuple(articles), recorded_ns=self._started_ns
        )

    def keep(self, file: Path, state: FileState) -> None:
        """Carry an unchanged file's entry forward, with the time it was first recorded."""
        key = _key(file)
        self._new[key] = state
        self._kept.add(key)

    def previous(self, file: Path) -> FileState | None:
        """What the last build recorded for ``file`` (its size, mtime and article ids), whatever it holds now."""
        saved = self._saved
        i = saved.index.get(_key(file))
        if i is None:
            return None
        ids = tuple(saved.ids[saved.offsets[i] : saved.offsets[i + 1]])
        return FileState(size=saved.sizes[i], mtime_ns=saved.mtimes[i], articles=ids, recorded_ns=saved.recorded[i])

    def dropped(self) -> list[str]:
        """Ids the saved cache held for files not taken as unchanged: articles that may be gone.

        That is the articles of files changed (read again: an article may have left the file)
        or vanished since, and those of files the last build read but could not record.
        """
        saved = self._saved
        out = list(saved.untracked)
        for key, i in saved.index.items():
            if key not in self._kept:
                out.extend(saved.ids[saved.offsets[i] : saved.offsets[i + 1]])
        return out

    def save(self, path: Path, *, version: str, seen: Iterable[str] = ()) -> None:
        """Atomically replace the cache at ``path`` with the files recorded or kept in this run.

        ``seen``: every article id this run read; those of no recorded file are kept apart,
        so that a later build can tell when they vanish without reading the whole index.
        """
        keys, states = list(self._new), list(self._new.values())
        tracked = set(chain.from_iterable(s.articles for s in states))
        untracked = sorted(set(seen) - tracked)
        # split after the last separator, so that folder + name == key whatever the platform
        heads = [k[: k.rfind(os.sep) + 1] for k in keys]
        folder_ids: dict[str, int] = {}
        folder = [folder_ids.setdefault(h, len(folder_ids)) for h in heads]
        data = {
            "format": FORMAT,
            "version": version,
            "folders": list(folder_ids),
            "folder": folder,
            "name": [k[len(h) :] for k, h in zip(keys, heads)],
            "size": [s.size for s in states],
            "mtime_ns": [s.mtime_ns for s in states],
            "recorded_ns": [s.recorded_ns for s in states],
            "count": [len(s.articles) for s in states],
            "articles": list(chain.from_iterable(s.articles for s in states)),
            "untracked": untracked,
        }
        # ensure_ascii (the default): undecodable file names, held as surrogate escapes, cannot
        # be encoded as UTF-8 but survive as JSON \u escapes
        write_atomic(Path(path), json.dumps(data, separators=(",", ":")))


@dataclass(frozen=True)
class _Saved:
    """A loaded cache's columns: file ``index[key]`` is row ``i``, its ids ``ids[offsets[i] : offsets[i + 1]]``."""

    index: dict[str, int]
    sizes: list[int]
    mtimes: list[int]
    recorded: list[int]
    ids: list[str]
    offsets: list[int]
    untracked: list[str]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> _Saved:
        """The columns of a saved cache; raises ``ValueError`` (or ``KeyError``) on anything malformed."""
        folders, folder, names, sizes, mtimes, recorded, counts, ids = (data[k] for k in _COLUMNS)
        columns = (folder, names, sizes, mtimes, recorded, counts)
        if not all(type(c) is list for c in (folders, *columns, ids)):
            raise ValueError("a column is not a list")
        if len({len(c) for c in columns}) > 1:
            raise ValueError("columns of different lengths")
        # checked a column at a time (map runs in C); type() rather than isinstance(), so that
        # JSON true/false do not pass as numbers
        if not (_all(folders, str) and _all(names, str) and _all(ids, str)):
            raise ValueError("a name or id is not a string")
        if not all(_all(c, int) for c in (folder, sizes, mtimes, recorded, counts)):
            raise ValueError("a number is not an integer")
        if folder and (min(folder) < 0 or max(folder) >= len(folders)):
            raise ValueError("a folder number is out of range")
        if counts and min(counts) < 0:
            raise ValueError("a negative article count")
        offsets = [0, *accumulate(counts)]
        if offsets[-1] != len(ids):
            raise ValueError("article counts do not add up")
        keys = map(operator.add, map(folders.__getitem__, folder), names)
        index = dict(zip(keys, range(len(names))))
        if len(index) != len(names):
            raise ValueError("a file is listed twice")
        untracked = data.get("untracked", [])
        if type(untracked) is not list or not _all(untracked, str):
            raise ValueError("untracked ids are not a list of strings")
        return cls(index, sizes, mtimes, recorded, ids, offsets, untracked)


def _all(column: list[Any], kind: type) -> bool:
    return set(map(type, column)) <= {kind}


def _key(file: Path) -> str:
    """The cache key: the absolute resolved path.

    ``read_sources`` hands out resolved absolute paths already; resolving again would cost
    ~20 µs a file, a second per 50,000, so only relative paths are resolved here.
    """
    return os.fspath(file) if os.path.isabs(file) else os.fspath(Path(file).resolve())
