"""Streamlit page: ask in any language, read the answer in its article. Logic lives in ``indexer``.

The page parses the widgets, calls ``Searcher.search`` and formats what it returns;
escaping, highlighting and paging are in ``indexer.page``. Every widget that shapes
a search is kept in the URL, so a search can be shared and reloaded.
"""

from __future__ import annotations

from datetime import date
from functools import partial

import streamlit as st

import indexer
import indexer.alerts
from indexer import export, page, page_desk, page_stories, page_timeline
from indexer.build import BuildProgress
from indexer.errors import (
    IndexCorruptError,
    IndexerError,
    IndexNotFoundError,
    IndexVersionError,
    ModelMismatchError,
    QueryError,
)
from indexer.facet_counts import DateHistogram
from indexer.paths import default_index_dir, default_sources, default_store
from indexer.search import MAX_QUERY_CHARS, MODES

st.set_page_config(page_title="Article search", page_icon="🔎", layout="centered")
st.html(page.CSS)
st.html(page_stories.CSS)


@st.cache_resource(show_spinner="Loading the index and the model…", max_entries=4)
def load_searcher(index_dir: str, store: str | None) -> indexer.Searcher:
    """One searcher per index (and vector store) and process; it follows new index versions by itself."""
    searcher = indexer.Searcher(index_dir, store=store, warm_new_versions=True)
    searcher.warm_up()  # load the model now, not during a user's first question
    return searcher


def offer_build(index_dir: str, store: str | None, exc: IndexerError) -> None:
    """No usable index: say why and, when building fixes it, offer to build from the configured sources."""
    full = isinstance(exc, IndexCorruptError | IndexVersionError | ModelMismatchError)
    if isinstance(exc, IndexNotFoundError):
        st.info(f"There is no index at {page.md_escape(index_dir)} yet. Build it to start searching.")
    else:
        st.error(page.md_escape(str(exc)))
        if not full:
            st.stop()
    sources = [str(s) for s in default_sources()]
    st.caption(f"It is built from {page.md_escape(', '.join(sources))}. `./run.sh` builds it too.")
    if not st.button("Rebuild the index" if full else "Build the index", type="primary"):
        st.stop()
    bar = st.progress(0.0, text="Reading the articles…")

    def progress(p: BuildProgress) -> None:
        value, text = page.build_progress(p.files_done, p.files_total, p.passages_embedded)
        bar.progress(value, text=text)

    try:
        settings = indexer.BuildSettings(full=full)
        report = indexer.build(sources, index_dir, settings, progress=progress, store=store)
    except IndexerError as err:
        st.error(page.md_escape(str(err)))
        st.stop()
    load_searcher.clear()
    st.toast(f"Index built: {report.articles} articles, {report.passages} passages")
    st.rerun()


def use_example() -> None:
    st.session_state.q = st.session_state.example or st.session_state.q
    st.session_state.example = None


def more_results() -> None:
    st.session_state.pages_wanted = st.session_state.get("pages_wanted", 1) + 1


def set_dates(lo: date, hi: date) -> None:
    """Set the sidebar's "Published" filter (and so the URL); a new timeline forgets its old selection."""
    st.session_state.dates = (lo, hi)
    st.session_state.timeline_n = st.session_state.get("timeline_n", 0) + 1


def use_timeline(key: str, hist: DateHistogram, bounds: tuple[date, date]) -> None:
    """A bar clicked or a range dragged on the timeline narrows the dates to it (within the index's dates)."""
    picked = page_timeline.picked_range(st.session_state[key].selection, hist)
    if picked is not None:
        lo = min(max(date.fromisoformat(picked[0]), bounds[0]), bounds[1])
        hi = max(min(date.fromisoformat(picked[1]), bounds[1]), bounds[0])
        set_dates(lo, hi)


def toggle_similar(article_id: str) -> None:
    st.session_state.similar = None if st.session_state.get("similar") == article_id else article_id


# ------------------------------------------------------------------ index
index_dir = str(default_index_dir())
store = default_store()  # e.g. milvus://host:19530/news: candidates come from Milvus
try:
    searcher = load_searcher(index_dir, store)
    info = searcher.info()
except IndexerError as exc:
    st.title("Article search", anchor=False)
    offer_build(index_dir, store, exc)
    st.stop()
facets = info.facets
modes = tuple(MODES)


# --------------------------------------------------------- saved searches
# each with its matches since the reader's last visit; the mark (the newest match seen) lives in the
# URL, not on the server: read once per visit, and moved to the newest for the next one
def run_saved(search: indexer.alerts.SavedSearch, dates: list[str]) -> None:
    st.session_state.update(page.saved_widgets(search, dates))


with st.sidebar:
    if "alerts_seen" not in st.session_state:
        st.session_state.alerts_seen = page.seen_mark(st.query_params.get(page.SEEN_PARAM))
    try:
        saved = indexer.alerts.overview(index_dir, st.session_state.alerts_seen)
    except IndexerError as exc:
        st.caption(page.md_escape(f"Saved searches unavailable: {exc}"))
    else:
        if saved.searches:
            st.subheader("Saved searches", help=page.SAVED_HELP)
            for found, new in saved.searches:
                st.button(page.saved_label(found.name, new), key=f"saved-{found.id}", help=page.md_escape(found.query),
                          on_click=run_saved, args=(found, facets.dates), width="stretch")  # fmt: skip
            st.query_params[page.SEEN_PARAM] = str(saved.latest)
            st.divider()

# ---------------------------------------------------------------- sidebar
# bind="query-params": each filter lives in the URL (?lang=French&k=20…), read back on load
with st.sidebar:
    st.subheader("Filters")
    for key in ("lang", "source"):  # values of an older index version must not break the widgets
        allowed = facets.langs if key == "lang" else facets.sources
        if key in st.session_state:
            st.session_state[key] = [v for v in st.session_state[key] if v in allowed]
    langs = sources = []
    if facets.langs:
        langs = st.multiselect(
            "Language", facets.langs, key="lang", format_func=page.lang_label, placeholder="Any", bind="query-params"
        )
    lang_counts = st.empty()  # filled once the question is counted
    if facets.sources:
        sources = st.multiselect("Source", facets.sources, key="source", placeholder="Any", bind="query-params")
    source_counts = st.container()
    date_from = date_to = None
    if facets.dates:
        lo, hi = date.fromisoformat(facets.dates[0]), date.fromisoformat(facets.dates[-1])
        picked = st.date_input(
            "Published", (lo, hi), min_value=lo, max_value=hi, key="dates", format="YYYY-MM-DD", bind="query-params"
        )
        date_from, date_to = page.date_range(picked, facets.dates)
        if date_from or date_to:
            st.caption("Articles without a date are left out.")
        st.caption("The timeline above the results shows the matches over time: click a bar or drag a range on it.")
    k = st.select_slider("Results per page", page.K_CHOICES, page.DEFAULT_K, key="k", bind="query-params")
    mode = modes[0]
    if len(modes) > 1:
        mode = (
            st.radio(
                "Search mode",
                modes,
                key="mode",
                format_func=page.mode_label,
                captions=[page.MODE_HELP.get(m, "") for m in modes],
                bind="query-params",
            )
            or modes[0]
        )
    # search by story and recency: how the results are grouped and ordered (both in the URL)
    by_story = st.toggle("Group by story", key="story", bind="query-params", help=page_stories.GROUP_HELP)
    recent = st.selectbox(
        "Favour recent",
        page_desk.RECENCY_CHOICES,
        key="recent",
        format_func=page_desk.recency_label,
        help=page_desk.RECENCY_HELP,
        bind="query-params",
    )
    st.divider()
    st.subheader("Index")
    st.html(page.render_facts(info, index_dir))

# ------------------------------------------------------------------- main
st.title("Article search", anchor=False)
st.html(page.render_tagline(info.counts, facets.langs))
if "q" not in st.session_state:  # a shared or reloaded search
    st.session_state.q = st.query_params.get("q", "")
query = st.text_input("Question", key="q", type="search", placeholder="Ask a question…", label_visibility="collapsed")
# the URL keeps the question as the search reads it: at most MAX_QUERY_CHARS, so it always reloads
url_q = page.url_query(query or "", max_chars=MAX_QUERY_CHARS)
if st.query_params.get("q", "") != url_q:
    if url_q:
        st.query_params["q"] = url_q
    else:
        del st.query_params["q"]

state = page.PageState(
    query=" ".join((query or "").split()),
    langs=tuple(langs),
    sources=tuple(sources),
    date_from=date_from,
    date_to=date_to,
    k=int(k),
    mode=str(mode),
    group="story" if by_story else "article",
    recency=page_desk.recency_value(recent),
)
if not state.query:
    st.session_state.pop("results", None)
    st.pills("Try one of these", page.EXAMPLES, key="example", on_change=use_example)
    st.stop()

version = info.manifest.version
current = st.session_state.get("results")
if current is None or current.state != state or current.version != version:
    st.session_state.pages_wanted = 1
try:
    results = page.pages_for(current, state, searcher.search, st.session_state.get("pages_wanted", 1), version=version)
except QueryError as exc:
    st.session_state.pop("results", None)
    st.warning(page.md_escape(str(exc)))
    st.stop()
except IndexerError as exc:
    st.session_state.pop("results", None)
    st.error(page.md_escape(str(exc)))
    st.stop()
st.session_state.results = results

hits = results.hits
first = results.results[0]  # every page of a search agrees: its best hit decides
try:  # facet counts and the timeline: kept per question and filters, so paging does not count again
    counted = page_desk.counts_for(
        st.session_state.get("counted"), state, version, lambda: searcher.match_counts(state.query, state.options())
    )
except IndexerError as exc:
    st.error(page.md_escape(str(exc)))
    st.stop()
st.session_state.counted = counted
counts = counted.counts
lang_counts.html(page_desk.render_facet_counts(counts.langs, page.lang_label))
source_counts.html(page_desk.render_facet_counts(counts.sources))
source_counts.caption(page.md_escape(page_desk.counts_note(counts)))

st.caption(page.summary(len(hits), results.last.took_ms))
if results.last.truncated:
    st.caption(f"Only the first {MAX_QUERY_CHARS:,} characters of the question were used.")

# ---------------------------------------------------------------- timeline
span = page_timeline.domain(counts.dates)
if facets.dates and counts.dates.buckets:
    bounds = (date.fromisoformat(facets.dates[0]), date.fromisoformat(facets.dates[-1]))
    timeline_key = f"timeline-{st.session_state.get('timeline_n', 0)}"
    st.caption(page.md_escape(page_timeline.title(counts.dates, counts.depth)))
    st.altair_chart(
        page_timeline.chart(counts.dates, state.date_from, state.date_to),
        key=timeline_key,
        on_select=partial(use_timeline, timeline_key, counts.dates, bounds),
        selection_mode=[page_timeline.PICK, page_timeline.SPAN],
        width="stretch",
    )
    if state.date_from or state.date_to:
        st.button("All dates", on_click=set_dates, args=bounds, icon=":material/date_range:")
    else:
        st.caption("Click a bar or drag across bars to keep only those dates.")

# --------------------------------------------------------------- downloads
if hits:
    wanted = export.export_options(state.options())
    formats = (("CSV", export.to_csv, "csv", "text/csv"), ("JSON lines", export.to_jsonl, "jsonl", "application/jsonl"))
    for column, (label, write, ext, mime) in zip(st.columns(2), formats):
        column.download_button(
            f"Download results ({label})",
            data=lambda write=write: write([searcher.search(state.query, wanted)]),  # made when clicked
            file_name=page_desk.download_name(state.query, ext),
            mime=mime,
            on_click="ignore",
            width="stretch",
        )
    st.caption(page_desk.DOWNLOAD_NOTE)

if not hits:
    st.info("Nothing matched. Try other words, another language, or fewer filters.")
elif first.no_close_match:
    st.html(page.render_no_match())
if hits and not first.calibrated:
    st.caption(page.UNCALIBRATED)


def similar_coverage(article_id: str) -> None:
    """The "Similar coverage" button of a card, and the neighbours when it is open."""
    is_open = st.session_state.get("similar") == article_id
    st.button(
        "Hide similar coverage" if is_open else "Similar coverage",
        key=f"similar-{article_id}",
        on_click=toggle_similar,
        args=(article_id,),
        type="tertiary",
        icon=":material/hub:",
    )
    if is_open:
        try:
            st.html(page_stories.render_similar(searcher.similar(article_id)))
        except IndexerError as exc:
            st.caption(page.md_escape(str(exc)))


def whole_article(hit: indexer.Hit) -> None:
    with st.expander("Read the whole article"):
        article = searcher.article(hit.article_id)
        if article is None:
            st.caption("This article is no longer in the index.")
        else:
            st.html(page.render_article(article.text, hit, marks=not first.no_close_match))


if state.group == "story":
    for found in results.stories:
        with st.container(border=True):
            st.html(page.render_hit(found.hit, dimmed=first.no_close_match, calibrated=first.calibrated))
            st.html(page_stories.render_story(found.story, best=found.hit.article_id))
            with st.expander("Timeline of this story"):
                story_chart = page_timeline.story_chart(found.story, span)
                if story_chart is None:
                    st.caption("None of its articles is dated.")
                else:
                    st.altair_chart(story_chart, width="stretch")
            whole_article(found.hit)
            similar_coverage(found.hit.article_id)
else:
    for hit in hits:
        with st.container(border=True):
            also_in = [page.duplicate_label(searcher.article(dup), dup) for dup in hit.duplicates]
            st.html(page.render_hit(hit, also_in=also_in, dimmed=first.no_close_match, calibrated=first.calibrated))
            if hit.explanation is not None:  # a native disclosure: opening it costs no rerun
                st.html(page.render_explanation(hit.explanation))
            whole_article(hit)
            similar_coverage(hit.article_id)

if results.has_more:
    st.button("More results", on_click=more_results, width="stretch")
elif len(results.results) > 1:
    st.caption("No more results.")
