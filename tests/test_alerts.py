"""Saved searches: each build runs them against what it added or changed, and records what scores high enough.

The library with the fake encoder: what is found (exactly the new matching articles, with the
scores a search of the whole version gives them), what is not (untouched articles, the articles a
rebuild only re-embedded), what "new" means, errors, and builds that run beside the CLI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from indexer import BuildSettings, Filters, SearchOptions, alerts, build, percolate
from indexer.alert_store import AlertStore
from indexer.errors import AlertError
from indexer.index import IndexDir
from indexer.models import ResolvedModel
from indexer.percolate_stats import CorpusStats
from indexer.search import Searcher

from .conftest import ARTICLES, FAKE_MODEL, ROOT, FakeEncoder, write
from .reliability_helpers import QUERIES, change_corpus, news_corpus

WIND = "offshore wind farm Norway North Sea"
WIND_ARTICLE = (
    "# Offshore wind farm in the North Sea\n\nNorway approves a new offshore wind farm in the North Sea. "
    "The wind turbines will send power to Germany through a new cable.\n"
)
BAKERY = "# Bakers on strike\n\nThe bakers of Lyon close their shops for a week over flour prices.\n"


def make(tmp_path: Path, encoder: FakeEncoder, *, articles: bool = True) -> tuple[Path, Path]:
    """Sources (the sample articles) and their index."""
    src = tmp_path / "src"
    src.mkdir()
    if articles:
        for p in ARTICLES.iterdir():
            shutil.copy(p, src / p.name)
    index = tmp_path / "index"
    build([src], index, encoder=encoder, model=FAKE_MODEL)
    return src, index


def rebuild(src: Path, index: Path, encoder: FakeEncoder, **settings):
    return build([src], index, BuildSettings(**settings), encoder=encoder, model=FAKE_MODEL)


def everything(index: Path, name: str | None = None) -> list[alerts.AlertMatch]:
    return [m for batch in alerts.new_matches(index, name, since=alerts.Since(version=0)) for m in batch.matches]


def full_search_scores(index: Path, encoder: FakeEncoder, s, among: set[int]) -> dict[int, float]:
    """What a search of the whole version scores the new passages' articles (the percolator's reference)."""
    searcher = Searcher(index, encoder=encoder)
    found = searcher.candidates(searcher.snapshot(), s.query, percolate.options(s), among=among)
    return {c.passage_id: c.score for c in found.scored}


# ------------------------------------------------------------------ what is found
def test_a_build_records_exactly_the_new_articles_that_match(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    saved = alerts.add(index, "wind", WIND, encoder=fake_encoder)
    assert saved.created_version == IndexDir(index).manifest().version
    write(src / "new-wind.md", WIND_ARTICLE)
    write(src / "new-bakery.md", BAKERY)
    report = rebuild(src, index, fake_encoder)
    assert report.added == 2 and report.alerts is not None and not report.warnings
    assert report.alerts.searches == 1 and report.alerts.passages == 2 and report.alerts.matches == 1
    (batch,) = alerts.new_matches(index)
    assert [m.article_id for m in batch.matches] == ["new-wind.md"]
    m = batch.matches[0]
    assert m.version == report.version and not m.updated and "Norway approves" in m.passage
    assert m.title == "Offshore wind farm in the North Sea" and m.score >= percolate.threshold(
        saved, IndexDir(index).manifest()
    )
    # the older article about Norwegian offshore wind was in the index before the search was saved
    assert "de-offshore-wind-norwegen.md" not in {x.article_id for x in everything(index)}


def test_percolation_gives_the_scores_a_search_of_the_whole_version_gives(tmp_path, fake_encoder):
    src = tmp_path / "src"
    news_corpus(src, 120, seed=3)
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=FAKE_MODEL)
    searches = [
        alerts.add(index, f"q{i}", q, mode=mode, min_score=0.0, encoder=fake_encoder)
        for i, (q, mode) in enumerate(
            zip(QUERIES, ["hybrid", "dense", "bm25", "hybrid", "hybrid", "dense", "bm25", "hybrid"])
        )
    ]
    searches.append(alerts.add(index, "fr only", QUERIES[2], filters=Filters(langs=("fr",)), min_score=0.0,
                               encoder=fake_encoder))  # fmt: skip
    compared = shown = 0
    for step, (add, modify, delete) in enumerate([(6, 3, 4), (4, 0, 2), (5, 2, 0)]):
        change_corpus(src, seed=10 + step, add=add, modify=modify, delete=delete)
        before = {m.id for m in everything(index)}
        report = rebuild(src, index, fake_encoder)
        assert report.alerts is not None and report.alerts.error == "" and not report.alerts.full
        snap = IndexDir(index).open()
        new = set(range(*snap.segments[-1].info.ids))
        snap.close()
        assert report.alerts.passages == len(new)
        found = [m for m in everything(index) if m.id not in before]
        assert found and all(m.passage_id in new for m in found)
        for s in searches:
            mine = {m.passage_id: m.score for m in found if m.alert == s.name}
            reference = full_search_scores(index, fake_encoder, s, new)
            assert mine.keys() == reference.keys(), s.name
            for pid, score in mine.items():
                assert score == pytest.approx(reference[pid], abs=1e-5), (s.name, pid)
            compared += len(mine)
            # and a search's own first page: the new articles on it score there what they were recorded with
            hits = Searcher(index, encoder=fake_encoder).search(s.query, percolate.options(s)).hits
            on_page = {h.passage_id: h.score for h in hits if h.passage_id in mine}
            assert all(on_page[p] == pytest.approx(mine[p], abs=1e-5) for p in on_page)
            shown += len(on_page)
    assert compared > 50 and shown > 10


def test_a_search_no_new_passage_can_reach_is_screened_out_and_one_it_can_reach_is_ranked(tmp_path, fake_encoder):
    src = tmp_path / "src"
    news_corpus(src, 300, seed=8)
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=FAKE_MODEL)
    # BM25 alone, so that what reaches it is plain (the fake encoder's cosines are noise)
    s = alerts.add(index, "rail", "railway strike over wages", mode="bm25", min_score=0.0, encoder=fake_encoder)
    write(src / "zz-bakery.txt", "Boulangeries\nLes boulangeries de Lyon ferment pendant une semaine.\n")
    report = rebuild(src, index, fake_encoder)
    assert report.alerts is not None and report.alerts.passages == 1
    assert report.alerts.ranked == 0 and report.alerts.matches == 0  # screened: neither side's first 100
    snap = IndexDir(index).open()
    new = set(range(*snap.segments[-1].info.ids))
    snap.close()
    assert full_search_scores(index, fake_encoder, s, new) == {}  # a search of the whole version agrees
    write(src / "zz-rail.txt", "Railway strike\n" + "The railway strike over wages goes on for a week. " * 4)
    report = rebuild(src, index, fake_encoder)
    assert report.alerts is not None and report.alerts.ranked == 1 and report.alerts.matches == 1
    (m,) = everything(index)
    snap = IndexDir(index).open()
    new = set(range(*snap.segments[-1].info.ids))
    snap.close()
    assert m.article_id == "zz-rail.txt" and m.score == pytest.approx(
        full_search_scores(index, fake_encoder, s, new)[m.passage_id], abs=1e-5
    )


def test_the_statistics_carried_forward_are_those_of_the_version(tmp_path, fake_encoder):
    src = tmp_path / "src"
    news_corpus(src, 60, seed=4)
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=FAKE_MODEL)
    alerts.add(index, "a", QUERIES[0], encoder=fake_encoder)
    for step in range(3):
        change_corpus(src, seed=20 + step, add=3, modify=2, delete=2)
        rebuild(src, index, fake_encoder)
    store = AlertStore(IndexDir(index).layout.alerts)
    key, data = store.stats()
    store.close()
    kept = CorpusStats.from_json(data)
    snap = IndexDir(index).open()
    exact = CorpusStats.exact(snap, kept.df)
    assert key == percolate.corpus_key(snap)
    snap.close()
    assert kept == exact and kept.df and any(v > 0 for v in kept.df.values())


def test_an_update_percolates_without_reading_the_whole_version(tmp_path, fake_encoder, monkeypatch):
    src = tmp_path / "src"
    news_corpus(src, 60, seed=5)
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=FAKE_MODEL)
    alerts.add(index, "a", QUERIES[0], encoder=fake_encoder)
    alerts.add(index, "b", QUERIES[1], mode="dense", encoder=fake_encoder)
    change_corpus(src, seed=30, add=2, modify=1, delete=1)
    rebuild(src, index, fake_encoder)  # the first run computes the statistics once
    whole: list[str] = []
    from indexer import backends, columns

    for owner, name in [
        (CorpusStats, "exact"),
        (percolate._Run, "_whole"),
        (backends.FaissDense, "search"),
        (backends.LocalLexical, "scores"),
        (columns.Columns, "merge"),
    ]:
        spy(monkeypatch, owner, name, whole)
    for step in range(3):
        change_corpus(src, seed=31 + step, add=2, modify=1, delete=1)
        report = rebuild(src, index, fake_encoder)
        assert report.alerts is not None and report.alerts.passages > 0 and not report.alerts.error
    assert whole == []  # no search of the whole version, no statistics or columns of all of it
    Searcher(index, encoder=fake_encoder).search(
        QUERIES[0], SearchOptions(highlight=False, filters=Filters(langs=("en",)))
    )
    assert {"FaissDense.search", "LocalLexical.scores", "Columns.merge"} <= set(whole)  # what a search reads


def spy(monkeypatch, owner, name: str, calls: list[str]) -> None:
    """Record each call of ``owner.name`` in ``calls`` (methods and classmethods alike)."""
    original = getattr(owner, name)
    is_class = isinstance(owner.__dict__[name], classmethod)

    def wrapper(*args, **kwargs):
        calls.append(f"{owner.__name__}.{name}")
        return original(*args[1:], **kwargs) if is_class else original(*args, **kwargs)

    monkeypatch.setattr(owner, name, classmethod(wrapper) if is_class else wrapper)


def test_untouched_articles_are_never_reported(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "greenland", "Greenland rare earth mining", min_score=0.0, encoder=fake_encoder)
    (src / "en-greenland-rare-earths.md").unlink()  # deletions only
    report = rebuild(src, index, fake_encoder)
    assert report.published and report.alerts is not None and report.alerts.passages == 0
    assert everything(index) == []
    report = rebuild(src, index, fake_encoder)  # nothing changed: nothing published, nothing run
    assert not report.published and report.alerts is None
    write(src / "new-bakery.md", BAKERY)
    rebuild(src, index, fake_encoder)
    assert {m.article_id for m in everything(index)} <= {"new-bakery.md"}


def test_a_changed_article_is_reported_as_changed(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    target = src / "de-offshore-wind-norwegen.md"
    target.write_text(target.read_text(encoding="utf-8") + "\n" + WIND_ARTICLE, encoding="utf-8")
    report = rebuild(src, index, fake_encoder)
    assert report.updated == 1
    (m,) = everything(index)
    assert m.article_id == "de-offshore-wind-norwegen.md" and m.updated


# --------------------------------------------------------------- rebuilds
def test_a_full_rebuild_reports_only_what_really_changed(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, min_score=0.0, encoder=fake_encoder)
    write(src / "new-wind.md", WIND_ARTICLE)
    rebuild(src, index, fake_encoder)
    first = everything(index)
    assert first
    report = rebuild(src, index, fake_encoder, full=True)  # everything re-embedded, nothing new
    assert report.full and report.alerts is not None and report.alerts.full and report.alerts.passages == 0
    assert everything(index) == first
    write(src / "new-bakery.md", BAKERY.replace("Lyon", "Bergen, where wind farms"))
    report = rebuild(src, index, fake_encoder, full=True)
    assert report.alerts is not None and report.alerts.passages == 1
    assert {m.article_id for m in everything(index)} - {m.article_id for m in first} <= {"new-bakery.md"}
    # the frames were renumbered with the rebuild: an update after it percolates against them again
    write(src / "more-wind.md", WIND_ARTICLE.replace("Germany", "Denmark"))
    report = rebuild(src, index, fake_encoder)
    assert (
        report.alerts is not None
        and not report.alerts.full
        and "more-wind.md" in {m.article_id for m in everything(index)}
    )


class OtherModel(FakeEncoder):
    dimension = 48


def test_a_model_change_embeds_the_query_again_and_floods_no_one(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    other = ResolvedModel(name="fake-bow-48", path=ROOT, origin="local", fingerprint="sha256:fake48")
    encoder = OtherModel()
    write(src / "new-wind.md", WIND_ARTICLE)
    report = build([src], index, BuildSettings(model="fake-bow-48"), encoder=encoder, model=other)
    assert report.full and "model changed" in report.reason and report.alerts is not None
    assert report.alerts.passages == 1  # the new article's passage: the others kept their content
    assert [m.article_id for m in everything(index)] == ["new-wind.md"]
    store = AlertStore(IndexDir(index).layout.alerts)
    (state,) = store.states().values()
    store.close()
    assert state.fingerprint == "sha256:fake48" and state.vector is not None and state.vector.shape == (48,)


# ------------------------------------------------------------ what "new" means
def test_new_means_since_the_last_look_or_since_a_version_or_date(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    alerts.add(index, "bakers", "bakers strike over flour prices", encoder=fake_encoder)
    write(src / "new-wind.md", WIND_ARTICLE)
    first = rebuild(src, index, fake_encoder).version
    assert [len(b.matches) for b in alerts.new_matches(index, "wind")] == [1]
    assert [len(b.matches) for b in alerts.new_matches(index, "wind")] == [0]  # seen
    write(src / "new-bakery.md", BAKERY)
    write(src / "more-wind.md", WIND_ARTICLE.replace("Germany", "Denmark"))
    second = rebuild(src, index, fake_encoder).version
    by_name = {b.search.name: [m.article_id for m in b.matches] for b in alerts.new_matches(index)}
    assert by_name == {"bakers": ["new-bakery.md"], "wind": ["more-wind.md"]}
    assert all(not b.matches for b in alerts.new_matches(index))
    # --since looks back without moving the mark
    since = alerts.Since.parse(first.split("-", 1)[0])
    assert [m.article_id for m in everything_since(index, "wind", since)] == ["more-wind.md"]
    assert [m.version for m in everything_since(index, "wind", alerts.Since.parse(first))] == [second]
    assert len(everything_since(index, "wind", alerts.Since.parse("1"))) == 2
    assert len(everything_since(index, "wind", alerts.Since.parse("2000-01-01"))) == 2
    assert everything_since(index, "wind", alerts.Since.parse("2999-01-01T10:00")) == []
    assert all(not b.matches for b in alerts.new_matches(index))


def everything_since(index, name, since):
    (batch,) = alerts.new_matches(index, name, since=since)
    return batch.matches


@pytest.mark.parametrize("bad", ["yesterday", "14-x", "2026-13-01", ""])
def test_a_bad_since_is_refused(bad):
    with pytest.raises(AlertError, match="neither a version"):
        alerts.Since.parse(bad)


def test_the_page_counts_matches_after_its_own_mark(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    assert alerts.overview(index, None) == alerts.Overview([], 0)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    write(src / "new-wind.md", WIND_ARTICLE)
    rebuild(src, index, fake_encoder)
    first = alerts.overview(index, None)
    assert [(s.name, n) for s, n in first.searches] == [("wind", 1)] and first.latest > 0
    assert [n for _, n in alerts.overview(index, first.latest).searches] == [0]
    alerts.new_matches(index)  # the CLI's mark is the CLI's: the page keeps counting from its own
    assert [n for _, n in alerts.overview(index, 0).searches] == [1]
