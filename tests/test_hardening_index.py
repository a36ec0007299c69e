"""Clean-up never runs on an index that is not known to be sound; version and segment folders cannot lead outside."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from indexer import BuildSettings, Searcher, build
from indexer.errors import IndexCorruptError, IndexerError
from indexer.index import IndexDir

from .conftest import write
from .test_reliability_index import DAMAGE, _edit_manifest


def _files(index: Path) -> set[str]:
    return {str(p.relative_to(index)) for p in index.rglob("*") if p.is_file() and ".work" not in p.parts}


def _corpus(src: Path, n: int) -> None:
    for i in range(n):
        write(src / f"a{i}.txt", f"Title {i}\nArticle {i} is about glaciers, shipping lanes and the Arctic council.")


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory) -> Path:
    """An index with two older versions kept beside the live one, and what a killed build leaves."""
    from .conftest import FAKE_MODEL, FakeEncoder

    root = tmp_path_factory.mktemp("three")
    src, index = root / "src", root / "index"
    enc = FakeEncoder()
    for n in (3, 5, 7):
        _corpus(src, n)
        build([src], index, BuildSettings(), encoder=enc, model=FAKE_MODEL)
    (index / "versions" / "999998-killed.partial").mkdir()  # a killed build's folder
    (index / "versions" / "999998-killed.partial" / "x").write_text("left")
    return index


EXTRA = {
    # the case reported: a live name sorting before every folder, so each looked "newer than live"
    "manifest names an older missing version": lambda i: _edit_manifest(i, lambda d: d.update(version="000000-x")),
    "manifest is a folder": lambda i: ((i / "manifest.json").unlink(), (i / "manifest.json").mkdir()),
}


def _damaged_copy(three_versions: Path, tmp_path: Path, damage) -> tuple[Path, Path]:
    """A copy of the three-version index with ``damage`` done to it, and sources of 8 articles to build."""
    index = tmp_path / "index"
    shutil.copytree(three_versions, index, symlinks=True)
    damage(index)
    _corpus(tmp_path / "src", 8)
    return index, tmp_path / "src"


@pytest.mark.parametrize("kind", list(DAMAGE) + list(EXTRA))
def test_a_build_on_a_damaged_index_deletes_nothing(kind, three_versions, tmp_path, fake_encoder, fake_model):
    index, src = _damaged_copy(three_versions, tmp_path, (DAMAGE | EXTRA)[kind])
    before = _files(index)
    try:
        build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    except IndexerError:
        gone = before - _files(index)
        assert not gone, f"{kind}: a refused build deleted {sorted(gone)}"
        return
    # an incremental build that could go on: the index it published is sound and complete
    assert {h.article_id for h in Searcher(index, encoder=fake_encoder).search("glaciers Arctic").hits}


def test_the_named_fix_rebuilds_after_the_refusal(three_versions, tmp_path, fake_encoder, fake_model):
    index, src = _damaged_copy(three_versions, tmp_path, EXTRA["manifest names an older missing version"])
    before = _files(index)
    with pytest.raises(IndexCorruptError, match="indexer build --full"):
        build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert _files(index) == before
    build([src], index, BuildSettings(full=True), encoder=fake_encoder, model=fake_model)
    assert len(Searcher(index, encoder=fake_encoder).search("glaciers").hits) > 0


def test_a_manifest_that_is_a_folder_names_its_own_fix(three_versions, tmp_path, fake_encoder, fake_model):
    index, src = _damaged_copy(three_versions, tmp_path, EXTRA["manifest is a folder"])
    for settings in (BuildSettings(), BuildSettings(full=True)):
        with pytest.raises(IndexCorruptError, match=r"manifest.json is a folder\) — remove .*manifest.json") as exc:
            build([src], index, settings, encoder=fake_encoder, model=fake_model)
        assert "disk space" not in str(exc.value)
    with pytest.raises(IndexCorruptError, match="is a folder"):
        Searcher(index, encoder=fake_encoder)
    (index / "manifest.json").rmdir()  # the fix it names
    build([src], index, BuildSettings(full=True), encoder=fake_encoder, model=fake_model)
    assert Searcher(index, encoder=fake_encoder).search("glaciers").hits


@pytest.mark.parametrize("what", ["version", "segment"])
def test_a_folder_linked_to_outside_the_index_is_refused(what, three_versions, tmp_path, fake_encoder):
    index = tmp_path / "index"
    shutil.copytree(three_versions, index, symlinks=True)
    m = IndexDir(index).manifest()
    folder = index / "versions" / m.version if what == "version" else index / "segments" / m.segments[0].name
    outside = tmp_path / "elsewhere"
    shutil.move(folder, outside)  # the same bytes (checksums match), but outside the index
    os.symlink(outside, folder)
    with pytest.raises(IndexCorruptError, match="link to a folder outside the index"):
        Searcher(index, encoder=fake_encoder)
    with pytest.raises(IndexCorruptError, match="link to a folder outside the index"):
        IndexDir(index).info()


# ------------------------------------------------------------ sources
def test_two_sources_with_the_same_relative_path_keep_both(tmp_path, fake_encoder, fake_model):
    a, b, index = tmp_path / "srcA", tmp_path / "srcB", tmp_path / "index"
    write(a / "same.txt", "Ice\nArctic sea ice melts early this year.")
    write(b / "same.txt", "Volcano\nA volcano erupted and lava reached the sea.")
    write(b / "sub" / "same.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    rep = build([a, b], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert rep.skipped == [] and rep.added == 3
    s = Searcher(index, encoder=fake_encoder)
    assert s.article("same.txt").title == "Ice"  # the first source keeps the id it always had
    assert s.article("srcB/same.txt").title == "Volcano"
    # the next build reads nothing and keeps the same ids
    again = build([a, b], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert (again.added, again.removed, again.skipped) == (0, 0, [])


def test_explicit_duplicate_ids_name_both_files(tmp_path, fake_encoder, fake_model):
    a, b, index = tmp_path / "srcA", tmp_path / "srcB", tmp_path / "index"
    write(a / "x.jsonl", '{"id": "dup", "text": "Arctic sea ice melts early this year."}\n')
    write(b / "y.jsonl", '{"id": "dup", "text": "A volcano erupted and lava reached the sea."}\n')
    rep = build([a, b], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    [skip] = rep.skipped
    assert "y.jsonl" in skip.path and str(a / "x.jsonl") in skip.reason and '"id"' in skip.reason


@pytest.mark.parametrize("kind", ["loop", "self", "dangling"])
def test_a_source_that_is_a_bad_symlink_is_one_line_and_leaves_nothing(kind, tmp_path):
    import subprocess
    import sys

    from .reliability_helpers import ROOT, cli_env

    src, index = tmp_path / "src", tmp_path / "index"
    if kind == "loop":
        os.symlink(tmp_path / "other", src)
        os.symlink(src, tmp_path / "other")
    elif kind == "self":
        os.symlink(src, src)
    else:
        os.symlink(tmp_path / "nowhere", src)
    res = subprocess.run([sys.executable, "-m", "indexer", "build", str(src), "--index", str(index), "-q"],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith(f"error: source not found: {src} (a symlink") and res.stderr.count("\n") == 1
    assert not index.exists()


@pytest.mark.parametrize("body", ["[" + ",".join(["1"] * 200_000) + "]", "[" + ",".join(["[[[[1]]]]"] * 50_000) + "]"])
def test_a_file_of_many_bad_records_gives_a_bounded_report(body, tmp_path):
    from indexer.corpus import SKIPS_LISTED_PER_FILE, ReadSettings, read_sources
    from indexer.records import Article, Skipped

    src = tmp_path / "src"
    write(src / "bad.json", body)
    write(src / "good.txt", "Ice\nArctic sea ice melts early this year.")
    out = list(read_sources([src], ReadSettings()))
    skips = [o for o in out if isinstance(o, Skipped)]
    assert [o.id for o in out if isinstance(o, Article)] == ["good.txt"]
    assert len(skips) == SKIPS_LISTED_PER_FILE + 1
    n = len(body.split(",")) - SKIPS_LISTED_PER_FILE
    assert skips[-1].reason.startswith(f"{n:,} more records skipped (")
    assert len(skips[-1].reason) < 400


def test_a_root_that_vanishes_after_the_check_fails_the_build_instead_of_emptying_it(
    tmp_path, fake_encoder, fake_model, monkeypatch
):
    from indexer import corpus
    from indexer.errors import SourceNotFoundError

    a, b, index = tmp_path / "a", tmp_path / "b", tmp_path / "index"
    write(a / "x.txt", "Ice\nArctic sea ice melts early this year.")
    write(b / "y.txt", "Volcano\nA volcano erupted and lava reached the sea.")
    build([a, b], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    checked, calls = corpus.check_sources, []

    def then_gone(sources):
        out = checked(sources)
        calls.append(1)
        if len(calls) == 2:  # the walk's own check passed: unmounted just after it
            shutil.rmtree(b)
        return out

    monkeypatch.setattr(corpus, "check_sources", then_gone)
    with pytest.raises(SourceNotFoundError):
        build([a, b], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert len(calls) == 2
    monkeypatch.undo()
    assert Searcher(index, encoder=fake_encoder).article("y.txt") is not None


# ------------------------------------------- a file that stops reading cleanly
RECS = [{"id": f"n{i}", "title": f"Note {i}", "text": f"Harbour note {i}: the ferry to island {i} sails at dawn."}
        for i in range(3)]  # fmt: skip


def _jsonl(recs) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs)


BREAKS = {
    "jsonl with a broken first line": ("wire.jsonl", lambda: "{broken\n" + _jsonl(RECS[1:])),
    "json cut short": ("wire.json", lambda: json.dumps(RECS)[:40]),
    "binary garbage": ("wire.json", lambda: "\x00\x01\x02 not text"),
    "empty file": ("wire.jsonl", lambda: ""),
}


@pytest.mark.parametrize("check", [False, True], ids=["incremental", "--check"])
@pytest.mark.parametrize("kind", list(BREAKS))
def test_a_file_that_stops_reading_cleanly_keeps_its_articles(kind, check, tmp_path, fake_encoder, fake_model):
    name, broken = BREAKS[kind]
    src, index = tmp_path / "src", tmp_path / "index"
    good = json.dumps(RECS) if name.endswith(".json") else _jsonl(RECS)
    write(src / name, good)
    write(src / "other.txt", "Ice\nArctic sea ice melts early this year.")
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    write(src / name, broken())
    rep = build([src], index, BuildSettings(check=check), encoder=fake_encoder, model=fake_model)
    assert rep.removed == 0, rep
    s = Searcher(index, encoder=fake_encoder)
    assert all(s.article(r["id"]) is not None for r in RECS), kind
    assert rep.kept >= 1 and any("kept until the file reads cleanly" in k.reason for k in rep.skipped)
    # fixed, with a record fewer: that record goes, the others stay
    write(src / name, json.dumps(RECS[:2]) if name.endswith(".json") else _jsonl(RECS[:2]))
    rep = build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    s = Searcher(index, encoder=fake_encoder)
    assert rep.removed == 1 and s.article("n2") is None and s.article("n0") is not None
    (src / name).unlink()  # gone: its articles go
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert Searcher(index, encoder=fake_encoder).article("n0") is None


def test_lone_surrogates_in_records_are_replaced_not_a_crash(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    rec = '{"id": "s\\ud800", "title": "T\\udfff", "text": "Harbour \\ud800 news: the ferry sails."}\n'
    write(src / "s.jsonl", rec)
    rep = build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert rep.added == 1 and not rep.skipped
    art = Searcher(index, encoder=fake_encoder).article("s\ufffd")
    assert art is not None and art.title == "T\ufffd" and "\ufffd" in art.text


@pytest.mark.parametrize(("raw", "day"), [
    ("27 février 2025", "2025-02-27"), ("Le 1er mars 2025", "2025-03-01"), ("27. Februar 2025", "2025-02-27"),
    ("1 de marzo de 2025", "2025-03-01"), ("1º de marzo de 2025", "2025-03-01"), ("5 maggio 2024", "2024-05-05"),
    ("12 maart 2023", "2023-03-12"), ("27 февраля 2025 г.", "2025-02-27"), ("3 maja 2024", "2024-05-03"),
    ("March 3, 2025", "2025-03-03"), ("2025-03-04", "2025-03-04"),
    ("2025", None), ("2025-03", None), ("février", None), ("sept 2025", None), ("le 32 mars 2025", None),
])  # fmt: skip
def test_news_dates_in_several_languages(raw, day):
    from indexer.corpus import normalize_date

    assert normalize_date(raw) == day  # a day or nothing: a year or a month alone is kept as date_raw


@pytest.mark.parametrize(("raw", "code"), [("FR", "fr"), ("fr-CA", "fr"), ("French", "fr"), ("français", "fr"),
                                           ("Deutsch", "de"), ("中文", "zh"), ("русский", "ru"), ("klingon", None)])
def test_language_values_are_normalised(raw, code):
    from indexer.language import normalize_code

    assert normalize_code(raw) == code
