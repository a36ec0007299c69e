"""Per-segment BM25 postings with raw term frequencies, scored at query time from collection-wide statistics.

A segment is immutable: its passages' term frequencies and lengths, written once.
Nothing in it depends on the rest of the collection, so adding passages writes a
new segment and deleting one only marks it dead. ``Collection`` reads any set of
segments with their deletion marks and scores BM25 (bm25s's default "lucene"
variant) from the document count, document frequencies and mean length of the
alive passages only: its scores equal those of one index rebuilt from the alive
passages, whatever the segment layout.

A segment folder holds plain ``.npy`` arrays and one JSON vocabulary (no pickle):
the sorted passage ids, each passage's length in terms, and a CSR matrix by term
(``indptr`` over the sorted vocabulary; each posting's passage position in the
segment and its term frequency).
"""

from __future__ import annotations

import json
import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .columns import locate

FORMAT = 1
PIDS_FILE = "pids.npy"  # int64, strictly increasing
LENGTHS_FILE = "lengths.npy"  # int32: terms per passage, repeats included (as bm25s counts)
INDPTR_FILE = "indptr.npy"  # int64, len(vocabulary) + 1: term i's postings are [indptr[i], indptr[i + 1])
DOCS_FILE = "docs.npy"  # int32: each posting's passage position in the segment, increasing within a term
TFS_FILE = "tfs.npy"  # float32: term frequencies (integers; exact up to 2**24)
VOCAB_FILE = "vocabulary.json"  # {"format", "documents", "terms": the sorted terms}
K1, B = 1.2, 0.75  # the defaults of lexical.py

# Analysed tokens gathered before they are reduced to (term, passage, tf) triples: bounds
# the per-token arrays (~100 MB) whatever the segment's size; the triples are the output.
_CHUNK_TOKENS = 1 << 22
_DECODE_BLOCK = 1 << 22  # postings unpacked at a time, for the same reason
_KEY_BITS = 63  # a posting's (term, passage, tf) fits one non-negative int64 key if their bits do
_LOW = np.int64(0xFFFFFFFF)


class _Vocabulary(dict[str, int]):
    """Term → provisional id, numbered when first looked up (so a chunk's lookups are one C-level map)."""

    def __missing__(self, term: str) -> int:
        self[term] = tid = len(self)
        return tid


def write(terms: Iterable[tuple[int, str]], folder: Path) -> int:
    """Write one segment's postings of ``(passage_id, "t1 t2 …")`` (ids increasing) into ``folder``.

    Returns the number of passages. The caller writes into a fresh folder and
    publishes it atomically; the files are deterministic for the same input.
    """
    vocab = _Vocabulary()  # the files index terms by sorted order, not by this provisional one
    pids, lengths = array("q"), array("i")
    keys: list[np.ndarray] = []  # per chunk, provisional id << 32 | passage position, sorted
    counts: list[np.ndarray] = []  # and the term's frequency in the passage (unsigned ints)
    tokens: list[str] = []
    first = 0  # the pending chunk's first passage
    for pid, text in terms:
        if pids and pid <= pids[-1]:
            raise ValueError(f"passage ids must increase: {pid} after {pids[-1]}")
        words = text.split()
        pids.append(pid)
        lengths.append(len(words))
        tokens += words
        if len(tokens) >= _CHUNK_TOKENS:
            _reduce(tokens, lengths[first:], first, vocab, keys, counts)
            tokens, first = [], len(pids)
    if tokens:
        _reduce(tokens, lengths[first:], first, vocab, keys, counts)
    del tokens
    if len(pids) > np.iinfo(np.int32).max:
        raise ValueError(f"{len(pids)} passages: a segment holds at most 2**31 - 1 (positions are int32)")

    ordered = sorted(vocab)
    rank = np.empty(len(vocab), np.int64)
    rank[np.fromiter(map(vocab.__getitem__, ordered), np.int64, count=len(ordered))] = np.arange(len(ordered))
    del vocab

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / PIDS_FILE, np.frombuffer(pids, np.int64), allow_pickle=False)
    np.save(folder / LENGTHS_FILE, np.frombuffer(lengths, np.int32), allow_pickle=False)
    _write_postings(folder, keys, counts, rank, len(pids))
    # UTF-8 rather than \u escapes (Cyrillic and CJK vocabularies stay small); surrogatepass
    # so a lone surrogate in some analysed text round-trips instead of failing the build
    with open(folder / VOCAB_FILE, "w", encoding="utf-8", errors="surrogatepass") as f:
        json.dump({"format": FORMAT, "documents": len(pids), "terms": ordered}, f, ensure_ascii=False)
    return len(pids)


def _reduce(
    tokens: list[str],
    lengths: array[int],
    first: int,
    vocab: _Vocabulary,
    keys: list[np.ndarray],
    counts: list[np.ndarray],
) -> None:
    """Append a chunk's unique (provisional id, passage) keys and term frequencies; ``vocab`` grows."""
    ids = np.fromiter(map(vocab.__getitem__, tokens), np.int64, count=len(tokens))
    docs = np.repeat(np.arange(first, first + len(lengths), dtype=np.int64), np.frombuffer(lengths, np.int32))
    ids <<= 32
    ids |= docs
    del docs
    found, tf = np.unique(ids, return_counts=True)
    keys.append(found)
    # the smallest type that holds the chunk's counts (uint8 nearly always): the triples are
    # what a big segment's write holds in memory until the final sort
    counts.append(tf.astype(np.min_scalar_type(int(tf.max(initial=0)))))


def _write_postings(
    folder: Path, keys: list[np.ndarray], counts: list[np.ndarray], rank: np.ndarray, documents: int
) -> None:
    """Write the CSR by sorted term: ``indptr``, passage positions and term frequencies (empties the lists)."""
    total = sum(len(k) for k in keys)
    indptr = np.empty(len(rank) + 1, np.int64)
    indptr[-1] = total
    max_tf = max((int(c.max()) for c in counts if len(c)), default=0)
    tf_bits, doc_bits = max_tf.bit_length(), max(documents - 1, 0).bit_length()
    if max(len(rank) - 1, 0).bit_length() + doc_bits + tf_bits > _KEY_BITS:
        # rare: the bits of terms × passages × the largest tf pass 63 (a term repeated millions of times)
        low = np.concatenate(keys) & _LOW
        term = np.concatenate([rank[k >> 32] for k in keys])
        tfs = np.concatenate(counts).astype(np.float32)
        keys.clear()
        counts.clear()
        indptr[0] = 0
        np.cumsum(np.bincount(term, minlength=len(rank)), out=indptr[1:])
        order = np.argsort((term << 32) | low)  # (term, passage) pairs are unique: one order for every sort
        np.save(folder / INDPTR_FILE, indptr, allow_pickle=False)
        np.save(folder / DOCS_FILE, low[order].astype(np.int32), allow_pickle=False)
        np.save(folder / TFS_FILE, tfs[order], allow_pickle=False)
        return
    # the usual case: (term, passage, tf) packed in one int64 sort in place, with no argsort and
    # no gathers, and are unpacked block by block into the files: the write's peak memory is
    # these keys, about the size of the two postings files
    shift = doc_bits + tf_bits
    packed = np.empty(total, np.int64)
    at = 0
    while keys:
        key, tf = keys.pop(0), counts.pop(0)
        packed[at : at + len(key)] = (rank[key >> 32] << shift) | ((key & _LOW) << tf_bits) | tf.astype(np.int64)
        at += len(key)
    packed.sort()
    indptr[:-1] = np.searchsorted(packed, np.arange(len(rank), dtype=np.int64) << shift)
    np.save(folder / INDPTR_FILE, indptr, allow_pickle=False)
    with open(folder / DOCS_FILE, "wb") as docs_file, open(folder / TFS_FILE, "wb") as tfs_file:
        _header(docs_file, np.int32, total)
        _header(tfs_file, np.float32, total)
        for start in range(0, total, _DECODE_BLOCK):
            block = packed[start : start + _DECODE_BLOCK]
            docs_file.write(((block >> tf_bits) & ((1 << doc_bits) - 1)).astype(np.int32).tobytes())
            tfs_file.write((block & ((1 << tf_bits) - 1)).astype(np.float32).tobytes())


def _header(f: BinaryIO, dtype: type, length: int) -> None:
    """The ``.npy`` header ``np.save`` writes for a one-dimensional array of ``length`` items of ``dtype``."""
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": (length,)})


def _load(path: Path, dtype: type, *, mmap: bool = False) -> np.ndarray:
    """A one-dimensional array of ``dtype`` from ``path``; ValueError when it is not one (OSError: unreadable)."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except EOFError as e:  # an empty file; numpy raises ValueError for the other truncations
        raise ValueError(f"{path}: empty file") from e
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != dtype:
        raise ValueError(f"{path}: not a one-dimensional {np.dtype(dtype).name} array")
    if mmap:
        return arr.view(np.ndarray)  # a plain view: np.memmap's subclass hooks cost on every slice
    arr.flags.writeable = False
    return arr


class SegmentPostings:
    """One segment's postings, read-only; the large arrays are memory-mapped.

    Opening checks the files' types and sizes against each other and raises ValueError
    (OSError when a file is missing or unreadable); it never reads the postings through.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pids = _load(folder / PIDS_FILE, np.int64)
        self.lengths = _load(folder / LENGTHS_FILE, np.int32)
        self._indptr = _load(folder / INDPTR_FILE, np.int64)
        self._docs = _load(folder / DOCS_FILE, np.int32, mmap=True)
        self._tfs = _load(folder / TFS_FILE, np.float32, mmap=True)
        with open(folder / VOCAB_FILE, encoding="utf-8", errors="surrogatepass") as f:
            meta = json.load(f)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{folder / VOCAB_FILE}: not a format {FORMAT} postings vocabulary")
        terms = meta.get("terms")
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ValueError(f"{folder / VOCAB_FILE}: no list of terms")
        if not all(a < b for a, b in pairwise(terms)):
            raise ValueError(f"{folder / VOCAB_FILE}: terms out of order")
        # looked up by bisection: half the memory of a dict (each segment has its own vocabulary,
        # ~200k terms in 100k passages) for ~0.3 µs a lookup, a few hundred per query
        self._terms: list[str] = terms
        # checks that cost O(passages + terms), never a read of the postings themselves
        n, ip = len(self.pids), self._indptr
        if meta.get("documents") != n or len(self.lengths) != n or np.any(self.pids[1:] <= self.pids[:-1]):
            raise ValueError(f"{folder}: passage ids and lengths disagree with the vocabulary")
        if len(ip) != len(terms) + 1 or ip[0] != 0 or np.any(ip[1:] <= ip[:-1]):
            raise ValueError(f"{folder}: term offsets disagree with the vocabulary")
        if ip[-1] != len(self._docs) or len(self._tfs) != len(self._docs):
            raise ValueError(f"{folder}: postings files disagree with the term offsets")

    def _index(self, term: str) -> int | None:
        """The term's index in the sorted vocabulary, None when the segment lacks it."""
        i = bisect_left(self._terms, term)
        return i if i < len(self._terms) and self._terms[i] == term else None

    def __len__(self) -> int:
        return len(self.pids)

    def has(self, term: str) -> bool:
        """Whether some passage of the segment (dead or alive) holds ``term``."""
        return self._index(term) is not None

    def term_postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Positions in the segment (int32, increasing) of the passages holding ``term``, and its frequency in each."""
        tid = self._index(term)
        if tid is None:
            return None
        start, end = int(self._indptr[tid]), int(self._indptr[tid + 1])
        return self._docs[start:end], self._tfs[start:end]


def length_norm(lengths: np.ndarray, avgdl: float, *, k1: float = K1, b: float = B) -> np.ndarray:
    """Per passage of these lengths (in terms), the length part of BM25's denominator (float64)."""
    # in bm25s's order of operations, so scores match its float32 ones bit for bit
    return k1 * ((1 - b) + b * np.asarray(lengths, np.float64) / avgdl)


def term_scores(tf: np.ndarray, norm: np.ndarray, *, documents: int, df: int) -> np.ndarray:
    """BM25 (float32) of one term in passages with these frequencies and ``length_norm``s.

    ``documents`` and ``df`` are the collection's passage count and the term's document
    frequency. ``tf`` (float64) is overwritten; ``norm`` is not.
    """
    # bm25s keeps idf as float32 and multiplies it by a float64 tf part; so does this
    idf = np.float64(np.float32(math.log(1 + (documents - df + 0.5) / (df + 0.5))))
    denominator = norm + tf
    tf /= denominator
    tf *= idf
    return tf.astype(np.float32)


@dataclass(frozen=True)
class _Part:
    """A segment as the collection sees it: where its alive passages start in ``pids``, and which they are."""

    segment: SegmentPostings
    offset: int
    to_alive: np.ndarray | None  # int64 per passage: its position in ``pids``, -1 when dead; None: all alive


class Collection:
    """BM25 over the alive passages of many segments, with statistics of the alive passages only."""

    def __init__(
        self,
        segments: Sequence[SegmentPostings],
        alive: Sequence[np.ndarray | None],
        *,
        k1: float = K1,
        b: float = B,
    ) -> None:
        if len(alive) != len(segments):
            raise ValueError(f"{len(segments)} segments but {len(alive)} alive masks")
        parts: list[_Part] = []
        pids: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        offset = 0
        for seg, mask in zip(segments, alive):
            if mask is not None:
                mask = np.asarray(mask)
                if mask.dtype != np.bool_ or mask.shape != (len(seg),):
                    raise ValueError(f"alive mask of shape {mask.shape} ({mask.dtype}) for {len(seg)} passages")
            if mask is None or mask.all():
                parts.append(_Part(seg, offset, None))
                pids.append(seg.pids)
                lengths.append(seg.lengths)
                offset += len(seg)
                continue
            to_alive = np.cumsum(mask, dtype=np.int64)
            to_alive += offset - 1
            to_alive[~mask] = -1
            parts.append(_Part(seg, offset, to_alive))
            pids.append(seg.pids[mask])
            lengths.append(seg.lengths[mask])
            offset += int(np.count_nonzero(mask))
        self._parts = parts
        self.pids: np.ndarray = np.concatenate(pids) if pids else np.zeros(0, np.int64)
        self.pids.flags.writeable = False
        if np.any(self.pids[1:] <= self.pids[:-1]):
            raise ValueError("segments must come in passage id order, each after the one before")
        dl = np.concatenate(lengths).astype(np.float64) if lengths else np.zeros(0)
        total = sum(int(x.sum(dtype=np.int64)) for x in lengths)
        #: the mean length of the alive passages (bm25s's avgdl: its float64 mean of the lengths)
        self.avgdl = total / len(dl) if len(dl) else 0.0
        # per alive passage, the length part of BM25's denominator; no passage holds a term when total is 0
        self._norm = length_norm(dl, self.avgdl, k1=k1, b=b) if total else dl

    def __len__(self) -> int:
        return len(self.pids)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Positions (int64, in ``pids``) of the alive passages holding ``term``, and its BM25 score (float32) in each.

        None when no alive passage holds it. Document frequency, passage count and mean
        length are those of the alive passages of all segments.
        """
        pieces: list[tuple[np.ndarray, np.ndarray, np.int64]] = []  # positions, tfs, offset to add
        df = 0
        for part in self._parts:
            found = part.segment.term_postings(term)
            if found is None:
                continue
            docs, tf = found
            if part.to_alive is None:
                pieces.append((docs, tf, np.int64(part.offset)))
            else:
                pos = part.to_alive[docs]
                keep = pos >= 0
                pieces.append((pos[keep], tf[keep], np.int64(0)))
            df += len(pieces[-1][0])
        if not df:
            return None
        # filled in place rather than concatenated: a common term has ~100k postings per query
        positions, tf64 = np.empty(df, np.int64), np.empty(df, np.float64)
        at = 0
        for docs, tf, offset in pieces:
            np.add(docs, offset, out=positions[at : at + len(docs)])
            tf64[at : at + len(docs)] = tf
            at += len(docs)
        return positions, term_scores(tf64, self._norm[positions], documents=len(self.pids), df=df)

    def known(self, terms: list[str]) -> list[str]:
        """The terms some alive passage holds."""
        return [t for t in terms if self._holds(t)]

    def _holds(self, term: str) -> bool:
        """Whether some alive passage holds ``term``: segment vocabularies first, postings only under deletions."""
        if any(p.to_alive is None and p.segment.has(term) for p in self._parts):
            return True
        for part in self._parts:
            if part.to_alive is None:
                continue
            found = part.segment.term_postings(term)
            if found is not None and (part.to_alive[found[0]] >= 0).any():
                return True
        return False

    def grouped_scores(self, groups: list[dict[str, float]]) -> np.ndarray:
        """Sum over query words of the best weighted score among the word's variants (every alive passage)."""
        from .backends import combine

        return combine(groups, self.postings, len(self.pids))

    def position(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each passage id stands in ``pids``, and whether it is there (alive) at all."""
        return locate(self.pids, np.asarray(ids, dtype=np.int64))
