"""What a published version added or changed against the one before it: the percolator's input.

An update writes exactly its added and changed articles into one new segment, so its
new passages are that segment's id range, and the passages it deleted are the new
deletion marks; both cost what changed, and so does carrying the collection
statistics forward over them. A rebuild (``--full``, another model or chunker)
renumbers everything: what is new there is what the previous version did not hold
with the same content hash, read from that version's folder (still on disk: the
percolator runs before the garbage collection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import locate
from .index import IndexDir, Snapshot
from .layout import MANIFEST, is_partial
from .manifest import Manifest, load_json
from .percolate_stats import CorpusStats, corpus_key
from .segments import SegmentReader
from .version_state import VersionState
from .version_store import VersionStore


@dataclass(frozen=True)
class Delta:
    """The passages a version added or changed, and the collection statistics after it."""

    new: np.ndarray  # sorted passage ids: every passage of an added or changed article
    stats: CorpusStats
    changed: frozenset[str]  # the ids of those articles that the version before held (with other content)
    full: bool  # a rebuild: told apart by content hash


def alive(snap: Snapshot, ids: np.ndarray) -> np.ndarray:
    """The ``ids`` that ``snap`` has not deleted."""
    return ids[~locate(snap.state.deleted_ids, ids)[1]]


def of_update(snap: Snapshot, live: Snapshot, kept: tuple[str, CorpusStats] | None) -> Delta:
    """What an update added: its new segment; ``kept`` is the statistics the last run left, and of what."""
    before = {s.info.name for s in live.segments}
    parts = [_ids_of(seg) for seg in snap.segments if seg.info.name not in before]
    new = alive(snap, np.unique(np.concatenate(parts))) if parts else np.zeros(0, np.int64)
    changed = frozenset(live.store.known_by_id(_article_ids(snap, new))) if len(new) else frozenset()
    if kept is not None and kept[0] == corpus_key(live):
        removed = np.setdiff1d(snap.state.deleted_ids, live.state.deleted_ids)
        stats = kept[1].advanced(_described(snap, new), _described(snap, removed))
    elif kept is not None and kept[0] == corpus_key(snap):
        stats = kept[1]  # this version's already
    else:
        stats = CorpusStats.exact(snap, ())  # a first run, or the one after a missed run: paid once
    return Delta(new, stats, changed, full=False)


def added_since(snap: Snapshot, first: int) -> np.ndarray:
    """The alive passages of ``snap`` with an id from ``first`` on: added or changed since (ids only grow).

    What a search whose last run was missed (a build killed after its switch, a failure) has not seen.
    """
    parts = [_ids_of(seg) for seg in snap.segments if seg.info.ids[1] > first]
    ids = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return alive(snap, ids[ids >= first])


def of_rebuild(idx: IndexDir, snap: Snapshot) -> Delta:
    """What a rebuild changed: the passages of the articles whose content the previous version did not hold."""
    stats = CorpusStats.exact(snap, ())
    before = previous_hashes(idx, snap.manifest)
    if before is None:  # no previous version: nothing is news
        return Delta(np.zeros(0, np.int64), stats, frozenset(), full=True)
    held = snap.store.known_articles()
    fresh = [k.rowid for aid, k in held.items() if before.get(aid) != k.content_hash]
    changed = frozenset(aid for aid, k in held.items() if aid in before and before[aid] != k.content_hash)
    return Delta(np.asarray(snap.store.article_passages(fresh), np.int64), stats, changed, full=True)


def previous_hashes(idx: IndexDir, current: Manifest) -> dict[str, str] | None:
    """Article id → content hash in the version published before ``current`` (None: there is none)."""
    if not idx.versions.is_dir():
        return None
    older = sorted(p for p in idx.versions.iterdir() if p.is_dir() and not is_partial(p) and p.name < current.version)
    if not older:
        return None
    m = Manifest.from_dict(load_json(older[-1] / MANIFEST))
    state = VersionState.load(older[-1])
    readers: list[SegmentReader] = []
    try:
        for info in m.segments:
            readers.append(SegmentReader(info, idx.layout.segment(info.name), idx.path, dim=m.model.dimension))
        return {aid: k.content_hash for aid, k in VersionStore(readers, state).known_articles().items()}
    finally:
        for r in readers:
            r.close()


def _ids_of(seg: SegmentReader) -> np.ndarray:
    lo, hi = seg.info.ids
    if hi - lo == seg.info.passages:  # a build's segment numbers its passages without gaps
        return np.arange(lo, hi, dtype=np.int64)
    return np.asarray(seg.postings.pids, np.int64)


def _described(snap: Snapshot, ids: np.ndarray) -> list[tuple[str, str | None]]:
    """Each passage's analysed terms and language (deleted ones too: their segments keep them)."""
    terms = snap.store.passage_terms(ids.tolist())
    langs = snap.store.passage_langs(ids.tolist())
    return [(terms.get(i, ""), langs.get(i)) for i in ids.tolist()]


def _article_ids(snap: Snapshot, pids: np.ndarray) -> list[str]:
    rows = snap.store.passages(pids.tolist())
    return sorted({r.article_id for r in rows.values()})
