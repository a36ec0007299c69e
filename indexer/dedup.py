"""Near-duplicate articles (syndicated copies) by MinHash over word 5-shingles.

Each article gets a 64-value MinHash signature, stored with 16 LSH band keys of 4
values: two articles sharing any band key are candidates, kept as duplicates when
their estimated Jaccard similarity is at least ``THRESHOLD``. With 16×4 bands a
pair at 0.8 is a candidate with probability 0.9998, so clusters are found in
one indexed SQL join instead of comparing every pair. A rebuild groups the whole
collection (``regroup``); an update only looks up the band keys of its new articles and
re-derives the clusters that lost a member (``update_groups``), so it costs what changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

import numpy as np

from .analysis import fold, words

if TYPE_CHECKING:
    from .writer import Writer

PERMUTATIONS = 64
BANDS = 16
ROWS = PERMUTATIONS // BANDS
SHINGLE = 5
THRESHOLD = 0.8  # copies edited for house style stay above; different stories on one topic fall far below
_PRIME = (1 << 61) - 1
_rng = np.random.default_rng(20240229)  # fixed: signatures must be identical across builds
_A = _rng.integers(1, _PRIME, size=PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, _PRIME, size=PERMUTATIONS, dtype=np.uint64)


def _shingle_hashes(text: str) -> np.ndarray:
    toks = [fold(w) for w in words(text)]
    if len(toks) < SHINGLE:
        grams = [" ".join(toks)] if toks else [""]
    else:
        grams = [" ".join(toks[i : i + SHINGLE]) for i in range(len(toks) - SHINGLE + 1)]
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") >> 4 for g in set(grams)),
        dtype=np.uint64,
    )


def signature(text: str) -> np.ndarray:
    """64 MinHash values of the text's word 5-shingles."""
    h = _shingle_hashes(text)
    # (a*h + b) mod p over uint64: wrap-around multiplication is fine for hashing purposes
    vals = (np.outer(h, _A) + _B) % np.uint64(_PRIME)
    return vals.min(axis=0).astype(np.uint64)


def band_keys(sig: np.ndarray) -> list[int]:
    """The signature's 16 LSH band keys."""
    rows = sig.reshape(BANDS, ROWS)
    return [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "little", signed=True) for r in rows]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return float(np.mean(a == b))


def regroup(writer: Writer) -> int:
    """Recompute every article's near-duplicate group; returns the number of clusters."""
    pairs = writer.band_pairs()
    sigs = writer.signatures(sorted({a for pair in pairs for a in pair}))
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        while parent.get(a, a) != a:
            parent[a] = parent.get(parent[a], parent[a])
            a = parent[a]
        return a

    for a, b in pairs:
        if similarity(sigs[a], sigs[b]) >= THRESHOLD:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups = {a: find(a) for a in parent}
    writer.set_duplicate_groups(groups)
    return len({g for g in groups.values()})


BandKey = tuple[int, int]  # (band index, bucket key), as the ``bands`` table stores it
Candidates = Callable[[list[BandKey]], dict[BandKey, list[int]]]
Signatures = Callable[[list[int]], dict[int, np.ndarray]]


def cluster_count(groups: Mapping[int, int]) -> int:
    """The number of near-duplicate clusters in a group map."""
    return len(set(groups.values()))


def update_groups(
    groups: Mapping[int, int],
    added: Mapping[int, np.ndarray],
    removed: Collection[int],
    *,
    candidates: Candidates,
    signatures: Signatures,
) -> dict[int, int]:
    """The group map after an update, recomputed only where the added and removed articles reach.

    Gives the clusters a full ``regroup`` of the resulting collection would find, in work that
    follows the change: band keys are looked up only for the added articles, and only the
    clusters that lost a member are re-derived, from their survivors' signatures.

    Args:
        groups: article row → group row, for the articles of clusters of two or more; a cluster's
            first row may be absent (``regroup`` leaves it out, as it is its own group).
        added: the new articles' rows (all larger than any existing row) → their signatures.
        removed: the rows deleted by this update (never rows of ``added``).
        candidates: (band, bucket) keys → the existing, not removed, article rows holding them.
        signatures: existing article rows → their signatures.

    Returns:
        A new map holding every article of a cluster of two or more, its first row included,
        → the smallest row of its cluster.
    """
    gone = set(removed)
    if not gone.isdisjoint(added):
        raise ValueError("an update cannot both add and remove the same article row")
    # regroup() maps no row to a cluster's first row, so labels are what identify it
    labels = set(groups.values())
    result = dict(groups)
    result.update((g, g) for g in labels)
    touched = {result[r] for r in gone if r in result}

    new_keys = {row: _keyed(sig) for row, sig in added.items()}
    wanted = sorted({k for keys in new_keys.values() for k in keys})
    held = candidates(wanted) if wanted else {}
    # the callable's contract already excludes these; filtering keeps a stale store from resurrecting rows
    near = {k: [r for r in held.get(k, ()) if r not in gone and r not in added] for k in wanted}
    old_rows = {r for rows in near.values() for r in rows}

    involved = touched | {result[r] for r in old_rows if r in result}
    members: dict[int, list[int]] = {g: [] for g in involved}
    if involved:
        for r, g in result.items():
            if g in members:
                members[g].append(r)
    for g in involved:
        for r in members[g]:
            del result[r]
    survivors = [r for g in touched for r in members[g] if r not in gone]

    need = sorted(old_rows.union(survivors))
    sigs = dict(signatures(need)) if need else {}
    missing = [r for r in need if r not in sigs]
    if missing:
        raise ValueError(f"no MinHash signature for article rows {missing[:5]} — rebuild the index")
    sigs.update(added)

    comp = _Components()

    def node(r: int) -> int:
        # an untouched cluster stays whole, so its label stands for all its members
        g = groups.get(r, r)
        return r if g in touched else g

    def link(a: int, b: int) -> None:
        if similarity(sigs[a], sigs[b]) >= THRESHOLD:
            comp.union(node(a), node(b))

    nodes = set(added).union(survivors)
    for g in touched:
        # a survivor's edges to old articles all stay inside its old cluster, or it would have been larger
        alive = [r for r in members[g] if r not in gone]
        for a, b in _shared_pairs({r: _keyed(sigs[r]) for r in alive}):
            link(a, b)
    for a, b in _shared_pairs(new_keys):
        link(a, b)
    for row, keys in new_keys.items():
        for old in {r for k in keys for r in near[k]}:
            nodes.add(node(old))
            link(row, old)

    parts: dict[int, list[int]] = {}
    for n in nodes:
        rows = members[n] if n in members and n not in touched else [n]
        parts.setdefault(comp.find(n), []).extend(rows)
    for root, rows in parts.items():
        if len(rows) > 1:
            result.update((r, root) for r in rows)
    return result


def _keyed(sig: np.ndarray) -> list[BandKey]:
    return list(enumerate(band_keys(sig)))


def _shared_pairs(keyed: Mapping[int, list[BandKey]]) -> set[tuple[int, int]]:
    """Row pairs (smaller first) sharing at least one band key."""
    buckets: dict[BandKey, list[int]] = {}
    for row, keys in keyed.items():
        for k in keys:
            buckets.setdefault(k, []).append(row)
    pairs: set[tuple[int, int]] = set()
    for rows in buckets.values():
        rows.sort()
        pairs.update((a, b) for i, a in enumerate(rows) for b in rows[i + 1 :])
    return pairs


class _Components:
    """Union-find whose root is always the smallest row of its component (the group convention)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        parent = self.parent
        while parent.get(a, a) != a:
            parent[a] = parent.get(parent[a], parent[a])
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
