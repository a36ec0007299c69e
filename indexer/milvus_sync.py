"""Keeping a Milvus collection in step with an index directory: sync and export.

A sync diffs row hashes (passage text, article content, offsets, duplicate group,
model, analyzer) by passage id. Unchanged passages keep their ids across
incremental builds and are not sent again; a ``--full`` rebuild restarts ids, and
the hashes tell which of them now hold other passages. The synced version, model
fingerprint and dimension are recorded in the one-row ``<collection>__indexer``
collection (Milvus Lite cannot alter collection properties), which searches check.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .index import IndexDir, Snapshot
from .manifest import Manifest
from .milvus import LIMITS, MilvusStore, StoreError, parse_uri
from .store import DB_FILE

FORMAT = 1  # layout of the collection; bump to make syncs recreate older ones
_BATCH = 512  # rows per insert call (~3 KB each with a 384-d vector)


@dataclass
class SyncReport:
    """What a sync changed in the collection."""

    store: str
    version: str
    inserted: int = 0
    deleted: int = 0
    passages: int = 0  # in the collection afterwards
    up_to_date: bool = False  # it already held this version: nothing was sent
    recreated: str = ""  # why the collection was (re)created, if it was
    bm25: bool = False  # the collection scores BM25 itself
    seconds: float = 0.0


def _clip(value: str | None, field: str) -> str:
    text = value or ""
    data = text.encode("utf-8", "surrogatepass")
    limit = LIMITS[field]
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _index_key(m: Manifest) -> str:
    """Identifies a published version's content (its database checksum when recorded)."""
    return m.files.get(DB_FILE) or f"{m.version}|{m.built_at}"


def sync(store: MilvusStore, snap: Snapshot, progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Make the collection hold exactly the snapshot's passages, sending only the differences."""
    t0 = time.perf_counter()
    m = snap.manifest
    rep = SyncReport(store.uri.text, m.version)
    meta = store.meta(fresh=True)
    exists = store.call("listing collections", store.client.has_collection, store.name)
    if exists and meta is None:
        raise StoreError(
            f"collection {store.name!r} at {store.uri.text} exists but was not written by indexer — "
            "name another collection in the URI, or drop that one"
        )
    wanted = {"index": store.uri.index, "nlist": store.uri.nlist if store.uri.index == "ivf_flat" else None}
    if not exists or meta is None:
        rep.recreated = "new collection"
    elif meta.get("format") != FORMAT:
        rep.recreated = f"collection format {meta.get('format')} → {FORMAT}"
    elif meta["model"]["fingerprint"] != m.model.fingerprint or meta["model"]["dimension"] != m.model.dimension:
        rep.recreated = f"model changed ({meta['model']['name']} → {m.model.name})"
    elif {k: meta["vectors"].get(k) for k in wanted} != wanted:
        rep.recreated = f"vector index changed ({meta['vectors'].get('index')} → {store.uri.index})"
    if rep.recreated or meta is None:
        bm25 = store.create(m.model.dimension)
    else:
        bm25 = bool(meta.get("bm25"))
        if meta.get("state") == "synced" and meta.get("index", {}).get("key") == _index_key(m):
            rep.passages = store.count()
            if rep.passages == snap.store.counts()["passages"]:  # the same version, wholly there
                rep.up_to_date, rep.bm25 = True, bm25
                rep.seconds = time.perf_counter() - t0
                return rep
    doc = _meta_doc(store, m, bm25, state="syncing")
    store.write_meta(doc)
    desired = _desired(snap, m)
    existing = {} if rep.recreated else store.row_hashes()
    drop = [pid for pid, h in existing.items() if desired.get(pid, (None,))[0] != h]
    add = sorted(pid for pid, (h, _) in desired.items() if existing.get(pid) != h)
    store.delete(drop)
    for done, rows in _rows(snap, add, desired, with_terms=bm25):
        store.insert(rows)
        if progress:
            progress(done, len(add))
    rep.inserted, rep.deleted, rep.bm25 = len(add), len(drop), bm25
    rep.passages = store.count()
    store.write_meta({**doc, "state": "synced", "count": rep.passages})
    rep.seconds = time.perf_counter() - t0
    return rep


def _meta_doc(store: MilvusStore, m: Manifest, bm25: bool, *, state: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "state": state,
        "index": {"version": m.version, "created_at": m.created_at, "key": _index_key(m)},
        "model": {
            "name": m.model.name,
            "fingerprint": m.model.fingerprint,
            "dimension": m.model.dimension,
            "backend": m.model.backend,
        },
        "vectors": {
            "metric": "IP",
            "normalized": True,
            "index": store.uri.index,
            "nlist": store.uri.nlist if store.uri.index == "ivf_flat" else None,
        },
        "bm25": bm25,
        "synced_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _desired(snap: Snapshot, m: Manifest) -> dict[int, tuple[str, int]]:
    """Passage id → (row hash, duplicate group) of every passage of the version."""
    salt = f"{FORMAT}|{m.model.fingerprint}|{m.model.backend}|{m.lexical.analyzer}"
    out = {}
    for pid, th, start, end, ch, group in snap.store.passage_states():
        key = f"{salt}|{th}|{start}|{end}|{ch}|{group}".encode()
        out[int(pid)] = (hashlib.blake2b(key, digest_size=8).hexdigest(), int(group))
    return out


def _rows(
    snap: Snapshot, pids: list[int], desired: dict[int, tuple[str, int]], *, with_terms: bool
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Insert batches for ``pids``, read from the version's database."""
    dim = snap.manifest.model.dimension
    for i in range(0, len(pids), _BATCH):
        part = pids[i : i + _BATCH]
        rows, vecs = snap.store.passages(part), snap.store.vectors(part, dim)
        terms = snap.store.passage_terms(part) if with_terms else {}
        batch = []
        for pid, vec in zip(part, vecs):
            r = rows[pid]
            row = {
                "pid": pid,
                "vector": vec.tolist(),
                "start": r.start,
                "end": r.end,
                "dup_group": desired[pid][1],
                "row_hash": desired[pid][0],
                "day": (r.date or "")[:10],
            }
            for name in ("article_id", "title", "text", "lang", "source", "date", "url", "author"):
                row[name] = _clip(getattr(r, name), name)
            if with_terms:
                row["terms"] = _clip(terms.get(pid, ""), "terms")
            batch.append(row)
        yield i + len(part), batch


def export(index_dir: Path | str, uri: str, *, progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Push an index's live version into a Milvus collection (under the build lock); the migration path."""
    target = parse_uri(uri)
    idx = IndexDir(index_dir)
    idx.manifest()  # no index, or a damaged one: its own message, before connecting
    with MilvusStore(target) as store:
        lock = idx.lock()  # no build publishes (or syncs) meanwhile
        try:
            return sync_index(store, idx, progress)
        finally:
            lock.release()


def sync_index(store: MilvusStore, idx: IndexDir, progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Sync an index's live version into the store; the caller holds the build lock."""
    snap = idx.open()
    try:
        return sync(store, snap, progress)
    except StoreError as exc:
        raise StoreError(
            f"{exc} — the index at {idx.path} is unaffected; retry with "
            f'"indexer export --store {store.uri.text} --index {idx.path}"'
        ) from None
    finally:
        snap.close()
