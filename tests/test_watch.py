"""``indexer watch``: batches of changes published once settled, sources that vanish, errors, stops and kills.

The library is tested in-process (a ``Watcher`` in a thread, the fake encoder); the CLI in
real subprocesses with the small real model, as a user runs it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.index import IndexDir
from indexer.watch import Batch, Changes, Notice, Watcher, WatchSettings, file_system, ignored

from .conftest import FakeEncoder, write
from .reliability_helpers import (
    build_args,
    check_index,
    cli,
    cli_env,
    kill_group,
    news_corpus,
    one_line_error,
    spawn,
    wait_for,
)

INTERVAL = 0.2  # seconds a file must stay unchanged: short, so the tests are quick
WAIT = 60  # the most any wait below may take (never reached unless something is broken)


class Running:
    """A ``Watcher`` in a thread, and the notices it gave."""

    def __init__(self, watcher_args: tuple, settings: WatchSettings, encoder, model) -> None:
        self.notices: list[Notice] = []
        self.watcher = Watcher(*watcher_args, settings, on_notice=self.notices.append, encoder=encoder, model=model)
        self.error: BaseException | None = None
        self.summary = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.watcher.run()
        except BaseException as exc:  # re-raised by stop(), in the test's thread
            self.error = exc

    def kinds(self) -> list[str]:
        return [n.kind for n in self.notices]

    def published(self) -> list[Notice]:
        return [n for n in self.notices if n.kind == "published"]

    def wait(self, predicate, what: str) -> None:
        assert wait_for(lambda: predicate() or self.error is not None, WAIT, 0.02), (what, self.texts())
        assert self.error is None, self.error

    def wait_kind(self, kind: str, count: int = 1) -> Notice:
        self.wait(lambda: self.kinds().count(kind) >= count, f"{count} {kind!r} notice(s)")
        return [n for n in self.notices if n.kind == kind][count - 1]

    def texts(self) -> list[str]:
        return [n.text for n in self.notices]

    def stop(self):
        self.watcher.stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.error is not None:
            raise self.error
        return self.summary


@contextmanager
def watching(sources, index, encoder, model, **settings) -> Iterator[Running]:
    settings.setdefault("interval", INTERVAL)
    run = Running(([Path(s) for s in sources], index), WatchSettings(**settings), encoder, model)
    try:
        yield run
    finally:
        if run.thread.is_alive():
            run.watcher.stop()
            run.thread.join(WAIT)


def article(index: Path, encoder, article_id: str):
    """The live version's article, or None (a fresh searcher each time: what a new reader sees)."""
    s = Searcher(index, encoder=encoder)
    try:
        return s.article(article_id)
    finally:
        s.close()


def ids(index: Path) -> set[str]:
    return set(check_index(index).articles)


# ------------------------------------------------------------------ settling
class Files:
    """A fake ``stat`` for ``Changes``: the test says what each file looks like."""

    def __init__(self) -> None:
        self.sig: dict[str, tuple[int, int] | None] = {}

    def __call__(self, path: str) -> tuple[int, int] | None:
        return self.sig.get(path)


def test_a_batch_waits_until_its_files_stop_changing():
    files = Files()
    changes = Changes(quiet=1.0, hold=10.0, stat=files)
    files.sig["/s/a.txt"] = (10, 1)
    changes.note("/s/a.txt", 0.0)
    assert changes.ready(0.5) is None  # not quiet yet
    files.sig["/s/a.txt"] = (20, 2)  # written on without an event (yet): a look finds it different
    assert changes.ready(1.2) is None
    assert changes.ready(2.0) is None  # quiet counts from that look
    batch = changes.ready(2.3)
    assert batch == Batch(frozenset({"/s/a.txt"}), 0.0, 1.2, True)
    assert len(changes) == 0 and changes.ready(10.0) is None


def test_a_file_open_for_writing_holds_its_batch_until_closed():
    files = Files()
    changes = Changes(quiet=1.0, hold=100.0, stat=files)
    files.sig["/s/a.txt"] = files.sig["/s/b.txt"] = (5, 1)
    changes.note("/s/a.txt", 0.0, writing=True)  # inotify: written, not closed
    changes.note("/s/b.txt", 0.0)
    assert changes.ready(50.0) is None  # unchanged for long, but still open for writing
    changes.note("/s/a.txt", 50.0, writing=False)  # closed
    assert changes.ready(50.5) is None
    batch = changes.ready(51.0)
    assert batch is not None and batch.paths == {"/s/a.txt", "/s/b.txt"} and batch.settled


def test_a_file_that_never_settles_does_not_hold_the_batch_forever():
    files = Files()
    changes = Changes(quiet=1.0, hold=5.0, stat=files)
    changes.note("/s/log.txt", 0.0)
    changes.note("/s/new.txt", 0.0)
    for t in (1.0, 2.0, 3.0, 4.0, 4.8):
        files.sig["/s/log.txt"] = (int(t * 10), int(t * 10))
        changes.note("/s/log.txt", t)
        assert changes.ready(t + 0.1) is None
    batch = changes.ready(5.0)
    assert batch is not None and not batch.settled and batch.paths == {"/s/log.txt", "/s/new.txt"}


def test_the_hold_bound_counts_from_each_files_own_first_change():
    """After a pause (a source gone for an hour), a file written just now is not taken half-written."""
    files = Files()
    changes = Changes(quiet=1.0, hold=5.0, stat=files)
    changes.note("/s/old.txt", 0.0)
    files.sig["/s/new.txt"] = (1, 1)
    changes.note("/s/new.txt", 3600.0, writing=True)
    assert changes.ready(3600.5) is None
    assert changes.ready(3602.0) is None  # still open for writing
    changes.note("/s/new.txt", 3602.0, writing=False)
    assert changes.ready(3602.5) is None
    batch = changes.ready(3603.0)
    assert batch is not None and batch.settled and batch.paths == {"/s/old.txt", "/s/new.txt"}


def test_deletions_and_folders_need_not_settle():
    files = Files()
    changes = Changes(quiet=1.0, hold=10.0, stat=files)
    changes.note("/s/gone.txt", 0.0, settle=False)
    changes.note("/s/sub", 0.0, settle=False)
    batch = changes.ready(1.0)
    assert batch is not None and batch.paths == {"/s/gone.txt", "/s/sub"}


def test_ignored_paths_are_what_corpus_never_reads():
    root, index = "/src", "/src/idx"
    for path in ("/src/a.txt", "/src/sub/b.md", "/src/c.JSONL", "/src/d.html"):
        assert not ignored(path, root, index, folder=False), path
    for path in (
        "/src/.a.txt.swp",
        "/src/a.txt~",
        "/src/a.txt.part",
        "/src/a.crdownload",
        "/src/a.tmp",
        "/src/.hidden/a.txt",
        "/src/photo.jpg",
        "/src/idx/manifest.json",
        "/src/idx/segments/s000001/store.sqlite",
        "/elsewhere/a.txt",
    ):
        assert ignored(path, root, index, folder=False), path
    assert not ignored("/src/sub", root, index, folder=True)
    assert not ignored("/src/2025.01", root, index, folder=True)  # folders have no extension to check
    assert ignored("/src/.git", root, index, folder=True)
    assert not ignored("/src", root, index, folder=True)


def test_file_system_is_read_from_the_mount_table(tmp_path):
    mounts = write(
        tmp_path / "mounts",
        "/dev/sda1 / ext4 rw 0 0\nserver:/export /mnt/share nfs4 rw 0 0\n"
        "tmpfs /mnt/share/tmp tmpfs rw 0 0\n//nas/x /mnt/my\\040nas cifs rw 0 0\n",
    )
    assert file_system("/home/me/news", str(mounts)) == "ext4"
    assert file_system("/mnt/share/news", str(mounts)) == "nfs4"
    assert file_system("/mnt/share", str(mounts)) == "nfs4"
    assert file_system("/mnt/shared", str(mounts)) == "ext4"
    assert file_system("/mnt/share/tmp/x", str(mounts)) == "tmpfs"
    assert file_system("/mnt/my nas/a", str(mounts)) == "cifs"
    assert file_system("/x", str(tmp_path / "none")) is None


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 7200])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError, match="interval"):
        WatchSettings(interval=bad)


def test_a_full_rebuild_is_not_a_watch_setting():
    with pytest.raises(ValueError, match="indexer build --full"):
        WatchSettings(build=BuildSettings(full=True))


# --------------------------------------------------------------- the watcher
@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_added_changed_and_deleted_files_are_published(tmp_path, fake_encoder, fake_model, poll):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model, poll=poll) as w:
        first = w.wait_kind("published")
        assert first.batch is not None and first.batch.reason == "catch-up"
        assert "polling" in w.notices[0].text if poll else "with inotify" in w.notices[0].text

        write(src / "news" / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
        added = w.wait_kind("published", 2)
        assert article(index, fake_encoder, "news/ice.txt") is not None
        assert added.report is not None and (added.report.added, added.report.updated) == (1, 0)
        assert "live" in added.text and "+1 added" in added.text

        write(src / "news" / "ice.txt", "Ice\nGlaciers retreat while the sea ice melts.")
        assert w.wait_kind("published", 3).report.updated == 1
        assert "Glaciers" in article(index, fake_encoder, "news/ice.txt").text

        (src / "fox.txt").unlink()
        assert w.wait_kind("published", 4).report.removed == 1
        assert article(index, fake_encoder, "fox.txt") is None
        hits = Searcher(index, encoder=fake_encoder).search("glaciers sea ice", SearchOptions(k=3)).hits
        assert [h.article_id for h in hits] == ["news/ice.txt"]
        summary = w.stop()
    assert summary.published == 4 and not summary.abandoned
    assert summary.version == IndexDir(index).manifest().version
    assert ids(index) == {"news/ice.txt"}


def test_temporaries_and_hidden_files_do_not_wake_the_watcher(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        for name in (".a.txt.swp", "a.txt~", "b.txt.part", "c.tmp", "d.crdownload", ".hidden/e.txt", "f.jpg"):
            write(src / name, "Temporary\nNot an article to publish yet.")
        (src / "b.txt.part").rename(src / "b.txt")  # a download completed: renamed into place
        w.wait_kind("published", 2)
        # the temporaries made no batch of their own, nor joined the one the completed download made
        assert w.kinds().count("unchanged") == 0
        batch = w.published()[1].batch
        assert batch is not None and {os.path.basename(p) for p in batch.paths} <= {"b.txt", "b.txt.part"}
        assert ids(index) == {"fox.txt", "b.txt"}


def test_an_index_inside_its_source_does_not_wake_the_watcher(tmp_path, fake_encoder, fake_model):
    src = tmp_path / "src"
    index = src / "index"  # every build writes here: were that a change, the watcher would never rest
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
        w.wait_kind("published", 2)
        time.sleep(10 * INTERVAL)  # long enough for a (wrong) batch of the index's own files to settle
        assert w.kinds().count("published") == 2 and w.kinds().count("unchanged") == 0, w.texts()
        assert w.watcher.changes.ready(time.monotonic() + 3600) is None


def test_a_burst_of_2000_files_makes_a_few_builds_and_all_are_searchable(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model, interval=0.5) as w:
        w.wait_kind("published")
        for i in range(2000):
            write(src / f"b{i // 100:02d}" / f"n{i:04d}.txt", f"Note {i}\nThe word w{i}x appears in note {i}.")
        w.wait(lambda: any(n.report.articles == 2001 for n in w.published()), "every file published")
        builds = len(w.published()) - 1
        summary = w.stop()
    assert 1 <= builds <= 5, w.texts()  # one per quiet moment of the writer, not one per file
    assert summary.builds == builds + 1
    assert len(ids(index)) == 2001
    s = Searcher(index, encoder=fake_encoder)
    for i in random.Random(1).sample(range(2000), 20):
        hits = s.search(f"w{i}x", SearchOptions(k=1, mode="bm25")).hits
        assert hits and hits[0].article_id == f"b{i // 100:02d}/n{i:04d}.txt"


def test_a_file_written_slowly_is_published_whole(tmp_path, fake_encoder, fake_model):
    """Inotify reports the close: a file open for writing is held, however long its writer pauses."""
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    pieces = [f"Piece {i} of the slow article, about harbour number {i}. " for i in range(4)]
    with watching([src], index, fake_encoder, fake_model, hold=WAIT) as w:
        w.wait_kind("published")
        with open(src / "slow.txt", "w", encoding="utf-8") as f:
            f.write("Slow\n")
            for piece in pieces:
                f.flush()
                time.sleep(5 * INTERVAL)  # far longer than a file must stay unchanged
                assert article(index, fake_encoder, "slow.txt") is None, "published while still being written"
                f.write(piece)
        w.wait(lambda: article(index, fake_encoder, "slow.txt") is not None, "the slow file published")
        assert article(index, fake_encoder, "slow.txt").text.strip() == "".join(pieces).strip()
        assert w.published()[-1].batch.settled


def test_a_vanished_folder_keeps_its_articles_and_is_followed_again(tmp_path, fake_encoder, fake_model):
    a, b, index = tmp_path / "a", tmp_path / "b", tmp_path / "index"
    write(a / "a1.txt", "Harbour\nShips wait in the harbour for the storm to pass.")
    write(a / "a2.txt", "Bridge\nThe old bridge over the river is closed for repairs.")
    write(b / "b1.txt", "Museum\nThe museum opens a new wing for modern art.")
    with watching([a, b], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        before = ids(index)
        a.rename(tmp_path / "a-away")  # a share unmounted, a folder renamed
        gone = w.wait_kind("gone")
        assert gone.error and str(a) in gone.text
        write(b / "b2.txt", "Festival\nThe summer festival brings music to the park.")
        time.sleep(10 * INTERVAL)  # b2 settles meanwhile, yet nothing is published without a
        assert ids(index) == before and w.kinds().count("published") == 1, w.texts()

        (tmp_path / "a-away").rename(a)
        w.wait_kind("back")
        w.wait(lambda: "b2.txt" in ids(index), "the paused change published once a is back")
        assert ids(index) == before | {"b2.txt"}
        write(a / "a3.txt", "Railway\nThe railway strike ends after a week.")  # a is watched again
        w.wait(lambda: "a3.txt" in ids(index), "a change in the folder that came back")
        assert all(n.report.removed == 0 for n in w.published()), w.texts()

        shutil.rmtree(b)  # gone for good, then made again with other content
        w.wait_kind("gone", 2)
        write(b / "b9.txt", "Election\nThe election results are announced tonight.")
        w.wait_kind("back", 2)
        w.wait(lambda: "b9.txt" in ids(index), "the new folder's content published")
        assert ids(index) == {"a1.txt", "a2.txt", "a3.txt", "b9.txt"}
        shutil.rmtree(b)  # and once more, made again at once: no look may see it missing
        write(b / "b10.txt", "Storm\nThe storm floods the harbour road.")
        w.wait(lambda: "b10.txt" in ids(index), "the folder made again at once")
        write(b / "b11.txt", "Drought\nThe drought empties the reservoir.")
        w.wait(lambda: "b11.txt" in ids(index), "a change in that folder: it is watched")


@contextmanager
def _tmpfs(path: Path) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def test_an_unmounted_share_is_gone_not_empty(tmp_path, fake_encoder, fake_model):
    share, index, saved = tmp_path / "share", tmp_path / "index", tmp_path / "saved"
    with _tmpfs(share):
        write(share / "a1.txt", "Harbour\nShips wait in the harbour for the storm to pass.")
        write(share / "a2.txt", "Bridge\nThe old bridge over the river is closed for repairs.")
        shutil.copytree(share, saved)
        with watching([share], index, fake_encoder, fake_model) as w:
            w.wait_kind("published")
            subprocess.run(["umount", str(share)], check=True)  # leaves the empty mount point folder
            w.wait_kind("gone")
            time.sleep(10 * INTERVAL)
            assert ids(index) == {"a1.txt", "a2.txt"}, w.texts()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(share)], check=True)
            shutil.copytree(saved, share, dirs_exist_ok=True)
            write(share / "a3.txt", "Railway\nThe railway strike ends after a week.")
            w.wait_kind("back")
            w.wait(lambda: "a3.txt" in ids(index), "the remounted share followed")
            assert ids(index) == {"a1.txt", "a2.txt", "a3.txt"}
            assert all(n.report.removed == 0 for n in w.published()), w.texts()


class _NoInotify:
    """An observer that cannot watch anything, as when the inotify watch limit is reached."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_polling_takes_over_where_inotify_cannot_watch(tmp_path, fake_encoder, fake_model, monkeypatch):
    monkeypatch.setattr("indexer.watch._native_observer", _NoInotify)
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        assert w.wait_kind("watching").text.endswith(
            "by polling every 0.2 s (inotify unavailable: inotify watch limit reached)"
        )
        w.wait_kind("published")
        write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
        w.wait(lambda: "ice.txt" in ids(index), "a file found by polling")


def test_a_network_file_system_is_polled(tmp_path, fake_encoder, fake_model, monkeypatch):
    monkeypatch.setattr("indexer.watch.file_system", lambda path: "nfs4")
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        assert "by polling" in w.wait_kind("watching").text and "nfs4" in w.notices[0].text
        w.wait_kind("published")


def test_lost_events_make_a_build_that_reads_everything(tmp_path, fake_encoder, fake_model):
    """The kernel's inotify queue overflowed (a burst faster than it is read): what changed is unknown."""
    import logging

    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        notice = w.wait_kind("unchanged")
        assert "events lost" in notice.text and notice.batch.paths == {os.path.realpath(src)}


def test_a_single_file_source_is_followed(tmp_path, fake_encoder, fake_model):
    feed, index = tmp_path / "feed.jsonl", tmp_path / "index"
    write(feed, '{"id": "n1", "title": "Harbour", "text": "Ships wait in the harbour."}\n')
    write(tmp_path / "other.txt", "Other\nNot a source.")
    with watching([feed], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        with open(feed, "a", encoding="utf-8") as f:
            f.write('{"id": "n2", "title": "Bridge", "text": "The old bridge is closed."}\n')
        w.wait(lambda: ids(index) == {"n1", "n2"}, "the appended record published")
        write(tmp_path / "another.txt", "Another\nStill not a source.")
        time.sleep(10 * INTERVAL)
        assert w.kinds().count("published") == 2 and w.kinds().count("unchanged") == 0, w.texts()


def test_another_build_is_waited_for(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        lock = IndexDir(index).lock()  # as "indexer build" holds it
        try:
            write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
            waiting = w.wait_kind("waiting")
            assert "another build is running" in waiting.text and not waiting.error
            time.sleep(10 * INTERVAL)  # several retries
        finally:
            lock.release()
        w.wait(lambda: "ice.txt" in ids(index), "published once the other build is done")
        assert w.kinds().count("waiting") == 1, w.texts()  # one line, not one per retry


def test_build_errors_are_logged_and_retried_with_backoff(tmp_path, fake_encoder, fake_model, monkeypatch):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        manifest = index / "manifest.json"
        good = manifest.read_bytes()
        manifest.write_bytes(b"{ garbled")  # a damaged index: no build can update it
        write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
        first = w.wait_kind("failed")
        second = w.wait_kind("failed", 2)
        assert first.error and first.text.startswith("error: ") and "indexer build --full" in first.text
        assert "\n" not in first.text
        assert "retrying in 0.2 s" in first.text and "retrying in 0.4 s" in second.text  # backing off
        manifest.write_bytes(good)
        w.wait(lambda: "ice.txt" in ids(index), "published once the index is readable again")
        assert w.watcher.run  # still running
        assert w.thread.is_alive()


def test_an_unexpected_failure_does_not_stop_the_watcher(tmp_path, fake_encoder, fake_model, monkeypatch):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return build(*args, **kwargs)

    monkeypatch.setattr("indexer.watch.build", flaky)
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
        assert w.wait_kind("failed").text.startswith("error: RuntimeError: disk on fire (retrying in")
        w.wait(lambda: "ice.txt" in ids(index), "published by the retry")


def test_a_setup_that_cannot_work_fails_at_once(tmp_path, fake_encoder, fake_model):
    src, target = tmp_path / "src", tmp_path / "docs"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    write(target / "thesis.odt", "not an index")  # no index to keep serving: nothing to wait for
    w = Watcher([src], target, WatchSettings(interval=INTERVAL), encoder=fake_encoder, model=fake_model)
    with pytest.raises(Exception, match="not an index folder"):
        w.run()
    with pytest.raises(Exception, match="source not found"):
        Watcher([tmp_path / "missing"], target, WatchSettings())


class _GatedEncoder(FakeEncoder):
    """Blocks in its first embedding call until released, so a test can stop a build midway."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def embed_passages_with_sentences(self, texts, spans):
        self.entered.set()
        assert self.release.wait(WAIT)
        return super().embed_passages_with_sentences(texts, spans)


def test_stop_abandons_a_running_build_and_the_next_start_catches_up(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog.")
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    before = check_index(index)
    for i in range(300):
        write(src / f"n{i:03d}.txt", f"Note {i}\nThe word w{i}x appears in note {i}.")
    gated = _GatedEncoder()
    with watching([src], index, gated, fake_model) as w:
        assert gated.entered.wait(WAIT)  # the catch-up build is embedding
        w.watcher.stop()
        gated.release.set()
        summary = w.stop()
    assert summary.abandoned and summary.published == 0
    assert check_index(index) == before  # untouched by the abandoned build
    assert not [p for p in (index / "versions").iterdir() if p.name.endswith(".partial")]
    with watching([src], index, fake_encoder, fake_model) as w:
        w.wait_kind("published")
        assert w.published()[0].report.reused > 0  # the abandoned build's vectors were kept
        w.stop()
    assert len(ids(index)) == 301


# -------------------------------------------------------------- the real CLI
def _log_lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []


def _logged(log: Path, needle: str, count: int = 1) -> bool:
    return sum(needle in line for line in _log_lines(log)) >= count


def test_cli_watch_rejects_bad_options(tmp_path):
    for value in ("0", "-1", "nan", "abc"):
        res = cli("watch", tmp_path, "--index", tmp_path / "index", "--interval", value)
        assert res.returncode == 2 and "--interval" in res.stderr and "Traceback" not in res.stderr, res.stderr
    one_line_error(cli("watch", tmp_path / "missing", "--index", tmp_path / "index"), "source not found")


def _watch_proc(src: Path, index: Path, log: Path, **env: str) -> subprocess.Popen:
    return spawn("watch", src, "--index", index, "--interval", "0.5", env=cli_env(**env), log=log)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_watch_publishes_a_new_file_and_stops_on_a_signal(tmp_path, sig):
    src, index, log = tmp_path / "src", tmp_path / "index", tmp_path / "watch.log"
    news_corpus(src, 5, seed=11)
    assert cli(*build_args(src, index)).returncode == 0  # the small real model; the watcher keeps it
    proc = _watch_proc(src, index, log)
    try:
        assert wait_for(lambda: _logged(log, "up to date at 000001"), WAIT, 0.05), _log_lines(log)
        if sig == signal.SIGTERM:
            write(src / "volcano.txt", "Volcano erupts\nLava from the volcano reached the sea near the harbour.")
            assert wait_for(lambda: _logged(log, "published 000002"), WAIT, 0.05), _log_lines(log)
            res = cli("search", "lava flows from an erupting volcano", "--index", index, "--json", "-k", "1")
            assert res.returncode == 0 and '"article_id": "volcano.txt"' in res.stdout, res.stdout + res.stderr
        proc.send_signal(sig)
        assert proc.wait(WAIT) == 0
    finally:
        kill_group(proc)
    lines = _log_lines(log)
    assert "Traceback" not in log.read_text()
    assert lines[-1].split(" ", 1)[1].startswith(f"stopped by {sig.name} after"), lines
    assert sum("stopped" in line for line in lines) == 1
    assert check_index(index).version == IndexDir(index).manifest().version


@pytest.mark.slow
def test_cli_watch_killed_mid_build_restarts_to_a_consistent_index(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 20, seed=5)
    assert cli(*build_args(src, index, "--max-tokens", "40")).returncode == 0
    before = check_index(index)
    news_corpus(src / "more", 120, seed=6)

    # killed by itself inside the catch-up build's embedding, at an exact point
    proc = _watch_proc(src, index, tmp_path / "w1.log", INDEXER_CRASH_AT="embed:3")
    try:
        assert proc.wait(WAIT * 5) == -signal.SIGKILL, _log_lines(tmp_path / "w1.log")
    finally:
        kill_group(proc)
    assert check_index(index) == before

    # killed from outside while a batch is being built
    def partials() -> set[tuple[str, int, int]]:
        # not by name alone: a build started within the second another was killed reuses its folder's name
        found = set()
        for p in (index / "versions").iterdir():
            if p.name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    st = p.stat()
                    found.add((p.name, st.st_ino, st.st_ctime_ns))
        return found

    left = partials()  # what the build killed above left behind, for the next build to remove
    proc = _watch_proc(src, index, tmp_path / "w2.log")
    try:
        assert wait_for(lambda: bool(partials() - left), WAIT * 5, 0.01), _log_lines(tmp_path / "w2.log")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
    finally:
        kill_group(proc)
    assert check_index(index).articles.keys() >= before.articles.keys()

    # SIGTERM in the middle of a build: abandoned, exit code 0, the index as it was
    log = tmp_path / "w-term.log"
    mid = check_index(index)
    left = partials()
    proc = _watch_proc(src, index, log)
    try:
        assert wait_for(lambda: bool(partials() - left), WAIT * 5, 0.01), _log_lines(log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
    finally:
        kill_group(proc)
    assert "a build in progress was abandoned" in _log_lines(log)[-1], _log_lines(log)
    assert check_index(index) == mid

    # the restart catches up: every file, a consistent index
    log = tmp_path / "w3.log"
    proc = _watch_proc(src, index, log)
    try:
        assert wait_for(lambda: _logged(log, "published") and _logged(log, "(catch-up"), WAIT * 5, 0.05), _log_lines(
            log
        )
        write(src / "volcano.txt", "Volcano erupts\nLava from the volcano reached the sea near the harbour.")
        assert wait_for(lambda: _logged(log, "(1 changed path)"), WAIT, 0.05), _log_lines(log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
    finally:
        kill_group(proc)
    files = {str(p.relative_to(src)) for p in src.rglob("*.txt")}
    assert set(check_index(index).articles) == files and len(files) == 141
