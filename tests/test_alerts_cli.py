"""Saved searches from the outside: the CLI and its errors, failures that never fail a build, builds and
the CLI at the same time, merges and garbage collection, and ``indexer watch``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import Filters, alerts, build, percolate
from indexer.alert_records import FrameState, NewMatch, RunRecord
from indexer.alert_store import AlertStore
from indexer.cli import main
from indexer.errors import AlertError, IndexNotFoundError, QueryError
from indexer.index import IndexDir
from indexer.search import Searcher

from .conftest import FAKE_MODEL, ROOT, FakeEncoder, write
from .reliability_helpers import QUERIES, change_corpus, news_corpus
from .test_alerts import BAKERY, WIND, WIND_ARTICLE, everything, make, rebuild
from .test_watch import watching


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


def _raise(exc: BaseException):
    def broken(*_a, **_k):
        raise exc

    return broken


@pytest.mark.parametrize(
    ("where", "exc", "says"),
    [
        ("execute", RuntimeError("disk on fire"), "could not be run (disk on fire)"),
        ("execute", KeyboardInterrupt(), "interrupted while running the saved searches"),
        # outside the percolator's own guard: the build's is the last resort
        ("after_publish", OSError("no such table"), "could not be run (no such table)"),
    ],
)
def test_indexer_build_reports_a_version_published_before_the_saved_searches_failed(
    tmp_path, fake_encoder, monkeypatch, where, exc, says
):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    before = IndexDir(index).manifest().version
    real = sys.modules["indexer.build"].build
    monkeypatch.setattr(sys.modules["indexer.build"], "build", functools.partial(real, encoder=fake_encoder,
                                                                                 model=FAKE_MODEL))  # fmt: skip
    owner = percolate._Run if where == "execute" else percolate
    write(src / "new-wind.md", WIND_ARTICLE)
    with monkeypatch.context() as m:
        m.setattr(owner, where, _raise(exc))
        res = CliRunner().invoke(main, ["build", str(src), "--index", str(index), "-q"])
    assert res.exit_code == 0, res.output
    live = IndexDir(index).manifest().version
    assert live > before and f"version {live}, incremental update" in res.output
    assert Searcher(index, encoder=fake_encoder).article("new-wind.md") is not None
    (warning,) = [line for line in res.output.splitlines() if line.startswith("Warning:")]
    assert says in warning and f"version {live} is published" in warning and "indexer alerts new" in warning
    assert everything(index) == []  # nothing half-recorded...
    write(src / "bakery.md", BAKERY)
    report = rebuild(src, index, fake_encoder)
    assert report.alerts is not None and not report.alerts.error and not report.warnings
    # ...and the next build's run takes the article the failed run missed as news too
    assert [(m.article_id, m.version) for m in everything(index)] == [("new-wind.md", report.version)]


# a build in its own process, with the fake encoder, that a crash point can kill
BUILD = """
import sys
from pathlib import Path
from indexer import build
from tests.conftest import FAKE_MODEL, FakeEncoder
build([Path(sys.argv[1])], Path(sys.argv[2]), encoder=FakeEncoder(), model=FAKE_MODEL)
"""


def test_a_build_killed_while_recording_matches_is_published_and_the_next_one_catches_up(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    write(src / "new-wind.md", WIND_ARTICLE)
    env = {**os.environ, "INDEXER_CRASH_AT": "alerts", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", BUILD, str(src), str(index)], env=env, cwd=ROOT, timeout=300)
    assert res.returncode == -signal.SIGKILL
    killed = IndexDir(index).manifest().version
    assert Searcher(index, encoder=fake_encoder).article("new-wind.md") is not None  # published all the same
    assert everything(index) == []  # nothing half-recorded
    write(src / "bakery.md", "# Bakers\n\nThe bakers of Lyon strike over flour prices.\n")
    report = rebuild(src, index, fake_encoder)
    assert report.alerts is not None and not report.alerts.error
    found = everything(index)  # the killed version's new article, found by the next run
    assert [(m.article_id, m.version) for m in found] == [("new-wind.md", report.version)] and killed < report.version


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


def test_two_searches_saved_at_once_under_one_name_keep_one(tmp_path, fake_encoder):
    _, index = make(tmp_path, fake_encoder)
    outcomes: list[str] = []

    def save(query: str) -> None:
        try:
            alerts.add(index, "same", query, encoder=FakeEncoder())
            outcomes.append("saved")
        except AlertError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=save, args=(q,)) for q in ("wind in Norway", "bakers in Lyon")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[1] == "saved" and "saved already" in sorted(outcomes)[0]
    assert [s.search.name for s in alerts.saved(index)] == ["same"]


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
    ids = state.frame.ids
    assert len(ids) and not np.isin(ids, snap.state.deleted_ids).any()
    rows = snap.store.passages(ids.tolist())
    assert set(rows) == set(ids.tolist())  # ids kept across merges: the frame still names the same passages
    assert [rows[i].lang for i in ids.tolist()] == [state.frame.langs[c] for c in state.frame.lang.tolist()]
    snap.close()


def test_the_watcher_runs_the_saved_searches_on_each_batch(tmp_path, fake_encoder):
    src, index = make(tmp_path, fake_encoder)
    alerts.add(index, "wind", WIND, encoder=fake_encoder)
    with watching([src], index, fake_encoder, FAKE_MODEL) as w:
        w.wait_kind("unchanged")  # the catch-up: nothing to run them against
        write(src / "news" / "wind.md", WIND_ARTICLE)
        published = w.wait_kind("published")
        assert "1 alert match(es)" in published.text
        write(src / "news" / "bakery.md", "# Bakers\n\nThe bakers of Lyon strike over flour prices.\n")
        assert "0 alert match(es)" in w.wait_kind("published", 2).text
        w.stop()
    assert [m.article_id for m in everything(index)] == ["news/wind.md"]
