"""The file cache: unchanged source files are vouched for by size and mtime, never re-read."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from indexer.corpus import ReadSettings, Unchanged, display_path, read_sources
from indexer.filecache import FileCache, FileState
from indexer.records import Article, Skipped

from .conftest import write

EN = "The government presented a new energy bill yesterday. Members of parliament will debate it next week."
DE = "Die Regierung hat gestern einen neuen Gesetzentwurf zur Energie vorgestellt."
FR = "Le gouvernement a présenté hier un nouveau projet de loi sur l'énergie."
OLD_NS = 1_600_000_000 * 10**9  # 2020: far from any racy window
SETTINGS = ReadSettings(detect_language=False)


def age(*paths: Path, mtime_ns: int = OLD_NS) -> None:
    """Give files an old mtime, as files untouched since long before the cache was recorded."""
    for p in paths:
        os.utime(p, ns=(mtime_ns, mtime_ns))


def recorded(*files: tuple[Path, list[str]]) -> FileCache:
    cache = FileCache()
    for path, ids in files:
        cache.record(path.resolve(), os.stat(path), ids)
    return cache


def reloaded(cache: FileCache, tmp_path: Path, version: str = "v1") -> FileCache:
    cache.save(tmp_path / "files.json", version=version)
    return FileCache.load(tmp_path / "files.json", version=version)


def make_sources(src: Path) -> dict[str, Path]:
    files = {
        "a.txt": write(src / "a.txt", "A\n" + EN),
        "b.md": write(src / "notes" / "b.md", "# B\n\n" + DE),
        "c.json": write(src / "c.json", json.dumps([{"text": EN}, {"id": "c-two", "text": FR}])),
        "d.jsonl": write(src / "d.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in (EN, DE, FR))),
        "e.csv": write(src / "e.csv", f'id,title,text\r\ne1,One,"{EN}"\r\n,Two,"{DE}"\r\n'),
    }
    age(*files.values())
    return files


def first_build(src: Path) -> tuple[FileCache, dict[Path, list[str]], list[Article | Skipped | Unchanged]]:
    """Read everything and record it, as a build without a cache does."""
    cache, reads = FileCache(), {}

    def on_read(path, st, ids):
        reads[path] = ids
        cache.record(path, st, ids)

    out = list(read_sources([src], SETTINGS, on_read=on_read))
    return cache, reads, out


# ------------------------------------------------------------------ save / load
def test_round_trip_keeps_every_field(tmp_path):
    a = write(tmp_path / "src" / "a.jsonl", "x")
    b = write(tmp_path / "src" / "café 漢字" / "b.txt", "yy")
    odd = write(tmp_path / "src" / os.fsdecode(b"bad\xffname.txt"), "zzz")
    age(a, b, odd)
    cache = recorded((a, ["a.jsonl#L1", "a.jsonl#L2"]), (b, ["b-ü-\x00-\ud800"]), (odd, []))
    loaded = reloaded(cache, tmp_path)
    assert len(loaded) == 3
    for path, ids in ((a, ("a.jsonl#L1", "a.jsonl#L2")), (b, ("b-ü-\x00-\ud800",)), (odd, ())):
        st = os.stat(path)
        state = loaded.unchanged(path.resolve(), st)
        assert state is not None
        assert (state.size, state.mtime_ns, state.articles) == (st.st_size, OLD_NS, ids)
        assert state.recorded_ns >= OLD_NS


def test_another_version_is_empty(tmp_path):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a)
    recorded((a, ["a.txt"])).save(tmp_path / "files.json", version="v1")
    other = FileCache.load(tmp_path / "files.json", version="v2")
    assert len(other) == 0
    assert other.unchanged(a.resolve(), os.stat(a)) is None


def test_missing_or_unreadable_is_empty(tmp_path):
    assert len(FileCache.load(tmp_path / "nothing.json", version="v1")) == 0
    assert len(FileCache.load(tmp_path, version="v1")) == 0  # a folder, not a file


def _valid(tmp_path: Path) -> dict:
    a = write(tmp_path / "a.txt", "A\n" + EN)
    b = write(tmp_path / "b.jsonl", "{}")
    age(a, b)
    recorded((a, ["a.txt"]), (b, ["b#L1", "b#L2"])).save(tmp_path / "files.json", version="v1")
    return json.loads((tmp_path / "files.json").read_text())


@pytest.mark.parametrize(
    "garble",
    [
        lambda d: b"",
        lambda d: b"\x00\xff\xfe garbage \x89PNG",
        lambda d: json.dumps(d).encode()[: len(json.dumps(d)) // 2],  # truncated
        lambda d: b"[1, 2, 3]",
        lambda d: b'"just a string"',
        lambda d: json.dumps({**d, "format": "indexer-filecache/999"}).encode(),
        lambda d: json.dumps({k: v for k, v in d.items() if k != "articles"}).encode(),
        lambda d: json.dumps({**d, "size": d["size"][:1]}).encode(),  # columns of unequal length
        lambda d: json.dumps({**d, "size": [True, 1]}).encode(),
        lambda d: json.dumps({**d, "mtime_ns": ["1", 2]}).encode(),
        lambda d: json.dumps({**d, "name": [None, "b.jsonl"]}).encode(),
        lambda d: json.dumps({**d, "articles": ["a.txt", 5, "b#L2"]}).encode(),
        lambda d: json.dumps({**d, "count": [1, 5]}).encode(),  # counts do not add up
        lambda d: json.dumps({**d, "count": [-1, 4]}).encode(),
        lambda d: json.dumps({**d, "folder": [0, 7]}).encode(),  # no such folder
        lambda d: json.dumps({**d, "name": ["a.txt", "a.txt"]}).encode(),  # listed twice
        lambda d: json.dumps({**d, "folders": "abc"}).encode(),
        lambda d: json.dumps({**d, "size": {"0": 1, "1": 2}}).encode(),
        lambda d: b"[" * 100_000,  # nested too deeply
    ],
)
def test_garbled_is_empty(tmp_path, garble):
    (tmp_path / "files.json").write_bytes(garble(_valid(tmp_path)))
    cache = FileCache.load(tmp_path / "files.json", version="v1")
    assert len(cache) == 0
    assert cache.unchanged((tmp_path / "a.txt").resolve(), os.stat(tmp_path / "a.txt")) is None


def test_save_replaces_and_keeps_only_this_runs_files(tmp_path):
    a = write(tmp_path / "src" / "a.txt", "A\n" + EN)
    b = write(tmp_path / "src" / "b.txt", "B\n" + DE)
    c = write(tmp_path / "src" / "c.txt", "C\n" + FR)
    age(a, b, c)
    loaded = reloaded(recorded((a, ["a.txt"]), (b, ["b.txt"])), tmp_path)
    state = loaded.unchanged(a.resolve(), os.stat(a))
    assert state is not None
    loaded.keep(a.resolve(), state)  # b is not carried forward: it was deleted, say
    loaded.record(c.resolve(), os.stat(c), ["c.txt"])
    again = reloaded(loaded, tmp_path)
    assert len(again) == 2
    assert again.unchanged(a.resolve(), os.stat(a)) == state  # its first recording time too
    assert again.unchanged(b.resolve(), os.stat(b)) is None
    assert again.unchanged(c.resolve(), os.stat(c)).articles == ("c.txt",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files.json", "src"]  # no temporary left


def test_failed_save_leaves_the_old_cache(tmp_path, monkeypatch):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a)
    recorded((a, ["a.txt"])).save(tmp_path / "files.json", version="v1")
    before = (tmp_path / "files.json").read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        FileCache().save(tmp_path / "files.json", version="v2")
    assert (tmp_path / "files.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "files.json"]


# ------------------------------------------------------------------ unchanged
def test_unchanged_same_size_and_mtime(tmp_path):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a)
    state = reloaded(recorded((a, ["a.txt"])), tmp_path).unchanged(a.resolve(), os.stat(a))
    assert isinstance(state, FileState)
    assert state.articles == ("a.txt",)


def test_touched_file_is_changed(tmp_path):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a)
    cache = reloaded(recorded((a, ["a.txt"])), tmp_path)
    age(a, mtime_ns=OLD_NS + 1)  # one nanosecond is a change
    assert cache.unchanged(a.resolve(), os.stat(a)) is None


def test_resized_file_is_changed(tmp_path):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a)
    cache = reloaded(recorded((a, ["a.txt"])), tmp_path)
    write(a, "A\n" + EN + " More.")
    age(a)  # same mtime as recorded, as a tool that restores mtimes would leave it
    assert cache.unchanged(a.resolve(), os.stat(a)) is None


@pytest.mark.parametrize("offset_s", [0, -1.5, 3600])
def test_racy_file_is_never_unchanged(tmp_path, offset_s):
    # mtime within 2 s of the recording (or later): a same-size edit in the same tick would go unseen
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a, mtime_ns=time.time_ns() + int(offset_s * 1e9))
    cache = reloaded(recorded((a, ["a.txt"])), tmp_path)
    assert cache.unchanged(a.resolve(), os.stat(a)) is None


def test_entry_recorded_long_after_its_mtime_is_trusted(tmp_path):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a, mtime_ns=time.time_ns() - 3 * 10**9)
    assert reloaded(recorded((a, ["a.txt"])), tmp_path).unchanged(a.resolve(), os.stat(a)) is not None


def test_unknown_file_is_not_unchanged(tmp_path):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    b = write(tmp_path / "b.txt", "A\n" + EN)
    age(a, b)
    assert reloaded(recorded((a, ["a.txt"])), tmp_path).unchanged(b.resolve(), os.stat(b)) is None


def test_relative_paths_are_resolved(tmp_path, monkeypatch):
    a = write(tmp_path / "a.txt", "A\n" + EN)
    age(a)
    monkeypatch.chdir(tmp_path)
    cache = FileCache()
    cache.record(Path("a.txt"), os.stat(a), ["a.txt"])
    assert reloaded(cache, tmp_path).unchanged(a.resolve(), os.stat(a)) is not None


# ------------------------------------------------------------------ read_sources
def test_first_read_reports_ids_per_file(tmp_path):
    src = tmp_path / "src"
    files = make_sources(src)
    _, reads, out = first_build(src)
    assert not [r for r in out if not isinstance(r, Article)]
    assert reads == {
        files["a.txt"].resolve(): ["a.txt"],
        files["b.md"].resolve(): ["notes/b.md"],
        files["c.json"].resolve(): ["c.json#1", "c-two"],
        files["d.jsonl"].resolve(): ["d.jsonl#L1", "d.jsonl#L2", "d.jsonl#L3"],
        files["e.csv"].resolve(): ["e1", "e.csv#row3"],
    }
    assert list(reads.values()) == [  # called in reading order, each after its file's articles
        ["a.txt"],
        ["c.json#1", "c-two"],
        ["d.jsonl#L1", "d.jsonl#L2", "d.jsonl#L3"],
        ["e1", "e.csv#row3"],
        ["notes/b.md"],
    ]


def test_second_read_skips_unchanged_files(tmp_path):
    src = tmp_path / "src"
    files = make_sources(src)
    cache, first, _ = first_build(src)
    cache = reloaded(cache, tmp_path)

    write(files["b.md"], "# B\n\n" + FR)  # edited
    write(src / "new.jsonl", json.dumps({"text": DE}) + "\n" + json.dumps({"id": "n2", "text": EN}) + "\n")
    files["a.txt"].unlink()  # deleted
    reads: dict[Path, list[str]] = {}
    done: list[Path] = []
    out = list(
        read_sources(
            [src],
            SETTINGS,
            skip=cache.unchanged,
            on_read=lambda p, st, ids: reads.__setitem__(p, ids),
            on_file=done.append,
        )
    )
    unchanged = {u.path: u.state for u in out if isinstance(u, Unchanged)}
    assert set(unchanged) == {files[n].resolve() for n in ("c.json", "d.jsonl", "e.csv")}
    for path, state in unchanged.items():
        assert isinstance(state, FileState) and list(state.articles) == first[path]
    assert [a.id for a in out if isinstance(a, Article)] == ["new.jsonl#L1", "n2", "notes/b.md"]
    assert not [s for s in out if isinstance(s, Skipped)]
    assert reads == {(src / "new.jsonl").resolve(): ["new.jsonl#L1", "n2"], files["b.md"].resolve(): ["notes/b.md"]}
    assert len(done) == 5  # on_file for unchanged files too; the deleted one is not there at all
    assert files["a.txt"] not in done


def test_unchanged_files_are_not_opened(tmp_path, monkeypatch):
    from indexer import corpus

    src = tmp_path / "src"
    make_sources(src)
    cache = reloaded(first_build(src)[0], tmp_path)

    def no_reading(*args, **kwargs):
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(corpus, "read_file", no_reading)
    out = list(read_sources([src], SETTINGS, skip=cache.unchanged))
    assert len(out) == 5 and all(isinstance(u, Unchanged) for u in out)


def test_without_a_verdict_reading_is_as_before(tmp_path):
    src = tmp_path / "src"
    make_sources(src)
    write(src / "bad.jsonl", '{"text": "ok text here"}\nnot json\n')
    write(src / "z.txt", "")
    plain = list(read_sources([src], SETTINGS))
    asked: list[Path] = []

    def never(path, st):
        asked.append(path)
        return None

    assert list(read_sources([src], SETTINGS, skip=never, on_read=lambda *a: None)) == plain
    assert len(asked) == 7 and all(p.is_absolute() for p in asked)


def test_files_with_problems_are_not_recorded(tmp_path):
    # so they are read, and their problems reported, on every build
    src = tmp_path / "src"
    good = write(src / "a.jsonl", json.dumps({"id": "x", "text": EN}) + "\n")
    write(src / "b.jsonl", json.dumps({"text": EN}) + "\nnot json\n")  # one bad line
    write(src / "c.jsonl", json.dumps({"id": "x", "text": DE}) + "\n")  # a duplicate id
    write(src / "d.txt", "")  # empty
    reads: dict[Path, list[str]] = {}
    out = list(read_sources([src], SETTINGS, on_read=lambda p, st, ids: reads.__setitem__(p, ids)))
    assert reads == {good.resolve(): ["x"]}
    assert [a.id for a in out if isinstance(a, Article)] == ["x", "b.jsonl#L1"]
    assert len([s for s in out if isinstance(s, Skipped)]) == 3


def test_duplicate_ids_seen_through_unchanged_files(tmp_path):
    src = tmp_path / "src"
    a = write(src / "a.jsonl", json.dumps({"id": "x", "text": EN}) + "\n")
    age(a)
    cache = reloaded(first_build(src)[0], tmp_path)
    write(src / "b.jsonl", json.dumps({"id": "x", "text": DE}) + "\n")
    out = list(read_sources([src], SETTINGS, skip=cache.unchanged))
    assert [type(r) for r in out] == [Unchanged, Skipped]
    assert out[1] == Skipped(
        display_path(src / "b.jsonl"),
        f"duplicate article id 'x', already read from {display_path(a)} — give the records distinct \"id\" fields",
    )


def test_unchanged_file_whose_id_was_taken_is_read(tmp_path):
    # an earlier file now claims an id the unchanged one held: read it, as a full build would
    src = tmp_path / "src"
    b = write(src / "b.jsonl", json.dumps({"id": "x", "text": EN}) + "\n")
    age(b)
    cache = reloaded(first_build(src)[0], tmp_path)
    write(src / "a.jsonl", json.dumps({"id": "x", "text": DE}) + "\n")
    with_cache = list(read_sources([src], SETTINGS, skip=cache.unchanged))
    assert with_cache == list(read_sources([src], SETTINGS))
    assert [type(r) for r in with_cache] == [Article, Skipped]


def test_symlinked_and_relative_sources_use_resolved_paths(tmp_path, monkeypatch):
    real = write(tmp_path / "elsewhere" / "r.txt", "R\n" + EN)
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + DE)
    (src / "link.txt").symlink_to(real)
    (tmp_path / "alias").symlink_to(src, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    seen: list[Path] = []
    out = list(
        read_sources(
            [Path("alias")],
            ReadSettings(detect_language=False, follow_symlinks=True),
            on_read=lambda p, st, ids: seen.append(p),
        )
    )
    assert len([a for a in out if isinstance(a, Article)]) == 2
    assert seen == [(src / "a.txt").resolve(), real.resolve()]


def test_file_vanishing_after_listing_is_skipped(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write(src / "a.txt", "A\n" + EN)
    gone = write(src / "b.txt", "B\n" + DE)
    real_scandir = os.scandir

    class Listing:
        def __init__(self, path):
            self.inner = real_scandir(path)

        def __enter__(self):
            entries = list(self.inner.__enter__())
            gone.unlink(missing_ok=True)  # deleted between the listing and its stat
            return iter(entries)

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(os, "scandir", Listing)
    asked: list[Path] = []
    out = list(read_sources([src], SETTINGS, skip=lambda p, st: asked.append(p), on_read=lambda *a: None))
    assert [a.id for a in out if isinstance(a, Article)] == ["a.txt"]
    [skip] = [s for s in out if isinstance(s, Skipped)]
    assert skip.path == display_path(gone) and skip.reason.startswith("cannot read")
    assert asked == [(src / "a.txt").resolve()]


# ------------------------------------------------------------------ scale
def test_quarter_million_files(tmp_path):
    old = write(tmp_path / "a.txt", "x")
    age(old)
    st = os.stat(old)
    n = 250_000

    def entry(i: int) -> tuple[Path, list[str]]:
        rel = f"{i % 25}/{i % 12:02d}/section-{i % 40}/article-{i:06d}.jsonl"
        return Path(f"/archive/sources/{rel}"), [f"{rel}#L{k}" for k in range(1, 5)]

    cache = FileCache()
    for i in range(n):
        path, ids = entry(i)
        cache.record(path, st, ids)
    loaded = reloaded(cache, tmp_path)
    assert len(loaded) == n
    for i in (0, 1, n // 2, n - 1):
        path, ids = entry(i)
        state = loaded.unchanged(path, st)
        assert state is not None and state.articles == tuple(ids)
        loaded.keep(path, state)
    assert len(reloaded(loaded, tmp_path)) == 4
