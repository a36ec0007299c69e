"""A saved search's frame: the passages it was last ranked against, with all that ranking them again needs.

A search of the whole version ranks the 100 best passages of each side; the percolator
keeps a search's 200 best of each side (a margin for the ones deleted later) together
with what its ranking reads of them — their cosine to the query, their length and the
frequency of each query term (BM25 is scored again with the statistics of the day),
their article's row, language, source and day (filters and grouping). Ranking a search
again among its frame and a build's new passages then reads nothing of the frame
from the index: its cost is the new passages'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .columns import Columns, locate

#: the arrays as stored, in order, with their types
_LAYOUT: tuple[tuple[str, type], ...] = (
    ("ids", np.int64), ("cos", np.float32), ("lengths", np.int32), ("tf", np.uint16), ("rows", np.int64),
    ("lang", np.int32), ("source", np.int32), ("day", np.int32),
)  # fmt: skip


def _ints(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype)


@dataclass(frozen=True)
class Frame:
    """Passages (sorted by id) with their cosine to one query, BM25 inputs and filter facts."""

    ids: np.ndarray = field(default_factory=lambda: _ints(np.int64))
    cos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # 0 for a search without dense side
    lengths: np.ndarray = field(default_factory=lambda: _ints(np.int32))  # terms per passage
    terms: tuple[str, ...] = ()  # the query terms ``tf`` counts
    tf: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint16))  # [passage, term]
    rows: np.ndarray = field(default_factory=lambda: _ints(np.int64))  # the article's row
    lang: np.ndarray = field(default_factory=lambda: _ints(np.int32))  # index into ``langs``, -1 for none
    langs: tuple[str, ...] = ()
    source: np.ndarray = field(default_factory=lambda: _ints(np.int32))
    sources: tuple[str, ...] = ()
    day: np.ndarray = field(default_factory=lambda: _ints(np.int32))  # YYYYMMDD, 0 without a date

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, keep: np.ndarray) -> Frame:
        """The passages a boolean mask (or positions) keeps."""
        return Frame(self.ids[keep], self.cos[keep], self.lengths[keep], self.terms, self.tf[keep], self.rows[keep],
                     self.lang[keep], self.langs, self.source[keep], self.sources, self.day[keep])  # fmt: skip

    def without(self, deleted: np.ndarray) -> Frame:
        """The frame less the passages among ``deleted`` (sorted ids); itself when it holds none of them."""
        gone = locate(deleted, self.ids)[1]
        return self.take(~gone) if gone.any() else self

    def only(self, ids: np.ndarray) -> Frame:
        """The frame's passages among ``ids``."""
        return self.take(np.isin(self.ids, ids))

    def joined(self, other: Frame) -> Frame:
        """Both frames' passages (for the same query and terms), by id; itself when ``other`` is empty."""
        if not len(other):
            return self
        if self.terms != other.terms:
            raise ValueError("frames of other query terms cannot be joined")
        langs = tuple(sorted(set(self.langs) | set(other.langs)))
        sources = tuple(sorted(set(self.sources) | set(other.sources)))
        lang = np.concatenate([_recode(self.lang, self.langs, langs), _recode(other.lang, other.langs, langs)])
        source = np.concatenate([_recode(self.source, self.sources, sources),
                                 _recode(other.source, other.sources, sources)])  # fmt: skip
        both = Frame(
            np.concatenate([self.ids, other.ids]), np.concatenate([self.cos, other.cos]),
            np.concatenate([self.lengths, other.lengths]), self.terms, np.concatenate([self.tf, other.tf]),
            np.concatenate([self.rows, other.rows]), lang, langs, source, sources,
            np.concatenate([self.day, other.day]),
        )  # fmt: skip
        order = np.argsort(both.ids, kind="stable")
        first = np.ones(len(order), bool)
        first[1:] = both.ids[order][1:] != both.ids[order][:-1]
        return both.take(order[first])

    def columns(self, groups: Mapping[int, int]) -> Columns:
        """The frame's metadata columns, with a version's near-duplicate ``groups`` (they change as it grows)."""
        rowids, first = np.unique(self.rows, return_index=True)
        group = np.fromiter((groups.get(r, r) for r in rowids.tolist()), np.int64, count=len(rowids))
        article = np.searchsorted(rowids, self.rows).astype(np.int32)
        return Columns(self.ids, article, rowids, group, list(self.langs), self.lang[first], list(self.sources),
                       self.source[first], self.day[first])  # fmt: skip

    def to_bytes(self) -> bytes:
        """The frame as the alerts database keeps it: a JSON header line, then the arrays' bytes."""
        head = {"n": len(self), "terms": self.terms, "langs": self.langs, "sources": self.sources}
        body = b"".join(np.ascontiguousarray(getattr(self, name), dtype).tobytes() for name, dtype in _LAYOUT)
        return json.dumps(head, ensure_ascii=False).encode("utf-8") + b"\n" + body

    @classmethod
    def from_bytes(cls, data: bytes) -> Frame:
        """Read back ``to_bytes``; raises ``ValueError`` on damage."""
        line, _, body = bytes(data).partition(b"\n")
        head = json.loads(line.decode("utf-8"))
        n, terms = int(head["n"]), tuple(head["terms"])
        arrays: dict[str, np.ndarray] = {}
        at = 0
        for name, dtype in _LAYOUT:
            count = n * len(terms) if name == "tf" else n
            size = count * np.dtype(dtype).itemsize
            if at + size > len(body):
                raise ValueError("a frame's arrays are truncated")
            arrays[name] = np.frombuffer(body, dtype, count=count, offset=at)
            at += size
        if at != len(body):
            raise ValueError("a frame's arrays have extra bytes")
        return cls(
            arrays["ids"], arrays["cos"], arrays["lengths"], terms, arrays["tf"].reshape(n, len(terms)), arrays["rows"],
            arrays["lang"], tuple(head["langs"]), arrays["source"], tuple(head["sources"]), arrays["day"],
        )  # fmt: skip


def _recode(codes: np.ndarray, old: Sequence[str], new: Sequence[str]) -> np.ndarray:
    """Indexes into ``old`` as indexes into ``new`` (-1 stays -1)."""
    where = {v: i for i, v in enumerate(new)}
    table = np.array([where[v] for v in old] + [-1], np.int32)
    return table[codes]
