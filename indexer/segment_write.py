"""Sealing a segment: its postings, vector index, checksums, then the rename that completes it.

Shared by builds (a new segment of added articles) and merges (a segment that
replaces several). A segment folder is complete once renamed from ``.partial``;
until a published version lists it, the next build may remove it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import postings, vectors
from .faults import crash_point
from .index import IndexDir, digests
from .manifest import SegmentInfo, fsync_dir
from .segments import POSTINGS_DIR
from .vector_plan import DEFAULT_POLICY, IndexPolicy, VectorIndexInfo
from .writer import Writer


@dataclass(frozen=True)
class VectorChoice:
    """How a segment's vector index is chosen (the build's ``--faiss`` and policy)."""

    dim: int
    forced: str | None = None
    previous: VectorIndexInfo | None = None
    policy: IndexPolicy = DEFAULT_POLICY
    small: bool = False  # an update's segment: exact when a forced IVF type cannot train on it


def seal(
    idx: IndexDir, writer: Writer, name: str, *, rows: tuple[int, int], ids: tuple[int, int], choice: VectorChoice
) -> SegmentInfo:
    """Write a segment's postings and vectors beside its database, check-sum it, and complete it."""
    partial, final = idx.layout.segment_partial(name), idx.layout.segment(name)
    counts = writer.counts()
    postings.write(writer.all_terms(), partial / POSTINGS_DIR)
    crash_point("lexical")
    index, vinfo = vectors.build_segment(
        lambda: writer.all_vectors(choice.dim),
        counts["passages"],
        choice.dim,
        forced=choice.forced,
        previous=choice.previous,
        policy=choice.policy,
        small=choice.small,
    )
    writer.commit_and_close()
    crash_point("sqlite")
    vectors.save(index, partial / vectors.VECTORS_FILE)
    crash_point("faiss")
    files = digests(partial)  # reading each file for its checksum also flushes it to disk
    os.replace(partial, final)
    fsync_dir(final.parent)
    if idx.trust is not None:  # just written and hashed: the next build need not read it again
        for rel, digest in files.items():
            idx.trust.note(final / rel, digest)
    crash_point("segment")
    return SegmentInfo(
        name=name,
        articles=counts["articles"],
        passages=counts["passages"],
        rows=rows,
        ids=ids,
        vectors=vinfo,
        files=files,
    )


def folder_bytes(folder: Path) -> int:
    """Bytes of the files below ``folder`` (what a segment or a version adds on disk)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
