"""Similar coverage: nearest articles in any language, without the article's own copies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import BuildSettings, Filters, Searcher, build
from indexer import similar as similar_mod
from indexer.article_vectors import read_version
from indexer.cli import main
from indexer.errors import QueryError
from indexer.index import IndexDir
from indexer.similar import SimilarCache, UnknownArticleError

from .conftest import FAKE_MODEL
from .desk_helpers import LanguageEncoder, article, build_records, multilingual_records, records_file


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_records(tmp_path_factory.mktemp("similar"), multilingual_records(), LanguageEncoder())


@pytest.fixture(scope="module")
def searcher(index):
    return Searcher(index)


def ids(result) -> list[str]:
    return [h.article_id for h in result.hits]


def test_the_data_has_a_language_component_that_uncentred_cosine_follows(index):
    # the premise of centring: uncentred, an English article's nearest is English whatever its topic
    snap = IndexDir(index).open()
    av = read_version(snap.store, snap.manifest.model.dimension)
    rows = dict(snap.store.article_ids(av.rows.tolist()))
    names = [rows[int(r)][1] for r in av.rows]
    me = names.index("en-zorblat")
    sims = av.vectors @ av.vectors[me]
    order = [names[i] for i in np.argsort(-sims) if names[i] not in ("en-zorblat", "en-zorblat-copy")]
    assert order[0].startswith("en-")


def test_neighbours_are_found_across_languages(searcher):
    result = searcher.similar("en-zorblat", k=5)
    assert set(ids(result)[:2]) == {"de-zorblat", "fr-zorblat"}
    top = result.hits[0]
    assert top.similarity > 0.5 and result.hits[2].similarity < top.similarity
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    assert result.title == "zorblat" and result.lang == "en"


def test_its_own_copies_are_left_out_and_a_neighbours_copies_collapse(searcher):
    result = searcher.similar("en-zorblat", k=50)
    found = ids(result)
    assert "en-zorblat" not in found and "en-zorblat-copy" not in found
    assert result.excluded == ["en-zorblat-copy"]
    fr = [h for h in result.hits if h.article_id.startswith("fr-zorblat")]
    assert len(fr) == 1  # the two French copies are one neighbour, the other listed with it
    other = {"fr-zorblat", "fr-zorblat-copy"} - {fr[0].article_id}
    assert fr[0].duplicates == sorted(other)
    assert len(found) == len(set(found))
    # every other article, less the copies: 3 languages × 15 + 2 copies - itself - its copy - the French copy
    assert len(found) == 3 * 15 + 2 - 3


def test_each_hit_carries_the_article_facts(searcher):
    hit = searcher.similar("en-zorblat", k=1).hits[0]
    art = searcher.article(hit.article_id)
    assert (hit.title, hit.source, hit.lang, hit.date, hit.url) == (art.title, art.source, art.lang, art.date, art.url)
    # every build makes stories: each neighbour names its own, for grouping by story
    assert hit.story_id is not None and hit.article_id in searcher.story(hit.story_id).article_ids
    data = json.loads(json.dumps(hit.to_json()))
    assert set(data) == {"rank", "article_id", "title", "similarity", "source", "lang", "date", "url", "duplicates",
                         "story_id"}  # fmt: skip


def test_filters_restrict_the_neighbours(searcher):
    de = searcher.similar("en-zorblat", k=50, filters=Filters(langs=("de",)))
    assert ids(de)[0] == "de-zorblat" and {h.lang for h in de.hits} == {"de"}
    weekly = searcher.similar("en-zorblat", k=50, filters=Filters(sources=("fr weekly",)))
    assert {h.source for h in weekly.hits} == {"fr weekly"} and len(weekly.hits) == 12
    dated = searcher.similar("en-zorblat", k=50, filters=Filters(date_from="2024-03"))
    assert {h.date for h in dated.hits} <= {"2024-03-01", "2024-03-02"}


def test_scores_equal_centred_vectors_cosine(index):
    # the product without a centred copy equals Calibration.centre(...) @ query
    snap = IndexDir(index).open()
    cache = SimilarCache()
    version = cache.prepare(snap)
    av = read_version(snap.store, snap.manifest.model.dimension)
    cols = snap.columns
    langs = np.array([cols.langs[cols.lang[np.searchsorted(cols.rowid, r)]] for r in av.rows])
    centred = version.calibration.centre(langs, av.vectors)
    seg = version.segments[0]
    for i in (0, 7, 30):
        want = centred @ centred[i]
        got = seg.scores(centred[i], version.calibration.centroids)
        assert np.allclose(got, want, atol=1e-5)


def test_unknown_ids_and_bad_k(searcher):
    with pytest.raises(UnknownArticleError, match="no article 'nope' in the index — use an article id"):
        searcher.similar("nope")
    with pytest.raises(QueryError, match="-k must be between 1 and 1000"):
        searcher.similar("en-zorblat", k=0)


def test_segment_vectors_are_read_once_and_a_new_version_reads_only_its_new_segment(tmp_path, monkeypatch):
    records = multilingual_records()
    src = tmp_path / "src"
    records_file(src / "news.jsonl", records)
    build([src], tmp_path / "index", BuildSettings(), encoder=LanguageEncoder(), model=FAKE_MODEL)
    reads: list[int] = []
    real = similar_mod._read_raw

    def counting(seg, dim):
        reads.append(seg.info.passages)
        return real(seg, dim)

    monkeypatch.setattr(similar_mod, "_read_raw", counting)
    s = Searcher(tmp_path / "index")
    first = s.similar("en-volcano", k=3)
    again = s.similar("de-harbour", k=3)
    assert len(reads) == 1 and first.hits and again.hits
    # the same topic, words in another order: a new article, not a copy
    again_volcano = article("de", "magmaflow ashcloud eruption lava volcano")
    records_file(src / "more.jsonl", [{"id": "de-volcano-2", **again_volcano}])
    build([src], tmp_path / "index", BuildSettings(), encoder=LanguageEncoder(), model=FAKE_MODEL)
    after = s.similar("en-volcano", k=3)
    assert len(reads) == 2 and reads[1] == 1  # the new segment only, one passage
    assert "de-volcano-2" in ids(after)


def test_cli_similar_text_json_and_errors(index):
    runner = CliRunner()
    res = runner.invoke(main, ["similar", "en-zorblat", "--index", str(index), "-k", "3"])
    assert res.exit_code == 0, res.output
    assert "Similar to: zorblat" in res.output and "de-zorblat" in res.output and "en-zorblat-copy" in res.output
    res = runner.invoke(main, ["similar", "en-zorblat", "--index", str(index), "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert body == {**Searcher(index).similar("en-zorblat", k=3).to_json(), "took_ms": body["took_ms"]}
    res = runner.invoke(main, ["similar", "missing.txt", "--index", str(index)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no article 'missing.txt'" in lines[0] and "indexer search --json" in lines[0]
    res = runner.invoke(main, ["similar", "en-zorblat", "--index", str(index), "--lang", "klingon"])
    assert res.exit_code == 2 and "invalid language 'klingon'" in res.stderr
