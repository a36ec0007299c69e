"""Segment postings: BM25 scored at query time equals bm25s, and a full rebuild, whatever the segments and deletions."""

from __future__ import annotations

import json
import os
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from indexer import postings
from indexer.postings import Collection, SegmentPostings

from . import bm25_reference as lexical

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa"]
UNICODE = ["москва", "北京", "café", "naïve", 'q"uo\\te', "{brace}", "tab\u00a0nbsp", "😀"]


def corpus(n: int, seed: int = 0) -> list[tuple[int, str]]:
    """``n`` passages with sparse ids, skewed word frequencies, repeats, some empty."""
    rng = np.random.default_rng(seed)
    vocab = WORDS + UNICODE
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    docs = []
    for i in range(n):
        length = 0 if i % 11 == 3 else int(rng.integers(1, 30))
        docs.append((3 * i + 7, " ".join(rng.choice(vocab, size=length, p=p))))
    return docs


def split(docs: list[tuple[int, str]], parts: int) -> list[list[tuple[int, str]]]:
    bounds = np.linspace(0, len(docs), parts + 1).astype(int)
    return [docs[a:b] for a, b in pairwise(bounds)]


def segments(tmp: Path, chunks: list[list[tuple[int, str]]]) -> list[SegmentPostings]:
    out = []
    for i, chunk in enumerate(chunks):
        assert postings.write(chunk, tmp / f"seg{i}") == len(chunk)
        out.append(SegmentPostings(tmp / f"seg{i}"))
    return out


GROUPS = [
    [{"alpha": 1.0}],
    [{"alpha": 1.0}, {"gamma": 1.0}, {"theta": 1.0}],
    [{"beta": 1.0, "москва": 0.7}, {"北京": 1.0, "kappa": 0.4, "missing": 1.0}],
    [{"café": 0.5, "naïve": 0.9}, {'q"uo\\te': 1.0}, {"😀": 1.0, "{brace}": 0.3}],
    [{"nowhere": 1.0}],
    [{"iota": 0.0, "eta": 1.0}],
]


@pytest.fixture(scope="module")
def bm25(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[int, str]], lexical.LexicalIndex]:
    docs = corpus(300)
    folder = tmp_path_factory.mktemp("bm25s")
    lexical.build(docs, folder, analyzer=1)
    return docs, lexical.LexicalIndex(folder)


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_scores_equal_bm25s(tmp_path: Path, bm25: tuple[list, lexical.LexicalIndex], parts: int) -> None:
    docs, index = bm25
    coll = Collection(segments(tmp_path, split(docs, parts)), [None] * parts)
    assert np.array_equal(coll.pids, index.pids)
    for groups in GROUPS:
        ours, theirs = coll.grouped_scores(groups), index.grouped_scores(groups)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=0)
    for term in WORDS + UNICODE + ["missing"]:
        mine, ref = coll.postings(term), index.postings(term)
        assert (mine is None) == (ref is None)
        if mine is not None and ref is not None:
            assert mine[0].dtype == np.int64 and mine[1].dtype == np.float32
            assert np.array_equal(mine[0], ref[0])
            np.testing.assert_allclose(mine[1], ref[1], rtol=1e-5, atol=0)
    assert coll.known([*WORDS, "missing", "москва"]) == index.known([*WORDS, "missing", "москва"])


def alive_masks(chunks: list[list[tuple[int, str]]], seed: int, rate: float) -> list[np.ndarray | None]:
    rng = np.random.default_rng(seed)
    return [rng.random(len(c)) >= rate if i % 3 != 1 else None for i, c in enumerate(chunks)]


def assert_same(coll: Collection, full: Collection, terms: list[str]) -> None:
    assert np.array_equal(coll.pids, full.pids)
    assert coll.avgdl == full.avgdl
    for term in terms:
        a, b = coll.postings(term), full.postings(term)
        assert (a is None) == (b is None), term
        if a is not None and b is not None:
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), term
    assert coll.known(terms) == full.known(terms)


@pytest.mark.parametrize("parts", [1, 3, 5])
def test_deletions_rank_like_a_rebuild(tmp_path: Path, parts: int) -> None:
    docs = corpus(400, seed=1)
    chunks = split(docs, parts)
    alive = alive_masks(chunks, seed=parts, rate=0.3)
    coll = Collection(segments(tmp_path / "parts", chunks), alive)
    kept = [
        d
        for chunk, mask in zip(chunks, alive)
        for d, ok in zip(chunk, mask if mask is not None else [True] * len(chunk))
        if ok
    ]
    full = Collection(segments(tmp_path / "full", [kept]), [None])
    assert len(coll) == len(kept) < len(docs)
    assert_same(coll, full, [*WORDS, *UNICODE, "missing"])
    for groups in GROUPS:
        assert np.array_equal(coll.grouped_scores(groups), full.grouped_scores(groups))
    pos, found = coll.position(np.array([kept[5][0], kept[-1][0], -1, 10**12]))
    assert found.tolist() == [True, True, False, False]
    assert pos[:2].tolist() == [5, len(kept) - 1]


def test_every_holder_deleted(tmp_path: Path) -> None:
    docs = [(1, "rare common"), (2, "common"), (5, "common rare rare"), (9, "other")]
    segs = segments(tmp_path, [docs[:2], docs[2:]])
    coll = Collection(segs, [np.array([False, True]), np.array([False, True])])
    assert coll.pids.tolist() == [2, 9]
    assert coll.postings("rare") is None
    assert coll.known(["rare", "common", "other"]) == ["common", "other"]
    assert segs[0].has("rare") and segs[1].has("rare")
    found = coll.postings("common")
    assert found is not None and found[0].tolist() == [0]
    scores = coll.grouped_scores([{"rare": 1.0}, {"common": 1.0}])
    assert scores[1] == 0 and scores[0] > 0
    dead = Collection(segs, [np.zeros(2, bool), np.zeros(2, bool)])
    assert len(dead) == 0 and dead.postings("common") is None and dead.known(["common"]) == []
    assert dead.grouped_scores([{"common": 1.0}]).shape == (0,)


def test_empty_segments_and_empty_texts(tmp_path: Path) -> None:
    assert postings.write([], tmp_path / "empty") == 0
    empty = SegmentPostings(tmp_path / "empty")
    assert len(empty) == 0 and empty.pids.dtype == np.int64 and empty.term_postings("x") is None
    assert postings.write([(4, ""), (6, "   ")], tmp_path / "blank") == 2
    blank = SegmentPostings(tmp_path / "blank")
    assert blank.lengths.tolist() == [0, 0] and not blank.has("")
    postings.write([(8, "word word"), (9, "")], tmp_path / "words")
    words = SegmentPostings(tmp_path / "words")
    coll = Collection([empty, blank, empty, words], [None, None, np.zeros(0, bool), np.array([True, True])])
    assert coll.pids.tolist() == [4, 6, 8, 9]
    assert coll.avgdl == 0.5
    found = coll.postings("word")
    assert found is not None and found[0].tolist() == [2]
    assert Collection([], []).grouped_scores([{"word": 1.0}]).shape == (0,)
    only_blank = Collection([blank], [None])
    assert only_blank.postings("word") is None and not only_blank.grouped_scores([{"word": 1.0}]).any()


def test_segment_reads_back_what_was_written(tmp_path: Path) -> None:
    docs = [(10, "b a b café"), (11, "北京 a"), (20, 'q"uo\\te b b b')]
    postings.write(docs, tmp_path / "s")
    seg = SegmentPostings(tmp_path / "s")
    assert seg.pids.tolist() == [10, 11, 20] and seg.lengths.tolist() == [4, 2, 4]
    expect = {
        "a": ([0, 1], [1, 1]),
        "b": ([0, 2], [2, 3]),
        "café": ([0], [1]),
        "北京": ([1], [1]),
        'q"uo\\te': ([2], [1]),
    }
    for term, (pos, tf) in expect.items():
        found = seg.term_postings(term)
        assert found is not None and found[0].tolist() == pos and found[1].tolist() == tf
        assert found[0].dtype == np.int32 and found[1].dtype == np.float32
    assert seg.term_postings("cafe") is None and not seg.has("c")
    vocab = json.loads((tmp_path / "s" / postings.VOCAB_FILE).read_text(encoding="utf-8"))
    assert vocab["terms"] == sorted(expect)
    # deterministic: the same input writes the same bytes
    postings.write(iter(docs), tmp_path / "again")
    for name in os.listdir(tmp_path / "s"):
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


@pytest.mark.parametrize("setting", [("_CHUNK_TOKENS", 7), ("_KEY_BITS", 0), ("_DECODE_BLOCK", 5)])
def test_write_internals_do_not_change_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: tuple[str, int]
) -> None:
    docs = [*corpus(60, seed=3), (1000, "x " * 40), (1001, "")]
    postings.write(docs, tmp_path / "plain")
    monkeypatch.setattr(postings, *setting)
    postings.write(docs, tmp_path / "tuned")
    for name in os.listdir(tmp_path / "plain"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "tuned" / name).read_bytes(), name


def test_write_refuses_unordered_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="increase"):
        postings.write([(2, "a"), (2, "b")], tmp_path / "s")


def test_collection_refuses_bad_input(tmp_path: Path) -> None:
    a, b = segments(tmp_path, [[(1, "x"), (2, "y")], [(3, "x")]])
    with pytest.raises(ValueError):
        Collection([b, a], [None, None])
    with pytest.raises(ValueError):
        Collection([a, b], [None])
    with pytest.raises(ValueError):
        Collection([a, b], [np.array([1, 0]), None])
    with pytest.raises(ValueError):
        Collection([a, b], [np.array([True]), None])


@pytest.mark.parametrize(
    "name", [postings.PIDS_FILE, postings.LENGTHS_FILE, postings.INDPTR_FILE, postings.DOCS_FILE, postings.TFS_FILE]
)
@pytest.mark.parametrize("keep", [0, 20, -4])
def test_damaged_files_raise(tmp_path: Path, name: str, keep: int) -> None:
    postings.write(corpus(50), tmp_path)
    path = tmp_path / name
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(keep % size)
    with pytest.raises((ValueError, OSError)):
        SegmentPostings(tmp_path)


def test_damaged_vocabulary_and_missing_files_raise(tmp_path: Path) -> None:
    postings.write(corpus(20), tmp_path)
    vocab = tmp_path / postings.VOCAB_FILE
    text = vocab.read_text(encoding="utf-8")
    meta = json.loads(text)
    unsorted = json.dumps({**meta, "terms": meta["terms"][::-1]})
    for damaged in [text[: len(text) // 2], "[]", text.replace('"format": 1', '"format": 99'), unsorted]:
        vocab.write_text(damaged, encoding="utf-8")
        with pytest.raises(ValueError):
            SegmentPostings(tmp_path)
    vocab.write_bytes(b'{"terms": ["\xff"]}')
    with pytest.raises(ValueError):
        SegmentPostings(tmp_path)
    vocab.write_text(text, encoding="utf-8")
    np.save(tmp_path / postings.LENGTHS_FILE, np.zeros(3, np.int32))
    with pytest.raises(ValueError):
        SegmentPostings(tmp_path)
    np.save(tmp_path / postings.LENGTHS_FILE, np.zeros(20, np.int64))
    with pytest.raises(ValueError):
        SegmentPostings(tmp_path)
    postings.write(corpus(20), tmp_path)
    (tmp_path / postings.DOCS_FILE).unlink()
    with pytest.raises(OSError):
        SegmentPostings(tmp_path)


def test_lone_surrogate_round_trips(tmp_path: Path) -> None:
    postings.write([(1, "ok \udcff")], tmp_path)
    assert SegmentPostings(tmp_path).has("\udcff")


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis comes with the test extras
    pass
else:
    terms = st.sampled_from(["a", "b", "c", "ж", "字", "é", '"'])
    texts = st.lists(terms, max_size=12).map(" ".join)

    @settings(max_examples=60, deadline=None)
    @given(
        texts=st.lists(texts, max_size=40),
        cuts=st.lists(st.integers(0, 40), max_size=4),
        dead=st.lists(st.booleans(), max_size=40),
    )
    def test_any_layout_scores_like_one_segment(texts: list[str], cuts: list[int], dead: list[bool]) -> None:
        docs = [(2 * i + 1, t) for i, t in enumerate(texts)]
        bounds = sorted({0, len(docs), *(min(c, len(docs)) for c in cuts)})
        chunks = [docs[a:b] for a, b in pairwise(bounds)]
        gone = [i < len(dead) and dead[i] for i in range(len(docs))]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            segs = segments(folder / "parts", chunks)
            alive, start = [], 0
            for chunk in chunks:
                alive.append(~np.array(gone[start : start + len(chunk)], dtype=bool))
                start += len(chunk)
            coll = Collection(segs, alive)
            kept = [d for d, g in zip(docs, gone) if not g]
            full = Collection(segments(folder / "full", [kept]), [None])
            assert_same(coll, full, ["a", "b", "c", "ж", "字", "é", '"', "zz"])
            groups = [{"a": 1.0, "ж": 0.5}, {"字": 1.0}, {'"': 0.8, "b": 1.0}]
            assert np.array_equal(coll.grouped_scores(groups), full.grouped_scores(groups))
