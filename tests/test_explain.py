"""Why this result: ``SearchOptions(explain=True)``, matched terms with their analysis, term highlights, the page.

Fast, with the fake encoder.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html import unescape

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import indexer
from indexer import Searcher, SearchOptions, build, calibration, page
from indexer.analysis import analyze, words
from indexer.cli_output import explanation_text, print_hits
from indexer.fusion import SENTENCE_WEIGHT
from indexer.highlight import term_spans
from indexer.query import term_origins
from indexer.records import Evidence, Explanation, Hit, TermMatch

from .conftest import ARTICLES, FAKE_MODEL, ROOT, SEEDS, FakeEncoder, write

SEED_ID = "000_8830d0ea2df0fe55.txt"
ENERGY = [
    {"id": "en", "title": "Energy", "text": "Energy prices rise. Households save energy.", "lang": "en"},
    {"id": "de", "title": "Energie", "text": "Die Energiepreise steigen. Energie wird teurer.", "lang": "de"},
    {"id": "fr", "title": "Énergie", "text": "Les prix de l'énergie montent. Les énergies coûtent.", "lang": "fr"},
    {"id": "zh", "title": "能源", "text": "能源价格上涨。家庭节约能源。", "lang": "zh"},
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    enc = FakeEncoder()
    root = tmp_path_factory.mktemp("explain")
    write(root / "energy" / "energy.json", json.dumps(ENERGY, ensure_ascii=False))
    build([SEEDS, ARTICLES, root / "energy"], root / "index", encoder=enc, model=FAKE_MODEL)
    return Searcher(root / "index", encoder=enc)


def visible(html: str) -> str:
    return unescape(re.sub(r"<[^>]*>", "", html))


# ------------------------------------------------------------- explanations
@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_explain_gives_each_hit_the_evidence_of_the_sides_its_mode_uses(sample, mode):
    res = sample.search("coopération dans l'Arctique", SearchOptions(k=5, mode=mode, explain=True))
    assert res.hits
    for h in res.hits:
        why = h.explanation
        assert why is not None and why.calibrated == h.score and why.calibration
        e = why.evidence
        assert (e.dense is None) == (mode == "bm25") and (why.dense_rank is None) == (mode == "bm25")
        assert (e.bm25 is None) == (mode == "dense") and (e.coverage is None) == (mode == "dense")
        assert (e.lang_weight is None) == (mode != "hybrid")
        assert (e.sentence is None) == (mode == "bm25")  # the fake encoder pools sentences, as ONNX does
        if mode == "dense":  # a single side: its raw evidence is the ranking score
            assert e.sentence is not None
            assert e.fused == pytest.approx((1 - SENTENCE_WEIGHT) * e.dense + SENTENCE_WEIGHT * e.sentence)
        if mode == "bm25":
            assert e.fused == pytest.approx(e.bm25)
    first = res.hits[0].explanation
    assert first is not None
    if mode == "dense":
        assert first.dense_rank == 1
    if mode == "bm25":
        assert first.bm25_rank == 1
    assert sample.search("coopération dans l'Arctique", SearchOptions(k=5, mode=mode)).hits[0].explanation is None


def test_matched_terms_name_the_query_word_and_the_analysis_and_add_up_to_bm25(sample):
    res = sample.search("coopération dans l'Arctique", SearchOptions(k=10, explain=True))
    seed = next(h for h in res.hits if h.article_id == SEED_ID and h.explanation and h.explanation.terms)
    why = seed.explanation
    assert why is not None
    by_term = {t.term: t for t in why.terms}
    assert by_term["arctiqu"].word == "l'Arctique" and "fr" in by_term["arctiqu"].analysis
    assert by_term["arctiqu"].analysis.endswith("stemmer")
    # per query word its best variant, as BM25 sums them
    assert sum(t.bm25 for t in why.terms) == pytest.approx(why.evidence.bm25, rel=1e-5)
    assert [t.bm25 for t in why.terms] == sorted((t.bm25 for t in why.terms), reverse=True)
    assert why.bm25_rank is not None and why.evidence.matched == 1.0
    doc = seed.to_json()["explanation"]
    assert doc["terms"][0].keys() == {"term", "word", "analysis", "bm25"}
    assert {"dense", "dense_rank", "bm25", "bm25_rank", "lang_weight", "coverage", "fused", "calibrated"} <= set(doc)


def test_a_passage_without_query_words_says_so(sample):
    res = sample.search("énergie", SearchOptions(k=20, explain=True))
    none = [h for h in res.hits if h.explanation and not h.explanation.terms]
    assert none and all(h.explanation.bm25_rank is None and h.explanation.evidence.bm25 == 0 for h in none)  # type: ignore[union-attr]


def test_term_origins_keep_the_typed_word_and_tell_the_analysis():
    found = term_origins("Coopération dans l'Arctique 2025 北极航道", ("fr", "en"))
    assert found["arctiqu"].word == "l'Arctique" and found["arctiqu"].analysis == "fr/en stemmer"
    assert found["cooper"].word == "Coopération" and found["cooper"].analysis == "fr stemmer"
    assert found["2025"].analysis == "as written"
    assert found["北极"].analysis == "character bigrams" and found["北极"].word == "北极航道"
    assert "dans" not in found  # a stop word is no term


# ---------------------------------------------------------- term highlights
def test_term_highlights_mark_the_words_bm25_matched_in_every_language(sample):
    res = sample.search("energy Energie énergie 能源", SearchOptions(k=10, mode="bm25"))
    marked = {h.article_id: [h.text[a - h.start : b - h.start] for a, b in h.term_highlights] for h in res.hits}
    assert marked["en"] == ["Energy", "energy"]
    assert marked["de"] == ["Energie"]  # "Energiepreise" is another term
    assert marked["fr"] == ["l'énergie", "énergies"]  # elided and plural forms, by the French stemmer
    assert marked["zh"] == ["能源", "能源"]  # the bigram, inside longer runs


def test_term_highlights_are_offsets_in_the_article(sample):
    res = sample.search("coopération dans l'Arctique", SearchOptions(k=5))
    seed = next(h for h in res.hits if h.article_id == SEED_ID)
    article = sample.article(SEED_ID)
    assert article is not None and seed.term_highlights
    for a, b in seed.term_highlights:
        assert seed.start <= a < b <= seed.end
        assert set(analyze(article.text[a:b], "fr")) & {"cooper", "arctiqu"}


def test_dense_mode_and_other_language_passages_get_no_term_highlights(sample):
    assert all(not h.term_highlights for h in sample.search("énergie", SearchOptions(mode="dense")).hits)
    # a Latin-script question: Chinese passages cannot match its words (language weight 0)
    res = sample.search("énergie energy", SearchOptions(k=30, explain=True))
    for h in res.hits:
        if h.explanation and h.explanation.evidence.lang_weight == 0:
            assert not h.term_highlights


def test_term_spans_find_every_word_the_analysis_maps_to_a_term():
    # every word of the sample corpus, in its own article's language: the opening-letters
    # shortcut must never miss a word that analyses to a wanted term
    for path in [*sorted(ARTICLES.rglob("*")), next(SEEDS.glob("*.txt"))]:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        prefix = path.name.split("-")[0]
        lang = prefix if len(prefix) == 2 else "fr"  # the seed article is French
        vocab = sorted({w for w in words(text) if analyze(w, lang)})
        terms = {t for w in vocab for t in analyze(w, lang)}
        spans = term_spans(text, 0, lang, terms)
        marked = [text[a:b] for a, b in spans]
        for w in marked:
            assert set(analyze(w, lang)) & terms, w
        found = {t for w in marked for t in analyze(w, lang)}
        assert found == terms, (path.name, sorted(terms - found)[:10])


def test_term_spans_do_not_split_words_joined_by_an_apostrophe():
    text = "Aujourd'hui, l'hui et L’Arctique."
    assert [text[a:b] for a, b in term_spans(text, 0, "fr", {"hui"})] == ["l'hui"]
    assert [text[a:b] for a, b in term_spans(text, 0, "fr", {"arctiqu"})] == ["L’Arctique"]
    assert term_spans(text, 100, "fr", set()) == []


# ---------------------------------------------------------------- the page
def hit(**kw) -> Hit:
    fields = dict(rank=1, score=0.5, article_id="a1", title="T", passage_id=1, text="Alpha beta. Gamma delta.", start=0)
    fields.update(kw)
    return Hit(end=fields["start"] + len(fields["text"]), **fields)  # type: ignore[arg-type]


def why(**kw) -> Explanation:
    e = Evidence(fused=0.97, dense=0.8712, bm25=5.2, lang_weight=1.0, coverage=0.75, matched=0.5)
    terms = [
        TermMatch("arctiqu", "l'Arctique", "fr stemmer", 3.1),
        TermMatch("<b>x</b>", "<i>y</i>", "as written", 2.1),
    ]
    fields = dict(evidence=e, dense_rank=2, bm25_rank=1, terms=terms, calibrated=0.82, calibration="fitted for m")
    fields.update(kw)
    return Explanation(**fields)  # type: ignore[arg-type]


def test_term_marks_are_a_second_layer_that_nests_inside_sentence_marks():
    h = hit(highlights=[(12, 24)], term_highlights=[(0, 5), (12, 17)])
    html = page.render_passage(h)
    assert html.count('<span class="term">') == 2
    assert '<span class="term">Alpha</span>' in html
    assert '<mark><span class="term">Gamma</span> delta.</mark>' in html
    assert visible(html) == h.text
    # without term marks the sentence mark is unchanged
    assert "<mark>Gamma delta.</mark>" in page.render_passage(replace(h, term_highlights=[]))


def test_a_dimmed_card_has_no_highlight_of_either_kind():
    h = hit(highlights=[(12, 24)], term_highlights=[(0, 5)])
    html = page.render_hit(h, dimmed=True)
    assert 'data-dim="true"' in html and "<mark>" not in html and 'class="term"' not in html
    assert page.render_article("Alpha beta. Gamma delta. More.", h, marks=False).count("<mark>") == 0
    assert "<mark>" in page.render_hit(h)


def test_the_explanation_reads_in_plain_words_and_escapes_everything():
    lines = page.explanation_lines(why())
    text = "\n".join(lines)
    assert "about 82 in 100 results scored like this one answer the question" in text
    assert "similarity 0.871" in text and "rank 2 by meaning" in text
    assert "“l'Arctique” as arctiqu (fr stemmer)" in text and "rank 1 by keywords" in text
    assert "75%" in text  # coverage
    html = page.render_explanation(why())
    assert html.startswith('<details class="why"><summary>Why this result</summary>')
    assert "<b>" not in html and "<i>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    uncalibrated = "\n".join(page.explanation_lines(why(calibration="generic mapping, not fitted for m")))
    assert "in 100" not in uncalibrated and "not calibrated" in uncalibrated
    dense_only = page.explanation_lines(why(evidence=Evidence(fused=0.9, dense=0.9), bm25_rank=None, terms=[]))
    assert not any(line.startswith("Words") for line in dense_only)


def test_cli_explain_prints_each_side_and_the_scores(sample, capsys):
    res = sample.search("coopération dans l'Arctique", SearchOptions(k=3, explain=True))
    print_hits(res, explain=True)
    out = " ".join(capsys.readouterr().out.split())  # long lines are wrapped
    assert out.count("why: dense") == 3 and "arctiqu ← l'Arctique (fr" in out and "→ calibrated" in out
    print_hits(res)
    assert "why:" not in capsys.readouterr().out
    lines = explanation_text(why())
    assert lines[0].startswith("why: dense 0.8712 (rank 2)") and "coverage 0.75" in "\n".join(lines)


# ----------------------------------------------------------- the page itself
@pytest.fixture
def app(sample, monkeypatch):
    class FakeSearcher(Searcher):
        def __init__(self, index_dir, **kw):
            kw.setdefault("encoder", FakeEncoder())
            super().__init__(index_dir, **kw)

    monkeypatch.setattr(indexer, "Searcher", FakeSearcher)
    monkeypatch.setenv("INDEXER_INDEX", str(sample.idx.path))
    st.cache_resource.clear()
    yield AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    st.cache_resource.clear()


def _cards(at: AppTest) -> list[str]:
    return [h.value for h in at.main.html if 'class="hit"' in h.value]


def test_page_explains_each_result_and_marks_query_words(app):
    app.run()
    app.text_input(key="q").input("coopération dans l'Arctique").run()
    assert not app.exception and not app.error
    whys = [h.value for h in app.main.html if 'class="why"' in h.value]
    assert len(whys) == len(_cards(app)) == 10
    assert "Why this result" in whys[0] and "Meaning: similarity" in visible(whys[0])
    assert any('class="term"' in c for c in _cards(app))
    assert not any(page.NO_CLOSE_MATCH in h.value for h in app.main.html)


def test_page_says_plainly_when_nothing_is_close_and_dims_the_hits(app, monkeypatch):
    cal = calibration.for_model("fake-bow", "sha256:fake")
    everything_weak = calibration.Calibration(
        {m: replace(p, threshold=1.0) for m, p in cal.modes.items()}, fitted=True, label="fitted for test"
    )
    monkeypatch.setattr(calibration, "for_model", lambda name, fp: everything_weak)
    app.run()
    app.text_input(key="q").input("xyzzy qwerty").run()
    assert not app.exception and not app.error
    assert any(page.NO_CLOSE_MATCH in visible(h.value) for h in app.main.html)
    cards = _cards(app)
    assert cards and all('data-dim="true"' in c and "<mark>" not in c and 'class="term"' not in c for c in cards)
