"""The interfaces between modules: typed manifest entries, the index layout, the store's schema,
the encoder's capabilities (late-chunked sentence vectors) and the backend factory."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.backends import FaissDense, LocalLexical, combine, open_backends
from indexer.chunking import ChunkSettings
from indexer.embedding import Encoder
from indexer.errors import IndexCorruptError, IndexVersionError, StoreError
from indexer.highlight import pack_sentences, unpack_sentences
from indexer.index import IndexDir
from indexer.layout import IndexLayout
from indexer.manifest import LexicalInfo, Manifest
from indexer.store import DB_FILE, SCHEMA_VERSION
from indexer.vector_plan import IndexPolicy, VectorIndexInfo

from .conftest import FakeEncoder, write

STORY = (
    "The harbour authority reported record container traffic this spring. "
    "Glaciers in the north are retreating faster than any model predicted. "
    "A new bakery opened on the main square and sold out by noon."
)


@pytest.fixture
def small(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "news.txt", "Spring notes\n" + STORY)
    write(src / "other.txt", "Other\nThe council voted on the budget for the schools.")
    build([src], index, encoder=fake_encoder, model=fake_model)
    return src, index


# ------------------------------------------------------------- manifest
def test_manifest_entries_are_typed_and_round_trip(small):
    _, index = small
    m = IndexDir(index).manifest()
    assert isinstance(m.vectors, VectorIndexInfo) and m.vectors.faiss == "IDMap2,Flat" and m.vectors.auto
    assert isinstance(m.chunker, ChunkSettings) and m.chunker.max_tokens == 200
    assert isinstance(m.lexical, LexicalInfo) and m.lexical.documents == m.counts["passages"]
    assert m.policy == IndexPolicy()  # the policy the build used is recorded
    raw = json.loads((index / "manifest.json").read_text())
    assert raw["policy"]["exact_limit"] == 100_000
    assert "nprobe" not in raw["vectors"]  # settings an exact index does not have are left out
    assert Manifest.from_dict(json.loads(m.to_json())) == m


def test_a_manifest_without_a_policy_reads_with_the_defaults(small):
    _, index = small
    data = json.loads((index / "manifest.json").read_text())
    del data["policy"]
    (index / "manifest.json").write_text(json.dumps(data))
    assert IndexDir(index).manifest().policy == IndexPolicy()


@pytest.mark.parametrize(
    "entry, value",
    [("vectors", "IDMap2,Flat"), ("vectors", {"faiss": 3}), ("chunker", {"max_tokens": "200"}), ("chunker", [])],
)
def test_a_mistyped_manifest_entry_is_refused(small, entry, value):
    _, index = small
    data = json.loads((index / "manifest.json").read_text())
    data[entry] = value
    (index / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match=r"manifest\.json is incomplete"):
        IndexDir(index).manifest()


def test_the_policy_sticks_until_another_is_given(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "a.txt", "A\n" + STORY)
    low = IndexPolicy(exact_limit=600, rerank=64)
    build([src], index, BuildSettings(policy=low), encoder=fake_encoder, model=fake_model)
    write(src / "b.txt", "B\nThe council voted on the budget.")
    build([src], index, encoder=fake_encoder, model=fake_model)  # no policy given: the recorded one
    assert IndexDir(index).manifest().policy == low


def test_vector_entry_decoding():
    info = VectorIndexInfo.from_dict({"faiss": "IVF16,SQ8", "auto": False, "nprobe": 4, "unknown": 1})
    assert (info.faiss, info.auto, info.nprobe, info.efSearch) == ("IVF16,SQ8", False, 4, None)
    assert info.to_dict() == {**info.to_dict(), "nprobe": 4} and "efSearch" not in info.to_dict()
    assert VectorIndexInfo.from_dict({}) == VectorIndexInfo()
    with pytest.raises(TypeError):
        VectorIndexInfo.from_dict({"auto": "yes"})
    assert IndexPolicy.from_dict({"rerank": 64, "seed": True, "x": 1}) == replace(IndexPolicy(), rerank=64)


# --------------------------------------------------------------- layout
def test_layout_names_every_place(tmp_path):
    lay = IndexLayout(tmp_path)
    assert lay.manifest == tmp_path / "manifest.json" and lay.resume == tmp_path / ".work" / "embeddings.sqlite"
    assert lay.partial("000002-x") == tmp_path / "versions" / "000002-x.partial"
    assert not lay.looks_like_index() and not lay.has_published()
    lay.partial("000002-x").mkdir(parents=True)
    assert not lay.has_published()  # an unpublished build's folder is not a version
    lay.work.mkdir()
    assert lay.looks_like_index() and lay.foreign_entries() == []


# --------------------------------------------------------------- schema
def _set_schema(index, version: int, *, drop_dup_index: bool = False) -> None:
    m = IndexDir(index).manifest()
    db = index / "segments" / m.segments[0].name / DB_FILE
    con = sqlite3.connect(db)
    con.execute("UPDATE info SET value = ? WHERE key = 'schema_version'", (str(version),))
    if drop_dup_index:
        con.execute("DROP INDEX articles_dup")
    con.commit()
    con.close()
    data = json.loads((index / "manifest.json").read_text())
    data["segments"][0]["files"].pop(DB_FILE)  # edited by hand: its checksum no longer holds
    (index / "manifest.json").write_text(json.dumps(data))


def test_a_newer_schema_is_refused_with_the_fix(small):
    _, index = small
    _set_schema(index, SCHEMA_VERSION + 1)
    with pytest.raises(IndexVersionError, match=r"schema v3\b.* upgrade indexer, or rebuild"):
        Searcher(index, encoder=FakeEncoder())


def test_an_older_schema_is_read_and_migrated_by_the_next_build(small, fake_encoder, fake_model):
    src, index = small
    _set_schema(index, 1, drop_dup_index=True)
    old = IndexDir(index).manifest().version
    assert Searcher(index, encoder=fake_encoder).search("harbour container traffic").hits
    rep = build([src], index, encoder=fake_encoder, model=fake_model)  # nothing changed in the sources…
    assert rep.published and rep.version != old  # …but the schema did
    snap = IndexDir(index).open()
    try:
        assert snap.store.schema_version == SCHEMA_VERSION
        con = snap.store.stores()[0].con
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "articles_dup" in names
    finally:
        snap.close()
    assert not build([src], index, encoder=fake_encoder, model=fake_model).published


# --------------------------------------------------- encoder capabilities
class PlainEncoder(Encoder):
    """An encoder with only the required methods: no late chunking."""

    dimension = FakeEncoder.dimension
    max_seq_length = FakeEncoder.max_seq_length

    def __init__(self) -> None:
        self.inner = FakeEncoder()
        self.embedded: list[str] = []

    def token_spans(self, texts):
        return self.inner.token_spans(texts)

    def embed_passages(self, texts):
        self.embedded += texts
        return self.inner.embed_passages(texts)

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)


def _sentence_rows(index) -> int:
    snap = IndexDir(index).open()
    try:
        return sum(int(st.con.execute("SELECT count(*) FROM sentences").fetchone()[0]) for st in snap.store.stores())
    finally:
        snap.close()


def test_late_chunked_sentence_vectors_are_stored_and_used(small, fake_encoder):
    _, index = small
    assert _sentence_rows(index) >= 1
    fake_encoder.embedded.clear()
    hit = Searcher(index, encoder=fake_encoder).search("glaciers retreating north", SearchOptions(k=1)).hits[0]
    assert fake_encoder.embedded == []  # the stored sentence vectors served: no model call for highlights
    (start, end), *_ = hit.highlights
    art_text = "Spring notes\n" + STORY
    assert "Glaciers in the north" in art_text.split("\n", 1)[1][start:end]


def test_an_encoder_without_sentence_vectors_still_highlights(tmp_path, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "news.txt", "Spring notes\n" + STORY)
    enc = PlainEncoder()
    build([src], index, encoder=enc, model=fake_model)
    assert _sentence_rows(index) == 0  # the protocol's default: no sentence vectors
    enc.embedded.clear()
    hit = Searcher(index, encoder=enc).search("new bakery main square", SearchOptions(k=1)).hits[0]
    assert enc.embedded  # sentences were embedded at query time instead
    (start, end), *_ = hit.highlights
    assert STORY[start:end].startswith("A new bakery")


def test_sentence_blobs_round_trip():
    spans = [(0, 10), (11, 42)]
    vecs = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    got_spans, got = unpack_sentences(pack_sentences(spans, vecs), 8)
    assert got_spans.tolist() == [list(s) for s in spans] and np.allclose(got, vecs, atol=1e-2)  # float16


def test_identical_passages_reuse_their_sentence_vectors(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "a.txt", "Same title\n" + STORY)
    build([src], index, encoder=fake_encoder, model=fake_model)
    fake_encoder.embedded.clear()
    write(src / "b.txt", "Same title\n" + STORY)  # a syndicated copy: the same embedded text
    rep = build([src], index, encoder=fake_encoder, model=fake_model)
    assert rep.embedded == 0 and rep.reused == rep.passages // 2
    snap = IndexDir(index).open()
    try:
        sql = "SELECT data FROM sentences ORDER BY passage"
        blobs = [r[0] for st in snap.store.stores() for r in st.con.execute(sql)]
    finally:
        snap.close()
    assert len(blobs) == 2 and blobs[0] == blobs[1]


# ---------------------------------------------------------------- backends
def test_the_local_backends_are_the_default():
    b = open_backends(None)
    assert isinstance(b.dense, FaissDense) and isinstance(b.lexical, LocalLexical) and b.store is None
    assert not b.engine_bm25


def test_a_bad_store_uri_fails_before_the_index_is_opened(tmp_path):
    with pytest.raises(StoreError, match="unsupported store"):
        open_backends("faiss:///x", index=IndexDir(tmp_path / "nowhere"))


def test_grouped_bm25_takes_each_words_best_variant():
    postings = {
        "port": (np.array([0, 2]), np.array([1.0, 2.0], np.float32)),
        "hafen": (np.array([1, 2]), np.array([3.0, 1.0], np.float32)),
        "ship": (np.array([0, 1]), np.array([1.0, 1.0], np.float32)),
    }
    groups = [{"port": 1.0, "hafen": 0.5}, {"ship": 1.0, "missing": 1.0}]
    total = combine(groups, postings.get, 3)
    assert np.allclose(total, [1.0 + 1.0, 1.5 + 1.0, 2.0 + 0.0])


def test_search_result_json_says_how_it_was_answered(small, fake_encoder):
    _, index = small
    out = Searcher(index, encoder=fake_encoder).search("harbour " * 1500).to_json()
    assert out["mode"] == "hybrid" and out["truncated"] is True and out["took_ms"] > 0 and out["hits"]


def test_store_reads_are_batched_whatever_the_number_of_ids(small):
    _, index = small
    snap = IndexDir(index).open()
    try:
        store = snap.store
        pids = snap.columns.pids.tolist()
        many = pids * 1000  # more ids than one statement may bind
        assert set(store.passage_langs(many)) == set(pids)
        assert store.vectors(many[:5], 64).shape == (5, 64)
    finally:
        snap.close()


# ------------------------------------------------------- deferred checks
def test_moving_to_a_new_version_does_not_wait_for_its_database_check(small, fake_encoder, fake_model, monkeypatch):
    src, index = small
    s = Searcher(index, encoder=fake_encoder)
    write(src / "new.txt", "New\nVolcanic ash closed the airport for a day.")
    build([src], index, encoder=fake_encoder, model=fake_model)
    import threading

    from indexer import index as index_mod

    hashed: list[tuple[str, bool]] = []
    real = index_mod.file_digest

    def recording(path, **kw):
        hashed.append((path.name, threading.current_thread() is threading.main_thread()))
        return real(path, **kw)

    monkeypatch.setattr(index_mod, "file_digest", recording)
    assert s.search("volcanic ash airport").hits[0].article_id == "new.txt"  # the new version, at once
    s.snapshot().checked.wait(10)
    assert (DB_FILE, False) in hashed and (DB_FILE, True) not in hashed  # checked, but not by the query
    assert ("vectors.faiss", True) in hashed  # the files loaded in full are checked before use


def test_a_damaged_new_version_is_refused_once_its_check_fails(small, fake_encoder, fake_model):
    src, index = small
    s = Searcher(index, encoder=fake_encoder)
    write(src / "new.txt", "New\nVolcanic ash closed the airport for a day.")
    build([src], index, encoder=fake_encoder, model=fake_model)
    db = index / "segments" / IndexDir(index).manifest().segments[-1].name / DB_FILE  # the new segment's
    data = bytearray(db.read_bytes())
    data[-100] ^= 0xFF  # one byte of the last page: SQLite may not notice, the checksum does
    db.write_bytes(bytes(data))
    try:
        s.search("volcanic ash")
    except IndexCorruptError:
        pass  # refused at once is fine too
    snap = s._snap
    assert snap is not None and snap.checked.wait(10)
    with pytest.raises(IndexCorruptError, match="does not match its checksum"):
        s.search("volcanic ash")
