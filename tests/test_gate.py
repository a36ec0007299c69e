"""``BuildSettings(gate=...)``: a new version is published only if it answers labelled queries as well.

The corpus is made so the fake encoder's index answers every labelled query at rank 1
with the default passages, and badly with 8-token passages: each relevant article holds
its query's six words in six sentences, and a dozen short distractors per query hold two
of them in one sentence, which wins once every passage is a single sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from indexer import BuildSettings, ChunkSettings, Searcher, SearchOptions, build
from indexer.errors import IndexCorruptError
from indexer.evaluate import evaluate, load_queries
from indexer.gate import (
    OPTIONS,
    GateError,
    GateRefusedError,
    GateReport,
    GateSettings,
    QueryChange,
    rejected,
    report_lines,
    summary,
)
from indexer.index import IndexDir, VerifiedFiles
from indexer.models import ResolvedModel

from .conftest import FAKE_MODEL, ROOT, FakeEncoder, write
from .reliability_helpers import check_index, cli_env

TOPICS = [
    ("harbour", "crane", "strike", "wages", "dockers", "container"),
    ("glacier", "melt", "valley", "tourism", "summer", "ice"),
    ("vaccine", "trial", "hospital", "patients", "dose", "results"),
    ("railway", "tunnel", "mountain", "engineers", "drill", "rock"),
    ("election", "ballot", "mayor", "turnout", "district", "count"),
    ("orchard", "apples", "frost", "farmers", "harvest", "cider"),
    ("museum", "painting", "theft", "guard", "alarm", "gallery"),
    ("satellite", "launch", "orbit", "rocket", "fuel", "antenna"),
]
FILL = "Officials said more details would follow later in the week according to the statement."
BAD_CHUNKS = ChunkSettings(max_tokens=8)


def relevant_text(words: tuple[str, ...]) -> str:
    a, b, c, d, e, f = words
    return (
        f"The {a} was in the news. People spoke about the {b}. Nobody expected the {c}. "
        f"Then came the {d}. Some recalled the {e}. Finally the {f}."
    )


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """Sources and their labelled queries (one relevant article each)."""
    src = tmp_path / "src"
    lines = []
    for i, words in enumerate(TOPICS):
        write(src / f"t{i}.txt", f"Report {i}\n{relevant_text(words)}")
        lines.append(json.dumps({"query": " ".join(words), "relevant": [f"t{i}.txt"]}))
        for j in range(12):
            x, y = words[j % 6], words[(j * 5 + 1) % 6]
            write(src / f"d{i}_{j}.txt", f"Note {i}.{j}\nThe {x} and the {y} again. {FILL} {FILL}")
    labelled = write(tmp_path / "labelled.jsonl", "\n".join(lines) + "\n")
    return src, labelled


def run(src, index, enc, model=FAKE_MODEL, *, live_encoder=None, **kw):
    return build([src], index, BuildSettings(**kw), encoder=enc, model=model, live_encoder=live_encoder)


def gated(labelled: Path, **kw) -> GateSettings:
    return GateSettings(queries=labelled, **kw)


def manifest_bytes(index: Path) -> bytes:
    return (index / "manifest.json").read_bytes()


def ranking(m) -> tuple[float, ...]:
    """The metrics that depend on the ranking only (not on latency)."""
    return (m.r1, m.r5, m.r10, m.mrr10, m.ndcg10)


def top_ids(index: Path, enc, query: str) -> list[str]:
    return [h.article_id for h in Searcher(index, encoder=enc).search(query, SearchOptions(k=10)).hits]


def leftovers(index: Path) -> list[str]:
    """What no retained version owns: partial folders, segments none lists, a staged candidate."""
    kept = [p for p in (index / "versions").iterdir() if not p.name.endswith(".partial")]
    listed = {s["name"] for p in kept for s in json.loads((p / "manifest.json").read_text())["segments"]}
    out = [p.name for p in (index / "versions").iterdir() if p.name.endswith(".partial")]
    out += [p.name for p in (index / "segments").iterdir() if p.name not in listed]
    if (index / ".work" / "gate").exists():
        out.append(".work/gate")
    return out


class NoiseEncoder(FakeEncoder):
    """A model that knows nothing: a random unit vector per text."""

    def _vec(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return v / np.linalg.norm(v)


class NarrowEncoder(FakeEncoder):
    """Another good model, with vectors of another size."""

    dimension = 48


NOISE_MODEL = ResolvedModel(name="fake-noise", path=ROOT, origin="local", fingerprint="sha256:noise")
NARROW_MODEL = ResolvedModel(name="fake-narrow", path=ROOT, origin="local", fingerprint="sha256:narrow")


# --------------------------------------------------------------- verdicts
def test_a_neutral_update_passes_and_is_published(corpus, tmp_path, fake_encoder, monkeypatch):
    from indexer import index as index_mod

    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    before = IndexDir(index).manifest().version
    old = {index / "segments" / s.name / rel for s in IndexDir(index).manifest().segments for rel in s.files}
    write(src / "extra.txt", "Weather\nRain is expected tomorrow over the northern coast.")
    hashed: list[Path] = []
    digest = index_mod.file_digest

    def counting(path: Path, *, sync: bool = False) -> str:
        hashed.append(Path(path))
        return digest(path, sync=sync)

    monkeypatch.setattr(index_mod, "file_digest", counting)
    rep = run(src, index, fake_encoder, gate=gated(labelled))
    monkeypatch.undo()
    # each live segment file is read once, by the live version's searcher (the candidate's searcher reads
    # its links); linking and unlinking moved the files' ctime, but the build knows it verified them, so
    # its own opens (the merge step's) do not read them again
    assert Counter(p for p in hashed if p in old) == dict.fromkeys(old, 1)
    assert rep.published and rep.added == 1 and rep.version != before
    g = rep.gate
    assert g is not None and g.applied and g.passed
    assert g.live_version == before and g.candidate_version == rep.version
    assert g.live is not None and g.candidate is not None
    assert (g.live.r10, g.live.mrr10) == (1.0, 1.0) == (g.candidate.r10, g.candidate.mrr10)
    assert g.queries == len(TOPICS) and not g.worse and g.unknown == 0 and g.candidate_path is None
    assert summary(g).startswith("gate passed on 8 labelled queries (hybrid): R@10 1.000 → 1.000")
    assert IndexDir(index).manifest().version == rep.version
    assert "extra.txt" in top_ids(index, fake_encoder, "rain northern coast")
    assert leftovers(index) == [] and rejected(IndexDir(index)) == []
    trust = VerifiedFiles(index / ".work" / "verified.json")
    m = IndexDir(index).manifest()
    assert all(trust.holds(index / "segments" / s.name / rel, d) for s in m.segments for rel, d in s.files.items())


class CountingEncoder(FakeEncoder):
    """Records the queries it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.queries += texts
        return super().embed_queries(texts)


def test_with_one_model_each_query_is_embedded_once(corpus, tmp_path):
    src, labelled = corpus
    index = tmp_path / "index"
    enc = CountingEncoder()
    run(src, index, enc)
    write(src / "extra.txt", "Weather\nRain is expected tomorrow over the northern coast.")
    rep = run(src, index, enc, gate=gated(labelled))
    assert rep.gate is not None and rep.gate.applied and rep.gate.passed
    assert sorted(enc.queries) == sorted(q.query for q in load_queries(labelled))


def test_an_ordinary_full_rebuild_is_compared_too(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    rep = run(src, index, fake_encoder, full=True, gate=gated(labelled, min_recall=1.0))
    g = rep.gate
    assert rep.published and rep.full and g is not None and g.applied and g.passed
    assert g.live is not None and g.candidate is not None and ranking(g.live) == ranking(g.candidate)


def test_a_bad_chunker_change_is_refused(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    live_manifest = manifest_bytes(index)
    live_version = IndexDir(index).manifest().version
    queries = load_queries(labelled)
    answers = {q.query: top_ids(index, fake_encoder, q.query) for q in queries}

    with pytest.raises(GateRefusedError) as refused:
        run(src, index, fake_encoder, chunk=BAD_CHUNKS, gate=gated(labelled))
    g = refused.value.report
    assert g.applied and not g.passed and g.live is not None and g.candidate is not None
    assert (g.live.r10, g.live.mrr10) == (1.0, 1.0)  # the live version answers every query first
    assert g.candidate.mrr10 < 0.5 and g.candidate.r1 < 0.5  # 8-token passages lose them
    assert g.live_version == live_version
    # the live version stays, byte for byte, and answers as before
    assert manifest_bytes(index) == live_manifest
    assert {q.query: top_ids(index, fake_encoder, q.query) for q in queries} == answers
    assert leftovers(index) == []
    # the candidate is a complete index directory, with the refused settings
    path = g.candidate_path
    assert path is not None and path == index / ".work" / "rejected" / g.candidate_version
    assert rejected(IndexDir(index)) == [path]
    cand = IndexDir(path).manifest()
    assert cand.version == g.candidate_version and cand.chunker.max_tokens == 8
    assert ranking(evaluate(Searcher(path, encoder=fake_encoder), queries, OPTIONS)) == ranking(g.candidate)
    # the worse queries, worst first: most lost their first place
    worse = g.worse
    assert len(worse) >= 6 and {c.query for c in worse} <= {q.query for q in queries}
    assert all(c.live_rank == 1 and (c.candidate_rank is None or c.candidate_rank > 1) for c in worse)
    assert [c.lost for c in worse] == sorted((c.lost for c in worse), reverse=True)
    lines = report_lines(g)
    assert lines[0].startswith("gate refused on 8 labelled queries (hybrid): R@10 1.000 → ")
    assert any(f"version {live_version} stays live" in ln and str(path) in ln for ln in lines)
    assert any(f"--index {path}" in ln for ln in lines)
    assert f"{len(worse)} queries got worse" in "\n".join(lines)
    assert repr(worse[0].query) in lines[lines.index(next(ln for ln in lines if "got worse" in ln)) + 1]
    message = str(refused.value)
    assert "\n" not in message and "refused" in message and str(path) in message and "without --gate" in message

    # the next build without the gate publishes the change, reusing the refused build's vectors
    fake_encoder.embedded.clear()
    rep = run(src, index, fake_encoder, chunk=BAD_CHUNKS)
    assert rep.published and rep.embedded == 0 and rep.reused > 0
    assert IndexDir(index).manifest().chunker.max_tokens == 8
    assert leftovers(index) == []
    check_index(index)
    assert Searcher(path, encoder=fake_encoder).search("harbour crane").hits  # the candidate still opens


def test_a_refused_update_is_read_again_by_the_next_build(corpus, tmp_path, fake_encoder):
    """The file cache must not take the refused change as indexed; GC must not break the candidate."""
    src, labelled = corpus
    index = tmp_path / "index"
    past = time.time() - 1000  # files not touched for a while: the file cache trusts them
    for p in src.iterdir():
        os.utime(p, (past, past))
    run(src, index, fake_encoder)
    live = manifest_bytes(index)
    for i in range(6):  # the labelled articles lose their words
        write(src / f"t{i}.txt", f"Report {i}\nA short note about something else entirely.")
        os.utime(src / f"t{i}.txt", (past + 10, past + 10))
    with pytest.raises(GateRefusedError) as refused:
        run(src, index, fake_encoder, gate=gated(labelled))
    g = refused.value.report
    assert g.candidate is not None and g.candidate.r10 <= 0.5 and g.candidate.mrr10 <= 0.5
    assert {c.query for c in g.worse} == {" ".join(w) for w in TOPICS[:6]}  # the two others are as good
    assert manifest_bytes(index) == live and leftovers(index) == []
    path = g.candidate_path
    assert path is not None
    cand = IndexDir(path).manifest()
    shared = IndexDir(index).manifest().segments[0].name
    assert cand.segments[0].name == shared  # the candidate links the live segment: no copy
    for rel in cand.segments[0].files:
        assert os.stat(path / "segments" / shared / rel).st_ino == os.stat(index / "segments" / shared / rel).st_ino

    rep = run(src, index, fake_encoder)  # ungated: the six files are read again and published
    assert rep.published and rep.updated == 6
    assert "t0.txt" not in top_ids(index, fake_encoder, " ".join(TOPICS[0]))[:1]
    # two more versions: the segment the candidate shares leaves segments/, not the candidate
    run(src, index, fake_encoder, full=True)
    write(src / "extra.txt", "Weather\nRain is expected tomorrow.")
    run(src, index, fake_encoder, full=True)
    assert not (index / "segments" / shared).exists() or shared not in {
        s.name for s in IndexDir(index).manifest().segments
    }
    assert Searcher(path, encoder=fake_encoder).search(" ".join(TOPICS[7])).hits[0].article_id == "t7.txt"
    check_index(index)


def test_min_recall_is_a_share_of_the_live_metrics(corpus, tmp_path, fake_encoder):
    """A model that knows nothing (BM25 still helps): refused at 0.95, published once R is below its share."""
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    noise = NoiseEncoder()
    with pytest.raises(GateRefusedError) as refused:
        run(src, index, noise, NOISE_MODEL, live_encoder=fake_encoder, gate=gated(labelled))
    g = refused.value.report
    assert g.live is not None and g.candidate is not None and g.live.mrr10 == 1.0
    kept = min(g.candidate.r10 / g.live.r10, g.candidate.mrr10 / g.live.mrr10)
    assert 0.3 < kept < 0.95
    assert IndexDir(index).manifest().model.name == "fake-bow"
    assert IndexDir(g.candidate_path).manifest().model.name == "fake-noise"

    with pytest.raises(GateRefusedError):  # just above the share it kept: still refused
        run(src, index, noise, NOISE_MODEL, live_encoder=fake_encoder, gate=gated(labelled, min_recall=kept + 0.005))
    rep = run(src, index, noise, NOISE_MODEL, live_encoder=fake_encoder, gate=gated(labelled, min_recall=kept - 0.005))
    assert rep.published and rep.gate is not None and rep.gate.passed
    assert rep.gate.candidate is not None and ranking(rep.gate.candidate) == ranking(g.candidate)
    assert IndexDir(index).manifest().model.name == "fake-noise"


def test_a_model_change_is_judged_with_each_versions_own_model(corpus, tmp_path, fake_encoder):
    """A good model of another dimension passes: each version was searched with its own vectors."""
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    narrow = NarrowEncoder()
    rep = run(src, index, narrow, NARROW_MODEL, live_encoder=fake_encoder, gate=gated(labelled))
    assert rep.published and rep.full and rep.reason.startswith("model changed")
    g = rep.gate
    assert g is not None and g.applied and g.passed and g.live is not None and g.candidate is not None
    assert g.live.mrr10 == 1.0 and g.candidate.mrr10 >= 0.95
    m = IndexDir(index).manifest()
    assert (m.model.name, m.model.dimension) == ("fake-narrow", 48)


def test_a_model_change_needs_the_live_model_on_this_machine(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    narrow = NarrowEncoder()
    with pytest.raises(GateError, match="'fake-bow', which is not on this machine"):
        run(src, index, narrow, NARROW_MODEL, gate=gated(labelled))
    assert narrow.embedded == []  # refused before any embedding
    assert IndexDir(index).manifest().model.name == "fake-bow" and leftovers(index) == []


# ----------------------------------------------------- nothing to compare
def test_no_live_version_publishes_and_says_so(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    rep = run(src, tmp_path / "index", fake_encoder, gate=gated(labelled))
    assert rep.published and rep.gate is not None and not rep.gate.applied and rep.gate.passed
    assert summary(rep.gate) == "gate not applied: no live version to compare with; published without comparison"
    rep = run(src, tmp_path / "empty", fake_encoder, full=True, gate=gated(labelled))
    assert rep.published and rep.gate is not None and not rep.gate.applied


def test_a_damaged_live_version_is_refused_with_the_fix(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    seg = IndexDir(index).manifest().segments[0].name
    with open(index / "segments" / seg / "vectors.faiss", "r+b") as f:
        f.truncate(100)
    live = manifest_bytes(index)
    fake_encoder.embedded.clear()
    with pytest.raises(GateError, match=r"live version cannot be searched .*build without --gate .*--full"):
        run(src, index, fake_encoder, full=True, gate=gated(labelled))
    assert fake_encoder.embedded == [] and manifest_bytes(index) == live
    with pytest.raises(IndexCorruptError):  # without --full the build itself refuses it, as before
        run(src, index, fake_encoder, gate=gated(labelled))
    rep = run(src, index, fake_encoder, full=True)  # the fix the message names
    assert rep.published


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "evaluation file not found"),
        ("not json at all\n", "line 1: expected"),
        ('{"query": "harbour"}\n', "line 1: expected"),
        ('{"query": "harbour", "relevant": []}\n', "non-empty list of ids"),
        ('{"query": "harbour", "relevant": [{"id": 1}]}\n', "must list article ids"),
        ("[1, 2]\n", "line 1: expected"),
        ("\n  \n", "holds no queries"),
        (b"\xff\xfe\x00\x01garbage", "not UTF-8 text"),
        ('{"query": "harbour", "relevant": ["nope.txt"]}\n', "none of its 1 queries names an article"),
    ],
)
def test_a_bad_gate_file_fails_before_any_work(corpus, tmp_path, fake_encoder, content, needle):
    src, _ = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    write(src / "extra.txt", "Weather\nRain is expected tomorrow over the northern coast.")
    bad = tmp_path / "bad.jsonl"
    if content is not None:
        write(bad, content)
    live = manifest_bytes(index)
    fake_encoder.embedded.clear()
    with pytest.raises(GateError, match=needle) as err:
        run(src, index, fake_encoder, gate=gated(bad))
    assert "\n" not in str(err.value) and str(err.value).startswith("--gate")
    assert fake_encoder.embedded == [] and manifest_bytes(index) == live and leftovers(index) == []


@pytest.mark.parametrize("value", [0, -0.5, 1.01, float("nan"), True])
def test_min_recall_out_of_range_is_refused(tmp_path, value):
    with pytest.raises(GateError, match="--min-recall must be above 0 and at most 1"):
        GateSettings(queries=tmp_path / "q.jsonl", min_recall=value)


def test_labelled_queries_naming_no_article_of_either_version_are_counted(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    write(labelled, labelled.read_text() + json.dumps({"query": "typo", "relevant": ["t99.txt"]}) + "\n")
    write(src / "extra.txt", "Weather\nRain is expected tomorrow.")
    rep = run(src, index, fake_encoder, gate=gated(labelled))
    assert rep.gate is not None and rep.gate.passed and rep.gate.unknown == 1
    assert any("1 labelled query names no article of either version" in ln for ln in report_lines(rep.gate))


# ------------------------------------------------------------- candidates
def test_only_the_last_refused_candidates_are_kept(corpus, tmp_path, fake_encoder):
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    older = [index / ".work" / "rejected" / f"000002-2000010{d}T000000" for d in (1, 2)]
    for p in older:  # stand-ins for candidates refused long ago
        p.mkdir(parents=True)
    with pytest.raises(GateRefusedError) as refused:
        run(src, index, fake_encoder, chunk=BAD_CHUNKS, gate=gated(labelled, keep=2))
    assert rejected(IndexDir(index)) == [older[1], refused.value.report.candidate_path]


def test_the_refusal_lists_the_worst_queries_first_and_caps_them(tmp_path):
    from indexer.evaluate import Metrics

    changes = [QueryChange(f"q{i}", 1, None if i % 2 else i + 2, 1, 0 if i % 2 else 1) for i in range(30)]
    changes.append(QueryChange("better", 3, 1, 1, 1))
    live, cand = Metrics(31, 1, 1, 1, 1, 1), Metrics(31, 0.5, 0.5, 0.5, 0.5, 0.5)
    g = GateReport(
        applied=True, passed=False, min_recall=0.95, queries_file=Path("q.jsonl"), queries=31,
        candidate_version="000003-x", live_version="000002-y", live=live, candidate=cand, changes=changes,
        candidate_path=tmp_path / "cand",
    )  # fmt: skip
    assert len(g.worse) == 30 and [c.query for c in g.better] == ["better"]
    assert [c.candidate_rank for c in g.worse[:15]] == [None] * 15  # lost from the top 10: the worst
    assert [c.candidate_rank for c in g.worse[15:18]] == [30, 28, 26]  # then the biggest rank drops
    lines = report_lines(g, shown=4)
    listed = [ln for ln in lines if ln.startswith("    ")]
    assert len(listed) == 5 and listed[-1].strip() == "… and 26 more"
    assert "1 → not in top 10" in " ".join(listed[0].split())
    assert summary(g).endswith("30 worse, 1 better")


# ------------------------------------------------------------------ kills
KILLED_BUILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from tests.conftest import FAKE_MODEL, FakeEncoder
from indexer import BuildSettings, build
from indexer.gate import GateSettings
build([sys.argv[1]], sys.argv[2], BuildSettings(gate=GateSettings(queries=Path(sys.argv[3]))),
      encoder=FakeEncoder(), model=FAKE_MODEL)
"""


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_a_kill_during_the_gate_leaves_the_live_version_and_nothing_the_next_build_keeps(
    corpus, tmp_path, fake_encoder, nth
):
    """SIGKILL after staging the candidate (1), after asking the live version (2), after asking the candidate (3)."""
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    live = manifest_bytes(index)
    write(src / "extra.txt", "Weather\nRain is expected tomorrow over the northern coast.")
    env = cli_env(INDEXER_CRASH_AT=f"gate:{nth}")
    res = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, str(src), str(index), str(labelled), str(ROOT)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == -9, res.stderr
    assert manifest_bytes(index) == live
    assert (index / ".work" / "gate").is_dir()  # the candidate was staged when the process died
    assert "extra.txt" not in top_ids(index, fake_encoder, "rain northern coast")
    assert top_ids(index, fake_encoder, " ".join(TOPICS[0]))[0] == "t0.txt"

    rep = run(src, index, fake_encoder)  # an ordinary build cleans up and publishes the change
    assert rep.published and rep.added == 1
    assert leftovers(index) == [] and rejected(IndexDir(index)) == []
    assert "extra.txt" in top_ids(index, fake_encoder, "rain northern coast")
    check_index(index)


def test_the_kill_helper_really_kills(corpus, tmp_path, fake_encoder):
    """Without a crash point the same script completes a gated build (so the kills above are the gate's)."""
    src, labelled = corpus
    index = tmp_path / "index"
    run(src, index, fake_encoder)
    write(src / "extra.txt", "Weather\nRain is expected tomorrow over the northern coast.")
    res = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, str(src), str(index), str(labelled), str(ROOT)],
        env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "extra.txt" in top_ids(index, fake_encoder, "rain northern coast")
    assert not os.path.exists(index / ".work" / "gate")
