"""Streamlit page: ask in any language, read the best passages. Logic lives in ``indexer``."""

from __future__ import annotations

import streamlit as st

from indexer import Searcher, SearchOptions
from indexer.errors import IndexerError
from indexer.paths import default_index_dir

st.set_page_config(page_title="Article search", page_icon="🔎", layout="wide")


@st.cache_resource(show_spinner="Loading the index and the model…")
def get_searcher(index_dir: str) -> Searcher:
    return Searcher(index_dir)


st.title("Article search")
index_dir = str(default_index_dir())
try:
    searcher = get_searcher(index_dir)
except IndexerError as exc:
    st.error(str(exc))
    st.stop()

query = st.text_input("Ask a question in any language", placeholder="coopération dans l'Arctique")
if query.strip():
    try:
        result = searcher.search(query, SearchOptions(k=10))
    except IndexerError as exc:
        st.warning(str(exc))
        st.stop()
    st.caption(f"{len(result.hits)} results in {result.took_ms:.0f} ms")
    for hit in result.hits:
        st.markdown(f"**{hit.rank}. {hit.title or hit.article_id}** · score {hit.score:.3f} · {hit.source or ''}")
        st.text(hit.text)
