"""A server's searcher moves to a new version once it is verified and warm, answering from the old one meanwhile."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.errors import IndexCorruptError

from .conftest import write
from .reliability_helpers import wait_for

Q = "volcano eruption lava"


def _corpus(src: Path) -> None:
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")


def _build(src: Path, index: Path, fake_encoder, fake_model) -> None:
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)


def _served(tmp_path: Path, fake_encoder, fake_model) -> tuple[Path, Path, Searcher]:
    """Sources, their index, and a server's warming searcher on it."""
    src, index = tmp_path / "src", tmp_path / "index"
    _corpus(src)
    _build(src, index, fake_encoder, fake_model)
    return src, index, Searcher(index, encoder=fake_encoder, warm_new_versions=True)


def _add_volcano(src: Path, index: Path, fake_encoder, fake_model) -> None:
    write(src / "volcano.txt", "Volcano\nThe volcano eruption sent lava down the slopes.")
    _build(src, index, fake_encoder, fake_model)


def _ids(s: Searcher) -> set[str]:
    return {h.article_id for h in s.search(Q, SearchOptions(k=5)).hits}


class Gate:
    """Holds the searcher's warmer until released, so a test sees what is served meanwhile."""

    def __init__(self, s: Searcher, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        real = s._warm

        def gated(snap):
            if threading.current_thread().name == "indexer-warm":
                self.entered.set()
                assert self.open.wait(30)
            real(snap)

        monkeypatch.setattr(s, "_warm", gated)


def test_old_version_answers_until_the_new_one_is_warm(tmp_path, fake_encoder, fake_model, monkeypatch):
    src, index, s = _served(tmp_path, fake_encoder, fake_model)
    v1 = s.snapshot().manifest.version
    before = {seg.info.name for seg in s.snapshot().segments}
    gate = Gate(s, monkeypatch)

    _add_volcano(src, index, fake_encoder, fake_model)
    assert "volcano.txt" not in _ids(s)  # noticed, warming in the background: the old version answers
    assert gate.entered.wait(10)
    assert s.snapshot().manifest.version == v1
    assert s.article("volcano.txt") is None

    gate.open.set()
    assert wait_for(lambda: s.snapshot().manifest.version > v1, 30)
    snap = s.snapshot()
    new = [seg for seg in snap.segments if seg.info.name not in before]
    assert new and all(seg._vectors is not None and seg._postings is not None for seg in new)
    assert snap._columns is not None and snap._lexical is not None  # loaded before the switch, not by a reader
    assert _ids(s) >= {"volcano.txt"}
    assert s.search(Q, SearchOptions(k=5)).hits[0].article_id == "volcano.txt"


def test_refresh_moves_at_once(tmp_path, fake_encoder, fake_model):
    src, index, s = _served(tmp_path, fake_encoder, fake_model)
    _add_volcano(src, index, fake_encoder, fake_model)
    snap = s.refresh()
    assert snap.stamp == s.idx.stamp()
    assert s.search(Q, SearchOptions(k=5)).hits[0].article_id == "volcano.txt"


def test_a_damaged_new_version_is_never_served(tmp_path, fake_encoder, fake_model):
    src, index, s = _served(tmp_path, fake_encoder, fake_model)
    v1 = s.snapshot().manifest.version
    before = {seg.info.name for seg in s.snapshot().segments}

    _add_volcano(src, index, fake_encoder, fake_model)
    added = [info.name for info in s.idx.manifest().segments if info.name not in before]
    db = index / "segments" / added[0] / "store.sqlite"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0xFF
    db.write_bytes(bytes(data))

    def refused() -> bool:
        try:
            ids = _ids(s)
        except IndexCorruptError:
            return True
        assert "volcano.txt" not in ids  # until it is refused, the sound old version answers
        return False

    assert wait_for(refused, 30)
    with pytest.raises(IndexCorruptError, match="checksum"):
        s.search(Q)
    assert s._snap is not None and s._snap.manifest.version == v1

    (src / "volcano.txt").unlink()
    # the fix the message gives publishes a sound version: served again
    build([src], index, BuildSettings(full=True), encoder=fake_encoder, model=fake_model)
    assert wait_for(lambda: s.snapshot().manifest.version > v1 and "fox.txt" in _ids(s), 30)


def test_a_version_whose_folder_is_gone_is_left_at_once(tmp_path, fake_encoder, fake_model, monkeypatch):
    src, index, s = _served(tmp_path, fake_encoder, fake_model)
    v1 = s.snapshot().manifest.version
    gate = Gate(s, monkeypatch)  # the warmer never finishes: only the synchronous move can help

    _add_volcano(src, index, fake_encoder, fake_model)
    write(src / "geyser.txt", "Geyser\nA geyser erupts with hot water near the volcano.")
    _build(src, index, fake_encoder, fake_model)  # two publishes: v1's folder is collected
    assert not (index / "versions" / v1).exists()
    assert {"volcano.txt", "geyser.txt"} <= _ids(s)
    assert s.snapshot().stamp == s.idx.stamp()
    gate.open.set()


def test_searches_during_many_publishes_converge_on_the_last(tmp_path, fake_encoder, fake_model):
    src, index, s = _served(tmp_path, fake_encoder, fake_model)
    stop, errors, answered = threading.Event(), [], [0]
    known = {"fox.txt", "ice.txt"} | {f"extra{i}.txt" for i in range(6)}

    def reader() -> None:
        while not stop.is_set():
            try:
                hits = s.search(Q, SearchOptions(k=5)).hits
                assert len(hits) == min(5, len({h.article_id for h in hits})) and len(hits) >= 2
                assert all(h.article_id in known for h in hits)
                answered[0] += 1
            except BaseException as exc:  # reported by the test
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            write(src / f"extra{i}.txt", f"Extra {i}\nA volcano eruption number {i} sent lava flowing.")
            _build(src, index, fake_encoder, fake_model)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert answered[0] > 0
    assert wait_for(lambda: s.snapshot().stamp == s.idx.stamp(), 30)
    assert {f"extra{i}.txt" for i in range(6)} <= {h.article_id for h in s.search(Q, SearchOptions(k=10)).hits}
