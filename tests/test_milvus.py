"""Milvus as the vector store, for real: Milvus Lite 2.5 (the Milvus C++ engine as a child process).

Corpora stay small (inserts cross a socket); the fake encoder keeps builds instant.
Every test leaves no Milvus Lite server running (checked after each test and at the end).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer import BuildSettings, Filters, Searcher, SearchOptions, build
from indexer.cli import main
from indexer.errors import ModelMismatchError
from indexer.milvus import MilvusStore, StoreError, expression, parse_uri

from .conftest import ARTICLES, ROOT, SEEDS, write

HAVE_MILVUS = all(importlib.util.find_spec(m) is not None for m in ("pymilvus", "milvus_lite"))
needs_milvus = pytest.mark.skipif(
    not HAVE_MILVUS, reason="the Milvus extra is not installed: pip install '.[milvus]' (CI installs it)"
)
QUERIES = [
    "Arctic shipping routes",
    "Wasserstoff Kernnetz Leitungen",
    "volcanic eruption in Iceland",
    "rare earths cooperation with Washington",
    "réforme de l'école primaire",
    "offshore wind farms in Norway",
    "football cup surprise",
]


def _milvus_children() -> list[int]:
    """Milvus Lite servers started by this process (other sessions' servers are theirs)."""
    me, out = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me and comm == "milvus":
            out.append(int(stat.parent.name))
    return out


def _wait_no_children(seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _milvus_children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture(scope="session", autouse=True)
def _no_milvus_survives_the_session():
    yield
    if HAVE_MILVUS:
        from indexer.milvus import shutdown_lite

        shutdown_lite()
    assert _wait_no_children() == [], "a Milvus Lite server outlived the test session"


@pytest.fixture(autouse=True)
def _each_test_stops_its_servers():
    yield
    if not HAVE_MILVUS:
        return
    from indexer import milvus

    leaked = dict(milvus._LITE)
    milvus.shutdown_lite()  # stop them anyway, so one failure does not leak into other tests
    assert leaked == {}, f"Milvus Lite servers left open: {leaked}"
    assert _wait_no_children() == []


@pytest.fixture
def lite(tmp_path) -> str:
    return f"milvus-lite://{tmp_path}/m.db/passages"


def run(src, index, enc, model, store=None, **kw):
    return build(
        [src] if isinstance(src, Path) else src, index, BuildSettings(**kw), encoder=enc, model=model, store=store
    )


def same_hits(a, b, tol=1e-4):
    assert [h.passage_id for h in a] == [h.passage_id for h in b]
    assert all(abs(x.score - y.score) <= tol for x, y in zip(a, b))


def collection_pids(uri: str) -> set[int]:
    with MilvusStore(uri) as store:
        return set(store.row_hashes())


def index_pids(index: Path) -> set[int]:
    from indexer.index import IndexDir

    snap = IndexDir(index).open()
    try:
        return set(snap.columns.pids.tolist())
    finally:
        snap.close()


# ------------------------------------------------------------------- URIs, no server needed
def test_uri_forms(tmp_path, monkeypatch):
    monkeypatch.delenv("MILVUS_TOKEN", raising=False)
    u = parse_uri("milvus://milvus.internal:19530/news")
    assert (u.lite, u.address, u.collection, u.index, u.token) == (
        False,
        "http://milvus.internal:19530",
        "news",
        "flat",
        "",
    )
    u = parse_uri("milvus+https://reader:s3cret@db.example.org/news?db=prod&index=ivf_flat&nlist=2048&nprobe=32")
    assert u.address == "https://db.example.org:19530" and u.token == "reader:s3cret" and u.db == "prod"
    assert (u.index, u.nlist, u.nprobe) == ("ivf_flat", 2048, 32)
    assert "s3cret" not in u.text and "s3cret" not in repr(u)
    assert parse_uri("milvus://localhost").collection == "passages"
    u = parse_uri(f"milvus-lite://{tmp_path}/vectors.db/news_2024")
    assert (u.lite, u.address, u.collection) == (True, str(tmp_path / "vectors.db"), "news_2024")
    u = parse_uri("milvus-lite://data/milvus.db?bm25=off")
    assert u.address == str(Path("data/milvus.db").absolute()) and u.collection == "passages" and not u.bm25
    monkeypatch.setenv("MILVUS_TOKEN", "root:Milvus")
    assert parse_uri("milvus://h/c").token == "root:Milvus"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("faiss:///tmp/x", "unsupported store"),
        ("localhost:19530", "unsupported store"),
        ("milvus://:19530/c", "no host"),
        ("milvus://host:port/c", "port must be a number"),
        ("milvus://host/my-collection", "collection name"),
        ("milvus://host/c?index=hnsw", "index is one of"),
        ("milvus://host/c?nprobe=64&nlist=16", "nprobe <= nlist"),
        ("milvus://host/c?colour=blue", "unknown option 'colour'"),
        ("milvus-lite:///tmp/vectors.sqlite/c", "ends with .db"),
        ("milvus-lite:///tmp/a name with spaces.db/c", "file name"),
    ],
)
def test_bad_uris_are_refused_up_front(uri, message):
    with pytest.raises(StoreError, match=message):
        parse_uri(uri)


def test_filters_become_a_milvus_expression():
    f = Filters(langs=("de", "fr"), sources=('Le "Monde"',), date_from="2024-03-01", date_to="2024-04-30")
    assert expression(f) == (
        'lang in ["de", "fr"] and source in ["Le \\"Monde\\""] and date >= "2024-03-01" '
        'and day != "" and day <= "2024-04-30"'
    )
    assert expression(Filters()) == ""


def test_cli_bad_uri_is_one_line_exit_2(tmp_path):
    for args in (
        ["search", "x", "--store", "milvus://host:port/c"],
        ["build", str(SEEDS), "--store", "nope://x"],
        ["export", "--store", "milvus://h/bad-name", "--index", str(tmp_path)],
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "store" in lines[0], res.stderr


def test_without_the_extra_the_message_says_how_to_install(tmp_path, monkeypatch, fake_encoder, fake_model):
    run(ARTICLES, tmp_path / "index", fake_encoder, fake_model)
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import pymilvus now raises ImportError
    with pytest.raises(StoreError, match=r"pip install '\.\[milvus\]'"):
        Searcher(tmp_path / "index", encoder=fake_encoder, store=f"milvus-lite://{tmp_path}/m.db")
    res = CliRunner().invoke(main, ["export", "--index", str(tmp_path / "index"), "--store", "milvus://localhost/c"])
    assert res.exit_code == 2 and res.stderr.strip() == (
        "error: Milvus support is not installed — install the Milvus extra: pip install '.[milvus]'"
    )


# ------------------------------------------------------------------- against Milvus Lite
@needs_milvus
def test_unreachable_server_is_one_line_naming_the_uri(tmp_path, fake_encoder, fake_model):
    run(ARTICLES, tmp_path / "index", fake_encoder, fake_model)
    uri = "milvus://127.0.0.1:9/passages?timeout=1"  # nothing listens on the discard port
    res = CliRunner().invoke(main, ["export", "--index", str(tmp_path / "index"), "--store", uri])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot reach Milvus at milvus://127.0.0.1:9/passages" in lines[0], res.stderr
    assert "Traceback" not in res.output


@needs_milvus
def test_build_syncs_and_dense_search_equals_faiss(tmp_path, lite, fake_encoder, fake_model):
    index = tmp_path / "index"
    rep = run([SEEDS, ARTICLES], index, fake_encoder, fake_model, store=lite)
    assert rep.store.recreated == "new collection" and rep.store.inserted == rep.passages == rep.store.passages
    assert rep.store.bm25  # Milvus Lite 2.5.1 runs BM25 functions
    assert collection_pids(lite) == index_pids(index)
    faiss, milvus = Searcher(index, encoder=fake_encoder), Searcher(index, encoder=fake_encoder, store=lite)
    try:
        for q in QUERIES:
            opts = SearchOptions(k=10, mode="dense", per_article=2)
            a, b = faiss.search(q, opts).hits, milvus.search(q, opts).hits
            assert len(a) == 10
            same_hits(a, b)
            # same results format, highlights included; the score only within same_hits' tolerance: Milvus
            # returns float32 cosines, and a calibrated score can round either side of its last digit
            assert [{**h.to_json(), "score": None} for h in a] == [{**h.to_json(), "score": None} for h in b]
    finally:
        milvus.close()


@needs_milvus
@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_engine_bm25_and_hybrid_agree_with_the_local_index(tmp_path, lite, fake_encoder, fake_model, mode):
    index = tmp_path / "index"
    run([SEEDS, ARTICLES], index, fake_encoder, fake_model, store=lite)
    faiss = Searcher(index, encoder=fake_encoder)
    engine = Searcher(index, encoder=fake_encoder, store=lite)
    local = Searcher(index, encoder=fake_encoder, store=lite + "?bm25=off")  # Milvus dense + local BM25
    try:
        assert engine.backends.engine_bm25 and not local.backends.engine_bm25
        for q in QUERIES:
            a = faiss.search(q, SearchOptions(k=10, mode=mode)).hits
            same_hits(a, engine.search(q, SearchOptions(k=10, mode=mode)).hits)
            same_hits(a, local.search(q, SearchOptions(k=10, mode=mode)).hits)
    finally:
        engine.close()
        local.close()


@needs_milvus
def test_incremental_update_delete_and_noop(tmp_path, lite, fake_encoder, fake_model):
    src = tmp_path / "src"
    for f in sorted(ARTICLES.iterdir())[:10]:
        write(src / f.name, f.read_bytes())
    write(src / "fox.txt", "Fox story\nThe quick brown fox jumps over the lazy dog. The fox is quick and brown.")
    write(src / "ice.txt", "Ice news\nArctic sea ice is melting. Shipping routes open in the north during summer.")
    index = tmp_path / "index"
    run(src, index, fake_encoder, fake_model, store=lite)
    searcher = Searcher(index, encoder=fake_encoder, store=lite)  # open across the updates, as the page is
    try:
        before = index_pids(index)
        fox_old = {h.passage_id for h in searcher.search("fox", SearchOptions(k=1, mode="bm25")).hits}
        write(src / "fox.txt", "Fox story\nA red fox crossed the frozen river at dawn, watched by a heron.")
        (src / "ice.txt").unlink()
        rep = run(src, index, fake_encoder, fake_model, store=lite)
        assert (rep.updated, rep.removed) == (1, 1)
        after = index_pids(index)
        assert collection_pids(lite) == after
        gone, new = before - after, after - before
        assert fox_old <= gone and len(new) == rep.store.inserted and len(gone) == rep.store.deleted
        assert rep.store.deleted >= 2  # the old fox passage and the vanished article's
        hits = searcher.search("red fox heron frozen river", SearchOptions(k=3)).hits
        assert hits[0].article_id == "fox.txt" and "heron" in hits[0].text
        arctic = searcher.search("Arctic sea ice shipping routes", SearchOptions(k=20, mode="bm25")).hits
        assert "ice.txt" not in {h.article_id for h in arctic}
        again = run(src, index, fake_encoder, fake_model, store=lite)
        assert not again.published and again.store.up_to_date
        assert (again.store.inserted, again.store.deleted) == (0, 0)
    finally:
        searcher.close()


@needs_milvus
def test_full_rebuild_restarts_ids_and_the_sync_follows(tmp_path, lite, fake_encoder, fake_model):
    src = tmp_path / "src"
    for f in sorted(ARTICLES.iterdir())[:8]:
        write(src / f.name, f.read_bytes())
    index = tmp_path / "index"
    run(src, index, fake_encoder, fake_model, store=lite)
    first = sorted(src.iterdir())[0]
    first.unlink()  # a --full rebuild numbers passages from 1 again: the same ids now name other passages
    time.sleep(1.1)  # a new index is told apart by its creation time (whole seconds)
    rep = run(src, index, fake_encoder, fake_model, store=lite, full=True)
    assert rep.store.inserted > 0 and collection_pids(lite) == index_pids(index)
    faiss, milvus = Searcher(index, encoder=fake_encoder), Searcher(index, encoder=fake_encoder, store=lite)
    try:
        for q in QUERIES:
            same_hits(
                faiss.search(q, SearchOptions(mode="dense")).hits, milvus.search(q, SearchOptions(mode="dense")).hits
            )
    finally:
        milvus.close()


@pytest.fixture
def energy(tmp_path, fake_encoder, fake_model, lite):
    """60 articles; the 5 German ones match the query worst (as in test_hybrid)."""
    rows = []
    for i in range(60):
        german = i % 12 == 0
        words = (
            "Gazprom: die Energiepreise steigen im Winter"
            if german
            else "Gazprom energy prices rise again, energy prices"
        )
        rows.append(
            {
                "id": f"a{i:02d}",
                "title": f"Energie {i}" if german else f"Energy {i}",
                "lang": "de" if german else "en",
                "source": "Nord" if i % 2 else "Sud",
                "date": f"2024-{1 + i % 12:02d}-15",
                "text": f"{words} {i}.",
            }
        )
    write(tmp_path / "src" / "all.jsonl", "\n".join(json.dumps(r) for r in rows))
    index = tmp_path / "index"
    run(tmp_path / "src", index, fake_encoder, fake_model, store=lite)
    faiss, milvus = Searcher(index, encoder=fake_encoder), Searcher(index, encoder=fake_encoder, store=lite)
    yield faiss, milvus
    milvus.close()


@needs_milvus
@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filters_run_inside_milvus_and_return_k(energy, mode):
    faiss, milvus = energy
    q = "Gazprom energy prices rise"
    assert not any(h.lang == "de" for h in milvus.search(q, SearchOptions(k=5, mode=mode)).hits)
    hits = milvus.search(q, SearchOptions(k=5, mode=mode, filters=Filters(langs=("de",)))).hits
    assert sorted(h.article_id for h in hits) == ["a00", "a12", "a24", "a36", "a48"]
    f = Filters(sources=("Nord",), date_from="2024-03", date_to="2024-04-30")
    expected = {f"a{i:02d}" for i in range(60) if i % 2 and 1 + i % 12 in (3, 4)}
    assert {h.article_id for h in milvus.search(q, SearchOptions(k=50, mode=mode, filters=f)).hits} == expected
    same_hits(
        faiss.search(q, SearchOptions(k=50, mode=mode, filters=f)).hits,
        milvus.search(q, SearchOptions(k=50, mode=mode, filters=f)).hits,
    )


@needs_milvus
def test_the_engine_applies_the_filter_itself(energy):
    _, milvus = energy
    snap = milvus.snapshot()
    qvec = milvus.query_vector("Gazprom energy prices rise")
    # no list of allowed ids is passed: only the expression can keep the English passages out
    _, ids = milvus.backends.dense.search(snap, qvec, 5, Filters(langs=("de",)).normalized(), None)
    assert len(ids) == 5 and set(snap.store.passage_langs(ids.tolist()).values()) == {"de"}
    tops = milvus.backends.store.bm25_top(["gazprom"], 100, Filters(date_from="2024-12-01").normalized())
    assert {snap.store.passages(list(tops[0]))[p].date for p in tops[0]} == {"2024-12-15"}


@needs_milvus
def test_ivf_flat_and_changing_the_index_type(tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run([SEEDS, ARTICLES], index, fake_encoder, fake_model)
    ivf = f"milvus-lite://{tmp_path}/m.db/news?index=ivf_flat&nlist=4&nprobe=4"  # nprobe = nlist: exhaustive
    from indexer.milvus_sync import export

    assert export(index, ivf).recreated == "new collection"
    faiss, milvus = Searcher(index, encoder=fake_encoder), Searcher(index, encoder=fake_encoder, store=ivf)
    try:
        for q in QUERIES[:3]:
            same_hits(
                faiss.search(q, SearchOptions(mode="dense")).hits, milvus.search(q, SearchOptions(mode="dense")).hits
            )
    finally:
        milvus.close()
    again = export(index, f"milvus-lite://{tmp_path}/m.db/news")
    assert again.recreated == "vector index changed (ivf_flat → flat)" and again.passages == again.inserted


@needs_milvus
def test_another_model_or_another_index_is_refused(tmp_path, lite, fake_encoder, fake_model):
    from indexer.models import ResolvedModel

    run(ARTICLES, tmp_path / "a", fake_encoder, fake_model, store=lite)
    other = ResolvedModel(name="other-bow", path=ROOT, origin="local", fingerprint="sha256:other")
    run(ARTICLES, tmp_path / "b", fake_encoder, other)
    with pytest.raises(ModelMismatchError, match=r"holds vectors of 'fake-bow'.*indexer export --store"):
        Searcher(tmp_path / "b", encoder=fake_encoder, store=lite)
    time.sleep(1.1)
    run(ARTICLES, tmp_path / "c", fake_encoder, fake_model)
    with pytest.raises(StoreError, match="synced from another index"):
        Searcher(tmp_path / "c", encoder=fake_encoder, store=lite)
    with pytest.raises(StoreError, match="no collection 'elsewhere'"):
        Searcher(tmp_path / "a", encoder=fake_encoder, store=lite.replace("/passages", "/elsewhere"))


@needs_milvus
def test_a_collection_indexer_did_not_write_is_left_alone(tmp_path, lite, fake_encoder, fake_model):
    run(ARTICLES, tmp_path / "index", fake_encoder, fake_model)
    with MilvusStore(lite) as store:
        store.client.create_collection("passages", dimension=8)
    from indexer.milvus_sync import export

    with pytest.raises(StoreError, match="exists but was not written by indexer"):
        export(tmp_path / "index", lite)
    with pytest.raises(StoreError, match="was not written by indexer"):
        Searcher(tmp_path / "index", encoder=fake_encoder, store=lite)


@needs_milvus
def test_cli_build_export_search_with_store(tmp_path, lite, fake_encoder, fake_model, monkeypatch):
    for mod in ("indexer.draft", "indexer.search"):  # where the build and the search load their model
        monkeypatch.setattr(sys.modules[mod], "Embedder", lambda *a, **k: fake_encoder)
        monkeypatch.setattr(sys.modules[mod], "resolve", lambda *a, **k: fake_model)
    runner = CliRunner()
    index, index2 = str(tmp_path / "index"), str(tmp_path / "index2")
    res = runner.invoke(main, ["build", str(ARTICLES), "--index", index, "--store", lite, "-q"])
    assert res.exit_code == 0, res.output + res.stderr
    assert f"Store {lite} created (new collection)" in res.output
    res = runner.invoke(main, ["build", str(ARTICLES), "--index", index, "--store", lite, "-q"])
    assert res.exit_code == 0 and f"Store {lite} is up to date" in res.output
    for mode in ("dense", "hybrid"):
        plain = runner.invoke(main, ["search", "Arctic shipping", "--index", index, "--json", "--mode", mode])
        store = runner.invoke(
            main, ["search", "Arctic shipping", "--index", index, "--json", "--mode", mode, "--store", lite]
        )
        assert plain.exit_code == store.exit_code == 0, store.output + store.stderr
        a, b = json.loads(plain.output), json.loads(store.output)
        assert a.keys() == b.keys() and [h.keys() for h in a["hits"]] == [h.keys() for h in b["hits"]]
        assert [h["passage_id"] for h in a["hits"]] == [h["passage_id"] for h in b["hits"]]
    # migrating an index built without a store
    assert runner.invoke(main, ["build", str(ARTICLES), "--index", index2, "-q"]).exit_code == 0
    other = lite.replace("/passages", "/migrated")
    res = runner.invoke(main, ["export", "--index", index2, "--store", other, "-q"])
    assert res.exit_code == 0, res.output + res.stderr
    assert f"Store {other} created (new collection)" in res.output and "0 deleted" in res.output
    res = runner.invoke(main, ["export", "--index", index2, "--store", other])
    assert res.exit_code == 0 and "is up to date" in res.output


@needs_milvus
def test_a_lite_file_open_elsewhere_gives_a_clear_error(tmp_path, lite, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(ARTICLES, index, fake_encoder, fake_model, store=lite)
    holder = Searcher(index, encoder=fake_encoder, store=lite)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "indexer", "search", "x", "--index", str(index), "--store", lite],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        holder.close()
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "another process has it open" in lines[0], res.stderr


@needs_milvus
def test_a_collection_behind_the_index_still_answers(tmp_path, lite, fake_encoder, fake_model):
    """Between a build's publish and the end of its sync, searches go on with what the store has."""
    src = tmp_path / "src"
    for f in sorted(ARTICLES.iterdir())[:8]:
        write(src / f.name, f.read_bytes())
    index = tmp_path / "index"
    run(src, index, fake_encoder, fake_model, store=lite)
    searcher = Searcher(index, encoder=fake_encoder, store=lite)
    try:
        for f in sorted(src.iterdir())[:4]:
            f.unlink()
        run(src, index, fake_encoder, fake_model)  # published, not synced: the collection lags
        live = index_pids(index)
        assert not collection_pids(lite) <= live
        for mode in ("dense", "bm25", "hybrid"):
            for q in QUERIES:
                assert {h.passage_id for h in searcher.search(q, SearchOptions(k=10, mode=mode)).hits} <= live
    finally:
        searcher.close()


@pytest.fixture
def milvus_server(tmp_path):
    """A Milvus server on a loopback TCP port: the engine of milvus-lite 2.5, served as a cluster is."""
    import socket

    from milvus_lite.server import Server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Server(str(tmp_path / "server.db"), address=f"127.0.0.1:{port}")
    assert server.init() and server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        assert server._p is not None
        server._p.terminate()  # served on TCP it holds no lock file to release: stop it directly
        server._p.wait(10)
        server._p = None
        server.stop()


@needs_milvus
def test_a_server_uri_builds_and_searches(tmp_path, milvus_server, fake_encoder, fake_model):
    uri = f"milvus://{milvus_server}/news"
    index = tmp_path / "index"
    rep = run([SEEDS, ARTICLES], index, fake_encoder, fake_model, store=uri)
    assert rep.store.store == uri and rep.store.inserted == rep.passages
    faiss, milvus = Searcher(index, encoder=fake_encoder), Searcher(index, encoder=fake_encoder, store=uri)
    try:
        for mode in ("dense", "hybrid"):
            for q in QUERIES[:4]:
                same_hits(
                    faiss.search(q, SearchOptions(mode=mode)).hits, milvus.search(q, SearchOptions(mode=mode)).hits
                )
    finally:
        milvus.close()


# ------------------------------------------------------------------- the real model
@needs_milvus
@pytest.mark.slow
def test_top10_agrees_with_faiss_exact_on_the_sample_corpus(tmp_path, lite, e5_model):
    queries = [
        *QUERIES,
        "Who offered Washington cooperation on rare earths?",
        "What did the Kremlin spokesman say?",
        "coopération dans le secteur énergétique",
        "Wie sieht Washington die Zusammenarbeit mit Moskau in der Arktis?",
        "hydrogen pipeline network in Germany",
        "Ausbruch eines Vulkans",
        "school reform and primary education",
        "energy prices in winter",
        "renewable energy at sea",
        "Greenland minerals",
        "sports upset in the cup",
        "climate and melting ice",
        "government spending plans",
    ]
    index = tmp_path / "index"
    build([SEEDS, ARTICLES], index, model=e5_model, store=lite)
    faiss, milvus = Searcher(index), Searcher(index, store=lite)
    try:
        overlaps = []
        for q in queries:
            opts = SearchOptions(k=10, mode="dense", highlight=False)
            a = [h.article_id for h in faiss.search(q, opts).hits]
            b = [h.article_id for h in milvus.search(q, opts).hits]
            overlaps.append(len(set(a) & set(b)) / max(1, len(a)))
        assert len(queries) >= 20 and sum(overlaps) / len(overlaps) >= 0.9, overlaps
        assert min(overlaps) >= 0.9, overlaps
    finally:
        milvus.close()


@needs_milvus
def test_the_page_searches_the_store_named_by_indexer_store(tmp_path, lite, fake_encoder, fake_model, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import indexer

    index = tmp_path / "index"
    run([SEEDS, ARTICLES], index, fake_encoder, fake_model, store=lite)
    opened: list[Searcher] = []

    class Recording(Searcher):
        def __init__(self, index_dir, **kw):
            super().__init__(index_dir, encoder=fake_encoder, **kw)
            opened.append(self)

    monkeypatch.setattr(indexer, "Searcher", Recording)
    monkeypatch.setenv("INDEXER_INDEX", str(index))
    monkeypatch.setenv("INDEXER_STORE", lite)
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        at.text_input(key="q").input(QUERIES[0]).run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        assert len(opened) == 1 and opened[0].backends.store is not None  # candidates come from Milvus
        cards = [h.value for h in at.main.html if 'class="hit"' in h.value]
        local = Searcher(index, encoder=fake_encoder).search(QUERIES[0], SearchOptions(k=10)).hits
        assert len(cards) == 10 and local[0].title.split()[0] in cards[0]
    finally:
        st.cache_resource.clear()
        for s in opened:
            s.close()
