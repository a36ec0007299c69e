"""Near-duplicate articles (syndicated copies) by MinHash over word 5-shingles.

Each article gets a 64-value MinHash signature, stored with 16 LSH band keys of 4
values: two articles sharing any band key are candidates, kept as duplicates when
their estimated Jaccard similarity is at least ``THRESHOLD``. With 16×4 bands a
pair at 0.8 is a candidate with probability 0.9998, so clusters are found in
one indexed SQL join instead of comparing every pair.
"""

from __future__ import annotations

import hashlib
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
