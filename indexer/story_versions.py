"""Stories in a version's life: every build makes them, a merge carries them, a snapshot opens them.

A build updates the live version's stories with the articles its new segment adds and
those it deletes (``stories.update``: the stories the change reaches are re-derived, the
rest are kept), reading the live articles' catalog from those stories rather than from
every segment, so its cost follows the change. A first or full build, or one whose live
version was written before stories existed, clusters every article (``stories.cluster``).
The files sit in the version folder, so the manifest's checksums cover them as they
cover the deletions. A merge rewrites segments without renumbering articles (their row
ids are kept, only deleted rows are dropped), so the stories are copied as they are.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import IndexCorruptError
from .store import DB_FILE, connect_readonly
from .stories import IndexArchive, cluster, update
from .story_index import FILES, StoryIndex

if TYPE_CHECKING:
    from .index import Snapshot
    from .version_state import VersionState


@dataclass(frozen=True)
class StoriesMade:
    """What a build's story step did: the stories of two or more articles, and its time."""

    stories: int
    seconds: float
    incremental: bool  # updated from the live version's stories (else clustered from scratch)


def listed(files: Mapping[str, str]) -> bool:
    """Whether a version's manifest lists its stories (versions built before stories do not)."""
    return all(f in files for f in FILES)


def read(folder: Path, files: Mapping[str, str], index_path: Path) -> StoryIndex | None:
    """A version's stories; None for a version without them. Their checksums were verified when it was opened."""
    if not listed(files):
        return None
    try:
        return StoryIndex.load(folder)
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(index_path, f"stories unreadable: {exc}") from None


def make(
    folder: Path,
    live: Snapshot | None,
    segment: Path | None,
    *,
    dim: int,
    state: VersionState,
    removed: Sequence[int],
) -> StoriesMade:
    """Write into ``folder`` the stories of the version a build makes from ``live``.

    ``segment``: the build's new (sealed) segment folder, None when it only deletes;
    ``state``: the new version's deletions and near-duplicate groups; ``removed``: the
    article rows this build deletes.
    """
    t0 = time.perf_counter()
    cons = [connect_readonly(segment / DB_FILE)] if segment is not None else []
    try:
        databases = [s.store.con for s in live.segments] if live is not None else []
        databases += cons
        deleted = state.deleted_rows.tolist()
        previous = live.stories if live is not None else None
        incremental = previous is not None and previous.catalog is not None
        if previous is not None and previous.catalog is not None:
            added = IndexArchive(cons, dim=dim).catalog()  # the new segment's articles only
            catalog = previous.catalog.updated(added, np.asarray(removed, np.int64))
            archive = IndexArchive(databases, dim=dim, deleted_rows=deleted, groups=state.groups, catalog=catalog)
            try:
                made = update(previous, archive, added=added.rows, removed=removed)
            except ValueError:  # stories that do not match their version (never written so): made again
                incremental = False
                made = cluster(IndexArchive(databases, dim=dim, deleted_rows=deleted, groups=state.groups))
        else:
            made = cluster(IndexArchive(databases, dim=dim, deleted_rows=deleted, groups=state.groups))
        made.save(folder)
    finally:
        for con in cons:
            con.close()
    return StoriesMade(made.count, time.perf_counter() - t0, incremental)


def missing(live: Snapshot | None) -> bool:
    """Whether the live version lacks stories: the next build makes them, even when nothing else changed."""
    return live is not None and not listed(live.manifest.files)


def carry(snap: Snapshot, folder: Path) -> None:
    """Copy a version's stories into the version a merge writes (the merge keeps every article's row)."""
    if listed(snap.manifest.files):
        for name in FILES:
            shutil.copyfile(snap.path / name, folder / name)


__all__ = ["StoriesMade", "carry", "listed", "make", "missing", "read"]
