"""Search by story: ranked passages grouped by their article's story, one result per story.

A story (stories.py) holds the articles about one event, from every source and language,
near-duplicate copies included; an article linked to no other is a story of one. A search
``SearchOptions(group="story")`` keeps each story's best passage in rank order (paging goes
over stories), and the page of stories is then described in one read of its members:
their titles, sources, languages, dates and urls, in date order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import IndexerError, QueryError
from .records import Hit
from .stories import IndexArchive
from .story_index import ArticleMeta, Story, StoryIndex

if TYPE_CHECKING:
    from .index import Snapshot
    from .store import ArticleKey

GROUPS = ("article", "story")  # SearchOptions.group: one result per article (the default), or per story
_MAX_ID = (1 << 63) - 1  # article rows, hence story ids, are SQLite integers


class NoStoriesError(QueryError):
    """The live version was built before stories existed."""

    def __init__(self) -> None:
        super().__init__(
            'this index has no stories yet (it was built before them) — run "indexer build" to make them '
            "(an update is enough), or search with --group article"
        )


class StoryNotFoundError(IndexerError):
    """No story with that id in the live version (HTTP 404)."""

    def __init__(self, story_id: int) -> None:
        super().__init__(
            f'no story {story_id} in the index — use a story_id as "indexer search --group story" prints it '
            "(ids can change when a build adds or deletes articles)"
        )


@dataclass(frozen=True)
class StoryHit:
    """One result of a search by story: the story's best passage, and the story."""

    hit: Hit  # its best passage, ranked, scored and highlighted as any hit
    story: Story  # its members in date order, dates, languages, sources, representative title

    def to_json(self) -> dict[str, Any]:
        """The story as ``indexer search --group story --json`` prints it."""
        return {"rank": self.hit.rank, "score": round(self.hit.score, 6), **self.story.to_json(),
                "hit": self.hit.to_json()}  # fmt: skip


def check_group(group: str) -> None:
    """Refuse a grouping that is not one of ``GROUPS``."""
    if group not in GROUPS:
        raise QueryError(f"unknown group {group!r}: choose article (one result per article) or story")


def parse_story_id(text: str) -> int:
    """A story id as typed (CLI argument, URL segment); a ``QueryError`` naming the fix otherwise."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= _MAX_ID:
        raise QueryError(
            f'story id {text!r} is not a story id — give the whole number "indexer search --group story" '
            "prints as story_id"
        )
    return int(value)


def require(snap: Snapshot) -> StoryIndex:
    """The version's stories, or ``NoStoriesError``."""
    stories = snap.stories
    if stories is None:
        raise NoStoriesError()
    return stories


def group(
    snap: Snapshot, stories: StoryIndex, ranked: Sequence[tuple[int, float]]
) -> list[tuple[int, float, ArticleKey]]:
    """Ranked passages in order, the first of each story only (its near-duplicates are in it too)."""
    keys = snap.columns.article_keys([pid for pid, _ in ranked])
    found = [(pid, float(score), key) for pid, score in ranked if (key := keys.get(pid)) is not None]
    sids = stories.stories_of(np.array([key.article for _, _, key in found], np.int64))
    seen: set[int] = set()
    out = []
    for item, sid in zip(found, sids.tolist()):
        if sid not in seen:
            seen.add(sid)
            out.append(item)
    return out


def label(hits: list[Hit], keys: Sequence[ArticleKey], stories: StoryIndex | None) -> list[Hit]:
    """The hits with the story of their article (None without stories)."""
    if stories is None or not hits:
        return hits
    sids = stories.stories_of(np.array([k.article for k in keys], np.int64)).tolist()
    return [replace(h, story_id=s) for h, s in zip(hits, sids)]


def describe(snap: Snapshot, stories: StoryIndex, hits: list[Hit]) -> list[StoryHit]:
    """Each hit's story, its members read in one request for the whole page."""
    sids = [s for h in hits if (s := h.story_id) is not None]
    if len(sids) != len(hits):
        raise ValueError("label the hits with their stories first")
    wanted = sorted({r for s in sids for r in stories.members(s)})
    meta = IndexArchive.of_snapshot(snap).meta(wanted)

    def of(rows: Sequence[int]) -> dict[int, ArticleMeta]:
        return {r: meta[r] for r in rows if r in meta}

    return [StoryHit(h, stories.describe(s, of)) for h, s in zip(hits, sids)]


def story(snap: Snapshot, story_id: int) -> Story | None:
    """One story of the version, None when no story has that id."""
    stories = require(snap)
    if not 1 <= story_id <= _MAX_ID or stories.story_of(story_id) != story_id:
        return None  # an article of a larger story is not its id (the story's first row is)
    if story_id not in stories.central and snap.state.row_deleted(story_id):
        return None
    found = stories.describe(story_id, IndexArchive.of_snapshot(snap).meta)
    return found if found.members else None


__all__ = [
    "GROUPS",
    "NoStoriesError",
    "StoryHit",
    "StoryNotFoundError",
    "check_group",
    "describe",
    "group",
    "label",
    "parse_story_id",
    "require",
    "story",
]
