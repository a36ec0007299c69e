"""What a version adds to its segments: the articles it deleted, and its near-duplicate groups.

Both live in the version's own folder as small arrays, rewritten by each build:
deletions hold only the rows not yet merged away (a merge drops them for good),
and groups only the articles of clusters of two or more (a singleton is its own
group), so their size follows the churn and the syndicated share, not the archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DELETED_ROWS = "deleted_rows.npy"
DELETED_IDS = "deleted_ids.npy"
GROUPS = "groups.npy"
FILES = (DELETED_ROWS, DELETED_IDS, GROUPS)


def _sorted(values: np.ndarray | list[int]) -> np.ndarray:
    return np.unique(np.asarray(values, dtype=np.int64))


@dataclass(frozen=True)
class VersionState:
    """Deleted article rows and passage ids (sorted), and article row → near-duplicate group."""

    deleted_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    deleted_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    groups: dict[int, int] = field(default_factory=dict)

    def deleting(self, rows: list[int], ids: list[int]) -> VersionState:
        """This state with more articles (and their passages) deleted."""
        return VersionState(
            _sorted(np.concatenate([self.deleted_rows, np.asarray(rows, np.int64)])),
            _sorted(np.concatenate([self.deleted_ids, np.asarray(ids, np.int64)])),
            self.groups,
        )

    def with_groups(self, groups: dict[int, int]) -> VersionState:
        """This state with another group map."""
        return VersionState(self.deleted_rows, self.deleted_ids, groups)

    def without_range(self, rows: tuple[int, int], ids: tuple[int, int]) -> VersionState:
        """This state once a merge rewrote the segments covering these ranges (their deleted rows are gone)."""
        keep_r = (self.deleted_rows < rows[0]) | (self.deleted_rows >= rows[1])
        keep_i = (self.deleted_ids < ids[0]) | (self.deleted_ids >= ids[1])
        return VersionState(self.deleted_rows[keep_r], self.deleted_ids[keep_i], self.groups)

    def dead_ids(self, lo: int, hi: int) -> np.ndarray:
        """The deleted passage ids within [lo, hi)."""
        a, b = np.searchsorted(self.deleted_ids, [lo, hi])
        return self.deleted_ids[a:b]

    def row_deleted(self, row: int) -> bool:
        """Whether article ``row`` is deleted in this version."""
        i = int(np.searchsorted(self.deleted_rows, row))
        return i < len(self.deleted_rows) and int(self.deleted_rows[i]) == row

    def dead_rows(self, lo: int, hi: int) -> np.ndarray:
        """The deleted article rows within [lo, hi)."""
        a, b = np.searchsorted(self.deleted_rows, [lo, hi])
        return self.deleted_rows[a:b]

    def save(self, folder: Path) -> None:
        """Write the three arrays into a version folder."""
        np.save(folder / DELETED_ROWS, self.deleted_rows, allow_pickle=False)
        np.save(folder / DELETED_IDS, self.deleted_ids, allow_pickle=False)
        pairs = np.array(sorted(self.groups.items()), dtype=np.int64).reshape(-1, 2)
        np.save(folder / GROUPS, pairs, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> VersionState:
        """Read a version folder's arrays; raises ``OSError``/``ValueError`` on damage."""
        rows = np.load(folder / DELETED_ROWS, allow_pickle=False)
        ids = np.load(folder / DELETED_IDS, allow_pickle=False)
        pairs = np.load(folder / GROUPS, allow_pickle=False)
        if rows.ndim != 1 or ids.ndim != 1 or pairs.ndim != 2 or (pairs.size and pairs.shape[1] != 2):
            raise ValueError("version arrays have the wrong shape")
        groups = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist())) if pairs.size else {}
        return cls(rows.astype(np.int64), ids.astype(np.int64), groups)
