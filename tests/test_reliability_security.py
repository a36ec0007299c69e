"""Security: nothing outside the sources and the index is read, symlinks out of the sources are
not followed unless asked, no code-executing format is loaded, article text never becomes markup."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.errors import IndexerError
from indexer.index import IndexDir, file_digest
from indexer.records import Hit

from .conftest import write
from .reliability_helpers import ROOT, article_paths, build_args, cli, cli_env

PACKAGE = ROOT / "indexer"


# ------------------------------------------------------------ code-executing formats
_FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _problems(tree: ast.AST, name: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{name}:{node.lineno} imports {m}" for m in mods if m.split(".")[0] in _FORBIDDEN_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        kwargs = {k.arg: k.value for k in node.keywords}
        pickle_kw = kwargs.get("allow_pickle")
        if func in ("eval", "exec") or func.endswith(("torch.load", "read_pickle", "load_extension", "yaml.load")):
            found.append(f"{name}:{node.lineno} calls {func}")
        elif (func.endswith(("np.load", "numpy.load")) or func.endswith(".BM25.load")) and not (
            isinstance(pickle_kw, ast.Constant) and pickle_kw.value is False
        ):
            found.append(f"{name}:{node.lineno} calls {func} without allow_pickle=False")
        elif isinstance(pickle_kw, ast.Constant) and pickle_kw.value is True:
            found.append(f"{name}:{node.lineno} passes allow_pickle=True to {func}")
    return found


def test_no_code_executing_loader_in_the_package():
    problems = []
    for path in sorted(PACKAGE.glob("*.py")):
        problems += _problems(ast.parse(path.read_text(encoding="utf-8")), path.name)
    assert not problems, problems


def test_the_source_check_catches_what_it_should():
    bad = "import pickle\nnp.load(p)\nnp.load(p, allow_pickle=True)\nbm25s.BM25.load(d)\ntorch.load(f)\neval(s)\n"
    assert len(_problems(ast.parse(bad), "x")) == 6
    assert not _problems(ast.parse("np.load(p, allow_pickle=False)\nbm25s.BM25.load(d, allow_pickle=False)"), "x")


class _Evil:
    """Unpickling this creates a marker folder: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _plant(index: Path, marker: Path) -> list[Path]:
    """Malicious pickles where an index keeps its files, with the manifest's checksums updated to
    match them (as someone able to write the folder would), and beside them under tempting names."""
    version = index / "versions" / IndexDir(index).manifest().version
    payload = pickle.dumps(_Evil(marker))
    planted = []
    for npy in sorted((version / "lexical").glob("*.npy")):
        np.save(npy, np.array([_Evil(marker)], dtype=object), allow_pickle=True)
        planted.append(npy)
    for name in ("index.pkl", "vectors.pkl", "model.pt", "store.pickle", "embeddings.npy"):
        for folder in (index, version, index / ".work"):
            folder.mkdir(exist_ok=True)
            (folder / name).write_bytes(payload)
            planted.append(folder / name)
    data = json.loads((index / "manifest.json").read_text())
    for rel in data["files"]:
        data["files"][rel] = file_digest(version / rel)
    (index / "manifest.json").write_text(json.dumps(data))
    return planted


def _opened(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [e.decode("utf-8", "surrogateescape") for e in log.read_bytes().split(b"\0") if e]


def _run_audited(log: Path, *args) -> subprocess.CompletedProcess:
    """The CLI under an audit hook recording every file it opens or lists."""
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "reliability_cli.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(RELIABILITY_OPEN_LOG=str(log)),
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.slow
def test_planted_pickles_are_never_loaded(tmp_path):
    src, index, marker = tmp_path / "src", tmp_path / "index", tmp_path / "PWNED"
    write(src / "a.txt", "Harbour\nThe harbour reopened after the storm. Ships came back in the morning.")
    write(src / "b.txt", "Prices\nEnergy prices rose again this winter in most of Europe.")
    assert cli(*build_args(src, index)).returncode == 0
    planted = _plant(index, marker)
    log = tmp_path / "opened"
    results = [
        _run_audited(log, "info", "--index", index),
        _run_audited(log, "search", "harbour storm", "--index", index, "--mode", "bm25"),
        _run_audited(log, "search", "harbour storm", "--index", index),
        _run_audited(log, *build_args(src, index)),
    ]
    write(src / "c.txt", "New\nA new article makes the next build read the live version.")
    results.append(_run_audited(log, *build_args(src, index)))
    for mode in ("dense", "bm25", "hybrid"):
        try:
            Searcher(index).search("harbour", SearchOptions(mode=mode))
        except IndexerError:
            pass
    assert not marker.exists(), "a pickle from the index folder was loaded"
    for res in results:
        assert "Traceback" not in res.stderr, res.stderr
    opened = {line.split("\t", 1)[1] for line in _opened(log)}
    touched = [p for p in planted if str(p) in opened and p.parent.name != "lexical"]
    assert not touched, touched  # the decoys were not even opened


# ----------------------------------------------------------------- symlinks
@pytest.fixture
def linked_sources(tmp_path):
    """Sources whose symlinks lead outside them: to a secret file, a folder, and back up the tree."""
    tree = tmp_path / "tree"  # the index and the audit log live outside this tree
    outside = tree / "outside"
    write(outside / "secret.txt", "Secret\nThe launch code is swordfish and must never be indexed.")
    write(outside / "more" / "private.txt", "Private\nPrivate notes about the merger talks.")
    src = tree / "src"
    write(src / "news" / "one.txt", "One\nThe harbour reopened after the storm.")
    write(src / "news" / "two.txt", "Two\nEnergy prices rose again this winter.")
    os.symlink("../../outside/secret.txt", src / "news" / "leak.txt")
    os.symlink("../outside", src / "outside-dir")
    os.symlink("..", src / "parent")
    os.symlink(str(outside / "more" / "private.txt"), src / "absolute.txt")
    os.symlink("one.txt", src / "news" / "z-link.txt")  # within the sources: a duplicate, read once
    return src, outside


def _outside_opened(log: Path, outside: Path) -> list[str]:
    prefix = str(outside) + os.sep
    return [line for line in _opened(log) if line.split("\t", 1)[1].startswith(prefix)]


@pytest.mark.slow
def test_symlinks_out_of_the_sources_are_not_followed(linked_sources, tmp_path):
    src, outside = linked_sources
    index, log = tmp_path / "index", tmp_path / "opened"
    res = _run_audited(log, *build_args(src, index))
    assert res.returncode == 0, res.stderr
    paths = article_paths(index)
    assert sorted(paths) == ["news/one.txt", "news/two.txt"]
    for name in ("news/leak.txt", "outside-dir", "parent", "absolute.txt"):
        assert f"{src / name}: symlink leads outside the sources (pass --follow-symlinks to read it)" in res.stdout
    assert f"{src / 'news' / 'z-link.txt'}: same file as one already read" in res.stdout
    assert not _outside_opened(log, outside), _outside_opened(log, outside)

    res = _run_audited(log, "search", "launch code swordfish", "--index", index, "--json")
    assert res.returncode == 0 and "swordfish" not in json.dumps(json.loads(res.stdout)["hits"])
    for args in (["info", "--index", index], ["search", "merger", "--index", index, "--mode", "bm25"]):
        assert _run_audited(log, *args).returncode == 0
    assert not _outside_opened(log, outside)
    # the search and info commands read the index and the model, nothing else of this test's files
    for line in _opened(log):
        path = line.split("\t", 1)[1]
        if path.startswith(str(tmp_path) + os.sep):
            assert path.startswith((str(src) + os.sep, str(index))) or path in (str(src), str(log)), path


@pytest.mark.slow
def test_follow_symlinks_reads_them_when_asked(linked_sources, tmp_path):
    src, _ = linked_sources
    index = tmp_path / "index"
    res = cli(*build_args(src, index, "--follow-symlinks"))
    assert res.returncode == 0, res.stderr
    paths = article_paths(index)
    assert sorted(paths) == ["absolute.txt", "news/leak.txt", "news/one.txt", "news/two.txt"]
    # the same files reached again through other links are read once
    for name in ("outside-dir/secret.txt", "outside-dir/more/private.txt", "news/z-link.txt"):
        assert f"{src / name}: same file as one already read" in res.stdout
    assert f"{src / 'parent' / 'src'}: folder already read" in res.stdout  # back into the sources: no loop


def test_source_root_that_is_a_symlink_is_read(tmp_path, fake_encoder, fake_model):
    real = tmp_path / "real"
    write(real / "a.txt", "A\nThe harbour reopened after the storm.")
    os.symlink(real, tmp_path / "alias")
    rep = build([tmp_path / "alias"], tmp_path / "index", BuildSettings(), encoder=fake_encoder, model=fake_model)
    assert rep.articles == 1 and not rep.skipped


def test_index_inside_its_sources_is_not_read_as_articles(tmp_path, fake_encoder, fake_model):
    src = tmp_path / "src"
    write(src / "a.txt", "A\nThe harbour reopened after the storm.")
    for _ in range(2):  # the second build finds the first one's manifest, data and BM25 JSON files
        write(src / "b.txt", f"B\nEnergy prices rose again, {_} times.")
        rep = build([src], src / "index", BuildSettings(), encoder=fake_encoder, model=fake_model)
        assert [(s.path, s.reason) for s in rep.skipped] == [
            (str(src / "index"), "an index folder, not read as a source")
        ]
        assert sorted(article_paths(src / "index").values()) == ["a.txt", "b.txt"]


def test_index_cannot_point_outside_itself(tmp_path, fake_encoder, fake_model):
    """A manifest naming a data folder or file outside the index is refused, not followed."""
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "a.txt", "A\nThe harbour reopened after the storm.")
    build([src], index, BuildSettings(), encoder=fake_encoder, model=fake_model)
    good = (index / "manifest.json").read_text()
    for change in (
        {"version": "../../outside"},
        {"version": "/etc"},
        {"version": "..\\..\\x"},
        {"files": {"../../../etc/passwd": "sha256:0"}},
        {"files": {"/etc/passwd": "sha256:0"}},
    ):
        data = json.loads(good)
        data.update(change)
        (index / "manifest.json").write_text(json.dumps(data))
        with pytest.raises(IndexerError, match="indexer build --full"):
            Searcher(index, encoder=fake_encoder)
    # a version or segment folder swapped for a symlink to elsewhere: refused as a link, before its files are read
    (index / "manifest.json").write_text(good)
    backup = shutil.copytree(index, tmp_path / "backup")
    for folder, name in (
        (index / "versions" / json.loads(good)["version"], "deleted_ids.npy"),
        (index / "segments" / json.loads(good)["segments"][0]["name"], "store.sqlite"),
    ):
        shutil.rmtree(index)
        shutil.copytree(backup, index)
        elsewhere = tmp_path / f"elsewhere-{folder.parent.name}"
        shutil.copytree(folder, elsewhere)
        write(elsewhere / name, b"not the same file")
        shutil.rmtree(folder)
        os.symlink(elsewhere, folder)
        with pytest.raises(IndexerError, match="link to a folder outside the index"):
            Searcher(index, encoder=fake_encoder)


# ------------------------------------------------------------------ markup
class _Skeleton(HTMLParser):
    """The tags and attribute names of a piece of HTML: what it does, not what it says."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[tuple] = []

    def handle_starttag(self, tag, attrs):
        self.items.append(("start", tag, tuple(sorted(k for k, _ in attrs))))

    def handle_endtag(self, tag):
        self.items.append(("end", tag))

    def handle_comment(self, data):
        self.items.append(("comment",))

    def handle_decl(self, decl):
        self.items.append(("decl",))

    def handle_pi(self, data):
        self.items.append(("pi",))


def _skeleton(html: str) -> list[tuple]:
    p = _Skeleton()
    p.feed(html)
    p.close()
    return p.items


HOSTILE = st.one_of(
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            '"><svg onload=alert(1)>',
            "</div></span><iframe src=javascript:alert(1)>",
            "<!-- comment --><![CDATA[x]]><?php ?>",
            "&lt;script&gt; &amp; &#x3C;b&#x3E;",
            "[link](javascript:alert(1)) **bold** $x$ :red[red]",
            "\u202e<b>reversed</b>",
        ]
    ),
    st.text(st.sampled_from(list("<>&\"'/=`!-?[]() abcscriptonerror")), min_size=1, max_size=60),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=HOSTILE, title=HOSTILE, source=HOSTILE, aid=HOSTILE)
def test_article_text_never_becomes_markup(text, title, source, aid):
    from indexer import page

    def hit(t: str, ti: str, so: str, a: str) -> Hit:
        return Hit(rank=1, score=0.5, article_id=a, title=ti, passage_id=1, text=t, start=0, end=len(t), source=so)

    plain = "x" * len(text)
    for render in (page.render_passage, page.render_hit):
        assert _skeleton(render(hit(text, title, source, aid))) == _skeleton(render(hit(plain, "T", "S", "A")))
    assert _skeleton(page.render_article(text, hit(text, title, source, aid))) == _skeleton(
        page.render_article(plain, hit(plain, "T", "S", "A"))
    )
    assert page.safe_url("javascript:alert(1)") is None and page.safe_url("data:text/html,<b>") is None
