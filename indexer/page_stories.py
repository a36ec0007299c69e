"""What the page shows of stories and of similar coverage, as pure functions returning escaped HTML.

A story card (search grouped by story) is the story's best passage, rendered as any hit,
followed by how widely it was covered and its members in date order. Similar coverage
lists an article's nearest articles, grouped by story where the index has stories. Every
title, source and date is untrusted and escaped here (see ``indexer.page``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .page import lang_label, safe_url
from .similar import SimilarArticle, SimilarResult
from .story_index import ArticleMeta, Story

GROUP_HELP = (
    "One card per story: the articles about one event, from every source and language, "
    "with its best passage, its coverage and its articles in date order."
)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def coverage_line(story: Story) -> str:
    """The coverage line, plain text: Covered by 4 articles in 3 sources, 2 languages · 2024-05-01 – 2024-05-09."""
    n_articles = len(story.members)
    parts = [f"{_plural(n_articles, 'article')} in {_plural(len(story.sources), 'source')}, "
             f"{_plural(len(story.langs), 'language')}"]  # fmt: skip
    first, last = story.first_date, story.last_date
    if first and last:
        parts.append(first[:10] if first[:10] == last[:10] else f"{first[:10]} – {last[:10]}")
    return "Covered by " + " · ".join(parts)


def _title(title: str, fallback: str, url: str | None) -> str:
    text = escape(title.strip() or fallback)
    safe = safe_url(url)
    if safe:
        return f'<a href="{escape(safe)}" target="_blank" rel="noopener noreferrer nofollow">{text}</a>'
    return text


def _chips(source: str | None, lang: str | None, day: str | None, extra: str = "") -> str:
    chips = [
        f'<span class="chip" title="date">{escape(day[:10])}</span>' if day else "",
        f'<span class="chip" title="source">{escape(source)}</span>' if source else "",
        f'<span class="chip" title="language">{escape(lang_label(lang))}</span>' if lang else "",
        extra,
    ]
    return "".join(chips)


def render_members(members: Sequence[ArticleMeta], *, best: str = "") -> str:
    """The story's articles in date order: title, source, language, date; ``best`` (the passage's article) marked."""
    items = []
    for m in members:
        here = ' class="best" title="the passage above is from this article"' if m.id == best else ""
        items.append(f'<li{here}><span class="member-title" dir="auto">{_title(m.title, m.id, m.url)}</span>'
                     f'<span class="chips">{_chips(m.source, m.lang, m.date)}</span></li>')  # fmt: skip
    return f'<ol class="members">{"".join(items)}</ol>'


def render_story(story: Story, *, best: str = "") -> str:
    """Below a story card's passage: its coverage line and its members in date order."""
    return (
        f'<div class="story"><div class="coverage">{escape(coverage_line(story))}</div>'
        f"{render_members(story.members, best=best)}</div>"
    )


# ---------------------------------------------------------- similar coverage
def similar_groups(hits: Sequence[SimilarArticle]) -> list[list[SimilarArticle]]:
    """Neighbours grouped by story, each group where its best member ranks; no story: one group each."""
    groups: dict[object, list[SimilarArticle]] = {}
    for h in hits:
        groups.setdefault(h.story_id if h.story_id is not None else ("article", h.article_id), []).append(h)
    return list(groups.values())


def _similar_item(h: SimilarArticle) -> str:
    score = f'<span class="chip score" title="cosine of the articles\' centred vectors">{h.similarity:.2f}</span>'
    also = f'<span class="chip" title="its copies">+{len(h.duplicates)} copies</span>' if h.duplicates else ""
    return (f'<li><span class="member-title" dir="auto">{_title(h.title, h.article_id, h.url)}</span>'
            f'<span class="chips">{_chips(h.source, h.lang, h.date, score + also)}</span></li>')  # fmt: skip


def render_similar(result: SimilarResult) -> str:
    """The article's nearest articles, in any language, grouped by story; its own copies left out (said so)."""
    if not result.hits:
        return '<div class="similar"><p class="similar-none">No other article covers this ground.</p></div>'
    blocks = []
    for group in similar_groups(result.hits):
        items = "".join(_similar_item(h) for h in group)
        if len(group) > 1:
            blocks.append(f'<li class="similar-story"><span class="story-label">One story, '
                          f"{len(group)} articles</span><ol>{items}</ol></li>")  # fmt: skip
        else:
            blocks.append(items)
    note = ""
    if result.excluded:
        note = f'<p class="similar-note">{escape(_plural(len(result.excluded), "copy"))} of this article left out.</p>'
    return f'<div class="similar"><ol class="members">{"".join(blocks)}</ol>{note}</div>'


CSS = """
<style>
.story .coverage { font-size: 0.86rem; color: #4b5263; margin: 0.5rem 0 0.3rem; font-weight: 500; }
ol.members { list-style: none; margin: 0; padding: 0; font-size: 0.88rem; }
ol.members li { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.1rem 0.5rem;
  padding: 0.2rem 0; border-top: 1px solid rgba(49, 51, 63, 0.07); }
ol.members li.best .member-title { font-weight: 600; }
ol.members .chips { margin: 0; }
.member-title { overflow-wrap: anywhere; }
.member-title a { color: #1d4ed8; text-decoration: none; }
.similar-story { display: block !important; }
.similar-story ol { list-style: none; padding-left: 0.9rem; margin: 0.15rem 0 0;
  border-left: 2px solid rgba(29, 78, 216, 0.25); }
.story-label, .similar-note, .similar-none { font-size: 0.8rem; color: #6b7280; }
.facet-counts { font-size: 0.8rem; color: #4b5263; margin: -0.6rem 0 0.7rem; line-height: 1.5; }
.facet-counts b { font-weight: 600; font-variant-numeric: tabular-nums; }
</style>
"""
