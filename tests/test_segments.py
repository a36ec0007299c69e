"""Segments: an update writes what changed, merges keep results, readers share what did not change."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.index import IndexDir
from indexer.merge import DEFAULT_MERGE, MergePolicy, due, merge, tier
from indexer.vector_plan import IndexPolicy

from .conftest import write
from .reliability_helpers import change_corpus, check_index, news_corpus

QUERIES = ("energy prices winter", "storm harbour closed", "vaccine trial results", "élections municipales")


def run(src: Path, index: Path, enc, model, **kw):
    return build([src], index, BuildSettings(**kw), encoder=enc, model=model)


def ranked(index: Path, enc) -> dict[str, list[tuple[str, float]]]:
    """Each query's hits per mode as (article id, score): what a user sees, whatever the ids."""
    s = Searcher(index, encoder=enc)
    out = {}
    for q in QUERIES:
        for mode in ("dense", "bm25", "hybrid"):
            out[f"{q}|{mode}"] = [
                (h.article_id, round(h.score, 5)) for h in s.search(q, SearchOptions(k=8, mode=mode)).hits
            ]
    return out


def manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text())


def files_of(index: Path, folder: str) -> dict[str, tuple[int, int]]:
    root = index / folder
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_an_update_adds_one_segment_and_leaves_the_others_untouched(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 40, seed=1)
    run(src, index, fake_encoder, fake_model)
    before = files_of(index, "segments")
    change_corpus(src, seed=2, add=3, modify=2, delete=2)
    rep = run(src, index, fake_encoder, fake_model)
    assert (rep.added, rep.updated, rep.removed) == (3, 2, 2)
    m = manifest(index)
    assert len(m["segments"]) == 2 and m["segments"][1]["articles"] == 5  # the added and the changed
    after = files_of(index, "segments")
    assert {k: v for k, v in after.items() if k in before} == before  # not rewritten, not even touched
    new = m["segments"][1]
    assert new["rows"][0] == m["segments"][0]["rows"][1] and new["ids"][0] == m["segments"][0]["ids"][1]
    version = index / "versions" / m["version"]
    deleted_rows = np.load(version / "deleted_rows.npy")
    assert len(deleted_rows) == 4  # the two removed and the two replaced articles
    check_index(index)


def test_updates_rank_as_a_full_rebuild_of_the_same_sources(tmp_path, fake_encoder, fake_model):
    src, inc, full = tmp_path / "src", tmp_path / "inc", tmp_path / "full"
    news_corpus(src, 60, seed=3)
    run(src, inc, fake_encoder, fake_model)
    for seed in (4, 5, 6):
        change_corpus(src, seed=seed, add=4, modify=3, delete=3)
        run(src, inc, fake_encoder, fake_model)
    assert len(manifest(inc)["segments"]) == 4
    run(src, full, fake_encoder, fake_model)
    assert len(manifest(full)["segments"]) == 1
    # BM25 statistics are the collection's, over live passages: deletions and segments change no score
    assert ranked(inc, fake_encoder) == ranked(full, fake_encoder)
    assert check_index(inc).structure() == check_index(full).structure()


def test_a_deletion_alone_writes_no_segment(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 20, seed=7)
    run(src, index, fake_encoder, fake_model)
    victim = sorted(src.iterdir())[3]
    gone = victim.name
    victim.unlink()
    rep = run(src, index, fake_encoder, fake_model)
    assert rep.published and rep.removed == 1 and rep.embedded == 0
    assert len(manifest(index)["segments"]) == 1
    s = Searcher(index, encoder=fake_encoder)
    assert gone not in {h.article_id for q in QUERIES for h in s.search(q, SearchOptions(k=20)).hits}
    assert s.article(gone) is None
    check_index(index)


def test_merging_keeps_every_result_and_drops_deleted_rows(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 50, seed=8)
    run(src, index, fake_encoder, fake_model)
    for seed in (9, 10):
        change_corpus(src, seed=seed, add=2, modify=2, delete=2)
        run(src, index, fake_encoder, fake_model)
    before = ranked(index, fake_encoder)
    contents = check_index(index)
    res = CliRunner().invoke(
        __import__("indexer.cli", fromlist=["main"]).main, ["merge", "--all", "--index", str(index)]
    )
    assert res.exit_code == 0, res.output
    assert "1 merge(s)" in res.output and "now 1 segment(s)" in res.output
    m = manifest(index)
    assert len(m["segments"]) == 1
    assert len(np.load(index / "versions" / m["version"] / "deleted_rows.npy")) == 0
    assert ranked(index, fake_encoder) == before
    assert check_index(index).structure() == contents.structure()
    assert check_index(index).passages == contents.passages  # merging keeps ids
    # only the live and the previous version's segments remain on disk
    kept = {p.name for p in (index / "segments").iterdir()}
    previous = json.loads(sorted((index / "versions").iterdir())[0].joinpath("manifest.json").read_text())
    assert kept == {s["name"] for s in m["segments"]} | {s["name"] for s in previous["segments"]}


def test_the_merge_policy_merges_a_tier_once_it_is_full(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 30, seed=11)
    run(src, index, fake_encoder, fake_model)
    merges = 0
    for i in range(DEFAULT_MERGE.factor):
        write(src / f"new{i}.txt", f"Update {i}\nWind farm number {i} opened off the coast today.")
        rep = run(src, index, fake_encoder, fake_model)
        merges += rep.merge.merges if rep.merge else 0
    # 1 + 10 small segments share the lowest tier: the newest ten were merged into one
    assert merges == 1
    assert len(manifest(index)["segments"]) == 2
    check_index(index)
    hits = (
        Searcher(index, encoder=fake_encoder).search("wind farm number 7 coast", SearchOptions(k=3, mode="bm25")).hits
    )
    assert hits[0].article_id == "new7.txt"


def test_merge_policy_tiers_and_expunge():
    from indexer.manifest import SegmentInfo
    from indexer.version_state import VersionState

    p = MergePolicy(factor=3, floor=10)
    assert [tier(n, p) for n in (1, 10, 29, 30, 89, 90, 900)] == [0, 0, 0, 1, 1, 2, 4]

    def seg(i: int, n: int) -> SegmentInfo:
        return SegmentInfo(
            name=f"s{i}", articles=n, passages=n, rows=(i * 1000, i * 1000 + n), ids=(i * 1000, i * 1000 + n)
        )

    segs = [seg(0, 900), seg(1, 5), seg(2, 5)]
    assert due(segs, VersionState(), p) is None
    segs.append(seg(3, 5))
    assert due(segs, VersionState(), p) == (1, 4)
    # a third of a segment deleted: it is rewritten alone, whatever its tier
    dead = VersionState().deleting([], list(range(0, 300)))
    assert due(segs[:1], dead, p) == (0, 1)


def test_a_searcher_keeps_the_segments_it_already_opened(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 30, seed=12)
    run(src, index, fake_encoder, fake_model)
    s = Searcher(index, encoder=fake_encoder)
    s.search("energy")
    first = s.snapshot().segments[0]
    write(src / "late.txt", "Late news\nA comet was seen above the harbour tonight.")
    run(src, index, fake_encoder, fake_model)
    assert s.search("comet harbour tonight", SearchOptions(k=1)).hits[0].article_id == "late.txt"
    snap = s.snapshot()
    assert len(snap.segments) == 2 and snap.segments[0] is first  # shared, not reopened nor re-verified


def test_unchanged_files_are_not_read_again_unless_checked(tmp_path, fake_encoder, fake_model, monkeypatch):
    from indexer import corpus

    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 12, seed=13)
    old = 1_600_000_000  # modified long ago: never within the racy window of the cache
    for p in src.iterdir():
        os.utime(p, (old, old))
    run(src, index, fake_encoder, fake_model)
    opened: list[str] = []
    real = corpus.read_file

    def spy(path: Path, root: Path, settings):
        opened.append(path.name)
        return real(path, root, settings)

    monkeypatch.setattr(corpus, "read_file", spy)
    run(src, index, fake_encoder, fake_model)  # records every file outside the racy window
    before = {p.name: p.stat().st_mtime_ns for p in (index / ".work").iterdir() if p.name != "build.lock"}
    rep = run(src, index, fake_encoder, fake_model)
    assert not rep.published and rep.unchanged == 12 and opened[12:] == []
    opened.clear()
    # a build that read nothing and published nothing wrote nothing either
    assert {p.name: p.stat().st_mtime_ns for p in (index / ".work").iterdir() if p.name != "build.lock"} == before
    edited = sorted(src.iterdir())[0]
    edited.write_text(edited.read_text() + "\nOne more sentence about the storm.")
    os.utime(edited, (old + 10, old + 10))
    rep = run(src, index, fake_encoder, fake_model)
    assert rep.updated == 1 and rep.unchanged == 11 and opened == [edited.name]
    opened.clear()
    rep = run(src, index, fake_encoder, fake_model, check=True)  # --check: every file is read
    assert not rep.published and rep.unchanged == 12 and len(opened) == 12


def test_a_vector_index_that_misses_its_recall_says_so_and_is_exact(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    rows = [json.dumps({"id": f"a{i}", "title": f"T{i}", "text": f"Word{i} alpha{i % 7} beta{i % 13}. Gamma{i}."})
            for i in range(600)]  # fmt: skip
    write(src / "all.jsonl", "\n".join(rows))
    # an impossible promise for an approximate index: recall@10 of 1.0 at every tuned breadth
    policy = replace(IndexPolicy(), exact_limit=100, min_recall=1.0001, target_recall=1.0, rerank=10)
    rep = run(src, index, fake_encoder, fake_model, policy=policy)
    seg = manifest(index)["segments"][0]["vectors"]
    assert seg["faiss"] == "IDMap2,Flat" and seg["auto"] is True
    assert "searched exactly instead" in seg["warning"] and rep.warnings == [seg["warning"]]
    info = CliRunner().invoke(__import__("indexer.cli", fromlist=["main"]).main, ["info", "--index", str(index)]).output
    assert "Warning:    " in info and "searched exactly instead" in info
    # later updates do not retrain the segment that missed: they add their own
    write(src / "more.jsonl", json.dumps({"id": "z", "title": "Z", "text": "Zeta omega."}))
    rep = run(src, index, fake_encoder, fake_model)
    assert manifest(index)["segments"][0]["vectors"] == seg


def test_killed_merge_leaves_the_live_version(tmp_path, fake_encoder, fake_model, monkeypatch):
    from indexer import merge as merge_mod

    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 20, seed=14)
    run(src, index, fake_encoder, fake_model)
    change_corpus(src, seed=15, add=2, modify=1, delete=1)
    run(src, index, fake_encoder, fake_model)
    before = check_index(index)

    def boom(name: str) -> None:
        if name == "merge":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(merge_mod, "crash_point", boom)
    idx = IndexDir(index)
    lock = idx.lock()
    try:
        with pytest.raises(OSError):
            merge(idx, everything=True)
    finally:
        lock.release()
    assert check_index(index) == before
    assert not [p for p in (index / "segments").iterdir() if p.name.endswith(".partial")]


def test_an_article_deleted_from_a_file_that_stays_is_removed(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    rows = [json.dumps({"id": f"a{i}", "title": f"T{i}", "text": f"Story {i} about harbour {i}."}) for i in range(5)]
    write(src / "all.jsonl", "\n".join(rows))
    old = 1_600_000_000
    os.utime(src / "all.jsonl", (old, old))
    run(src, index, fake_encoder, fake_model)
    write(src / "all.jsonl", "\n".join(rows[:2] + rows[3:]))  # a2 leaves the file, which stays
    os.utime(src / "all.jsonl", (old + 10, old + 10))
    rep = run(src, index, fake_encoder, fake_model)
    assert rep.removed == 1 and rep.articles == 4
    assert Searcher(index, encoder=fake_encoder).article("a2") is None
    check_index(index)
