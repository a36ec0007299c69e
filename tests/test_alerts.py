"""Saved searches: each build runs them against what it added or changed, and records what scores high enough.

The library with the fake encoder: what is found (exactly the new matching articles, with the
scores a search of the whole version gives them), what is not (untouched articles, the articles a
rebuild only re-embedded), what "new" means, errors, and builds that run beside the CLI.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import BuildSettings, Filters, SearchOptions, alerts, build, percolate
from indexer.alert_store import AlertStore, FrameState, NewMatch, RunRecord
from indexer.cli import main
from indexer.errors import AlertError, IndexNotFoundError, QueryError
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
    compared = 0
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
    assert compared > 50


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
        (percolate._Run, "_refreshed"),
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


# --------------------------------------------------------------- errors
def test_add_list_rm_and_their_errors(tmp_path, fake_encoder):
    with pytest.raises(IndexNotFoundError):
        alerts.add(tmp_path / "none", "x", "anything", encoder=fake_encoder)
    _, index = make(tmp_path, fake_encoder)
    assert alerts.saved(index) == []
    with pytest.raises(AlertError, match="no saved searches"):
        alerts.remove(index, "x")
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    with pytest.raises(AlertError, match="saved already"):
        alerts.add(index, " wind ", "another query", encoder=fake_encoder)
    with pytest.raises(AlertError, match="needs a name"):
        alerts.add(index, "  ", WIND, encoder=fake_encoder)
    with pytest.raises(AlertError, match="not a score"):
        alerts.add(index, "w2", WIND, min_score=1.5, encoder=fake_encoder)
    with pytest.raises(AlertError, match="unknown mode"):
        alerts.add(index, "w2", WIND, mode="fuzzy", encoder=fake_encoder)
    with pytest.raises(QueryError, match="empty query"):
        alerts.add(index, "w2", "  ", encoder=fake_encoder)
    with pytest.raises(QueryError, match="invalid language"):
        alerts.add(index, "w2", WIND, filters=Filters(langs=("klingon",)), encoder=fake_encoder)
    with pytest.raises(AlertError, match="saved: wind"):
        alerts.remove(index, "nope")
    with pytest.raises(AlertError, match="saved: wind"):
        alerts.new_matches(index, "nope")
    (only,) = alerts.saved(index)
    assert only.search.name == "wind" and only.default_threshold and 0 < only.threshold < 1
    assert alerts.remove(index, "wind") == 0
    assert alerts.saved(index) == []


def test_the_cli_saves_lists_shows_and_removes(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(main, ["alerts", *args, "--index", str(index)])

    # bm25 needs no model: the fake one cannot be loaded by name
    res = cli("add", "bakers", "bakers strike flour prices", "--mode", "bm25", "--lang", "fr", "--min-score", "0.2")
    assert res.exit_code == 0, res.output
    assert "Saved 'bakers'" in res.output and "bm25, lang fr, score ≥ 0.2" in res.output
    write(src / "fr-new-bakery.md", "---\nlang: fr\n---\n# Grève des boulangers\n\nLes boulangers font grève: "
          "les prix de la farine montent. Bakers strike over flour prices.\n")  # fmt: skip
    rebuild(src, index, fake_encoder)
    res = cli("list")
    assert res.exit_code == 0 and "bakers: 'bakers strike flour prices'" in res.output and "1 not seen" in res.output
    res = cli("new", "--json")
    (line,) = res.output.splitlines()
    data = json.loads(line)
    assert data["alert"] == "bakers" and [m["article_id"] for m in data["matches"]] == ["fr-new-bakery.md"]
    assert "0 new since your last look" in cli("new").output
    assert "fr-new-bakery.md, added in version" in cli("new", "bakers", "--since", "1").output
    for args, needle in [
        (("add", "bakers", "again", "--mode", "bm25"), "saved already"),
        (("rm", "nope"), "no saved search named 'nope'"),
        (("new", "nope"), "no saved search named 'nope'"),
        (("new", "--since", "soon"), "neither a version"),
        (("add", "x", "y", "--mode", "bm25", "--date-from", "2025-02-30"), "invalid date"),
    ]:
        res = cli(*args)
        assert res.exit_code == 2 and res.stderr.startswith("error: ") and needle in res.stderr, (args, res.output)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    res = cli("add", "x", "y", "--min-score", "2")
    assert res.exit_code == 2 and "--min-score" in res.output
    assert "Removed 'bakers' and its 1 match(es)" in cli("rm", "bakers").output
    assert "No saved searches" in cli("list").output
    res = runner.invoke(main, ["alerts", "list", "--index", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no index at" in res.stderr


# ---------------------------------------------------- failures and concurrency
def test_a_failure_in_the_saved_searches_never_fails_the_build(tmp_path, fake_encoder, monkeypatch):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)

    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(percolate._Run, "execute", broken)
    write(src / "new-wind.md", WIND_ARTICLE)
    report = rebuild(src, index, fake_encoder)
    assert report.published and report.added == 1 and IndexDir(index).manifest().version == report.version
    assert report.alerts is not None and report.alerts.error == "disk on fire"
    assert any("saved searches could not be run" in w and "disk on fire" in w for w in report.warnings)
    monkeypatch.undo()
    IndexDir(index).layout.alerts.write_bytes(b"not a database" * 100)  # a damaged file: the same
    write(src / "more-wind.md", WIND_ARTICLE)
    report = rebuild(src, index, fake_encoder)
    assert report.published and any("could not be run" in w for w in report.warnings)


def test_matches_for_a_search_removed_during_the_build_are_dropped(tmp_path, fake_encoder):
    _, index = make(tmp_path, fake_encoder)
    saved = alerts.add(index, "wind", WIND, encoder=fake_encoder)
    store = AlertStore(IndexDir(index).layout.alerts)
    alerts.remove(index, "wind")
    match = NewMatch(saved.id, "a", "t", 1, "p", 0.9, None, None, None, None, False)
    run = RunRecord(
        "000009-x", "2026-01-01T00:00:00+00:00", [match], {saved.id: FrameState()}, "k", {}, 1, 1, 0.1, False
    )
    assert store.record(run) == 0
    assert store.con.execute("SELECT count(*) FROM matches").fetchone()[0] == 0
    store.close()


def test_builds_and_the_cli_can_run_at_the_same_time(tmp_path, fake_encoder):
    src = tmp_path / "src"
    news_corpus(src, 80, seed=6)
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=FAKE_MODEL)
    alerts.add(index, "kept", QUERIES[0], min_score=0.0, encoder=fake_encoder)
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn() -> None:
        i = 0
        try:
            while not stop.is_set():
                alerts.add(index, f"tmp{i}", QUERIES[i % len(QUERIES)], min_score=0.0, encoder=FakeEncoder())
                alerts.new_matches(index)
                alerts.remove(index, f"tmp{i}")
                i += 1
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for step in range(4):
            change_corpus(src, seed=40 + step, add=3, modify=1, delete=1)
            report = rebuild(src, index, fake_encoder)
            assert report.published and not report.warnings, report.warnings
    finally:
        stop.set()
        worker.join()
    assert errors == []
    con = sqlite3.connect(IndexDir(index).layout.alerts)
    orphans = con.execute("SELECT count(*) FROM matches WHERE search NOT IN (SELECT id FROM searches)").fetchone()
    con.close()
    assert orphans == (0,)
    assert [s.search.name for s in alerts.saved(index)] == ["kept"] and everything(index, "kept")


def test_saved_searches_outlive_merges_and_garbage_collection(tmp_path, fake_encoder):
    src = tmp_path / "src"
    news_corpus(src, 30, seed=7)
    index = tmp_path / "index"
    build([src], index, encoder=fake_encoder, model=FAKE_MODEL)
    alerts.add(index, "a", QUERIES[0], min_score=0.0, encoder=fake_encoder)
    merged = 0
    for step in range(12):  # ten segments of one tier are merged into one
        change_corpus(src, seed=50 + step, add=2, modify=0, delete=0)
        report = rebuild(src, index, fake_encoder)
        merged += report.merge.merges if report.merge is not None else 0
        assert report.alerts is not None and report.alerts.passages > 0 and not report.alerts.error
    assert merged >= 1
    assert len(list(IndexDir(index).versions.iterdir())) <= 3  # old versions went; the saved search stayed
    assert len(everything(index, "a")) > 0
    store = AlertStore(IndexDir(index).layout.alerts)
    (state,) = store.states().values()
    store.close()
    snap = IndexDir(index).open()
    assert state.key == percolate.corpus_key(snap)  # the merges kept the passage set the frame describes
    assert len(state.frame) and not np.isin(state.frame, snap.state.deleted_ids).any()
    assert set(snap.store.passages(state.frame.tolist())) == set(state.frame.tolist())
    snap.close()
