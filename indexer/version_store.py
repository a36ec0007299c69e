"""One version's database: its segments' SQLite files, less the articles it deleted.

The same methods as ``Store`` (which reads one segment), routed to the segment
whose range holds each id: a lookup by id touches only the segments it names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from .records import Article, KnownArticle, StoredVector
from .segments import SegmentReader, route
from .store import PassageFacts, PassageRow, PassageState, Store
from .version_state import VersionState

T = TypeVar("T")


class VersionStore:
    """Read access to a version's articles and passages, across its segments."""

    def __init__(self, segments: Sequence[SegmentReader], state: VersionState) -> None:
        self.segments = list(segments)
        self.state = state
        self._id_bounds = np.array([s.info.ids[0] for s in self.segments], np.int64)
        self._row_bounds = np.array([s.info.rows[0] for s in self.segments], np.int64)

    @property
    def schema_version(self) -> int:
        """The oldest database layout among the segments."""
        return min((s.store.schema_version for s in self.segments), default=0)

    def stores(self) -> list[Store]:
        """Each segment's database, oldest first."""
        return [s.store for s in self.segments]

    def _by(self, bounds: np.ndarray, keys: Sequence[int]) -> Iterator[tuple[Store, list[int]]]:
        """Each segment's store with the keys its range holds."""
        if not len(keys) or not len(self.segments):
            return
        arr = np.asarray(keys, dtype=np.int64)
        where = route(bounds, arr)
        for i in np.unique(where).tolist():
            if i >= 0:
                yield self.segments[i].store, arr[where == i].tolist()

    def _gather(
        self, bounds: np.ndarray, keys: Sequence[int], get: Callable[[Store, list[int]], dict[int, T]]
    ) -> dict[int, T]:
        out: dict[int, T] = {}
        for store, part in self._by(bounds, keys):
            out.update(get(store, part))
        return out

    def counts(self) -> dict[str, int]:
        """Articles and passages held (deleted ones left out)."""
        a = sum(s.info.articles for s in self.segments) - len(self.state.deleted_rows)
        p = sum(s.info.passages for s in self.segments) - len(self.state.deleted_ids)
        return {"articles": int(a), "passages": int(p)}

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, StoredVector]:
        """Stored vectors by the hash of their embedded text (a deleted passage's vector is still right)."""
        found: dict[str, StoredVector] = {}
        for seg in reversed(self.segments):
            todo = [h for h in hashes if h not in found]
            if not todo:
                break
            found.update(seg.store.vectors_by_text_hash(todo))
        return found

    def sentence_blobs(self, ids: Sequence[int]) -> dict[int, bytes]:
        """Packed sentence vectors of passages (those that have them)."""
        return self._gather(self._id_bounds, ids, Store.sentence_blobs)

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]:
        """Passages with their article's metadata, by passage id."""
        return self._gather(self._id_bounds, ids, Store.passages)

    def passage_terms(self, ids: Sequence[int]) -> dict[int, str]:
        """Analysed BM25 terms of passages, space separated."""
        return self._gather(self._id_bounds, ids, Store.passage_terms)

    def passage_facts(self, ids: Sequence[int]) -> dict[int, PassageFacts]:
        """Passage id → its article's row, language, source and date."""
        return self._gather(self._id_bounds, ids, Store.passage_facts)

    def passage_langs(self, ids: Sequence[int]) -> dict[int, str | None]:
        """Passage id → its article's language."""
        return self._gather(self._id_bounds, ids, Store.passage_langs)

    def article_ids(self, rowids: Sequence[int]) -> dict[int, tuple[str | None, str]]:
        """Article row → (date, id)."""
        return self._gather(self._row_bounds, rowids, Store.article_ids)

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """Stored float32 vectors for passage ids, in the given order."""
        if not len(ids):
            return np.zeros((0, dim), np.float32)
        out = np.zeros((len(ids), dim), np.float32)
        arr = np.asarray(ids, dtype=np.int64)
        where = route(self._id_bounds, arr)
        for i in np.unique(where).tolist():
            mask = where == i
            out[mask] = self.segments[i].store.vectors(arr[mask].tolist(), dim)
        return out

    def band_articles(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
        """(LSH band, bucket) → the live article rows holding that band key, across segments."""
        out: dict[tuple[int, int], list[int]] = {}
        for seg in self.segments:
            for key, rows in seg.store.band_articles(keys).items():
                alive = [r for r in rows if not self.state.row_deleted(r)]
                if alive:
                    out.setdefault(key, []).extend(alive)
        return out

    def signatures(self, rowids: Sequence[int]) -> dict[int, np.ndarray]:
        """MinHash signatures of articles, by row."""
        return self._gather(self._row_bounds, rowids, Store.signatures)

    def article_passages(self, rowids: Sequence[int]) -> list[int]:
        """The passage ids of articles."""
        return sorted(pid for store, part in self._by(self._row_bounds, rowids) for pid in store.article_passages(part))

    def known_articles(self) -> dict[str, KnownArticle]:
        """Article id → its row and content hash, to tell what a build must change."""
        out: dict[str, KnownArticle] = {}
        for seg in self.segments:
            known = seg.store.known_articles()
            gone = self.state.dead_rows(*seg.info.rows)
            if len(gone):
                drop = set(gone.tolist())
                known = {k: v for k, v in known.items() if v.rowid not in drop}
            out.update(known)
        return out

    def known_by_id(self, article_ids: Sequence[str]) -> dict[str, KnownArticle]:
        """The live row and content hash of those of ``article_ids`` the version holds (an indexed lookup)."""
        out: dict[str, KnownArticle] = {}
        for seg in reversed(self.segments):
            todo = [a for a in article_ids if a not in out]
            if not todo:
                break
            for aid, known in seg.store.known_by_id(todo):
                if not self.state.row_deleted(known.rowid):
                    out[aid] = known
        return out

    def article(self, article_id: str) -> Article | None:
        """One whole article, or None (the live copy: an updated article's old rows are deleted)."""
        for seg in reversed(self.segments):
            row = seg.store.article_row(article_id)
            if row is None:
                continue
            rowid, art = row
            if not self.state.row_deleted(rowid):
                return art
        return None

    def passage_states(self) -> Iterator[PassageState]:
        """Every live passage with what its synced copy depends on (its group is the version's)."""
        groups = self.state.groups
        for seg in self.segments:
            dead = set(self.state.dead_ids(*seg.info.ids).tolist())
            for st in seg.store.passage_states():
                if st.id in dead:
                    continue
                yield st._replace(group=groups.get(st.group, st.group))
