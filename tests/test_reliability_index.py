"""A damaged index is refused in one line that names the fix; a failed write never harms the live one."""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer import BuildSettings, Searcher, SearchOptions, build, manifest, vectors
from indexer.errors import IndexerError
from indexer.index import IndexDir

from .conftest import write
from .reliability_helpers import (
    answers,
    build_args,
    change_corpus,
    check_index,
    cli,
    minilm_dir,
    news_corpus,
    one_line_error,
    versions,
)

FIX = "indexer build --full"


# ------------------------------------------------------------------ damage
def _version_dir(index: Path) -> Path:
    return index / "versions" / IndexDir(index).manifest().version


def _garble(path: Path, where: float, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    i = min(int(len(data) * where), max(0, len(data) - n))
    data[i : i + n] = bytes((b ^ 0x5A) for b in data[i : i + n])  # always different from before
    path.write_bytes(bytes(data))


def _truncate(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _edit_manifest(index: Path, change: Callable[[dict], None]) -> None:
    data = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    change(data)
    (index / "manifest.json").write_text(json.dumps(data), encoding="utf-8")


def _segment_dir(index: Path) -> Path:
    return index / "segments" / IndexDir(index).manifest().segments[0].name


def _lexical_file(index: Path) -> Path:
    files = sorted(p for p in (_segment_dir(index) / "postings").rglob("*") if p.is_file())
    return max(files, key=lambda p: p.stat().st_size)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "faiss truncated": lambda i: _truncate(_segment_dir(i) / "vectors.faiss", 0.5),
    "faiss garbled header": lambda i: _garble(_segment_dir(i) / "vectors.faiss", 0.0),
    "faiss garbled vectors": lambda i: _garble(_segment_dir(i) / "vectors.faiss", 0.6),
    "faiss empty": lambda i: _truncate(_segment_dir(i) / "vectors.faiss", 0.0),
    "faiss missing": lambda i: (_segment_dir(i) / "vectors.faiss").unlink(),
    "sqlite truncated": lambda i: _truncate(_segment_dir(i) / "store.sqlite", 0.5),
    "sqlite garbled header": lambda i: _garble(_segment_dir(i) / "store.sqlite", 0.0),
    "sqlite garbled pages": lambda i: _garble(_segment_dir(i) / "store.sqlite", 0.5, 4096),
    "sqlite empty": lambda i: _truncate(_segment_dir(i) / "store.sqlite", 0.0),
    "sqlite missing": lambda i: (_segment_dir(i) / "store.sqlite").unlink(),
    "bm25 garbled": lambda i: _garble(_lexical_file(i), 0.5),
    "manifest truncated": lambda i: _truncate(i / "manifest.json", 0.5),
    "manifest garbled": lambda i: _garble(i / "manifest.json", 0.3, 16),
    "manifest empty": lambda i: _truncate(i / "manifest.json", 0.0),
    "manifest missing": lambda i: (i / "manifest.json").unlink(),
    "manifest not an object": lambda i: (i / "manifest.json").write_text("[1, 2]"),
    "manifest newer format": lambda i: _edit_manifest(i, lambda d: d.update(format_version=99)),
    "manifest older format": lambda i: _edit_manifest(i, lambda d: d.update(format_version=0)),
    "manifest format not a number": lambda i: _edit_manifest(i, lambda d: d.update(format_version="1")),
    "manifest without model": lambda i: _edit_manifest(i, lambda d: d.pop("model")),
    "manifest model not an object": lambda i: _edit_manifest(i, lambda d: d.update(model="minilm")),
    "manifest version a number": lambda i: _edit_manifest(i, lambda d: d.update(version=123)),
    "manifest version escapes": lambda i: _edit_manifest(i, lambda d: d.update(version="../../etc")),
    "manifest names a missing version": lambda i: _edit_manifest(i, lambda d: d.update(version="999999-x")),
    "manifest wrong dimension": lambda i: _edit_manifest(i, lambda d: d["model"].update(dimension=768)),
    "manifest dimension not a number": lambda i: _edit_manifest(i, lambda d: d["model"].update(dimension="384")),
    "manifest checksum differs": lambda i: _edit_manifest(
        i, lambda d: d["segments"][0]["files"].update({"store.sqlite": "sha256:" + "0" * 64})
    ),
    "deletions garbled": lambda i: _garble(_version_dir(i) / "deleted_ids.npy", 0.5, 8),
    "groups missing": lambda i: (_version_dir(i) / "groups.npy").unlink(),
    "segment missing": lambda i: shutil.rmtree(_segment_dir(i)),
    "segment range not a pair": lambda i: _edit_manifest(i, lambda d: d["segments"][0].update(rows=[1])),
    "manifest file outside": lambda i: _edit_manifest(i, lambda d: d["files"].update({"../../x": "sha256:0"})),
}


@pytest.fixture(scope="module")
def good_index(tmp_path_factory) -> Path:
    """A small index built by the CLI with a real model."""
    root = tmp_path_factory.mktemp("corrupt")
    news_corpus(root / "src", 30, seed=11)
    res = cli(*build_args(root / "src", root / "index"))
    assert res.returncode == 0, res.stderr
    return root / "index"


@pytest.fixture
def damaged(request, good_index, tmp_path) -> Path:
    index = tmp_path / "index"
    shutil.copytree(good_index, index)
    DAMAGE[request.param](index)
    return index


@pytest.mark.slow
@pytest.mark.parametrize("damaged", list(DAMAGE), indirect=True)
def test_damaged_index_is_one_line_error_naming_the_fix(damaged):
    shown = []
    for args in (["info", "--index", damaged], ["search", "energy prices", "--index", damaged]):
        shown.append(one_line_error(cli(*args), FIX))
    # the page shows str(exc) of the same error, raised where it opens the index
    with pytest.raises(IndexerError) as exc:
        Searcher(damaged).search("energy prices")
    assert str(exc.value) == shown[0] == shown[1]


@pytest.mark.slow
def test_damaged_index_is_rebuilt_by_the_named_fix(good_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(good_index, index)
    src = good_index.parent / "src"
    DAMAGE["sqlite garbled pages"](index)
    one_line_error(cli(*build_args(src, index)), FIX)  # an incremental build will not build on it
    assert cli(*build_args(src, index, "--full")).returncode == 0
    assert len(check_index(index).articles) == 30


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A copy of the model whose configuration differs: other weights, as far as the index can tell."""
    folder = tmp_path_factory.mktemp("model") / "minilm-copy"
    shutil.copytree(minilm_dir(), folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["note"] = "retrained"
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.slow
def test_search_with_another_model_names_the_fix(good_index, other_model):
    msg = one_line_error(cli("search", "energy", "--index", good_index, "--model", other_model), FIX)
    with pytest.raises(IndexerError) as exc:
        Searcher(good_index, model=str(other_model)).search("energy")
    assert str(exc.value) == msg


@pytest.mark.slow
def test_index_whose_model_changed_on_disk_names_the_fix(tmp_path, other_model):
    model = tmp_path / "model"
    shutil.copytree(minilm_dir(), model)
    news_corpus(tmp_path / "src", 10, seed=5)
    res = cli("build", tmp_path / "src", "--index", tmp_path / "index", "--model", model, "-q")
    assert res.returncode == 0, res.stderr
    shutil.copyfile(other_model / "config.json", model / "config.json")  # the weights at that path changed
    msg = one_line_error(cli("search", "energy", "--index", tmp_path / "index"), FIX)
    with pytest.raises(IndexerError) as exc:
        Searcher(tmp_path / "index").search("energy")
    assert str(exc.value) == msg


@pytest.mark.slow
def test_index_whose_model_is_gone_names_the_fix(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(minilm_dir(), model)
    news_corpus(tmp_path / "src", 10, seed=5)
    assert cli("build", tmp_path / "src", "--index", tmp_path / "index", "--model", model, "-q").returncode == 0
    shutil.rmtree(model)
    one_line_error(cli("search", "energy", "--index", tmp_path / "index"), FIX)


# --------------------------------------------------------- disk full, read-only
def _stray_files(index: Path) -> list[str]:
    """Anything a failed build may have left: partial folders, temporary manifests."""
    found = [p.name for p in (index / "versions").iterdir() if p.name.endswith(".partial")]
    found += [p.name for p in index.iterdir() if p.name.endswith(".tmp")]
    return found


def _boom_enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _boom_sqlite_full(*_a, **_k):
    raise sqlite3.OperationalError("database or disk is full")


def _boom_readonly(*_a, **_k):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def _boom_faiss(*_a, **_k):
    raise RuntimeError("Error in write_index: write error in vectors.faiss: 3 != 9 (No space left on device)")


# (what fails, how): each a write of the build, failing the way a full or read-only disk fails
WRITE_FAILURES: dict[str, tuple[str, str, Callable]] = {
    "writing deletions and groups": ("indexer.version_state", "VersionState.save", _boom_enospc),
    "writing SQLite rows": ("indexer.writer", "Writer.add_article", _boom_sqlite_full),
    "the resume cache": ("indexer.resume", "ResumeCache.put", _boom_sqlite_full),
    "writing FAISS": ("faiss", "write_index", _boom_faiss),
    "writing BM25": ("indexer.postings", "write", _boom_enospc),
    "fsync": ("os", "fsync", _boom_enospc),
    "renaming the version folder": ("os", "replace", _boom_readonly),
    "writing the manifest": ("indexer.manifest", "write_atomic", _boom_enospc),
}


@pytest.fixture
def fake_index(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 40, seed=1)
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    change_corpus(src, seed=2, add=10, modify=5, delete=5)
    return src, index


@pytest.mark.parametrize("step", list(WRITE_FAILURES))
def test_failed_write_keeps_previous_index(step, fake_index, fake_encoder, fake_model, monkeypatch):
    src, index = fake_index
    before = check_index(index)
    before_answers = answers(index, encoder=fake_encoder)
    module, attr, boom = WRITE_FAILURES[step]
    obj = importlib.import_module(module)
    *owners, name = attr.split(".")
    for owner in owners:
        obj = getattr(obj, owner)
    monkeypatch.setattr(obj, name, boom)
    with pytest.raises((OSError, sqlite3.Error, IndexerError)):
        build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    monkeypatch.undo()
    assert check_index(index) == before
    assert answers(index, encoder=fake_encoder) == before_answers
    assert not _stray_files(index)
    assert versions(index) == [before.version]  # no unpublished folder left taking space
    rep = build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)  # once writable again
    assert rep.published and set(check_index(index).articles) == {p.name for p in src.iterdir()}


def test_vector_write_error_is_an_oserror_with_its_errno(tmp_path, monkeypatch):
    import faiss

    monkeypatch.setattr(faiss, "write_index", _boom_faiss)
    with pytest.raises(OSError) as exc:
        vectors.save(vectors.new_index(4), tmp_path / "v.faiss")
    assert exc.value.errno == errno.ENOSPC


def test_manifest_write_failure_leaves_no_temporary(tmp_path, monkeypatch):
    target = write(tmp_path / "manifest.json", "{}")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        manifest.write_atomic(target, '{"new": 1}')
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_disk_full_is_one_line_error_in_the_cli(fake_index, monkeypatch):
    """What the CLI shows for a write that fails: one line, exit 2 (in process, with a simulated full disk)."""
    from click.testing import CliRunner

    from indexer.cli import main

    src, index = fake_index
    monkeypatch.setattr("indexer.postings.write", _boom_enospc)
    res = CliRunner().invoke(main, ["build", str(src), "--index", str(index), "--model", str(minilm_dir()), "-q"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "No space left on device" in lines[0]


def test_leftovers_of_killed_builds_are_cleaned(fake_index, fake_encoder, fake_model):
    """What SIGKILL leaves (a .partial folder, an unpublished version, a manifest temporary) goes
    at the next build, and the version that was live before stays as the one readers may be on."""
    src, index = fake_index
    live = IndexDir(index).manifest().version
    shutil.copytree(index / "versions" / live, index / "versions" / "999998-killed.partial")
    shutil.copytree(index / "versions" / live, index / "versions" / "999999-renamed-not-published")
    write(index / ".manifest.json.4242.tmp", "{half")
    rep = build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert rep.published and versions(index) == sorted([live, rep.version])
    assert rep.version > live
    assert not list(index.glob(".manifest.json.*"))


def test_damaged_resume_cache_is_discarded(fake_index, fake_encoder, fake_model):
    """The resume cache is only a cache: a garbled one must not stop every later build."""
    src, index = fake_index
    write(index / ".work" / "embeddings.sqlite", random.Random(3).randbytes(5000))
    rep = build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert rep.published and set(check_index(index).articles) == {p.name for p in src.iterdir()}


# ---------------------------------------------------------------- real mounts
@contextlib.contextmanager
def _tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the simulated disk-full tests cover this)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _du_kb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024


@pytest.mark.slow
def test_tiny_filesystem_fills_up_previous_index_survives(tmp_path):
    src = tmp_path / "src"
    news_corpus(src, 60, seed=21)
    staging = tmp_path / "staging"
    assert cli(*build_args(src, staging)).returncode == 0
    size = _du_kb(staging)
    with _tmpfs(tmp_path / "disk", size + size // 2 + 64) as disk:
        index = disk / "index"
        shutil.copytree(staging, index)
        before, before_answers = check_index(index), answers(index)
        change_corpus(src, seed=22, add=60, modify=10, delete=5)
        res = cli(*build_args(src, index))
        assert res.returncode != 0, res.stdout
        assert "No space left on device" in res.stderr or "disk is full" in res.stderr, res.stderr
        assert check_index(index) == before and answers(index) == before_answers
        assert not _stray_files(index) and versions(index) == [before.version]
        assert cli("search", "energy prices", "--index", index).returncode == 0
        subprocess.run(["mount", "-o", f"remount,size={size * 4 + 4096}k", str(disk)], check=True)
        res = cli(*build_args(src, index))  # with room again, the next build completes
        assert res.returncode == 0, res.stderr
        assert set(check_index(index).articles) == {p.name for p in src.iterdir()}


@pytest.mark.slow
def test_read_only_filesystem_is_one_line_error(tmp_path):
    src = tmp_path / "src"
    news_corpus(src, 20, seed=23)
    with _tmpfs(tmp_path / "disk", 32 * 1024) as disk:
        index = disk / "index"
        assert cli(*build_args(src, index)).returncode == 0
        before, before_answers = check_index(index), answers(index)
        change_corpus(src, seed=24, add=5, modify=2, delete=2)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        msg = one_line_error(cli(*build_args(src, index)), "Read-only file system", "previous index is unchanged")
        assert str(index) in msg
        assert check_index(index) == before and answers(index) == before_answers
        res = cli("search", "energy prices", "--index", index, "--json")  # reading needs no write access
        assert res.returncode == 0 and json.loads(res.stdout)["hits"]


def test_read_only_index_folder_is_refused_cleanly(tmp_path, fake_encoder, fake_model, monkeypatch):
    """Where no mount is allowed: the lock file cannot be created, as on a read-only disk."""
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 5, seed=3)
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    real_open = os.open

    def ro_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", ro_open)
    with pytest.raises(IndexerError, match=r"Read-only file system.*previous index is unchanged"):
        build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    monkeypatch.undo()
    assert Searcher(index, encoder=fake_encoder).search("energy", SearchOptions(k=3)).hits


def test_random_bytes_never_crash_open(good_index_fake):
    """Many random corruptions of every file: opening either works and searches, or raises IndexerError."""
    index, encoder = good_index_fake
    rng = random.Random(99)
    files = [p for p in index.rglob("*") if p.is_file() and ".work" not in p.parts]
    outcomes = {"refused": 0, "searchable": 0}
    for trial in range(60):
        work = index.parent / f"trial{trial}"
        shutil.copytree(index, work)
        victim = work / rng.choice(files).relative_to(index)
        data = bytearray(victim.read_bytes())
        for _ in range(rng.randint(1, 8)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        victim.write_bytes(bytes(data))
        try:
            Searcher(work, encoder=encoder).search("energy prices")
            outcomes["searchable"] += 1
        except IndexerError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        shutil.rmtree(work)
    assert outcomes["refused"] > 0


@pytest.fixture
def good_index_fake(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 20, seed=4)
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    return index, fake_encoder


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def test_any_manifest_value_is_refused_or_read(tmp_path_factory, fake_encoder, fake_model):
    """Whatever JSON a manifest field holds, opening the index works or says how to fix it."""
    root = tmp_path_factory.mktemp("manifest-fuzz")
    news_corpus(root / "src", 5, seed=9)
    build([root / "src"], root / "index", BuildSettings(), encoder=fake_encoder, model=fake_model)
    good = json.loads((root / "index" / "manifest.json").read_text())
    keys = [*good, *(f"model.{k}" for k in good["model"])]

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(key=st.sampled_from(keys), value=JSON_VALUES)
    def run(key, value):
        data = json.loads(json.dumps(good))
        owner, _, name = key.rpartition(".")
        (data[owner] if owner else data)[name] = value
        (root / "index" / "manifest.json").write_text(json.dumps(data))
        try:
            Searcher(root / "index", encoder=fake_encoder).search("energy")
        except IndexerError as exc:
            assert "\n" not in str(exc) and "indexer build" in str(exc)

    run()
