"""Stories through real builds: made by every build, carried by merges, searched by story, shown by id."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import build, story_versions
from indexer.build import BuildSettings
from indexer.cli import main
from indexer.errors import IndexCorruptError, QueryError
from indexer.index import IndexDir
from indexer.merge import merge
from indexer.search import STAGES, Searcher, SearchOptions
from indexer.stories import IndexArchive, cluster
from indexer.story_index import FILE, FILES
from indexer.story_search import NoStoriesError, StoryNotFoundError, parse_story_id
from indexer.story_versions import StoriesMade

from .conftest import FAKE_MODEL, FakeEncoder, write

# the test's "multilingual model": French and German words of one meaning hash alike, as e5 would place them
LEXICON = {
    "ministres": "minister", "conseil": "council", "arctique": "arctic", "réunis": "met", "adopté": "adopted",
    "surveiller": "monitor", "pergélisol": "permafrost", "millions": "million", "euros": "euro", "lundi": "monday",
    "norvège": "norway", "danemark": "denmark", "présidence": "presidency", "rates": "council",
    "arktischen": "arctic", "zusammengekommen": "met", "beschlossen": "adopted", "überwachung": "monitor",
    "permafrosts": "permafrost", "millionen": "million", "montag": "monday", "norwegen": "norway",
    "dänemark": "denmark", "vorsitz": "presidency", "arktischer": "arctic", "rat": "council", "tagt": "met",
    "réuni": "met",
}  # fmt: skip
STOP = {"les", "du", "de", "l", "le", "la", "un", "une", "des", "se", "sont", "à", "ils", "ont", "pour", "et", "au",
        "en", "d", "die", "der", "den", "sind", "in", "sie", "haben", "einen", "zur", "am", "an", "über", "ein",
        "eine", "und", "zu"}  # fmt: skip
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class LexiconEncoder(FakeEncoder):
    """The fake bag of words, over meanings rather than words for the lexicon's French and German."""

    def _vec(self, text: str) -> np.ndarray:
        return super()._vec(" ".join(LEXICON.get(w, w) for w in _WORD.findall(text.lower()) if w not in STOP))


FR = ("Les ministres du Conseil de l'Arctique se sont réunis lundi à Tromsø. Ils ont adopté un plan de 40 millions "
      "d'euros pour surveiller le pergélisol. La Norvège transmet la présidence au Danemark.")  # fmt: skip
DE = ("Die Minister des Arktischen Rates sind am Montag in Tromsø zusammengekommen. Sie haben einen Plan "
      "über 40 Millionen Euro zur Überwachung des Permafrosts beschlossen. "
      "Norwegen übergibt den Vorsitz an Dänemark.")  # fmt: skip
FR_LATER = ("Les ministres du Conseil de l'Arctique se sont réunis à Reykjavik. Ils ont adopté un plan pour les "
            "brise-glaces. L'Islande prend la présidence.")  # fmt: skip
FILLERS = {
    "fr": ["Les boulangers de Lyon sont en grève depuis lundi pour les salaires.",
           "Le musée du Louvre ouvre une nouvelle salle consacrée à l'Égypte ancienne.",
           "La finale de la coupe de France de football aura lieu samedi au Stade de France.",
           "Les vendanges commencent tôt cette année en Bourgogne à cause de la chaleur."],
    "de": ["Die Bahn streicht wegen des Sturms viele Züge zwischen Hamburg und Berlin.",
           "Das Oktoberfest in München beginnt mit dem traditionellen Fassanstich.",
           "Der Bundestag debattiert über das neue Heizungsgesetz.",
           "In Köln wurde ein neues Museum für moderne Kunst eröffnet."],
}  # fmt: skip


def news() -> list[dict]:
    rows = [
        {"id": "fr-2025", "title": "Le Conseil de l'Arctique réuni à Tromsø", "text": FR, "lang": "fr",
         "date": "2025-05-12", "source": "Le Monde", "url": "https://example.org/fr-2025"},
        {"id": "de-2025", "title": "Arktischer Rat tagt in Tromsø", "text": DE, "lang": "de", "date": "2025-05-13",
         "source": "FAZ"},
        {"id": "fr-2026", "title": "Le Conseil de l'Arctique à Reykjavik", "text": FR_LATER, "lang": "fr",
         "date": "2026-05-20", "source": "Le Monde"},
    ]  # fmt: skip
    for lang, texts in FILLERS.items():
        for i, text in enumerate(texts):
            rows.append({"id": f"{lang}-{i}", "title": text.split()[1], "text": text, "lang": lang,
                         "date": f"2025-05-{10 + i}", "source": "Wire"})  # fmt: skip
    return rows


def write_news(src: Path, rows: list[dict], name: str = "news.jsonl") -> None:
    write(src / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def make(src: Path, index: Path, settings: BuildSettings | None = None):
    return build([src], index, settings, encoder=LexiconEncoder(), model=FAKE_MODEL)


def by_ids(index: Path) -> set[frozenset[str]]:
    """The version's stories of two or more, as sets of article ids."""
    snap = IndexDir(index).open()
    try:
        stories = snap.stories
        assert stories is not None
        meta = IndexArchive.of_snapshot(snap).meta(sorted(stories.story))
        return {frozenset(meta[r].id for r in rows) for rows in stories.clusters.values()}
    finally:
        snap.close()


def equals_scratch(index: Path) -> None:
    """The version's stories are those a clustering from scratch gives (with their centroids), on its catalog."""
    snap = IndexDir(index).open()
    try:
        stories = snap.stories
        assert stories is not None and stories.catalog is not None
        archive = IndexArchive.of_snapshot(snap)
        scanned = archive.catalog()
        assert np.array_equal(stories.catalog.rows, scanned.rows)
        assert np.array_equal(stories.catalog.days, scanned.days)
        assert stories.catalog.langs.tolist() == scanned.langs.tolist()
        fresh = cluster(archive, calibration=stories.calibration)
        assert dict(stories.story) == dict(fresh.story) and dict(stories.central) == dict(fresh.central)
    finally:
        snap.close()


def without_stories(monkeypatch) -> None:
    """Builds as the indexer did before stories: nothing written, the manifest lists none."""
    monkeypatch.setattr(story_versions, "make", lambda *a, **k: StoriesMade(0, 0.0, False))


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stories")
    write_news(root / "src", news())
    report = make(root / "src", root / "index")
    assert report.stories == 1
    return root / "index"


@pytest.fixture(scope="module")
def searcher(index) -> Searcher:
    return Searcher(index, encoder=LexiconEncoder())


# ------------------------------------------------------------------ built with every build


def test_a_french_article_and_its_german_translation_are_one_story(index, searcher):
    assert by_ids(index) == {frozenset({"fr-2025", "de-2025"})}, "the summit a year later is a story of its own"
    result = searcher.search("Conseil de l'Arctique Tromsø pergélisol", SearchOptions(group="story", k=3))
    assert result.group == "story" and result.stories is not None
    first = result.stories[0]
    assert [m.id for m in first.story.members] == ["fr-2025", "de-2025"], "members in date order"
    assert first.story.coverage == "covered in 2 sources, 2 languages"
    assert (first.story.first_date, first.story.last_date) == ("2025-05-12", "2025-05-13")
    assert first.story.langs == ["de", "fr"] and first.story.sources == ["FAZ", "Le Monde"]
    assert first.hit.article_id in {"fr-2025", "de-2025"} and first.hit.highlights
    assert first.hit.story_id == first.story.id
    assert "fr-2026" not in [m.id for s in result.stories[:1] for m in s.story.members]


def test_the_files_are_in_the_version_and_under_its_checksums(index, tmp_path):
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    m = IndexDir(copy).manifest()
    assert set(FILES) <= set(m.files)
    path = IndexDir(copy).layout.version(m.version) / FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"stories\.npz does not match its checksum"):
        IndexDir(copy).open()


def test_incremental_builds_equal_a_clustering_from_scratch(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    rows = news()
    write_news(src, rows)
    make(src, index)
    es = {"id": "es-2025", "title": "El Consejo Ártico en Tromsø", "text": DE.replace("Die", "Los"), "lang": "es",
          "date": "2025-05-14", "source": "El País"}  # fmt: skip
    write_news(src, [es], "more.jsonl")
    report = make(src, index)
    assert report.added == 1 and report.stories == 1 and report.story_seconds > 0
    equals_scratch(index)
    kept = [r for r in rows if r["id"] != "fr-2025"]
    kept[0] = {**kept[0], "text": kept[0]["text"] + " Une mise à jour."}  # changed: a new row, the old one deleted
    write_news(src, kept)
    report = make(src, index)
    assert report.removed == 1 and report.updated >= 1
    equals_scratch(index)
    assert frozenset({"de-2025", "es-2025"}) in by_ids(index), "the story lives on without its first member"


def test_the_same_corpus_gives_the_same_stories(tmp_path):
    write_news(tmp_path / "src", news())
    make(tmp_path / "src", tmp_path / "a")
    make(tmp_path / "src", tmp_path / "b")
    a_dir, b_dir = (IndexDir(tmp_path / x).layout.version(IndexDir(tmp_path / x).manifest().version) for x in "ab")
    with np.load(a_dir / FILE) as a, np.load(b_dir / FILE) as b:
        assert a.files == b.files
        for name in a.files:
            assert np.array_equal(a[name], b[name]), name
    make(tmp_path / "src", tmp_path / "a", BuildSettings(full=True))
    assert by_ids(tmp_path / "a") == by_ids(tmp_path / "b")


def test_a_merge_keeps_the_stories_and_their_members(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    rows = news()
    write_news(src, rows)
    make(src, index)
    write_news(src, rows[:-1])  # one filler gone: a deleted row for the merge to drop
    make(src, index)
    idx = IndexDir(index)
    before = idx.open()
    assert len(before.state.deleted_rows) == 1
    stories, meta = before.stories, IndexArchive.of_snapshot(before).meta(before.stories.story.keys())
    before.close()
    lock = idx.lock()
    try:
        assert merge(idx, everything=True).merges == 1
    finally:
        lock.release()
    after = idx.open()
    try:
        assert len(after.segments) == 1 and len(after.state.deleted_rows) == 0
        assert dict(after.stories.story) == dict(stories.story) and dict(after.stories.central) == dict(stories.central)
        again = IndexArchive.of_snapshot(after).meta(after.stories.story.keys())
        assert {r: m.id for r, m in again.items()} == {r: m.id for r, m in meta.items()}, "rows survive a merge"
    finally:
        after.close()
    write_news(src, rows[:-2])
    make(src, index)
    equals_scratch(index)


# ------------------------------------------------------------------ versions built before stories


def test_an_index_built_before_stories_gets_them_on_its_next_build(tmp_path, monkeypatch):
    src, index = tmp_path / "src", tmp_path / "index"
    write_news(src, news())
    without_stories(monkeypatch)
    make(src, index)
    monkeypatch.undo()
    searcher = Searcher(index, encoder=LexiconEncoder())
    assert searcher.snapshot().stories is None
    plain = searcher.search("Arctique Tromsø")
    assert plain.hits and all(h.story_id is None for h in plain.hits)
    assert plain.to_json()["hits"][0]["story_id"] is None
    with pytest.raises(NoStoriesError, match='run "indexer build"') as err:
        searcher.search("Arctique Tromsø", SearchOptions(group="story"))
    assert isinstance(err.value, QueryError)
    with pytest.raises(NoStoriesError):
        searcher.story(1)
    report = make(src, index)  # nothing changed, yet a version with stories is published
    assert report.published and report.stories == 1 and report.added == 0
    found = searcher.search("Arctique Tromsø", SearchOptions(group="story"))
    assert found.stories and any(len(s.story.members) == 2 for s in found.stories)
    assert [h.article_id for h in searcher.search("Arctique Tromsø").hits] == [h.article_id for h in plain.hits]
    assert not make(src, index).published, "then a build without changes publishes nothing"


def test_an_incremental_build_of_an_index_without_stories_makes_them(tmp_path, monkeypatch):
    src, index = tmp_path / "src", tmp_path / "index"
    rows = news()
    write_news(src, rows[1:])
    without_stories(monkeypatch)
    make(src, index)
    monkeypatch.undo()
    write_news(src, rows)
    report = make(src, index)
    assert report.added == 1 and not report.full and report.stories == 1
    equals_scratch(index)


# ------------------------------------------------------------------ search by story


def test_stories_page_like_articles(searcher):
    q = "Arctique Tromsø ministres Museum grève Bahn"
    whole = searcher.search(q, SearchOptions(group="story", k=6)).stories
    assert whole is not None and len(whole) == 6
    pages = [searcher.search(q, SearchOptions(group="story", k=2, offset=o)).stories for o in (0, 2, 4)]
    assert [s.story.id for page in pages for s in page or []] == [s.story.id for s in whole]
    assert [s.hit.rank for page in pages for s in page or []] == list(range(1, 7))
    assert len({s.story.id for s in whole}) == 6, "one result per story"
    alone = next(s for s in whole if len(s.story.members) == 1)
    assert alone.story.members[0].id == alone.hit.article_id, "an article linked to no other is a story of one"


def test_each_hit_carries_its_story(searcher):
    hits = searcher.search("Conseil Arctique Tromsø Arktischen Rates", SearchOptions(k=10)).hits
    ids = {h.article_id: h.story_id for h in hits}
    assert ids["fr-2025"] == ids["de-2025"] is not None
    assert ids["fr-2026"] != ids["fr-2025"]
    assert all(h.to_json()["story_id"] == h.story_id for h in hits)


def test_filters_narrow_the_passages_not_the_story(searcher):
    result = searcher.search("Arctique Tromsø", SearchOptions(group="story", filters=_langs("de")))
    assert result.stories and result.stories[0].hit.lang == "de"
    assert {m.id for m in result.stories[0].story.members} == {"fr-2025", "de-2025"}


def _langs(*codes: str):
    from indexer.query import Filters

    return Filters(langs=codes).normalized()


def test_the_story_json_has_what_a_timeline_needs(searcher):
    result = searcher.search("Arctique Tromsø", SearchOptions(group="story", k=3))
    line = json.loads(json.dumps(result.to_json()))
    assert line["group"] == "story" and "hits" not in line
    story = line["stories"][0]
    assert list(story)[:3] == ["rank", "score", "story_id"]
    assert story["coverage"] == "covered in 2 sources, 2 languages" and story["articles"] == 2
    assert [(m["article_id"], m["date"], m["lang"], m["source"]) for m in story["members"]] == [
        ("fr-2025", "2025-05-12", "fr", "Le Monde"), ("de-2025", "2025-05-13", "de", "FAZ")]  # fmt: skip
    assert story["members"][0]["url"] == "https://example.org/fr-2025"
    assert story["hit"]["story_id"] == story["story_id"] and story["hit"]["rank"] == story["rank"] == 1
    assert set(result.timings) <= set(STAGES) and "stories" in result.timings
    assert json.loads(json.dumps(searcher.search("Arctique").to_json()))["group"] == "article"


def test_searcher_story_by_id(searcher):
    sid = searcher.search("Arctique Tromsø", SearchOptions(group="story")).stories[0].story.id
    story = searcher.story(sid)
    assert story is not None and story.article_ids == ["fr-2025", "de-2025"] and story.title
    assert story.representative in story.article_ids
    other_member = max(story.rows)
    assert searcher.story(other_member) is None, "a member's row is not its story's id"
    assert searcher.story(10**9) is None and searcher.story(0) is None and searcher.story(1 << 70) is None
    lone = next(h for h in searcher.search("Oktoberfest München").hits if h.article_id == "de-1")
    assert searcher.story(lone.story_id).article_ids == ["de-1"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"group": "topic"}, "unknown group 'topic'"), ({"group": "story", "per_article": 2}, "leave it at 1")],
)
def test_bad_groupings_are_refused(kwargs, words):
    with pytest.raises(QueryError, match=words):
        SearchOptions(**kwargs)


@pytest.mark.parametrize("text", ["abc", "", "0", "-3", "1.5", "١٢", "99999999999999999999", " 7x"])
def test_story_ids_are_whole_numbers(text):
    with pytest.raises(QueryError, match="is not a story id"):
        parse_story_id(text)


def test_story_ids_parse():
    assert parse_story_id(" 42 ") == 42


# ------------------------------------------------------------------ CLI


def test_indexer_story_text_and_json(index, searcher):
    sid = searcher.search("Arctique Tromsø", SearchOptions(group="story")).stories[0].story.id
    res = CliRunner().invoke(main, ["story", str(sid), "--index", str(index)])
    assert res.exit_code == 0, res.output
    assert f"Story {sid}:" in res.output and "covered in 2 sources, 2 languages" in res.output
    assert res.output.index("fr-2025") < res.output.index("de-2025"), "date order"
    assert "https://example.org/fr-2025" in res.output
    res = CliRunner().invoke(main, ["story", str(sid), "--index", str(index), "--json"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 1
    assert json.loads(res.output) == searcher.story(sid).to_json()


@pytest.mark.parametrize(("arg", "words"), [("abc", "is not a story id"), ("999999", "no story 999999")])
def test_indexer_story_errors_are_one_line(index, arg, words):
    res = CliRunner().invoke(main, ["story", arg, "--index", str(index)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]


def test_indexer_story_without_stories_says_to_build(tmp_path, monkeypatch):
    write_news(tmp_path / "src", news()[:3])
    without_stories(monkeypatch)
    make(tmp_path / "src", tmp_path / "index")
    res = CliRunner().invoke(main, ["story", "1", "--index", str(tmp_path / "index")])
    assert res.exit_code == 2 and 'run "indexer build"' in res.stderr
    assert StoryNotFoundError(5).args[0].startswith("no story 5 in the index")


def test_the_build_summary_counts_the_stories(tmp_path):
    from indexer.cli_output import print_report

    write_news(tmp_path / "src", news())
    report = make(tmp_path / "src", tmp_path / "index")
    runner = CliRunner()
    with runner.isolation() as (out, _, _):
        print_report(report, tmp_path / "index")
    assert "1 story of two or more articles" in out.getvalue().decode()


def test_indexer_search_by_story_in_text_and_json(tmp_path):
    from .reliability_helpers import build_args, cli

    src, index = tmp_path / "src", tmp_path / "index"
    text = "The Arctic Council met in Tromso on Monday and agreed on a plan to watch the permafrost thaw. " * 4
    rows = [{"id": "wire", "title": "Arctic Council meets", "text": text, "lang": "en", "date": "2025-05-12",
             "source": "Wire"},
            {"id": "daily", "title": "Arctic Council meets", "text": text, "lang": "en", "date": "2025-05-13",
             "source": "Daily", "url": "https://example.org/daily"},
            {"id": "fox", "title": "Fox", "text": "The quick brown fox jumps over the lazy dog.",
             "lang": "en"}]  # fmt: skip
    write_news(src, rows)
    built = cli(*build_args(src, index))
    assert built.returncode == 0, built.stderr
    assert "1 story of two or more articles" in built.stdout
    shown = cli("search", "Arctic Council permafrost", "--index", index, "--group", "story", "-k", "2")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "(2 stories" in out and "covered in 2 sources, 1 language" in out and "2 articles:" in out
    assert out.index("Wire") < out.index("Daily") and "https://example.org/daily" in out
    line = cli("search", "Arctic Council permafrost", "--index", index, "--group", "story", "--json", "-k", "2")
    doc = json.loads(line.stdout)
    assert len(line.stdout.strip().splitlines()) == 1 and doc["group"] == "story"
    assert [m["article_id"] for m in doc["stories"][0]["members"]] == ["wire", "daily"]
    bad = cli("search", "x", "--index", index, "--group", "story", "--per-article", "2")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "leave it at 1" in bad.stderr
