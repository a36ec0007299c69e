"""Merging segments, as Lucene's log merge policy does, so an index never splinters.

Each update adds a small segment; left alone, a year of updates would be
thousands of them and every search would visit each. Segments fall into size
tiers (powers of ``factor`` above ``floor`` passages); whenever ``factor``
adjacent segments share a tier they are rewritten as one segment of the next
tier. A passage is so rewritten about log_factor(archive / floor) times in its
life (5 times for a 1M-passage archive at the defaults), and a merge costs what
the merged segments hold. A segment with ``expunge`` of its passages deleted is
rewritten alone, which drops the dead rows for good.

A merge publishes a new version like any build: readers move to it when they
next look, and the segments it replaced go when no retained version lists them.
Merging keeps ids: deletion markers, near-duplicate groups and stories stay valid.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field, replace

from . import story_versions, vectors
from .draft import publish, version_name
from .faults import crash_point
from .index import IndexDir, Snapshot
from .manifest import Manifest, SegmentInfo, now
from .segment_write import VectorChoice, seal
from .segments import segment_name
from .store import DB_FILE
from .version_state import VersionState
from .writer import Writer


@dataclass(frozen=True)
class MergePolicy:
    """When segments are merged (Lucene's ``LogMergePolicy`` defaults)."""

    factor: int = 10  # segments of one tier merged at once
    floor: int = 1_000  # passages: smaller segments all share the lowest tier
    expunge: float = 0.3  # share of deleted passages at which a segment is rewritten alone


DEFAULT_MERGE = MergePolicy()


@dataclass
class MergeReport:
    """What merging did."""

    merges: int = 0
    passages: int = 0  # live passages rewritten
    seconds: float = 0.0
    segments: int = 0  # segments of the version it ended with
    runs: list[str] = field(default_factory=list)  # "s000003–s000012 → s000013"


def tier(passages: int, policy: MergePolicy = DEFAULT_MERGE) -> int:
    """A segment's size tier."""
    return math.floor(math.log(max(passages, policy.floor) / policy.floor, policy.factor) + 1e-9)


def due(
    segments: list[SegmentInfo], state: VersionState, policy: MergePolicy = DEFAULT_MERGE
) -> tuple[int, int] | None:
    """The run ``[a, b)`` of adjacent segments to merge next, or None."""
    for i, s in enumerate(segments):
        if s.passages and len(state.dead_ids(*s.ids)) / s.passages >= policy.expunge:
            return (i, i + 1)
    tiers = [tier(s.passages - len(state.dead_ids(*s.ids)), policy) for s in segments]
    # the newest run first: new segments are the small ones, and merging them is cheap
    for a in range(len(segments) - policy.factor, -1, -1):
        if len(set(tiers[a : a + policy.factor])) == 1:
            return (a, a + policy.factor)
    return None


def merge(
    idx: IndexDir,
    *,
    choice: VectorChoice | None = None,
    policy: MergePolicy = DEFAULT_MERGE,
    everything: bool = False,
) -> MergeReport:
    """Run the merges that are due; the caller holds the lock.

    ``everything`` first rewrites all segments as one (Lucene's force merge): another
    ``--faiss`` type, a newer database schema, or ``indexer merge --all``.
    """
    t0 = time.perf_counter()
    rep = MergeReport()
    while True:
        snap = idx.open()
        try:
            m = snap.manifest
            segs = m.segments
            if everything:
                run = (0, len(segs)) if segs else None
                everything = False  # once
            else:
                run = due(segs, snap.state, policy)
            if run is None:
                rep.segments = len(segs)
                break
            pick = choice or VectorChoice(dim=m.model.dimension, previous=m.vectors, policy=m.policy, small=True)
            info = _merge(idx, snap, run, replace(pick, previous=pick.previous or m.vectors, small=True))
        finally:
            snap.close()
        rep.merges += 1
        rep.passages += info.passages
        names = [s.name for s in segs[run[0] : run[1]]]
        rep.runs.append(f"{names[0]}–{names[-1]} → {info.name}" if len(names) > 1 else f"{names[0]} → {info.name}")
        idx.collect_garbage()
    rep.seconds = time.perf_counter() - t0
    return rep


def _merge(idx: IndexDir, snap: Snapshot, run: tuple[int, int], choice: VectorChoice) -> SegmentInfo:
    """Rewrite the segments of ``run`` as one, and publish the version that lists it instead."""
    m = snap.manifest
    old = m.segments[run[0] : run[1]]
    name = segment_name(idx.layout.segments)
    folder = idx.layout.segment_partial(name)
    folder.mkdir()
    version = version_name(idx.versions)
    partial = idx.layout.partial(version)
    try:
        writer = Writer(folder / DB_FILE)
        for reader in snap.segments[run[0] : run[1]]:
            writer.copy_segment(reader.folder / DB_FILE, snap.state.dead_rows(*reader.info.rows).tolist())
        crash_point("merge")
        rows, ids = (old[0].rows[0], old[-1].rows[1]), (old[0].ids[0], old[-1].ids[1])
        info = seal(idx, writer, name, rows=rows, ids=ids, choice=choice)
        segments = [*m.segments[: run[0]], info, *m.segments[run[1] :]]
        partial.mkdir()
        snap.state.without_range(rows, ids).save(partial)
        story_versions.carry(snap, partial)  # rows are kept: stories and their members stay valid
        auto = info.vectors.auto if choice.forced is not None else m.vectors.auto
        publish(idx, partial, _manifest(m, version, segments, auto=auto))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return info


def _manifest(m: Manifest, version: str, segments: list[SegmentInfo], *, auto: bool) -> Manifest:
    parts = [s.vectors for s in segments]
    summary = vectors.summary(parts, int(m.counts.get("passages", 0)), auto=auto)
    return replace(m, version=version, built_at=now(), segments=segments, vectors=summary, files={})
