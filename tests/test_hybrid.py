"""Hybrid retrieval: analysis, fusion, filters inside the search, duplicates, highlights, eval metrics."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from indexer import BuildSettings, ChunkSettings, Filters, Searcher, SearchOptions, build
from indexer.analysis import analyze, analyze_query
from indexer.cli import main
from indexer.errors import QueryError
from indexer.evaluate import score_rankings
from indexer.fusion import convex, language_weight

from .conftest import SEEDS, write

SEED_ID = "000_8830d0ea2df0fe55.txt"


# ------------------------------------------------------------------ analysis
@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        ("en", "The Arctic shipping routes", ["arctic", "ship", "rout"]),
        ("fr", "Les routes maritimes de l'Arctique", ["rout", "maritim", "arctiqu"]),
        ("de", "Die Schifffahrtsrouten der Arktis", ["schifffahrtsrout", "arktis"]),
        ("es", "Las rutas marítimas del Ártico", ["rut", "maritim", "artic"]),
        ("it", "Le rotte marittime dell'Artico", ["rott", "marittim", "artic"]),
        ("ru", "Северные морские пути", ["северн", "морск", "пут"]),
    ],
)
def test_stemming_and_stop_words_per_language(lang, text, expected):
    assert analyze(text, lang) == expected


def test_accents_fold_and_scripts_without_spaces_get_bigrams():
    assert analyze("Éléphant", "fr") == analyze("elephant", "fr")
    assert analyze("北极航道", "zh") == ["北极", "极航", "航道"]
    assert analyze("1915 année", "fr")[0] == "1915"


def test_query_is_analysed_under_each_candidate_language_without_their_stop_words():
    terms = analyze_query("Quién ofreció cooperación a Washington", ["es", "en"])
    assert "washington" in terms and "quien" not in terms and "a" not in terms


# ------------------------------------------------------------------- fusion
def test_language_weight_follows_query_language_and_script():
    english = {"en": 0.9, "de": 0.01}
    assert language_weight(english, "en", {"Latin"}) == pytest.approx(1.0)
    assert language_weight(english, "de", {"Latin"}) < 0.15
    flat = {"cs": 0.04, "fi": 0.037, "fr": 0.01}  # a bare name: unsure of the language
    assert language_weight(flat, "fr", {"Latin"}) > 0.95
    assert language_weight(flat, "zh", {"Latin"}) == 0.0  # Chinese script cannot match Latin words
    assert language_weight(english, None, {"Latin"}) == 1.0


def test_convex_fusion_judges_other_language_passages_on_dense_alone():
    dense = {1: 0.90, 2: 0.85, 3: 0.70}
    lexical = {1: 0.0, 2: 8.0, 3: 0.0}
    # passage 2 matches the words but is in another language (weight 0): dense order stands
    assert [p for p, _ in convex(dense, lexical, {1: 0.0, 2: 0.0, 3: 0.0})] == [1, 2, 3]
    # same language (weight 1): its exact match lifts it above the better dense passage
    assert next(p for p, _ in convex(dense, lexical, {1: 1.0, 2: 1.0, 3: 1.0})) == 2


# ------------------------------------------------------------- eval metrics
def test_metrics_against_hand_computed_values():
    rankings = [["a", "b", "c"], ["x", "y", "z", "w"], ["m", "n"]]
    relevant = [frozenset({"a"}), frozenset({"z", "q"}), frozenset({"k"})]
    m = score_rankings(rankings, relevant)
    assert m.r1 == pytest.approx((1 + 0 + 0) / 3)
    assert m.r5 == pytest.approx((1 + 0.5 + 0) / 3)
    assert m.r10 == pytest.approx((1 + 0.5 + 0) / 3)
    assert m.mrr10 == pytest.approx((1 + 1 / 3 + 0) / 3)
    # query 2: one of two relevant at rank 3 -> DCG 1/log2(4) = 0.5, IDCG 1 + 1/log2(3)
    assert m.ndcg10 == pytest.approx((1 + 0.5 / (1 + 1 / 1.584962500721156) + 0) / 3)


def test_eval_command_compare(tmp_path, fake_encoder, fake_model, monkeypatch):
    src = tmp_path / "src"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    write(src / "ice.txt", "Ice\nArctic sea ice melts every summer.")
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=fake_model)
    qfile = write(tmp_path / "q.jsonl", json.dumps({"query": "arctic sea ice", "relevant": ["ice.txt"]}) + "\n")
    monkeypatch.setattr("indexer.search.Embedder", lambda *a, **k: fake_encoder)
    monkeypatch.setattr("indexer.search.resolve", lambda name: fake_model)
    res = CliRunner().invoke(main, ["eval", str(qfile), "--index", str(index), "--compare", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == {"dense", "bm25", "hybrid"}
    assert out["bm25"]["r1"] == 1.0 and out["hybrid"]["mrr10"] == 1.0
    bad = write(tmp_path / "bad.jsonl", '{"query": "x"}\n')
    res = CliRunner().invoke(main, ["eval", str(bad), "--index", str(index)])
    assert res.exit_code == 2 and "relevant" in res.stderr


# ---------------------------------------------------------- filters inside
@pytest.fixture
def energy_index(tmp_path, fake_encoder, fake_model):
    rows = []
    for i in range(60):
        # 5 German among 60 articles; the English ones match the query better
        german = i % 12 == 0
        lang = "de" if german else "en"
        words = (
            "Gazprom: die Energiepreise steigen im Winter"
            if german
            else "Gazprom energy prices rise again, energy prices"
        )
        rows.append(
            {
                "id": f"a{i:02d}",
                "title": f"Energie {i}" if german else f"Energy {i}",
                "lang": lang,
                "source": "Nord" if i % 2 else "Sud",
                "date": f"2024-{1 + i % 12:02d}-15",
                "text": f"{words} {i}.",
            }
        )
    src = tmp_path / "src"
    write(src / "all.jsonl", "\n".join(json.dumps(r) for r in rows))
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=fake_model)
    return Searcher(index, encoder=fake_encoder)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_filter_inside_search_returns_k_when_k_match(energy_index, mode):
    unfiltered = energy_index.search("Gazprom energy prices rise", SearchOptions(k=5, mode=mode)).hits
    assert not any(h.lang == "de" for h in unfiltered)  # post-filtering these would leave nothing
    hits = energy_index.search(
        "Gazprom energy prices rise", SearchOptions(k=5, mode=mode, filters=Filters(langs=("de",)))
    ).hits
    assert sorted(h.article_id for h in hits) == ["a00", "a12", "a24", "a36", "a48"]


def test_source_and_date_filters(energy_index):
    f = Filters(sources=("Nord",), date_from="2024-03", date_to="2024-04-30")
    hits = energy_index.search("energy prices", SearchOptions(k=50, filters=f)).hits
    assert hits and all(h.source == "Nord" and "2024-03-01" <= h.date <= "2024-04-30" for h in hits)
    expected = {f"a{i:02d}" for i in range(60) if i % 2 and 1 + i % 12 in (3, 4)}
    assert {h.article_id for h in hits} == expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (Filters(date_from="2024-13-45"), "invalid date"),
        (Filters(date_to="yesterday"), "invalid date"),
        (Filters(date_from="2025", date_to="2024"), "after"),
        (Filters(langs=("xx-zz-1",)), "no articles in language"),
        (Filters(langs=("Français!",)), "invalid language"),
        (Filters(sources=("Nowhere",)), "no articles from source"),
    ],
)
def test_invalid_filters_give_clear_errors(energy_index, filters, message):
    with pytest.raises(QueryError, match=message):
        energy_index.search("energy", SearchOptions(filters=filters))


# --------------------------------------------------------------- duplicates
def test_syndicated_copies_collapse_into_one_hit(tmp_path, fake_encoder, fake_model):
    story = (
        "The port authority announced on Tuesday that container traffic through the northern terminal "
        "rose by twelve percent in the first quarter, driven by new feeder services and longer opening hours. "
        "Dock workers welcomed the figures but asked for more staff during the night shifts."
    )
    src = tmp_path / "src"
    rows = [
        {"id": "wire-1", "title": "Port traffic up", "source": "Wire", "text": story},
        {"id": "paper-2", "title": "Port traffic rises", "source": "Daily", "text": story + " (With agencies.)"},
        {"id": "paper-3", "title": "Harbour busier", "source": "Gazette", "text": "Editor's note. " + story},
    ]
    rows += [
        {"id": f"other-{i}", "title": f"Port news {i}", "text": f"Container traffic at port {i} fell sharply. " * 3}
        for i in range(5)
    ]
    write(src / "news.jsonl", "\n".join(json.dumps(r) for r in rows))
    index = tmp_path / "index"
    rep = build([src], index, encoder=fake_encoder, model=fake_model)
    assert rep.duplicate_clusters == 1
    hits = Searcher(index, encoder=fake_encoder).search("container traffic northern terminal", SearchOptions(k=5)).hits
    copies = {"wire-1", "paper-2", "paper-3"}
    shown = [h for h in hits if h.article_id in copies]
    assert len(shown) == 1
    assert set(shown[0].duplicates) == copies - {shown[0].article_id}
    assert len(hits) == 5  # the freed places go to other articles


def test_duplicates_follow_incremental_updates(tmp_path, fake_encoder, fake_model):
    story = "A long identical wire story about the harbour, the ships and the weather in the north. " * 4
    src = tmp_path / "src"
    write(src / "a.json", json.dumps({"id": "a", "text": story}))
    write(src / "b.json", json.dumps({"id": "b", "text": story}))
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=fake_model)
    s = Searcher(index, encoder=fake_encoder)
    assert s.search("wire story harbour").hits[0].duplicates
    write(src / "b.json", json.dumps({"id": "b", "text": "A different story entirely, about bread and bakers."}))
    build([src], index, encoder=fake_encoder, model=fake_model)
    assert s.search("wire story harbour").hits[0].duplicates == []


# --------------------------------------------------------------- highlights
@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "sentence_start"),
    [
        ("Who offered Washington cooperation on rare earths?", "Le président russe Vladimir Poutine"),
        ("What did the Kremlin spokesman say?", "Le porte-parole du Kremlin"),
        ("Wie sieht Washington die Zusammenarbeit mit Moskau in der Arktis?", "Selon une source citée par Bloomberg"),
        ("coopération dans le secteur énergétique", "Selon Bloomberg, la coopération dans le secteur"),
    ],
)
def test_highlight_points_at_the_answering_sentence(seed_searcher, query, sentence_start):
    hit = seed_searcher.search(query, SearchOptions(k=1, per_article=3)).hits[0]
    article = seed_searcher.article(hit.article_id)
    assert hit.article_id == SEED_ID and article is not None
    assert hit.highlights, "a hit must say which sentence answers"
    starts = [article.text[s:e] for s, e in hit.highlights]
    assert any(t.startswith(sentence_start) for t in starts), starts
    for s, e in hit.highlights:
        assert hit.start <= s < e <= hit.end


@pytest.fixture(scope="module")
def seed_searcher(tmp_path_factory):
    index = tmp_path_factory.mktemp("seed") / "index"
    build([SEEDS], index, BuildSettings(chunk=ChunkSettings(max_tokens=120)))
    return Searcher(index)
