"""Calibrated scores and "no close match": the model, its shipped constants, and what a search does with them.

Fast, with the fake encoder (an index of a model the constants were not fitted on: the
generic mapping), except the last test, which asks the real model the issue's example.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from indexer import Searcher, SearchOptions, build, calibration
from indexer import calibration_params as params
from indexer.cli_output import print_hits
from indexer.fusion import Fused
from indexer.records import Evidence
from indexer.search import SearchResult

from .conftest import ARTICLES, SEEDS

MODES = ("hybrid", "dense", "bm25")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from .conftest import FAKE_MODEL, FakeEncoder

    enc = FakeEncoder()
    index = tmp_path_factory.mktemp("calibration") / "index"
    build([SEEDS, ARTICLES], index, encoder=enc, model=FAKE_MODEL)
    return Searcher(index, encoder=enc)


# ------------------------------------------------------------------ the model
def test_a_mode_model_is_the_logistic_of_its_features():
    m = calibration.ModeModel(("dense", "matched"), (4.0, 2.0), -3.0, 0.3)
    e = Evidence(fused=1.0, dense=0.8, matched=0.5)
    assert m.probability(e) == pytest.approx(1 / (1 + math.exp(-(-3.0 + 4.0 * 0.8 + 2.0 * 0.5))))
    # extreme evidence saturates instead of overflowing
    assert m.probability(replace(e, dense=1e6)) == pytest.approx(1.0)
    assert m.probability(replace(e, dense=-1e6)) == pytest.approx(0.0)


def test_a_model_naming_an_unknown_feature_is_refused():
    with pytest.raises(ValueError, match="bad calibration model"):
        calibration.ModeModel(("dense", "no-such-feature"), (1.0, 1.0), 0.0, 0.5)
    with pytest.raises(ValueError, match="bad calibration model"):
        calibration.ModeModel(("dense",), (1.0, 2.0), 0.0, 0.5)


def test_features_read_the_query_background_not_only_the_hit():
    e = Evidence(fused=0.9, dense=0.86, dense_top=0.9, dense_mean=0.80, dense_spread=0.02, bm25=6.0, bm25_top=12.0)
    f = calibration.FEATURES
    assert f["dense_lift"](e) == pytest.approx(0.06)
    assert f["dense_z"](e) == pytest.approx(3.0)  # three spreads above the background
    assert f["dense_top_z"](e) == pytest.approx(5.0)
    assert f["bm25_share"](e) == pytest.approx(0.5)
    assert f["bm25_share"](replace(e, bm25_top=0.0)) == 0.0  # nothing matched anywhere
    assert f["lang_weight"](e) == 1.0  # no lexical weighting (dense or bm25 mode): counts fully


def test_sentence_features_read_the_best_sentences_of_the_background_and_fall_back_to_the_passage():
    e = Evidence(fused=0.9, dense=0.86, dense_top=0.9, dense_mean=0.80, dense_spread=0.02,
                 sentence=0.91, sentence_top=0.95, sentence_mean=0.85, sentence_spread=0.03)  # fmt: skip
    f = calibration.FEATURES
    assert f["sentence"](e) == 0.91
    assert f["sentence_lift"](e) == pytest.approx(0.06)
    assert f["sentence_z"](e) == pytest.approx(2.0)  # two spreads above the background's best sentences
    assert f["sentence_top_z"](e) == pytest.approx(10 / 3)
    # an index without sentence vectors: the passage's own evidence stands in
    bare = replace(e, sentence=None, sentence_top=None, sentence_mean=None, sentence_spread=None)
    assert f["sentence"](bare) == 0.86
    assert f["sentence_z"](bare) == pytest.approx(f["dense_z"](bare))
    assert f["sentence_top_z"](bare) == pytest.approx(f["dense_top_z"](bare))


def test_margin_and_agreement_compare_the_hit_with_the_other_candidates():
    f = calibration.FEATURES
    first = Evidence(fused=0.9, runner_up=0.6, dense_rank=1, bm25_rank=2)
    assert f["margin"](first) == pytest.approx(0.3)  # ahead of the best other article
    assert f["margin"](replace(first, fused=0.5, runner_up=0.9)) == pytest.approx(-0.4)  # behind the best
    assert f["margin"](replace(first, runner_up=None)) == 0.0  # the only article
    assert f["agree"](first) == 1.0
    assert f["agree"](replace(first, bm25_rank=calibration.AGREE + 1)) == 0.0
    assert f["agree"](replace(first, bm25_rank=None)) == 0.0  # BM25 did not find it
    assert (f["dense_rr"](first), f["bm25_rr"](first), f["bm25_rr"](replace(first, bm25_rank=None))) == (1.0, 0.5, 0.0)


def test_no_close_match_is_below_the_mode_threshold_or_no_hit_at_all():
    m = calibration.ModeModel(("fused",), (1.0,), 0.0, 0.4)
    cal = calibration.Calibration({"hybrid": m}, fitted=True, label="test")
    assert cal.no_close_match("hybrid", 0.39) and not cal.no_close_match("hybrid", 0.4)
    assert cal.no_close_match("hybrid", None)


# -------------------------------------------------------- the shipped constants
@pytest.mark.parametrize("entry", [*params.FITTED, params.GENERIC], ids=lambda e: e.get("model", "generic"))
def test_shipped_constants_cover_every_mode_with_known_features(entry):
    assert set(entry["modes"]) == set(MODES)
    for mode, p in entry["modes"].items():
        m = calibration.mode_model(p)  # refuses unknown features and mismatched lengths
        assert 0.0 < m.threshold < 1.0, mode
        assert all(math.isfinite(c) for c in (*m.coef, m.intercept)), mode


def test_the_default_model_has_its_fit_and_any_other_gets_the_generic_mapping_labelled_so():
    e5 = next(f for f in params.FITTED if f["model"] == "intfloat/multilingual-e5-small")
    fitted = calibration.for_model("anything", e5["fingerprint"])  # matched by weights, not by name
    assert fitted.fitted and "multilingual-e5-small" in fitted.label
    other = calibration.for_model("my/own-model", "sha256:0123")
    assert not other.fitted and "not fitted for my/own-model" in other.label
    assert other.modes["hybrid"] == calibration.mode_model(params.GENERIC["modes"]["hybrid"])
    # the generic mapping reads no raw cosine: its scale belongs to the model
    assert all("dense" not in calibration.mode_model(p).features for p in params.GENERIC["modes"].values())


# ------------------------------------------------------------------- searches
@pytest.mark.parametrize("mode", MODES)
def test_scores_are_probabilities_and_the_ranking_is_the_fused_one(sample, mode):
    res = sample.search("coopération dans l'Arctique", SearchOptions(k=10, mode=mode, explain=True))
    assert res.hits and not res.calibrated  # the fake encoder's model has no fit
    assert all(0.0 < h.score < 1.0 for h in res.hits)
    fused = [h.explanation.evidence.fused for h in res.hits if h.explanation]
    assert fused == sorted(fused, reverse=True)  # the order is the mode's ranking score, as before
    cal = calibration.for_model("fake-bow", "sha256:fake")
    for h in res.hits:
        assert h.explanation is not None
        assert h.score == pytest.approx(cal.probability(mode, h.explanation.evidence))


def test_a_hit_scores_the_same_on_every_page_and_the_best_hit_decides_for_all_pages(sample, monkeypatch):
    q = "Arctique ressources terres rares"
    first = sample.search(q, SearchOptions(k=4))
    second = sample.search(q, SearchOptions(k=4, offset=2))
    by_passage = {h.passage_id: h.score for h in first.hits}
    assert [by_passage[h.passage_id] for h in second.hits[:2]] == [h.score for h in first.hits[2:]]
    # a threshold just above the best hit's score flags the query, on page two as well
    best = first.hits[0].score
    strict = calibration.Calibration(
        {
            m: replace(p, threshold=best + 1e-9)
            for m, p in calibration.for_model("fake-bow", "sha256:fake").modes.items()
        },
        fitted=False,
        label="strict",
    )
    monkeypatch.setattr(calibration, "for_model", lambda name, fp: strict)
    assert sample.search(q, SearchOptions(k=4)).no_close_match
    assert sample.search(q, SearchOptions(k=4, offset=2)).no_close_match
    lenient = calibration.Calibration({m: replace(p, threshold=best) for m, p in strict.modes.items()}, False, "x")
    monkeypatch.setattr(calibration, "for_model", lambda name, fp: lenient)
    assert not sample.search(q, SearchOptions(k=4, offset=2)).no_close_match


def test_a_query_without_any_hit_has_no_close_match(sample):
    res = sample.search("xyzzy", SearchOptions(mode="bm25"))
    assert not res.hits and res.no_close_match


def test_json_carries_no_close_match_and_whether_scores_are_calibrated(sample):
    doc = sample.search("coopération dans l'Arctique", SearchOptions(k=2)).to_json()
    assert doc["no_close_match"] in (True, False) and doc["calibrated"] is False
    assert "explanation" not in doc["hits"][0]  # only when asked for
    assert {"query", "mode", "truncated", "took_ms", "hits"} <= set(doc)
    json.dumps(doc)


def test_text_output_says_when_nothing_is_close_and_when_scores_are_not_calibrated(sample, capsys):
    res = sample.search("coopération dans l'Arctique", SearchOptions(k=2))
    print_hits(replace(res, no_close_match=True, calibrated=False))
    out = capsys.readouterr().out
    assert "No close match in this collection; the nearest passages are below." in out
    assert "not calibrated" in out
    print_hits(replace(res, no_close_match=False, calibrated=True))
    out = capsys.readouterr().out
    assert "No close match" not in out and "not calibrated" not in out
    print_hits(SearchResult("xyzzy", [], 1.0, no_close_match=True))
    assert "no results" in capsys.readouterr().out


def test_calibration_reads_what_fusion_kept():
    fused = Fused(
        [(7, 1.0), (9, 0.5)],
        dense={7: 0.9, 9: 0.8},
        lexical={7: 4.0, 9: 0.0},
        lang_weights={7: 1.0, 9: 0.0},
        coverage=0.5,
        dense_top=0.9,
        dense_background=0.7,
        dense_spread=0.1,
        bm25_top=4.0,
    )
    e = fused.evidence(9, 0.5, matched=0.25)
    assert (e.dense, e.bm25, e.lang_weight, e.coverage, e.matched, e.fused) == (0.8, 0.0, 0.0, 0.5, 0.25, 0.5)
    assert (e.dense_top, e.dense_mean, e.dense_spread, e.bm25_top) == (0.9, 0.7, 0.1, 4.0)
    assert fused.dense_rank(9) == 2 and fused.bm25_rank(7) == 1 and fused.bm25_rank(9) is None
    dense_only = Fused([(7, 0.9)], dense={7: 0.9}, dense_top=0.9, dense_background=0.9, dense_spread=0.0)
    e = dense_only.evidence(7, 0.9)
    assert e.bm25 is None and e.coverage is None and e.lang_weight is None and e.matched is None


def test_the_sentence_background_is_that_of_the_best_dense_candidates():
    from indexer.fusion import BACKGROUND
    from indexer.search import _sentence_background

    n = BACKGROUND + 20
    dense = {pid: 1.0 - pid / 1000 for pid in range(n)}  # passage 0 most similar
    sentence = {pid: 0.5 + pid / 1000 for pid in range(n)}  # the least similar have the best sentences
    top, mean, spread = _sentence_background(Fused([], dense=dense, sentence=sentence))
    head = [sentence[pid] for pid in range(BACKGROUND)]  # the last 20 by passage cosine are not the background
    assert top == pytest.approx(max(head)) and mean == pytest.approx(sum(head) / BACKGROUND)
    assert spread == pytest.approx(float(np.std(head)))
    assert _sentence_background(Fused([], dense=dense)) == (None, None, None)  # no sentence vectors stored


@pytest.mark.parametrize("mode", MODES)
def test_each_hit_knows_the_best_other_article_and_its_ranks(sample, mode):
    res = sample.search("Arctic cooperation", SearchOptions(k=5, mode=mode, explain=True, highlight=False))
    hits = [h for h in res.hits if h.explanation]
    assert len(hits) >= 3
    e = [h.explanation.evidence for h in hits]  # type: ignore[union-attr]
    assert e[0].runner_up == pytest.approx(max(x.fused for x in e[1:]))  # one passage per article
    assert all(x.runner_up == pytest.approx(e[0].fused) for x in e[1:])
    for h, x in zip(hits, e):
        assert (x.dense_rank, x.bm25_rank) == (h.explanation.dense_rank, h.explanation.bm25_rank)  # type: ignore[union-attr]
    if mode == "bm25":
        assert all(x.dense_rank is None and x.sentence_top is None for x in e)
    else:
        assert all(x.sentence_mean is not None and x.sentence_top is not None for x in e)
        assert all(x.sentence_mean <= x.sentence_top for x in e)  # type: ignore[operator]


# --------------------------------------------------------------- the real model
@pytest.mark.slow
def test_the_issue_example_nonsense_is_flagged_and_a_real_question_is_not(tmp_path):
    index = tmp_path / "index"
    build([SEEDS, ARTICLES], index)
    s = Searcher(index)
    nonsense = s.search("xyzzy qwerty")
    assert nonsense.calibrated and nonsense.no_close_match
    assert nonsense.hits and nonsense.hits[0].score < 0.5  # no longer "score 1.00"
    real = s.search("coopération dans l'Arctique")
    assert not real.no_close_match and real.hits[0].score > nonsense.hits[0].score
