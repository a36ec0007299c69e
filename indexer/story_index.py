"""What a version stores of its stories: who belongs to which, the language centroids, the catalog.

Everything is kept as sorted numpy arrays, read as mappings (``RowTable``), so opening a
version's stories, finding an article's story or a story's members, and writing the stories
after an update cost array operations on the table, not a Python object per article: an
incremental build's story step then follows the change, not the archive. The catalog (each
live article's row, day and language) is what the next update compares its articles with,
so that update reads only its own new segment instead of every article's date and language.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .stories import Facts, StorySettings

#: one file, so a build writes, checksums and flushes one more file, not five
FILE = "stories.npz"
FILES = (FILE,)
# its arrays (uncompressed, read without pickle):
STORIES = "stories"  # int64 (row, story id, 1 for its representative) for stories of two or more
LANGS = "langs"  # the calibrated languages ("" for articles without one)
CENTROIDS = "centroids"  # float32: each language's centroid
SUMS = "sums"  # float64: each language's sum of article vectors, then their count
CATALOG = "catalog"  # per live article: row, day number, index of its language in LANGS
_CATALOG = np.dtype([("row", "<i8"), ("day", "<i4"), ("lang", "<u2")])  # 14 bytes an article


def day_number(value: str | None) -> int:
    """``2024-05-17…`` → its day number (``date.toordinal``); 0 when missing or not a real date."""
    if not value or len(value) < 10 or value[4] != "-" or value[7] != "-" or not value[:10].isascii():
        return 0
    try:
        return date(int(value[:4]), int(value[5:7]), int(value[8:10])).toordinal()
    except ValueError:
        return 0


def sorted_member(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in ``sorted_values`` (a binary search each: costs ``values``, not the table)."""
    values = np.asarray(values, np.int64)
    if not len(sorted_values) or not len(values):
        return np.zeros(len(values), bool)
    pos = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return np.asarray(sorted_values[pos] == values)


class RowTable(Mapping[int, int]):
    """A read-only int → int mapping over sorted key and value arrays."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.key_array, self.value_array = keys, values  # keys sorted, unique

    @classmethod
    def of(cls, mapping: Mapping[int, int]) -> RowTable:
        """The table of a mapping (itself if it is one)."""
        if isinstance(mapping, RowTable):
            return mapping
        keys = np.fromiter(mapping.keys(), np.int64, count=len(mapping))
        values = np.fromiter(mapping.values(), np.int64, count=len(mapping))
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], values[order])

    def _find(self, key: object) -> int:
        if isinstance(key, bool) or not isinstance(key, int | np.integer) or not len(self.key_array):
            return -1
        i = int(np.searchsorted(self.key_array, key))
        return i if i < len(self.key_array) and int(self.key_array[i]) == key else -1

    def __getitem__(self, key: int) -> int:
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        return int(self.value_array[i])

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self.key_array.tolist())

    def __len__(self) -> int:
        return len(self.key_array)

    def lookup(self, keys: np.ndarray, default: np.ndarray) -> np.ndarray:
        """The values of ``keys``, ``default`` (same shape) where a key is absent."""
        keys = np.asarray(keys, np.int64)
        out = np.asarray(default, np.int64).copy()
        if len(self.key_array) and len(keys):
            pos = np.minimum(np.searchsorted(self.key_array, keys), len(self.key_array) - 1)
            held = self.key_array[pos] == keys
            out[held] = self.value_array[pos[held]]
        return out


# ---------------------------------------------------------------- language centroids


@dataclass(frozen=True)
class Calibration:
    """Each language's centroid, and the running sums that tell when it is out of date."""

    langs: tuple[str, ...] = ()
    centroids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def centre(self, langs: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Unit vectors less their language's centroid (zero where nothing is left)."""
        if not len(vectors):
            return np.zeros_like(vectors, np.float32)
        where = {v: i for i, v in enumerate(self.langs)}
        distinct, at = np.unique(langs, return_inverse=True)
        which = np.array([where[v] for v in distinct.tolist()], np.int64)
        out = vectors.astype(np.float32) - self.centroids[which[at.reshape(-1)]]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 1e-6)

    def advance(self, added: Facts, removed: Facts, settings: StorySettings) -> tuple[Calibration, set[str]]:
        """The calibration after an update, and the languages whose centroid was re-taken."""
        assert added.vectors is not None and removed.vectors is not None
        dim = self.sums.shape[1] if len(self.langs) else added.vectors.shape[1] if len(added.rows) else 0
        langs = tuple(sorted(set(self.langs) | set(added.langs.tolist()) | set(removed.langs.tolist())))
        pos = {v: i for i, v in enumerate(langs)}
        sums, counts = np.zeros((len(langs), dim)), np.zeros(len(langs), np.int64)
        cents = np.zeros((len(langs), dim), np.float32)
        known = np.zeros(len(langs), bool)
        if self.langs:
            mine = [pos[v] for v in self.langs]
            sums[mine], counts[mine], cents[mine], known[mine] = self.sums, self.counts, self.centroids, True
        for vectors, of, sign in ((added.vectors, added.langs, 1), (removed.vectors, removed.langs, -1)):
            at = np.array([pos[v] for v in of.tolist()], np.int64)
            np.add.at(sums, at, sign * vectors.astype(np.float64))
            np.add.at(counts, at, sign)
        total = max(int(counts.sum()), 1)
        mean = sums.sum(axis=0) / total
        now = ((sums + settings.centroid_prior * mean) / (counts[:, None] + settings.centroid_prior)).astype(np.float32)
        drift = np.linalg.norm(now - cents, axis=1)
        retake = ~known | ((counts > 0) & (drift > settings.recalibrate_drift))
        cents[retake] = now[retake]
        return Calibration(langs, cents, sums, counts), {v for v in langs if retake[pos[v]] and known[pos[v]]}


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class ArticleMeta:
    """What a story shows of one member."""

    row: int
    id: str
    title: str
    date: str | None
    lang: str | None
    source: str | None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The member as ``--json`` prints it."""
        return {"article_id": self.id, "title": self.title, "date": self.date, "lang": self.lang,
                "source": self.source, "url": self.url}  # fmt: skip


@dataclass(frozen=True)
class Story:
    """One story: its members in date order (undated last), and its most central member."""

    id: int
    central: int
    members: tuple[ArticleMeta, ...]

    @property
    def rows(self) -> list[int]:
        """The members' article rows."""
        return [m.row for m in self.members]

    @property
    def article_ids(self) -> list[str]:
        """The members' article ids."""
        return [m.id for m in self.members]

    @property
    def first_date(self) -> str | None:
        """The earliest member's date."""
        return min((m.date for m in self.members if m.date), default=None)

    @property
    def last_date(self) -> str | None:
        """The latest member's date."""
        return max((m.date for m in self.members if m.date), default=None)

    @property
    def langs(self) -> list[str]:
        """The languages it is told in."""
        return sorted({m.lang for m in self.members if m.lang})

    @property
    def sources(self) -> list[str]:
        """The sources that covered it."""
        return sorted({m.source for m in self.members if m.source})

    @property
    def title(self) -> str:
        """The representative (most central) member's title."""
        return next((m.title for m in self.members if m.row == self.central), "")

    @property
    def coverage(self) -> str:
        """What the CLI and the page show under a story: "covered in 2 sources, 3 languages"."""
        s, n = len(self.sources), len(self.langs)
        parts = [f"{s} source{'s' * (s != 1)}" if s else "", f"{n} language{'s' * (n != 1)}" if n else ""]
        said = ", ".join(p for p in parts if p)  # articles without a source (or a language) are not counted
        return f"covered in {said}" if said else ""

    @property
    def representative(self) -> str | None:
        """The article id of the most central member."""
        return next((m.id for m in self.members if m.row == self.central), None)

    def to_json(self) -> dict[str, Any]:
        """The story as ``indexer story --json`` prints it; each member carries its date (a timeline's points)."""
        return {"story_id": self.id, "title": self.title, "representative": self.representative,
                "first_date": self.first_date, "last_date": self.last_date, "articles": len(self.members),
                "sources": self.sources, "langs": self.langs, "coverage": self.coverage,
                "members": [m.to_json() for m in self.members]}  # fmt: skip


# ---------------------------------------------------------------- stories


@dataclass(frozen=True)
class StoryIndex:
    """A version's stories: article row → story id for stories of two or more (a lone article is its own).

    ``catalog``: the live articles they were made from (rows, days, languages), when known.
    """

    story: Mapping[int, int] = field(default_factory=dict)
    central: Mapping[int, int] = field(default_factory=dict)  # story id → its representative row
    calibration: Calibration = field(default_factory=Calibration)
    catalog: Facts | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "story", RowTable.of(self.story))
        object.__setattr__(self, "central", RowTable.of(self.central))

    def __repr__(self) -> str:
        held = "" if self.catalog is None else f" among {len(self.catalog.rows)} articles"
        return f"<StoryIndex: {self.count} stories of two or more, {len(self.story)} articles in them{held}>"

    @property
    def table(self) -> RowTable:
        """``story`` as the table it is."""
        assert isinstance(self.story, RowTable)
        return self.story

    @property
    def count(self) -> int:
        """The number of stories of two or more articles."""
        return len(self.central)

    def story_of(self, row: int) -> int:
        """The story an article belongs to."""
        return self.story.get(row, row)

    def stories_of(self, rows: np.ndarray) -> np.ndarray:
        """The story of each of ``rows``."""
        rows = np.asarray(rows, np.int64)
        return self.table.lookup(rows, rows)

    @cached_property
    def _by_story(self) -> tuple[np.ndarray, np.ndarray]:
        """Story ids (sorted) and their rows: a story's members are one slice."""
        t = self.table
        order = np.argsort(t.value_array, kind="stable")  # rows are sorted, so each story's stay sorted
        return t.value_array[order], t.key_array[order]

    @property
    def clusters(self) -> dict[int, list[int]]:
        """Story id → its rows (sorted), for stories of two or more."""
        sids, rows = self._by_story
        starts = np.flatnonzero(np.r_[True, sids[1:] != sids[:-1]]) if len(sids) else np.zeros(0, np.int64)
        bounds = [*starts.tolist(), len(sids)]
        return {int(sids[a]): rows[a:b].tolist() for a, b in itertools.pairwise(bounds)}

    def members(self, story_id: int) -> list[int]:
        """The rows of a story."""
        sids, rows = self._by_story
        a, b = np.searchsorted(sids, [story_id, story_id + 1])
        return rows[a:b].tolist() if b > a else [story_id]

    def describe(self, story_id: int, meta: Callable[[Sequence[int]], Mapping[int, ArticleMeta]]) -> Story:
        """The story's record; ``meta`` gives what is shown of articles (``IndexArchive.meta``)."""
        found = meta(self.members(story_id))
        undated = 1 << 62
        members = sorted(found.values(), key=lambda m: (day_number(m.date) or undated, m.row))
        return Story(story_id, self.central.get(story_id, story_id), tuple(members))

    def save(self, folder: Path) -> None:
        """Write the stories, the calibration and the catalog into a version folder."""
        t = self.table
        central = RowTable.of(self.central).lookup(t.value_array, np.full(len(t.value_array), -1))
        table = np.stack([t.key_array, t.value_array, (central == t.key_array).astype(np.int64)], axis=1)
        cal = self.calibration
        dim = cal.centroids.shape[1] if cal.centroids.ndim == 2 else 0
        sums = np.hstack([cal.sums.reshape(len(cal.langs), dim), cal.counts.reshape(-1, 1).astype(np.float64)])
        cat = np.zeros(0 if self.catalog is None else len(self.catalog.rows), _CATALOG)
        if self.catalog is not None and len(cat):
            order = np.array(cal.langs, dtype=str)
            codes = np.searchsorted(order, self.catalog.langs)  # cal.langs is sorted, and holds every live language
            if not np.array_equal(order[np.minimum(codes, len(order) - 1)], self.catalog.langs):
                raise ValueError("the catalog holds a language the calibration does not")
            cat["row"], cat["day"], cat["lang"] = self.catalog.rows, self.catalog.days, codes
        arrays = {STORIES: table.reshape(-1, 3).astype(np.int64), LANGS: np.array(cal.langs, dtype=str).reshape(-1),
                  CENTROIDS: cal.centroids.astype(np.float32), SUMS: sums, CATALOG: cat}  # fmt: skip
        with open(folder / FILE, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, folder: Path) -> StoryIndex:
        """Read a version folder's stories; raises ``OSError``/``ValueError`` on damage."""
        from .stories import Facts

        try:
            with np.load(folder / FILE, allow_pickle=False) as held:
                table, langs, cents, sums, cat = (held[k] for k in (STORIES, LANGS, CENTROIDS, SUMS, CATALOG))
        except (KeyError, EOFError, zipfile.BadZipFile) as exc:  # OSError (a missing file) is the caller's
            raise ValueError(f"{FILE} is unreadable ({exc})") from None
        if table.ndim != 2 or table.shape[1] != 3 or table.dtype.kind not in "iu":
            raise ValueError(f"{STORIES} has the wrong shape")
        if langs.ndim != 1 or langs.dtype.kind != "U" or cents.ndim != 2 or sums.ndim != 2:
            raise ValueError("story calibration arrays have the wrong shape")
        if len(cents) != len(langs) or len(sums) != len(langs) or sums.shape[1] != cents.shape[1] + 1:
            raise ValueError("story calibration arrays disagree in size")
        if cat.dtype != _CATALOG or cat.ndim != 1 or (len(cat) and int(cat["lang"].max()) >= len(langs)):
            raise ValueError(f"{CATALOG} has the wrong shape")
        table = table.astype(np.int64)
        rows, sids, flags = table[:, 0], table[:, 1], table[:, 2]
        if len(rows) > 1 and not (rows[1:] > rows[:-1]).all():
            raise ValueError(f"{STORIES} is not in row order")
        if len(cat) > 1 and not (cat["row"][1:] > cat["row"][:-1]).all():
            raise ValueError(f"{CATALOG} is not in row order")
        named = flags == 1
        central = RowTable(sids[named], rows[named])
        order = np.argsort(central.key_array, kind="stable")
        central = RowTable(central.key_array[order], central.value_array[order])
        story = RowTable(rows, sids)
        if not np.array_equal(central.key_array, np.unique(sids)) or not np.array_equal(
            story.lookup(central.value_array, np.full(len(central.value_array), -1)), central.key_array
        ):
            raise ValueError(f"{STORIES} does not name one representative per story")
        cal = Calibration(tuple(langs.tolist()), cents.astype(np.float32), sums[:, :-1].astype(np.float64),
                          sums[:, -1].astype(np.int64))  # fmt: skip
        catalog = Facts(cat["row"].astype(np.int64), cat["day"].astype(np.int64), langs[cat["lang"]])
        index = cls(story, central, cal, catalog)
        by_sid, members = index._by_story
        if len(by_sid):
            starts = np.flatnonzero(np.r_[True, by_sid[1:] != by_sid[:-1]])
            sizes = np.diff(np.r_[starts, len(by_sid)])
            if (sizes < 2).any() or not np.array_equal(members[starts], by_sid[starts]):
                raise ValueError(f"{STORIES} holds a story that is not named by its first row")
        return index


def exists(folder: Path) -> bool:
    """Whether a version folder holds stories (versions written before them do not)."""
    return (folder / FILE).is_file()
