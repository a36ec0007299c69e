"""The best sentence as dense evidence: read from the stored sentence vectors, blended into the dense side."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer import Searcher, SearchOptions, best_sentence, build
from indexer.cli_output import explanation_text
from indexer.fusion import SENTENCE_WEIGHT, by_score, with_sentences
from indexer.highlight import pack_sentences, unpack_sentences
from indexer.records import Evidence, Explanation
from indexer.search import STAGES

from .conftest import FAKE_MODEL, FakeEncoder, write

QUESTION = "Glaciers retreat quickly in Greenland"
# "exact" holds the question as one sentence among many unrelated ones, which dilute its passage
# vector; "scattered" holds four of its words, in four short sentences
ARTICLES = [
    {"id": "exact", "title": "Notes", "lang": "en", "text": "Glaciers retreat quickly in Greenland. "
     "Markets opened higher on Monday. The central bank kept its rates. Shares of carmakers fell sharply. "
     "Oil prices rose again this week. The football season starts in August. A new bridge opened downtown. "
     "Tourists crowded the old harbour. The council approved a budget for schools and roads."},
    {"id": "scattered", "title": "Notes", "lang": "en",
     "text": "Greenland hosts stations. Glaciers are studied. Winds change quickly. Ice may retreat."},
]  # fmt: skip


class NoSentenceEncoder(FakeEncoder):
    """A backend that cannot pool sentence vectors (as torch's): a build stores none."""

    def embed_passages_with_sentences(self, texts, spans):  # type: ignore[no-untyped-def]
        return self.embed_passages(texts), None


def _index(tmp_path, encoder: FakeEncoder) -> Searcher:
    write(tmp_path / "src" / "notes.json", json.dumps(ARTICLES))
    build([tmp_path / "src"], tmp_path / "index", encoder=encoder, model=FAKE_MODEL)
    return Searcher(tmp_path / "index", encoder=encoder)


def _cosines(s: Searcher) -> dict[str, float]:
    snap = s.snapshot()
    pids = snap.lexical.pids.tolist()
    rows = snap.store.passages(pids)
    vecs = snap.store.vectors(pids, FakeEncoder.dimension)
    q = s.query_vector(QUESTION)
    return {rows[p].article_id: float(v @ q) for p, v in zip(pids, vecs)}


def test_cosines_are_each_passages_best_stored_sentence(tmp_path):
    s = _index(tmp_path, FakeEncoder())
    snap = s.snapshot()
    pids = snap.lexical.pids.tolist()
    q = s.query_vector(QUESTION)
    got = best_sentence.cosines(snap.store, q, pids, FakeEncoder.dimension)
    blobs = snap.store.sentence_blobs(pids)
    want = {p: float((unpack_sentences(blobs[p], FakeEncoder.dimension)[1] @ q).max()) for p in pids}
    assert got.keys() == want.keys() == set(pids)
    assert got == pytest.approx(want, abs=1e-6)
    assert best_sentence.cosines(snap.store, q, [], FakeEncoder.dimension) == {}


class _Blobs:
    def __init__(self, blobs: dict[int, bytes]) -> None:
        self.blobs = blobs

    def sentence_blobs(self, ids):  # type: ignore[no-untyped-def]
        return {i: self.blobs[i] for i in ids if i in self.blobs}


def test_passages_without_usable_sentence_vectors_are_left_out():
    q = np.zeros(4, np.float32)
    q[0] = 1.0
    good = pack_sentences([(0, 3), (4, 9)], np.array([[0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.0, 0.0]]))
    other_dim = pack_sentences([(0, 3)], np.ones((1, 8)) / np.sqrt(8))
    empty = pack_sentences([], np.zeros((0, 4)))
    store = _Blobs({1: good, 2: other_dim, 3: empty, 4: b"\x01"})
    got = best_sentence.cosines(store, q, [1, 2, 3, 4, 5], 4)
    assert got.keys() == {1} and got[1] == pytest.approx(0.9, abs=1e-3)  # float16 storage


def test_the_blend_is_only_where_a_sentence_is_known_and_ties_break_by_id():
    blended = with_sentences({1: 0.5, 2: 0.6, 3: 0.7}, {1: 1.0, 3: 0.7})
    assert blended == pytest.approx({1: 0.5 + SENTENCE_WEIGHT * 0.5, 2: 0.6, 3: 0.7})
    assert by_score({9: 0.5, 4: 0.5, 7: 0.9}) == [(7, 0.9), (4, 0.5), (9, 0.5)]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_passage_holding_the_answer_sentence_beats_a_closer_passage_vector(tmp_path, mode):
    s = _index(tmp_path, FakeEncoder())
    cos = _cosines(s)
    assert cos["scattered"] > cos["exact"]  # by its vector alone, the wrong passage would come first
    res = s.search(QUESTION, SearchOptions(k=2, mode=mode, explain=True))
    assert [h.article_id for h in res.hits] == ["exact", "scattered"]
    why = res.hits[0].explanation
    assert why is not None and why.dense_rank == 1
    assert why.evidence.dense == pytest.approx(cos["exact"])
    assert why.evidence.sentence is not None and why.evidence.sentence > 0.9 > why.evidence.dense
    assert "sentences" in res.timings and set(res.timings) <= set(STAGES)
    assert "sentences" not in s.search(QUESTION, SearchOptions(mode="bm25")).timings


def test_an_index_without_sentence_vectors_ranks_by_the_passage_vectors(tmp_path):
    s = _index(tmp_path, NoSentenceEncoder())
    cos = _cosines(s)
    res = s.search(QUESTION, SearchOptions(k=2, mode="dense", explain=True))
    assert [h.article_id for h in res.hits] == sorted(cos, key=lambda a: -cos[a])
    why = res.hits[0].explanation
    assert why is not None and why.evidence.sentence is None and why.evidence.fused == pytest.approx(why.evidence.dense)


def test_explain_text_names_the_best_sentence_when_there_is_one():
    def lines(e: Evidence) -> str:
        return explanation_text(Explanation(e, 1, None, [], 0.5, "fitted for m"))[0]

    assert lines(Evidence(fused=0.9, dense=0.81, sentence=0.93)) == "why: dense 0.8100, best sentence 0.9300 (rank 1)"
    assert lines(Evidence(fused=0.9, dense=0.81)) == "why: dense 0.8100 (rank 1)"
