"""What the Streamlit page shows, as pure functions: escaping, highlighting, labels, page state.

Article text, titles and metadata are untrusted. Every piece of them goes through
``html.escape`` before any markup is added, and only the output of the ``render_*``
functions here is ever given to the browser as HTML. URLs become links only when
they are plain ``http``/``https``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from html import escape
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from .alert_records import SavedSearch
from .index import IndexInfo
from .query import Filters
from .records import Article, Explanation, Hit
from .search import SearchOptions, SearchResult
from .story_search import StoryHit

#: Questions shown on the empty page, about the seed article and the sample corpus.
EXAMPLES: tuple[str, ...] = (
    "coopération dans l'Arctique",
    "What did the Kremlin spokesman say about economic cooperation?",
    "Zusammenarbeit zwischen den USA und Russland in der Arktis",
    "¿Qué dijo el portavoz del Kremlin sobre los proyectos económicos?",
    "vendemmia nelle Langhe",
)
K_CHOICES: tuple[int, ...] = (5, 10, 20, 50)
DEFAULT_K = 10
ARTICLE_MAX_CHARS = 60_000  # a longer article is shown as a window around the passage

MODE_LABELS = {"hybrid": "Hybrid", "dense": "Semantic", "bm25": "Keywords"}
MODE_HELP = {
    "hybrid": "Meaning and exact words together",
    "dense": "Meaning, across languages",
    "bm25": "Exact words only (BM25)",
}
LANG_NAMES = {
    "ar": "Arabic",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}

Span = tuple[int, int]
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*(?:\n[ \t\r\f\v]*)+")


# ------------------------------------------------------------------ labels
def mode_label(mode: str) -> str:
    """How a search mode is named on the page."""
    return MODE_LABELS.get(mode, mode)


def lang_label(code: str) -> str:
    """The language's name ("French" for ``fr``), else its code; also the URL's ``lang=`` value."""
    return LANG_NAMES.get(code, code)


def format_score(score: float) -> str:
    """Two decimals (0.85, 1.00); two significant digits for tiny fused scores (0.0032)."""
    return f"{score:.2f}" if abs(score) >= 0.01 or score == 0 else f"{score:.2g}"


NO_CLOSE_MATCH = "No close match in this collection; the nearest passages are below."
UNCALIBRATED = "Scores are not calibrated for this index's model: they order the results but are not chances."
SCORE_HELP = "Estimated chance that this passage answers the question"
WHY = "Why this result"


def render_tagline(counts: Mapping[str, int], langs: Sequence[str]) -> str:
    """The line under the title: what can be searched."""
    n = counts.get("articles", 0)
    what = f"{n:,} article{'s' if n != 1 else ''}"
    names = [lang_label(code) for code in langs]
    if 1 < len(names) <= 6:
        what += f" in {', '.join(names[:-1])} and {names[-1]}"
    elif len(names) == 1:
        what += f" in {names[0]}"
    elif names:
        what += f" in {len(names)} languages"
    return f'<p class="tagline">{escape(f"Ask in any language — search {what}.")}</p>'


def format_ms(ms: float) -> str:
    """A duration as the page shows it."""
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:,.0f} ms"


def summary(n_hits: int, took_ms: float) -> str:
    """The line above the results: how many, and the server time of the last search."""
    if n_hits == 0:
        return f"No results · {format_ms(took_ms)}"
    return f"{n_hits} result{'s' if n_hits != 1 else ''} · {format_ms(took_ms)}"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~$:|#!{}])")


def md_escape(text: str) -> str:
    """Text made inert for Streamlit Markdown (``st.error`` etc.): no links, images, colours or maths."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


# -------------------------------------------------------------------- URLs
def safe_url(url: object) -> str | None:
    """The URL if it is a plain http(s) link with a host, else None (no javascript:, data:, …)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or len(url) > 2048 or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def url_host(url: str) -> str:
    """The host of a URL, without "www."."""
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


# -------------------------------------------------------------- highlights
def clip_spans(spans: Iterable[Any], lo: int, hi: int) -> list[Span]:
    """Spans cut to ``[lo, hi)``, sorted and merged; malformed, empty and outside ones dropped."""
    out: list[Span] = []
    for s in spans:
        try:
            a, b = int(s[0]), int(s[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        a, b = max(a, lo), min(b, hi)
        if a < b:
            out.append((a, b))
    out.sort()
    merged: list[Span] = []
    for a, b in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def mark(text: str, base: int, spans: Sequence[Span], terms: Sequence[Span] = ()) -> str:
    """``text`` (found at offset ``base``) escaped, ``<mark>`` around the spans in it, ``span.term`` around ``terms``.

    The two layers may overlap (a query word inside the best sentence): the text is cut at
    every boundary of either, so the markup always nests.
    """
    lo, hi = base, base + len(text)
    sentences, words = clip_spans(spans, lo, hi), clip_spans(terms, lo, hi)
    cuts = sorted({lo, hi, *(x for span in sentences + words for x in span)})
    out, open_mark = [], False
    for a, b in pairwise(cuts):
        in_sentence = any(s <= a < e for s, e in sentences)
        if in_sentence != open_mark:
            out.append("<mark>" if in_sentence else "</mark>")
            open_mark = in_sentence
        piece = escape(text[a - base : b - base])
        out.append(f'<span class="term">{piece}</span>' if any(s <= a < e for s, e in words) else piece)
    if open_mark:
        out.append("</mark>")
    return "".join(out)


def render_passage(hit: Hit, *, marks: bool = True) -> str:
    """The passage, escaped, its best sentence(s) and the matched query words marked; whitespace trimmed.

    ``marks=False`` (no close match) shows it plain: nothing in it deserves the reader's eye.
    """
    text = hit.text
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    html = mark(body, hit.start + lead, hit.highlights, hit.term_highlights) if marks else escape(body)
    html = _BLANK_LINES.sub("\n", html)  # compact in a result list; the article keeps its paragraphs
    more = '<span class="ellipsis">… </span>' if hit.start > 0 else ""
    return f'<div class="passage" dir="auto">{more}{html}</div>'


def render_article(article_text: str, hit: Hit, *, max_chars: int = ARTICLE_MAX_CHARS, marks: bool = True) -> str:
    """The whole article, escaped, the passage wrapped in place and its best sentence marked (unless not ``marks``)."""
    n = len(article_text)
    p0, p1 = max(0, min(hit.start, n)), max(0, min(hit.end, n))
    p1 = max(p0, p1)
    w0, w1 = 0, n
    if n > max_chars:  # keep the page light: a window centred on the passage
        room = max(0, max_chars - (p1 - p0))
        w0 = max(0, p0 - room // 2)
        w1 = min(n, p1 + (room - (p0 - w0)))
    spans = clip_spans(hit.highlights, w0, w1) if marks else []
    before = mark(article_text[w0:p0], w0, spans)
    inside = mark(article_text[p0:p1], p0, spans)
    after = mark(article_text[p1:w1], p1, spans)
    head = '<span class="ellipsis">[…] </span>' if w0 > 0 else ""
    tail = '<span class="ellipsis"> […]</span>' if w1 < n else ""
    passage = f'<span class="in-passage">{inside}</span>' if p1 > p0 else ""
    return f'<div class="article" dir="auto">{head}{before}{passage}{after}{tail}</div>'


def render_hit(hit: Hit, *, also_in: Sequence[str] = (), dimmed: bool = False, calibrated: bool = True) -> str:
    """A result: linked title, metadata chips, the passage, and the duplicates' labels.

    ``dimmed`` (the search found no close match) greys the card and drops the highlights.
    """
    title = escape(hit.title.strip() or hit.article_id)
    url = safe_url(hit.url)
    if url:
        title = f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer nofollow">{title}</a>'
    chips = [
        f'<span class="chip" title="source">{escape(hit.source)}</span>' if hit.source else "",
        f'<span class="chip" title="date">{escape(hit.date[:10])}</span>' if hit.date else "",
        f'<span class="chip" title="language">{escape(lang_label(hit.lang))}</span>' if hit.lang else "",
        f'<span class="chip host">{escape(url_host(url))}</span>' if url else "",
        f'<span class="chip score" title="{escape(SCORE_HELP if calibrated else UNCALIBRATED)}">'
        f"score {escape(format_score(hit.score))}{'' if calibrated else '*'}</span>",
    ]
    also = ""
    if also_in:
        names = " · ".join(f"<span>{escape(x)}</span>" for x in also_in)
        also = f'<div class="also-in">Also in: {names}</div>'
    dim = ' data-dim="true"' if dimmed else ""
    return (
        f'<div class="hit"{dim}><div class="hit-title" dir="auto">'
        f'<span class="rank">{hit.rank}</span>{title}</div>'
        f'<div class="chips">{"".join(chips)}</div>{render_passage(hit, marks=not dimmed)}{also}</div>'
    )


def render_no_match() -> str:
    """The notice above the results of a search that found nothing close."""
    return f'<div class="no-match" role="status">{escape(NO_CLOSE_MATCH)}</div>'


def explanation_lines(why: Explanation) -> list[str]:
    """Why a hit is where it is, in plain words, one line per kind of evidence (plain text)."""
    e = why.evidence
    score = format_score(why.calibrated)
    if why.calibration.startswith("fitted"):
        chance = round(why.calibrated * 100)
        lines = [f"Score {score}: about {chance} in 100 results scored like this one answer the question."]
    else:
        lines = [f"Score {score}. {UNCALIBRATED}"]
    if e.dense is not None:
        rank = f", rank {why.dense_rank} by meaning" if why.dense_rank else ""
        sentence = f" ({e.sentence:.3f} with its closest sentence)" if e.sentence is not None else ""
        lines.append(f"Meaning: similarity {e.dense:.3f} between the question and the passage{sentence}{rank}.")
    if e.bm25 is not None:
        if why.terms:
            found = "; ".join(f"“{t.word}” as {t.term} ({t.analysis}) {t.bm25:.2f}" for t in why.terms)
            rank = f", rank {why.bm25_rank} by keywords" if why.bm25_rank else ""
            lines.append(f"Words: BM25 {e.bm25:.2f}{rank}. Found {found}.")
        else:
            lines.append("Words: none of the question's words is in this passage.")
        if e.lang_weight is not None:
            lines.append(f"Keywords count {e.lang_weight:.0%} in a passage of this language.")
        if e.coverage is not None:
            lines.append(f"The collection holds {e.coverage:.0%} of the question's words.")
    lines.append(f"Ranking score {format_score(e.fused)} (each question's best result scores near 1).")
    return lines


def render_explanation(why: Explanation) -> str:
    """A closed "Why this result" disclosure holding ``explanation_lines``, escaped."""
    items = "".join(f"<li>{escape(line)}</li>" for line in explanation_lines(why))
    return f'<details class="why"><summary>{WHY}</summary><ul dir="auto">{items}</ul></details>'


def duplicate_label(article: Article | None, article_id: str) -> str:
    """How an "also in" entry reads: the other copy's source, else its title, else its id."""
    if article is None:
        return article_id
    return (article.source or "").strip() or article.title.strip() or article_id


def render_facts(info: IndexInfo, index_dir: str) -> str:
    """Index facts for the sidebar, from ``Searcher.info()``."""
    m, counts = info.manifest, info.counts
    built = m.built_at or ""
    rows = [
        ("Articles", f"{counts.get('articles', 0):,}"),
        ("Passages", f"{counts.get('passages', 0):,}"),
        ("Model", f"{m.model.name} ({m.model.backend})"),
        ("Built at", built.replace("T", " ").removesuffix("+00:00") + (" UTC" if built.endswith("+00:00") else "")),
        ("Index", index_dir),
    ]
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="facts">{cells}</dl>'


def build_progress(files_done: int, files_total: int, passages: int) -> tuple[float, str]:
    """Progress bar value and its caption while the page builds the index."""
    frac = files_done / files_total if files_total else 0.0
    return min(1.0, max(0.0, frac)), f"{files_done} of {files_total} files read · {passages} passages embedded"


# -------------------------------------------------------------- page state
@dataclass(frozen=True)
class PageState:
    """What a search page shows; round-trips through the URL's query string."""

    query: str = ""
    langs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    k: int = DEFAULT_K
    mode: str = ""
    group: str = "article"  # "story": one card per story
    recency: float | None = None  # half-life in days of "Favour recent"; None: off

    def filters(self) -> Filters:
        """The page's filters as search filters."""
        return Filters(langs=self.langs, sources=self.sources, date_from=self.date_from, date_to=self.date_to)

    def options(self, *, offset: int = 0) -> SearchOptions:
        """The search options of this page state."""
        return SearchOptions(k=self.k, mode=self.mode, filters=self.filters(), offset=offset, explain=True,
                             group=self.group, recency=self.recency)  # fmt: skip


def _iso(value: object) -> str | None:
    if isinstance(value, date):
        return value.isoformat()[:10]
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        return None


def url_query(query: str, *, max_chars: int) -> str:
    """The question as kept in the URL (``?q=…``): whitespace collapsed, cut to what the search reads."""
    return " ".join(query.split())[:max_chars]


def date_range(value: object, bounds: Sequence[str]) -> tuple[str | None, str | None]:
    """A date-range widget value as filter bounds; the index's full range means no filter."""
    picked = list(value) if isinstance(value, list | tuple) else [value] if value else []
    days = sorted(d for d in (_iso(v) for v in picked[:2]) if d)  # a range typed backwards still works
    lo = days[0] if days else None
    hi = days[1] if len(days) > 1 else None
    if bounds:
        if lo is not None and lo <= bounds[0]:
            lo = None
        if hi is not None and hi >= bounds[-1]:
            hi = None
    return lo, hi


# ------------------------------------------------------------------ paging
@dataclass
class Pages:
    """Result pages of one search (query, filters, mode, k), fetched one ``offset`` at a time."""

    state: PageState
    version: str = ""  # the index version the pages come from
    results: list[SearchResult] = field(default_factory=list)

    @property
    def hits(self) -> list[Hit]:
        """Every hit fetched so far, in order."""
        return [h for r in self.results for h in r.hits]

    @property
    def stories(self) -> list[StoryHit]:
        """Every story fetched so far, in order (grouped by story; else empty)."""
        return [s for r in self.results for s in r.stories or []]

    @property
    def last(self) -> SearchResult:
        """The newest page of results."""
        return self.results[-1]

    @property
    def has_more(self) -> bool:
        """A full last page means there may be more; an empty or short one means the end."""
        return bool(self.results) and len(self.last.hits) == self.state.k

    def fetch(self, search: Callable[[str, SearchOptions], SearchResult], pages: int) -> Pages:
        """Fetch pages until ``pages`` are loaded or the results run out."""
        while len(self.results) < max(1, pages) and (not self.results or self.has_more):
            offset = len(self.hits)
            self.results.append(search(self.state.query, self.state.options(offset=offset)))
        return self


def pages_for(
    current: Pages | None,
    state: PageState,
    search: Callable[[str, SearchOptions], SearchResult],
    pages: int,
    *,
    version: str = "",
) -> Pages:
    """Reuse the pages already fetched for the same search; start over when anything changed.

    The index included: a rebuild between two pages would skip or repeat results.
    """
    if current is None or current.state != state or current.version != version:
        current = Pages(state, version)
    return current.fetch(search, pages)


# ---------------------------------------------------------- saved searches
#: the URL parameter keeping the newest match the reader has seen: the sidebar counts what came after
SEEN_PARAM = "seen"
SAVED_HELP = "New: articles that builds added since your last visit and that match the search."


def seen_mark(value: object) -> int | None:
    """The reader's mark from the URL (``?seen=42``); None on a first visit (or a garbled value)."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and len(text) < 19 else None


def saved_label(name: str, new: int) -> str:
    """A saved search's button (markdown): its name, and how many matches are new since the last visit."""
    shown = md_escape(name)
    return f"{shown} · **{new:,} new**" if new else shown


def saved_widgets(search: SavedSearch, dates: Sequence[str]) -> dict[str, Any]:
    """The widget values that run a saved search: its question, mode and filters.

    The date range is kept within the index's (``dates``, the widget's bounds): a range
    outside it selects the whole index, which is what such a search finds today.
    """
    f = search.filters
    values: dict[str, Any] = {"q": search.query, "mode": search.mode, "lang": list(f.langs), "source": list(f.sources)}
    if dates:
        lo, hi = date.fromisoformat(dates[0]), date.fromisoformat(dates[-1])
        start = max(lo, date.fromisoformat(f.date_from)) if f.date_from else lo
        end = min(hi, date.fromisoformat(f.date_to)) if f.date_to else hi
        values["dates"] = (start, end) if start <= end else (lo, hi)
    return values


# ---------------------------------------------------------------------- CSS
CSS = """
<style>
.block-container { padding-top: 2.2rem; }
.hit { padding: 0.15rem 0 0.1rem; }
.hit-title { font-size: 1.12rem; font-weight: 600; line-height: 1.35; margin: 0 0 0.4rem; color: #1f2330;
  overflow-wrap: anywhere; }
.hit-title a { color: #1d4ed8; text-decoration: none; }
.hit-title a:hover { text-decoration: underline; }
.hit-title .rank { display: inline-block; min-width: 1.6rem; color: #9aa0ad; font-weight: 500;
  font-variant-numeric: tabular-nums; }
.chips { display: flex; flex-wrap: wrap; gap: 0.3rem 0.35rem; margin: 0 0 0.6rem; }
.chip { font-size: 0.75rem; line-height: 1.5; padding: 0.05rem 0.55rem; border-radius: 999px;
  background: rgba(49, 51, 63, 0.06); color: #4b5263; white-space: nowrap; max-width: 100%;
  overflow: hidden; text-overflow: ellipsis; }
.chip.score { background: transparent; border: 1px solid rgba(49, 51, 63, 0.12);
  font-variant-numeric: tabular-nums; }
.chip.host { background: rgba(29, 78, 216, 0.07); color: #1d4ed8; }
.passage, .article { white-space: pre-wrap; overflow-wrap: anywhere; color: #262a33; }
.passage { line-height: 1.6; font-size: 0.97rem; }
.article { line-height: 1.7; font-size: 0.95rem; }
.ellipsis { color: #9aa0ad; }
mark { background: #fdeb8a; color: inherit; padding: 0.05em 0.1em; border-radius: 3px; }
.term { background: rgba(29, 78, 216, 0.10); border-bottom: 1px solid rgba(29, 78, 216, 0.35); border-radius: 2px; }
mark .term { background: rgba(29, 78, 216, 0.12); }
.hit[data-dim] { opacity: 0.55; }
.no-match { margin: 0.2rem 0 0.8rem; padding: 0.6rem 0.9rem; border-radius: 0.5rem; color: #5b4a00;
  background: #fff7d6; border: 1px solid #f1dc8a; }
details.why { font-size: 0.88rem; color: #3b4150; margin: -0.3rem 0 0.2rem; }
details.why summary { cursor: pointer; color: #4b5263; }
details.why ul { margin: 0.3rem 0 0; padding-left: 1.1rem; line-height: 1.5; }
.article .in-passage { background: rgba(29, 78, 216, 0.07); border-radius: 3px;
  box-shadow: 0 0 0 0.2rem rgba(29, 78, 216, 0.07); }
.also-in { margin-top: 0.55rem; font-size: 0.83rem; color: #6b7280; }
.also-in span { color: #4b5263; }
dl.facts.facts { display: grid; grid-template-columns: auto 1fr; gap: 0.2rem 0.8rem; font-size: 0.83rem;
  margin: 0; padding: 0; }
.facts dt { color: #6b7280; }
.facts dd { margin: 0; color: #262a33; overflow-wrap: anywhere; }
.tagline { color: #6b7280; margin: -0.6rem 0 0.4rem; }
</style>
"""
