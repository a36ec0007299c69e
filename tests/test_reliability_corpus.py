"""A hostile corpus: every good article indexed, every bad file reported once, memory bounded."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from indexer import BuildSettings, build, corpus
from indexer.corpus import display_path

from . import reliability_hostile as hostile
from .conftest import FAKE_MODEL, FakeEncoder
from .reliability_helpers import BACKEND, ROOT, article_paths, check_index, cli_env, minilm_dir, minilm_encoder

MAX_RSS_MB = 1536


def _attribute(plan: hostile.Plan, skips: list[tuple[str, str]]) -> tuple[dict[Path, list], list]:
    """Skip entries per planned file or folder ("path" or "path (line 3)"), and any left over."""
    planned = [*plan.good, *plan.bad, *plan.either, *plan.records, *plan.denied]
    shown = {display_path(p): p for p in planned}
    shown.update({plan.rel_id(p): p for p in planned})  # a few reports name the path inside the source
    per_file: dict[Path, list] = defaultdict(list)
    unplanned = []
    for path, reason in skips:
        match = shown.get(path)
        if match is None:
            prefixes = [s for s in shown if path.startswith(s + " (")]
            match = shown[max(prefixes, key=len)] if prefixes else None
        if match is None:
            unplanned.append((path, reason))
        else:
            per_file[match].append((path, reason))
    return per_file, unplanned


def check_outcome(plan: hostile.Plan, skips: list[tuple[str, str]], indexed: dict[str, str]) -> None:
    """``indexed``: article id → the file it was read from, as the index records it."""
    per_file, unplanned = _attribute(plan, skips)
    assert not unplanned, unplanned[:5]
    for path, reason in skips:  # one clear line each
        assert reason and "\n" not in reason and "\n" not in path and "Traceback" not in reason

    def ids_of(p: Path) -> set[str]:
        rel = plan.rel_id(p)
        return {i for i, path in indexed.items() if path == rel}

    for p, ids in plan.good.items():
        assert ids_of(p) == set(ids), (p, ids_of(p), ids)
    missing = plan.article_ids() - set(indexed)
    assert not missing, sorted(missing)[:10]
    for p in plan.good:
        assert not per_file[p], per_file[p]
    for p, words in plan.bad.items():
        assert len(per_file[p]) == 1, (p, per_file[p])
        assert words.lower() in per_file[p][0][1].lower(), (p, per_file[p])
        assert not ids_of(p), p
    for p in plan.denied:
        assert [r for _, r in per_file[p]] == ["permission denied"], (p, per_file[p])
        assert not ids_of(p)
    assert not {i for i in indexed if i.startswith("bad/locked/")}
    for p in plan.either:
        assert bool(ids_of(p)) != bool(per_file[p]) and len(per_file[p]) <= 1, (p, per_file[p], ids_of(p))
    for p in plan.records:
        wheres = [path for path, _ in per_file[p]]
        assert len(wheres) == len(set(wheres)), (p, per_file[p])  # each bad record once
        assert per_file[p] or ids_of(p), p
    # nothing indexed that was not planned as an article (a denied or bad file leaking in)
    known = set(plan.article_ids())
    for p in (*plan.either, *plan.records):
        known |= ids_of(p)
    assert set(indexed) == known


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> hostile.Plan:
    plan = hostile.make(tmp_path_factory.mktemp("hostile") / "src")
    assert plan.hostile >= 200, plan.hostile
    return plan


def _deny_in_process(monkeypatch, denied: set[Path]) -> None:
    """chmod 000 stops anyone but root, and CI runs as root: refuse these paths the same way."""
    real_open, real_scandir = builtins.open, os.scandir
    names = {os.fsencode(p) for p in denied}

    def fake_open(file, *args, **kwargs):
        if not isinstance(file, int) and os.fsencode(file) in names:
            raise PermissionError(13, "Permission denied", os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    def fake_scandir(path="."):
        if os.fsencode(path) in names:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(corpus, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "scandir", fake_scandir)


def test_hostile_corpus_library(plan, tmp_path, monkeypatch):
    _deny_in_process(monkeypatch, plan.denied)
    rep = build([plan.root], tmp_path / "index", BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
    monkeypatch.undo()
    check_index(tmp_path / "index")
    check_outcome(plan, [(s.path, s.reason) for s in rep.skipped], article_paths(tmp_path / "index"))
    print(f"hostile files: {plan.hostile}, good articles: {len(plan.article_ids())}, skipped: {len(rep.skipped)}")


def _skipped_section(stdout: str, plan: hostile.Plan) -> list[tuple[str, str]]:
    """The CLI's "Skipped:" lines as (path, reason); a path is cut where a planned one ends."""
    planned = [*plan.good, *plan.bad, *plan.either, *plan.records, *plan.denied]
    shown = {display_path(p) for p in planned} | {plan.rel_id(p) for p in planned}
    lines = stdout.split("\nSkipped:\n", 1)[1].splitlines() if "\nSkipped:\n" in stdout else []
    out = []
    for line in lines:
        assert line.startswith("  "), line
        text = line[2:]
        cuts = [i for i in range(len(text)) if text.startswith(": ", i)]
        known = [i for i in cuts if text[:i] in shown or any(text[:i].startswith(s + " (") for s in shown)]
        i = (known or cuts)[0]
        out.append((text[:i], text[i + 2 :]))
    return out


@pytest.mark.slow
def test_hostile_corpus_cli_with_bounded_memory(plan, tmp_path):
    minilm_encoder()  # the one-time ONNX export (~4 GB peak on a fresh machine) is not the build's memory
    index = tmp_path / "index"
    deny = hostile.deny_file(plan, tmp_path / "deny")
    peak = tmp_path / "peak-rss-kb"
    env = cli_env(RELIABILITY_DENY=str(deny), RELIABILITY_PEAK_RSS=str(peak))
    args = ["build", plan.root, "--index", index, "--model", minilm_dir(), "--backend", BACKEND, "-q"]
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    t0 = time.monotonic()
    with open(out, "wb") as o, open(err, "wb") as e:
        code = subprocess.call(
            [sys.executable, str(ROOT / "tests" / "reliability_cli.py"), *map(str, args)],
            stdout=o,
            stderr=e,
            env=env,
            cwd=ROOT,
        )
    seconds = time.monotonic() - t0
    stdout, stderr = out.read_text(encoding="utf-8"), err.read_text(encoding="utf-8")
    assert code == 0, stderr
    assert "Traceback" not in stderr
    peak_mb = int(peak.read_text()) / 1024
    contents = check_index(index)
    check_outcome(plan, _skipped_section(stdout, plan), article_paths(index))
    print(
        f"\nhostile corpus via the CLI: {plan.hostile} hostile files, {len(contents.articles)} articles indexed, "
        f"{len(_skipped_section(stdout, plan))} skipped entries, peak RSS {peak_mb:.0f} MB, {seconds:.1f} s"
    )
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
