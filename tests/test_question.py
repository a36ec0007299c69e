"""A question's reads shared by its search, its pages and its facet counts (question.py).

The shared path must answer exactly what separate calls answer: the same hits (scores,
highlights, explanations) and the same counts, whichever call comes first, and it must
read each candidate's sentence blob and stored vector once per question.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer import Filters, Searcher, SearchOptions, best_sentence, build
from indexer.settings import MODES

from .conftest import FAKE_MODEL, FakeEncoder, write
from .test_query_path import _rows

QUESTION = "harbour container traffic: navire au quai, Schiff im Hafen"
CASES = {
    "none": Filters(),
    "language": Filters(langs=("fr",)),
    "language + source + dates": Filters(langs=("de", "en"), sources=("Source 1", "Source 2"), date_from="2021-01"),
}


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("question")
    write(root / "src" / "news.jsonl", "\n".join(json.dumps(r) for r in _rows(600)))
    build([root / "src"], root / "index", encoder=FakeEncoder(), model=FAKE_MODEL)
    return root / "index"


def fresh(index) -> Searcher:
    return Searcher(index, encoder=FakeEncoder())


def options(mode: str, filters: Filters, **kw) -> SearchOptions:
    return SearchOptions(k=10, mode=mode, filters=filters, explain=True, **kw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_search_and_counts_of_one_question_answer_as_separate_calls(index, mode, case):
    opts = options(mode, CASES[case])
    alone_hits = fresh(index).search(QUESTION, opts).hits
    alone_counts = fresh(index).match_counts(QUESTION, opts, depth=120)
    s = fresh(index)
    assert s.search(QUESTION, opts).hits == alone_hits
    assert s.match_counts(QUESTION, opts, depth=120) == alone_counts
    assert (
        s.search(QUESTION, options(mode, CASES[case], offset=10)).hits
        == fresh(index).search(QUESTION, options(mode, CASES[case], offset=10)).hits
    )  # a second page after the counts
    t = fresh(index)  # the other order: counts first
    assert t.match_counts(QUESTION, opts, depth=120) == alone_counts
    assert t.search(QUESTION, opts).hits == alone_hits
    assert alone_hits and alone_counts.langs


@pytest.mark.parametrize("first", ["hybrid", "dense"])
def test_a_question_asked_in_another_mode_before_ranks_and_highlights_as_if_new(index, first):
    s = fresh(index)
    s.search(QUESTION, options(first, Filters()))
    for mode in MODES:
        assert (
            s.search(QUESTION, options(mode, Filters())).hits
            == fresh(index).search(QUESTION, options(mode, Filters())).hits
        ), mode


def test_each_candidates_blob_and_vector_is_read_once_per_question(index, monkeypatch):
    s = fresh(index)
    store = s.snapshot().store
    blobs: list[int] = []
    vectors: list[int] = []
    read_blobs, read_vectors = store.sentence_blobs, store.vectors

    def sentence_blobs(ids):
        blobs.extend(ids)
        return read_blobs(ids)

    def stored(ids, dim):
        vectors.extend(ids)
        return read_vectors(ids, dim)

    monkeypatch.setattr(store, "sentence_blobs", sentence_blobs)
    monkeypatch.setattr(store, "vectors", stored)
    opts = options("hybrid", CASES["language + source + dates"])
    s.search(QUESTION, opts)
    after_search = len(blobs)
    s.match_counts(QUESTION, opts, depth=120)
    assert after_search and len(blobs) > after_search  # the counts ranked passages the search had not
    assert len(blobs) == len(set(blobs)), "a sentence blob was read twice (the highlights or a second ranking)"
    assert vectors and len(vectors) == len(set(vectors))
    before = len(blobs)
    page = s.search(QUESTION, options("hybrid", opts.filters, offset=10)).hits
    # the next page ranks from what the question read; only its own highlights read blobs again
    assert sorted(blobs[before:]) == sorted(h.passage_id for h in page)
    assert len(vectors) == len(set(vectors))


def test_a_passages_best_sentence_cosine_does_not_depend_on_the_passages_read_with_it(index):
    snap = fresh(index).snapshot()
    dim = snap.manifest.model.dimension
    pids = snap.columns.pids[:300].tolist()
    q = FakeEncoder().embed_queries([QUESTION])[0]
    together = best_sentence.cosines(snap.store, q, pids, dim)
    rng = np.random.default_rng(3)
    for _ in range(5):
        some = sorted(rng.choice(pids, size=int(rng.integers(1, 40)), replace=False).tolist())
        assert best_sentence.cosines(snap.store, q, some, dim) == {p: together[p] for p in some if p in together}
    assert len(together) > 200
