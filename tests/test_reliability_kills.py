"""Killed builds: ``indexer build`` SIGKILLed at every phase and at random moments loses nothing.

The real CLI runs in subprocesses with a small real model (all-MiniLM-L6-v2, int8
ONNX). Index A is built once; each run restores A, kills the build that turns it
into B, checks A is still what readers get, then lets the next build finish and
checks the result equals an unkilled build of B.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.index import IndexDir

from .reliability_helpers import (
    Contents,
    Summary,
    answers,
    build_args,
    change_corpus,
    check_index,
    cli,
    cli_env,
    news_corpus,
    parse_summary,
    spawn,
    versions,
    wait_for,
)

pytestmark = pytest.mark.slow

SEED = 20250105
CHUNK = ("--max-tokens", "40")  # several passages per article, so several embedding batches
FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _print_figures(request):
    """After the module: how many kills were survived, per crash point and phase."""
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nkills survived:", json.dumps(dict(sorted(FIGURES.items())), indent=1, ensure_ascii=False))
        print(f"total: {sum(v for k, v in FIGURES.items() if 'finished' not in k)}")


@dataclass
class Base:
    root: Path
    src_b: Path
    index_a: Path
    a: Contents
    b: Contents
    answers_a: dict
    baseline: Summary  # the unkilled A → B build
    remaining: float  # seconds from a build's first visible step (its .partial folder) to its exit
    tail: float  # seconds from its last embedding batch starting to its exit (writing, switching)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("kills")
    src_a, index_a = root / "src_a", root / "index_a"
    news_corpus(src_a, 300, SEED)
    res = cli(*build_args(src_a, index_a, *CHUNK))
    assert res.returncode == 0, res.stderr
    a = check_index(index_a)
    assert len(a.articles) == 300 and len(a.passages) > 600

    src_b = root / "src_b"
    shutil.copytree(src_a, src_b)
    change_corpus(src_b, SEED + 1, add=60, modify=60, delete=30)

    index_b = root / "index_b"
    shutil.copytree(index_a, index_b)
    proc = spawn(*build_args(src_b, index_b, *CHUNK), log=root / "baseline.log")
    assert wait_for(lambda: _partial(index_b), 120)
    t0 = time.monotonic()
    timeline = []  # (seconds, vectors in the resume cache), to time the phases of an unkilled build
    while proc.poll() is None:
        timeline.append((time.monotonic() - t0, _cache_rows(index_b)))
        time.sleep(0.01)
    assert proc.wait() == 0, (root / "baseline.log").read_text()
    remaining = time.monotonic() - t0
    baseline = parse_summary((root / "baseline.log").read_text())
    last_batch = next((t for t, n in timeline if n >= baseline.embedded - 64), remaining)
    b = check_index(index_b)
    assert set(b.articles) == {p.name for p in src_b.iterdir()}
    assert baseline.embedded >= 4 * 64, "too few passages to cover several embedding batches"
    return Base(root, src_b, index_a, a, b, answers(index_a), baseline, remaining, remaining - last_batch)


def _partial(index: Path) -> bool:
    v = index / "versions"
    return v.is_dir() and any(p.name.endswith(".partial") for p in v.iterdir())


def _cache_rows(index: Path) -> int:
    """Vectors the killed build committed to its resume cache."""
    path = index / ".work" / "embeddings.sqlite"
    if not path.exists():
        return 0
    con = sqlite3.connect(f"file:{path.as_posix()}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM vectors").fetchone()[0])
    except sqlite3.OperationalError:  # killed before the table was created
        return 0
    finally:
        con.close()


def _after_kill(base: Base, index: Path) -> tuple[str, int]:
    """The index after a kill: still A (same answers), or B if the kill came after the switch."""
    live = IndexDir(index).manifest().version
    contents = check_index(index)
    rows = _cache_rows(index)
    if live == base.a.version:
        assert contents == base.a
        assert answers(index) == base.answers_a  # same hits, same scores, same text
        orphan = [v for v in versions(index) if v > live and not v.endswith(".partial")]
        if orphan:
            phase = "after rename, before switch"
        elif rows == 0:
            phase = "reading"
        elif rows < base.baseline.embedded:
            phase = "embedding"
        else:
            phase = "writing (SQLite, FAISS, BM25)"
    else:
        assert contents.structure() == base.b.structure()
        phase = "after switch"
    return phase, rows


def _complete(base: Base, index: Path, phase: str, rows: int) -> None:
    """The next build finishes, reuses the killed build's vectors and equals an unkilled build."""
    res = cli(*build_args(base.src_b, index, *CHUNK))
    assert res.returncode == 0, res.stderr
    s = parse_summary(res.stdout)
    if phase == "after switch":
        assert s.embedded == 0 and "up to date" in res.stdout
    else:
        # every vector committed before the kill is reused, none is computed twice
        assert s.embedded == base.baseline.embedded - rows, (s, rows)
        assert s.reused >= base.baseline.reused + rows
    final = check_index(index)
    assert final.structure() == base.b.structure()
    assert set(final.articles) == {p.name for p in base.src_b.iterdir()}
    names = versions(index)
    assert not [v for v in names if v.endswith(".partial")]
    assert names == sorted([base.a.version, final.version])  # the live version and the one before


def _restore(base: Base, run: str) -> Path:
    index = base.root / run / "index"
    shutil.copytree(base.index_a, index)
    return index


# one or more runs per named crash point; "embed:k" dies right after the k-th committed batch
CRASH_POINTS = [
    "read:1",
    "read:200",
    "read:330",
    "embed:1",
    "embed:2",
    "embed:3",
    "embed:4",
    "lexical",
    "sqlite",
    "faiss",
    "segment",
    "rename",
    "manifest",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_named_point(base, point):
    index = _restore(base, point.replace(":", "-"))
    res = cli(*build_args(base.src_b, index, *CHUNK), env=cli_env(INDEXER_CRASH_AT=point))
    # every point is on the path of this build (the lexical one included): a build that ends
    # normally means a crash point was lost or renamed, which would hide a kill window
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stdout, res.stderr)
    phase, rows = _after_kill(base, index)
    if point.startswith("embed:"):
        assert rows >= int(point.split(":")[1]), "each committed batch survives the kill"
    expected = {"rename": "after rename, before switch", "manifest": "after switch", "read:1": "reading"}
    if point in expected:
        assert phase == expected[point]
    _complete(base, index, phase, rows)
    FIGURES[f"{point} → {phase}"] += 1


def test_kill_at_random_moments(base):
    """SIGKILL at seeded random delays across a build's whole run.

    The delay starts from an observed moment: the build's first step (its .partial folder) for
    two runs in three, its last embedding batch for the third, so that the short final phases
    (writing SQLite, FAISS and BM25, renaming, switching) are hit too.
    """
    rng = random.Random(SEED)
    kills: Counter[str] = Counter()
    wanted, most = 11, 22  # kills that must land, runs allowed (a run may finish before its kill)
    last = base.baseline.embedded - 64  # the cache holds this many vectors when the last batch starts
    for i in range(most):
        if sum(kills.values()) - kills["finished before the kill"] >= wanted:
            break
        index = _restore(base, f"random-{i}")
        log = base.root / f"random-{i}.log"
        proc = spawn(*build_args(base.src_b, index, *CHUNK), log=log)
        try:
            if i % 3 == 2:
                started = wait_for(lambda p=proc, x=index: _cache_rows(x) >= last or p.poll() is not None, 120)
                delay = rng.uniform(0.0, base.tail)
            else:
                started = wait_for(lambda p=proc, x=index: _partial(x) or p.poll() is not None, 120)
                delay = rng.uniform(0.0, base.remaining * 0.8)
            assert started
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            code = proc.wait(120)
        if code == 0:  # it finished first: nothing was killed, the index must be B
            assert check_index(index).structure() == base.b.structure()
            kills["finished before the kill"] += 1
            continue
        assert code == -signal.SIGKILL, log.read_text()
        phase, rows = _after_kill(base, index)
        _complete(base, index, phase, rows)
        kills[phase] += 1
    killed = sum(kills.values()) - kills["finished before the kill"]
    assert killed >= wanted, kills
    assert len([p for p in kills if p != "finished before the kill"]) >= 2, kills  # spread over phases
    FIGURES.update({f"random → {k}": v for k, v in kills.items()})


def test_repeated_kills_keep_adding_work(base):
    """Killed again and again mid-embedding, each build resumes where the last one died."""
    index = _restore(base, "repeated")
    seen = [0]
    for _ in range(3):
        res = cli(*build_args(base.src_b, index, *CHUNK), env=cli_env(INDEXER_CRASH_AT="embed:2"))
        assert res.returncode == -signal.SIGKILL
        phase, rows = _after_kill(base, index)
        assert phase == "embedding" and rows > seen[-1]
        seen.append(rows)
    _complete(base, index, "embedding", seen[-1])
    FIGURES["embed:2 three times in a row → embedding"] += 3


# a merge is a build too: killed anywhere inside it, the live version keeps answering
MERGE_POINTS = ["merge", "lexical", "faiss", "segment", "rename", "manifest"]


@pytest.fixture(scope="module")
def segmented(base) -> tuple[Path, Contents, dict]:
    """Index B built as an update of A (its segments, and any merge the policy ran)."""
    index = _restore(base, "segmented")
    res = cli(*build_args(base.src_b, index, *CHUNK))
    assert res.returncode == 0, res.stderr
    return index, check_index(index), answers(index)


@pytest.mark.parametrize("point", MERGE_POINTS)
def test_kill_inside_a_merge(base, segmented, point):
    source, contents, before = segmented
    index = base.root / f"merge-{point}" / "index"
    shutil.copytree(source, index)
    res = cli("merge", "--all", "--index", str(index), env=cli_env(INDEXER_CRASH_AT=point))
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stdout, res.stderr)
    after = check_index(index)
    assert after.structure() == contents.structure() and after.passages == contents.passages
    assert answers(index) == before  # the same answers, from the old or (after the switch) the merged version
    res = cli("merge", "--all", "--index", str(index))
    assert res.returncode == 0, res.stderr
    assert len(IndexDir(index).manifest().segments) == 1
    assert check_index(index).passages == contents.passages and answers(index) == before
    assert not [p for p in (index / "segments").iterdir() if p.name.endswith(".partial")]
    FIGURES[f"merge {point}"] += 1
