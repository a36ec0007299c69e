"""Concurrent use: searches keep answering while builds switch the index; one writer at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.errors import IndexLockedError
from indexer.index import IndexDir

from .conftest import write
from .reliability_helpers import (
    QUERIES,
    ROOT,
    answers,
    build_args,
    change_corpus,
    check_index,
    cli,
    cli_env,
    kill_group,
    news_corpus,
    one_line_error,
    same_hits,
    spawn,
    wait_for,
)

READERS = 4
MIN_QUERIES = 200


def _records(path: Path) -> list[dict]:
    """A reader's complete lines so far (the last one may be half written)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def _last(path: Path) -> dict:
    """A reader's latest complete record, read from the end of its file."""
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 65536))
        lines = f.read().splitlines()
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def _answered_by(expected: dict, version: str) -> str:
    """The version whose answers ``version`` gives: itself, or the merge its build published after it."""
    return version if version in expected else min(v for v in expected if v > version)


@pytest.mark.slow
def test_readers_during_rebuilds_get_old_or_new_answers_never_errors(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 150, seed=7)
    res = cli(*build_args(src, index))
    assert res.returncode == 0, res.stderr
    expected = {IndexDir(index).manifest().version: answers(index)}

    qfile = write(tmp_path / "queries.json", json.dumps(QUERIES))
    stop = tmp_path / "stop"
    outs = [tmp_path / f"reader{i}.jsonl" for i in range(READERS)]
    readers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability_reader", *map(str, (index, qfile, out, stop, MIN_QUERIES))],
            env=cli_env(),
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for out in outs
    ]
    try:
        assert wait_for(lambda: all(_last(o).get("i", -1) >= 10 for o in outs), 120, 0.1), "readers did not start"
        for step in (1, 2):  # two switches: the second also deletes the first version under the readers
            change_corpus(src, seed=7 + step, add=20, modify=20, delete=10)
            res = cli(*build_args(src, index))
            assert res.returncode == 0, res.stderr
            live = IndexDir(index).manifest().version
            expected[live] = answers(index)
            # every running reader moves to the new version by itself, without a restart
            assert wait_for(lambda v=live: all(v in _last(o).get("versions", ()) for o in outs), 60, 0.1)
        stop.touch()
        for r in readers:
            assert r.wait(300) == 0, r.stderr.read() if r.stderr else ""
    finally:
        for r in readers:
            kill_group(r)

    assert len(expected) == 3
    first, *_, last = sorted(expected)
    counts = []
    for out in outs:
        records = _records(out)
        counts.append(len(records))
        assert len(records) >= MIN_QUERIES
        errors = [r["error"] for r in records if "error" in r]
        assert not errors, errors[:3]
        seen = []
        for r in records:
            # wholly from one published version: exactly that version's answer to the query (a version a
            # build's merge replaced before it returned answers as the merged one: merging changes no result)
            assert any(same_hits(r["hits"], expected[_answered_by(expected, v)][r["q"]]) for v in r["versions"]), r
            seen.append(r["versions"][-1])
        assert seen == sorted(seen), "a reader went back to an older version"
        assert seen[0] == first and seen[-1] == last
    print(f"readers: {counts} queries, answered by {len(expected)} versions, no error")


def test_long_lived_searcher_moves_to_new_version(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    s = Searcher(index, encoder=fake_encoder)
    v1 = s.snapshot().manifest.version
    assert {h.article_id for h in s.search("volcano eruption lava", SearchOptions(k=5)).hits} <= {
        "fox.txt",
        "ice.txt",
    }

    write(src / "volcano.txt", "Volcano\nThe volcano eruption sent lava down the slopes.")
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    hits = s.search("volcano eruption lava", SearchOptions(k=5)).hits
    assert hits[0].article_id == "volcano.txt"
    v2 = s.snapshot().manifest.version
    assert v2 > v1

    (src / "volcano.txt").unlink()
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert "volcano.txt" not in {h.article_id for h in s.search("volcano eruption lava", SearchOptions(k=5)).hits}
    assert s.snapshot().manifest.version > v2
    assert s.article("volcano.txt") is None


@pytest.mark.slow
def test_second_builder_is_refused_while_one_runs(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 60, seed=3)
    assert cli(*build_args(src, index)).returncode == 0
    before = check_index(index)
    change_corpus(src, seed=4, add=20, modify=5, delete=5)
    lock = index / ".work" / "build.lock"
    first = spawn(*build_args(src, index), log=tmp_path / "first.log")
    try:
        assert wait_for(lambda: lock.exists() and lock.read_text().startswith("pid"), 120)
        os.kill(first.pid, signal.SIGSTOP)  # hold the first build inside its lock, whatever its speed
        try:
            for _ in range(3):
                res = cli(*build_args(src, index))
                one_line_error(res, "another build is running", f"pid {first.pid}", "wait for it")
            # readers are not writers: searching goes on meanwhile, on the previous version
            assert check_index(index) == before
            assert cli("info", "--index", index).returncode == 0
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert first.wait(300) == 0, (tmp_path / "first.log").read_text()
    finally:
        kill_group(first)
    after = check_index(index)
    assert set(after.articles) == {p.name for p in src.iterdir()}
    assert cli(*build_args(src, index)).stdout.count("up to date") == 1  # and the lock was released


def test_lock_is_released_when_holder_dies(tmp_path, fake_encoder, fake_model):
    """A build killed inside its lock does not block the next one (the kernel drops a flock)."""
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "a.txt", "A\nSome words about the harbour and its ships.")
    code = (
        "import sys, time; from indexer.index import IndexDir; "
        "IndexDir(sys.argv[1]).lock(); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(index)], stdout=subprocess.PIPE, env=cli_env(), cwd=ROOT, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match=f"pid {holder.pid}"):
            build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    finally:
        kill_group(holder)
    assert build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model).published
