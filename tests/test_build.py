"""Incremental, atomic builds and search over them, with the fake encoder."""

from __future__ import annotations

import json

import pytest

from indexer import BuildSettings, Filters, Searcher, SearchOptions, build
from indexer.errors import BuildError, IndexCorruptError, IndexLockedError, IndexNotFoundError
from indexer.index import IndexDir

from .conftest import write

FOX = "The quick brown fox jumps over the lazy dog. The fox is quick and brown."
ARCTIC = "Arctic sea ice is melting. Shipping routes open in the north during summer."
KITCHEN = "Une recette de cuisine: la tarte aux pommes. Il faut du beurre et des pommes."


@pytest.fixture
def corpus(tmp_path):
    src = tmp_path / "src"
    write(src / "fox.txt", "Fox story\n" + FOX)
    write(src / "arctic.txt", "Arctic news\n" + ARCTIC)
    write(src / "cuisine.md", "---\ndate: 2024-05-01\nsource: Cuisine Hebdo\n---\n# Tarte\n\n" + KITCHEN)
    return src


def run(src, index, enc, model, **kw):
    return build([src], index, BuildSettings(**kw), encoder=enc, model=model)


def test_build_then_search(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    rep = run(corpus, index, fake_encoder, fake_model)
    assert (rep.added, rep.updated, rep.removed, rep.articles) == (3, 0, 0, 3)
    assert rep.published and not rep.skipped
    hits = Searcher(index, encoder=fake_encoder).search("arctic shipping routes").hits
    assert hits[0].article_id == "arctic.txt"
    assert hits[0].title == "Arctic news"
    assert ARCTIC.startswith(hits[0].text[:20])
    m = json.loads((index / "manifest.json").read_text())
    assert m["format_version"] == 3 and m["model"]["name"] == "fake-bow"
    assert m["counts"] == {"articles": 3, "passages": rep.passages}
    assert m["chunker"] == {"max_tokens": 200, "overlap_sentences": 1}


def test_nothing_changed_embeds_nothing(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    version = IndexDir(index).manifest().version
    fake_encoder.embedded.clear()
    rep = run(corpus, index, fake_encoder, fake_model)
    assert fake_encoder.embedded == []
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (0, 0, 0, 3)
    assert not rep.published and IndexDir(index).manifest().version == version


def test_one_changed_file_reembeds_only_it(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    fake_encoder.embedded.clear()
    write(corpus / "fox.txt", "Fox story\n" + FOX + " A third sentence about a red fox appears.")
    rep = run(corpus, index, fake_encoder, fake_model)
    assert (rep.added, rep.updated, rep.unchanged) == (0, 1, 2)
    assert fake_encoder.embedded and all(t.startswith("Fox story\n") for t in fake_encoder.embedded)
    s = Searcher(index, encoder=fake_encoder)
    assert "red fox" in s.search("red fox appears").hits[0].text


def test_vanished_article_is_removed(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    (corpus / "arctic.txt").unlink()
    rep = run(corpus, index, fake_encoder, fake_model)
    assert rep.removed == 1 and rep.articles == 2
    snap = IndexDir(index).open()
    assert snap.ntotal == snap.store.counts()["passages"] == snap.manifest.counts["passages"]
    ids = {h.article_id for h in Searcher(index, encoder=fake_encoder).search("arctic", SearchOptions(k=10)).hits}
    assert "arctic.txt" not in ids


def test_failed_build_leaves_previous_index(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    before = (index / "manifest.json").read_text()
    write(corpus / "new.txt", "New one\nSomething entirely new about volcanoes.")

    class Broken(type(fake_encoder)):
        def embed_passages(self, texts):
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        run(corpus, index, Broken(), fake_model)
    assert (index / "manifest.json").read_text() == before
    assert not [p for p in (index / "versions").iterdir() if p.name.endswith(".partial")]
    hits = Searcher(index, encoder=fake_encoder).search("volcanoes").hits
    assert "new.txt" not in {h.article_id for h in hits}
    assert run(corpus, index, fake_encoder, fake_model).added == 1  # and the next build completes


def test_killed_build_work_is_reused(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    for i in range(6):
        write(corpus / f"bulk{i}.txt", f"Bulk {i}\n" + " ".join(f"Sentence {j} of article {i}." for j in range(30)))

    class DiesLate(type(fake_encoder)):
        calls = 0

        def embed_passages(self, texts):
            DiesLate.calls += 1
            if DiesLate.calls == 2:
                raise KeyboardInterrupt  # the build is interrupted after one committed batch
            return super().embed_passages(texts)

    dying = DiesLate()
    with pytest.raises(KeyboardInterrupt):
        build(
            [corpus],
            index,
            BuildSettings(chunk=__import__("indexer").ChunkSettings(max_tokens=20)),
            encoder=dying,
            model=fake_model,
        )
    first_batch = set(dying.embedded)
    assert first_batch
    assert not (index / "manifest.json").exists()
    rep = build(
        [corpus],
        index,
        BuildSettings(chunk=__import__("indexer").ChunkSettings(max_tokens=20)),
        encoder=fake_encoder,
        model=fake_model,
    )
    assert first_batch.isdisjoint(fake_encoder.embedded)  # nothing embedded twice
    assert rep.reused >= len(first_batch)


def test_strict_fails_and_keeps_previous(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    before = (index / "manifest.json").read_text()
    write(corpus / "broken.json", '{"text": "unterminated')
    with pytest.raises(BuildError, match="--strict"):
        run(corpus, index, fake_encoder, fake_model, strict=True)
    assert (index / "manifest.json").read_text() == before
    rep = run(corpus, index, fake_encoder, fake_model)  # without --strict: skipped and reported
    assert [s.reason for s in rep.skipped] == ["malformed JSON (Unterminated string starting at, line 1 column 10)"]


def test_second_builder_is_refused(corpus, tmp_path, fake_encoder, fake_model):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    lock = IndexDir(index).lock()
    try:
        with pytest.raises(IndexLockedError, match="another build is running"):
            run(corpus, index, fake_encoder, fake_model)
    finally:
        lock.release()


def test_missing_and_corrupt_index(tmp_path, fake_encoder, corpus, fake_model):
    with pytest.raises(IndexNotFoundError, match="indexer build"):
        Searcher(tmp_path / "nothing", encoder=fake_encoder)
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    (index / "manifest.json").write_text("{garbage")
    with pytest.raises(IndexCorruptError, match="indexer build --full"):
        Searcher(index, encoder=fake_encoder)
    with pytest.raises(IndexCorruptError):
        run(corpus, index, fake_encoder, fake_model)
    rep = run(corpus, index, fake_encoder, fake_model, full=True)
    assert rep.articles == 3 and Searcher(index, encoder=fake_encoder).search("fox").hits


def test_refuses_non_index_folder(tmp_path, corpus, fake_encoder, fake_model):
    (tmp_path / "home").mkdir()
    write(tmp_path / "home" / "thesis.docx", "precious")
    with pytest.raises(BuildError, match="not an index folder"):
        run(corpus, tmp_path / "home", fake_encoder, fake_model)


def test_per_article_and_paging(tmp_path, fake_encoder, fake_model):
    src = tmp_path / "src"
    for i in range(12):
        body = " ".join(f"Glaciers retreat quickly in region {i}, sentence {j}." for j in range(12))
        write(src / f"g{i:02d}.txt", f"Glacier report {i}\n{body}")
    index = tmp_path / "index"
    build(
        [src],
        index,
        BuildSettings(chunk=__import__("indexer").ChunkSettings(max_tokens=30)),
        encoder=fake_encoder,
        model=fake_model,
    )
    s = Searcher(index, encoder=fake_encoder)
    one = s.search("glaciers retreat", SearchOptions(k=5)).hits
    assert len(one) == 5 and len({h.article_id for h in one}) == 5
    many = s.search("glaciers retreat", SearchOptions(k=10, per_article=3)).hits
    assert len(many) == 10 and max(sum(h.article_id == a for h in many) for a in {h.article_id for h in many}) <= 3
    page2 = s.search("glaciers retreat", SearchOptions(k=5, offset=5)).hits
    assert [h.rank for h in page2] == [6, 7, 8, 9, 10]
    assert not {h.article_id for h in one} & {h.article_id for h in page2}


def test_filter_returns_k_when_k_match(tmp_path, fake_encoder, fake_model):
    src = tmp_path / "src"
    rows = []
    for i in range(40):
        lang = "de" if i % 10 == 0 else "en"  # 4 German among 40 near-identical articles
        rows.append(
            json.dumps(
                {
                    "id": f"a{i}",
                    "title": f"Energy {i}",
                    "lang": lang,
                    "text": f"Energy prices rise again in winter number {i}.",
                }
            )
        )
    write(src / "all.jsonl", "\n".join(rows))
    index = tmp_path / "index"
    run(src, index, fake_encoder, fake_model)
    hits = (
        Searcher(index, encoder=fake_encoder)
        .search("energy prices", SearchOptions(k=4, filters=Filters(langs=("de",))))
        .hits
    )
    assert sorted(h.article_id for h in hits) == ["a0", "a10", "a20", "a30"]


def test_index_of_a_previous_format_is_refused_by_search_and_rebuilt_by_build(
    corpus, tmp_path, fake_encoder, fake_model
):
    index = tmp_path / "index"
    run(corpus, index, fake_encoder, fake_model)
    doc = json.loads((index / "manifest.json").read_text())
    doc["format_version"] = 1  # as written by indexer 0.1 before BM25 and sentence vectors
    (index / "manifest.json").write_text(json.dumps(doc))
    from indexer.errors import IndexVersionError

    with pytest.raises(IndexVersionError, match=r"old format v1.*indexer build --full"):
        Searcher(index, encoder=fake_encoder)
    rep = run(corpus, index, fake_encoder, fake_model)  # a plain build rebuilds it, as --full would
    assert rep.full and rep.reason == "index format v1 is older than v3" and rep.articles == 3
    assert Searcher(index, encoder=fake_encoder).search("arctic").hits


def test_plain_build_keeps_the_index_chunker_settings(corpus, tmp_path, fake_encoder, fake_model):
    from indexer import ChunkSettings

    index = tmp_path / "index"
    build([corpus], index, BuildSettings(chunk=ChunkSettings(max_tokens=12)), encoder=fake_encoder, model=fake_model)
    rep = run(corpus, index, fake_encoder, fake_model)  # no chunk settings given: keep the index's
    assert not rep.full and not rep.published
    assert IndexDir(index).manifest().chunker.max_tokens == 12
    rep = build([corpus], index, BuildSettings(chunk=ChunkSettings()), encoder=fake_encoder, model=fake_model)
    assert rep.full and rep.reason == "chunker settings changed"
