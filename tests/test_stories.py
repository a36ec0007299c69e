"""Stories: translations join, other events stay apart, updates equal a clustering from scratch, storage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer import build
from indexer.article_vectors import ArticleVectors, mean_vectors, read_database, read_version
from indexer.errors import IndexerError
from indexer.index import IndexDir
from indexer.stories import (
    DEFAULT_STORIES,
    FILE,
    ArticleMeta,
    Facts,
    IndexArchive,
    MemoryArchive,
    Story,
    StoryError,
    StoryIndex,
    StorySettings,
    agreement,
    cluster,
    day_number,
    exists,
    numbers,
    update,
)
from tests.conftest import ARTICLES, write

DIM = 64
LANGS = ("de", "en", "es", "fr", "ru", "zh")
_rng = np.random.default_rng(20240517)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# e5-like: every vector shares one strong direction and a strong one of its language, so a translation
# (same content, other language) is less similar than two unrelated articles of one language
COMMON = _unit(_rng.normal(size=DIM))
ACCENT = {lang: _unit(_rng.normal(size=DIM)) for lang in LANGS}


def content() -> np.ndarray:
    """What an article is about: a random direction."""
    return _unit(_rng.normal(size=DIM))


def on_topic(topic: np.ndarray, share: float = 1.0) -> np.ndarray:
    """Another event on a topic: with ``share`` 1 as similar to the topic's other events as not (cosine 0.5)."""
    return _unit(share * topic + content())


def vector(lang: str, about: np.ndarray, noise: float = 0.05) -> np.ndarray:
    return _unit(3.0 * COMMON + 1.5 * ACCENT[lang] + about + noise * _rng.normal(size=DIM)).astype(np.float32)


class World:
    """Articles added by hand; 30 unrelated fillers per language give each language a centroid."""

    def __init__(self, fillers: int = 30, dated: bool = True) -> None:
        self.rows: list[int] = []
        self.days: list[int] = []
        self.langs: list[str] = []
        self.vecs: list[np.ndarray] = []
        self.text: dict[int, str] = {}
        self.groups: dict[int, int] = {}
        for lang in LANGS:
            for _ in range(fillers):
                self.add(lang, content(), day=730_000 + int(_rng.integers(0, 3000)) if dated else 0)
        self.fillers = list(self.rows)

    def add(self, lang: str, about: np.ndarray, *, day: int = 738_000, text: str = "", noise: float = 0.05) -> int:
        row = len(self.rows) + 1
        self.rows.append(row)
        self.days.append(day)
        self.langs.append(lang)
        self.vecs.append(vector(lang, about, noise))
        self.text[row] = text
        return row

    def facts(self) -> Facts:
        return Facts(np.array(self.rows, np.int64), np.array(self.days, np.int64), np.array(self.langs, dtype=str),
                     np.stack(self.vecs))  # fmt: skip

    def archive(self, live: list[int] | None = None) -> MemoryArchive:
        rows = np.array(sorted(self.rows if live is None else live), np.int64)
        return MemoryArchive(self.facts(), self.text, rows, self.groups)


def together(stories: StoryIndex, *rows: int) -> bool:
    return len({stories.story_of(r) for r in rows}) == 1


def apart(stories: StoryIndex, *rows: int) -> bool:
    return len({stories.story_of(r) for r in rows}) == len(rows)


def same(a: StoryIndex, b: StoryIndex) -> bool:
    return dict(a.story) == dict(b.story) and dict(a.central) == dict(b.central)


# ------------------------------------------------------------------ evidence


def test_numbers_survive_formatting_and_single_digits_are_ignored():
    assert numbers("Le sommet de 2024 a réuni 1 200 délégués et 1.500 journalistes, 3 jours.") == {"2024", "1200",
                                                                                                  "1500"}  # fmt: skip
    assert numbers("北极理事会 2024 年会议，1,200 名代表") == {"2024", "1200"}
    assert numbers("no digits here, 7 or 0") == frozenset()
    assert numbers("007 and 0042") == {"42"}
    assert numbers("２０２４年に１２０人") == {"2024", "120"}, "full-width digits read as the same numbers"


def test_agreement_of_numbers():
    assert agreement(frozenset({"2024", "1200"}), frozenset({"2024", "1200", "36"})) == 1.0
    assert agreement(frozenset({"2024", "18"}), frozenset({"2024", "36"})) == 0.5
    assert agreement(frozenset({"2023"}), frozenset({"2024"})) == -1.0
    assert agreement(frozenset(), frozenset({"2024"})) == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2024-05-17", 739023), ("2024-05-17T08:30:00+02:00", 739023), (None, 0), ("", 0), ("2024", 0),
     ("2024-13-45", 0), ("2023-02-29", 0), ("yesterday!", 0), ("２０２４-05-17", 0)],
)  # fmt: skip
def test_day_number_reads_iso_dates_and_refuses_the_rest(value, expected):
    assert day_number(value) == expected


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"window_days": -1}, "0 to 36500"), ({"window_days": 2.5}, "whole number"), ({"min_similarity": 1.5}, "-1 and 1"),
     ({"best_margin": -0.1}, "0 or more"), ({"number_weight": float("nan")}, "0 or more")],
)  # fmt: skip
def test_settings_are_checked(kwargs, words):
    with pytest.raises(StoryError, match=words) as err:
        StorySettings(**kwargs)
    assert isinstance(err.value, IndexerError)


# ------------------------------------------------------------------ what joins, what does not


def test_translations_join_and_other_events_on_the_topic_stay_apart():
    w = World()
    summit = content()
    first, second = on_topic(summit), on_topic(summit)  # two summits: same topic, other events
    a = [w.add(lang, first) for lang in ("fr", "de", "zh")]
    b = [w.add(lang, second) for lang in ("fr", "de", "zh")]
    stories = cluster(w.archive())
    assert together(stories, *a) and together(stories, *b)
    assert apart(stories, a[0], b[0])
    assert set(stories.members(stories.story_of(a[0]))) == set(a)
    assert all(stories.story_of(r) == r for r in w.fillers), "unrelated articles are stories of their own"
    assert stories.story_of(a[1]) == min(a), "a story is named by its smallest row"


def test_a_topical_neighbour_without_a_counterpart_stays_apart():
    w = World()
    topic = content()
    # each is the other's best match in its language, but only topically (cosine 0.3 as the content goes,
    # the 99th percentile of same-topic paragraphs in two languages on XQuAD is about 0.5)
    fr = w.add("fr", on_topic(topic, 0.65))
    de = w.add("de", on_topic(topic, 0.65))
    assert apart(cluster(w.archive()), fr, de)


def test_the_same_event_a_year_later_is_another_story():
    w = World()
    summit = content()
    now = [w.add("fr", summit, day=739_000), w.add("de", summit, day=739_003)]
    later = [w.add("en", summit, day=739_365), w.add("es", summit, day=739_366)]
    stories = cluster(w.archive())
    assert together(stories, *now) and together(stories, *later)
    assert apart(stories, now[0], later[0])
    wide = cluster(w.archive(), StorySettings(window_days=400))
    assert together(wide, *now, *later)


def test_undated_articles_meet_undated_ones_only():
    w = World()
    event = content()
    dated = w.add("fr", event, day=739_000)
    undated = [w.add("de", event, day=0), w.add("en", event, day=0)]
    stories = cluster(w.archive())
    assert together(stories, *undated)
    assert apart(stories, dated, undated[0])


def test_near_duplicates_share_a_story_whatever_their_dates():
    w = World()
    event = content()
    original = w.add("en", event, day=739_000)
    copy = w.add("en", event, day=0)
    reprint = w.add("en", event, day=739_900)
    w.groups.update({original: original, copy: original, reprint: original})
    stories = cluster(w.archive())
    assert together(stories, original, copy, reprint)


def test_one_language_needs_a_close_match():
    w = World()
    event = content()
    close = [w.add("en", event, noise=0.05), w.add("en", event, noise=0.05)]
    loose = [w.add("de", on_topic(event)), w.add("de", on_topic(event))]
    stories = cluster(w.archive())
    assert together(stories, *close)
    assert apart(stories, *loose)


def test_numbers_tip_the_balance():
    w = World()
    topic = content()
    fr = w.add("fr", on_topic(topic), text="Le sommet de 2024 a réuni 1 200 délégués à Tromsø.")
    de = w.add("de", on_topic(topic), text="Am Gipfel 2019 nahmen 35 Minister teil.")
    assert together(cluster(w.archive(), StorySettings(min_similarity=0.0, number_weight=0.0)), fr, de)
    assert apart(cluster(w.archive(), StorySettings(min_similarity=0.0, number_weight=1.0)), fr, de)


def test_the_representative_is_the_most_central_member():
    w = World()
    event = content()
    rows = [w.add("fr", event, noise=0.08), w.add("de", event, noise=0.005), w.add("en", event, noise=0.08)]
    stories = cluster(w.archive())
    assert together(stories, *rows)
    assert stories.central[stories.story_of(rows[0])] == rows[1]


# ------------------------------------------------------------------ updates


def test_adding_a_translation_joins_its_story_and_keeps_its_id():
    w = World()
    event = content()
    first = [w.add("fr", event), w.add("de", event)]
    before = cluster(w.archive())
    sid = before.story_of(first[0])
    late = w.add("zh", event)
    after = update(before, w.archive(), added=[late], removed=[])
    assert after.story_of(late) == sid and after.members(sid) == [*first, late]
    assert same(after, cluster(w.archive(), calibration=after.calibration))


def test_deleting_members_shrinks_then_removes_the_story():
    w = World()
    event = content()
    rows = [w.add("fr", event), w.add("de", event), w.add("en", event)]
    stories = cluster(w.archive())
    live = [r for r in w.rows if r != rows[0]]
    stories = update(stories, w.archive(live), added=[], removed=[rows[0]])
    assert stories.story_of(rows[1]) == rows[1] and stories.members(rows[1]) == rows[1:]
    assert rows[0] not in stories.story
    live = [r for r in live if r != rows[1]]
    stories = update(stories, w.archive(live), added=[], removed=[rows[1]])
    assert rows[2] not in stories.story and stories.story_of(rows[2]) == rows[2], "a story of one is no story"
    assert set(stories.central) == set(stories.story.values())


def test_a_deleted_article_whose_facts_are_gone_still_leaves_its_story():
    w = World()
    event = content()
    rows = [w.add("fr", event), w.add("de", event), w.add("en", event)]
    stories = cluster(w.archive())
    facts = w.facts()
    keep = facts.rows != rows[0]  # as after a merge that dropped the deleted row for good
    after = update(stories, MemoryArchive(facts.take(keep), w.text, facts.rows[keep]), added=[], removed=[rows[0]])
    assert rows[0] not in after.story and together(after, rows[1], rows[2])
    assert after.story_of(rows[2]) == rows[1]


def test_deleting_the_bridge_splits_the_story():
    w = World()
    one, two = content(), content()
    a = w.add("en", one)
    bridge = w.add("de", _unit(one + two))  # close to both ends, which are not close to each other
    c = w.add("fr", two)
    stories = cluster(w.archive())
    assert together(stories, a, bridge, c)
    live = [r for r in w.rows if r != bridge]
    split = update(stories, w.archive(live), added=[], removed=[bridge])
    assert apart(split, a, c)
    assert same(split, cluster(w.archive(live), calibration=split.calibration))


def _basis(n: int) -> list[np.ndarray]:
    q, _ = np.linalg.qr(_rng.normal(size=(DIM, n)))
    return [q[:, i] for i in range(n)]


def test_an_added_translation_takes_the_place_of_a_weaker_match():
    w = World()
    u, v = _basis(2)
    fr = w.add("fr", u)
    near = w.add("de", _unit(0.6 * u + 0.8 * v))  # the best German match until the translation comes
    before = cluster(w.archive())
    assert together(before, fr, near)
    translation = w.add("de", u)
    after = update(before, w.archive(), added=[translation], removed=[])
    assert together(after, fr, translation) and apart(after, fr, near)
    assert same(after, cluster(w.archive(), calibration=after.calibration))


def test_deleting_a_best_match_lets_the_next_one_link():
    w = World()
    u, v, x = _basis(3)
    other = w.add("fr", u, noise=0.01)
    best = w.add("de", u, noise=0.01)  # the translation of ``other``, and the closest German article to ``lonely``
    lonely = w.add("fr", _unit(0.70 * u + 0.714 * v), noise=0.01)
    second = w.add("de", _unit(0.84 * v + 0.54 * x), noise=0.01)  # cosine 0.6 with ``lonely``, its best French match
    before = cluster(w.archive())
    assert together(before, other, best) and apart(before, lonely, second, other)
    live = [r for r in w.rows if r != best]
    after = update(before, w.archive(live), added=[], removed=[best])
    assert together(after, lonely, second)
    assert same(after, cluster(w.archive(live), calibration=after.calibration))


def _world_of_events(seed: int, *, dated: bool = True) -> tuple[World, list[list[int]]]:
    """Twelve events told in one to four languages, among fillers; dated within two months, or undated."""
    rng = np.random.default_rng(seed)
    w = World(fillers=20, dated=dated)
    events = []
    for k in range(12):
        about = content()
        day = 738_000 + int(rng.integers(0, 60)) if dated else 0
        langs = rng.choice(LANGS, size=int(rng.integers(1, 5)), replace=False)
        events.append([w.add(str(lang), about, day=day + int(rng.integers(0, 3)) if dated else 0,
                             text=f"{2000 + k} {k * 37 + 11}") for lang in langs])  # fmt: skip
    return w, events


@pytest.mark.parametrize(("seed", "dated"), [(1, True), (2, True), (3, False), (4, False)])
def test_updates_equal_a_clustering_from_scratch_in_any_order(seed, dated):
    w, events = _world_of_events(seed, dated=dated)
    rng = np.random.default_rng(seed + 100)
    order = rng.permutation(w.rows).tolist()
    exact = StorySettings(recalibrate_drift=0.0)  # centroids always re-taken: equal to a fresh clustering
    for settings in (DEFAULT_STORIES, exact):
        live: list[int] = order[: len(order) // 3]
        stories = cluster(w.archive(live), settings)
        rest = order[len(order) // 3 :]
        while rest:
            add, rest = rest[:40], rest[40:]
            gone = rng.choice(live, size=5, replace=False).tolist() if rest else []
            live = [r for r in live if r not in gone] + add
            stories = update(stories, w.archive(live), added=add, removed=gone, settings=settings)
            assert same(stories, cluster(w.archive(live), settings, calibration=stories.calibration))
            rest += gone  # they come back later
        assert sorted(live) == sorted(w.rows)
        if settings is exact:
            assert dict(stories.story) == dict(cluster(w.archive(), settings).story)
    scratch = cluster(w.archive())
    for members in events:
        assert together(scratch, *members)
    assert len({scratch.story_of(m[0]) for m in events}) == len(events)


def test_the_same_corpus_gives_the_same_stories():
    w, _ = _world_of_events(9)
    assert same(cluster(w.archive()), cluster(w.archive()))


def test_a_drifting_language_is_recalibrated_and_still_equals_scratch():
    w = World(fillers=10)
    stories = cluster(w.archive())
    shifted = _unit(_rng.normal(size=DIM))
    added = [w.add("de", _unit(shifted + 0.3 * content())) for _ in range(40)]  # German news of another kind
    event = content()
    pair = [w.add("de", event), w.add("en", event)]
    after = update(stories, w.archive(), added=added + pair, removed=[])
    i = after.calibration.langs.index("de")
    assert not np.array_equal(after.calibration.centroids[i], stories.calibration.centroids[i])
    assert int(after.calibration.counts[i]) == 10 + 41
    assert together(after, *pair)
    assert same(after, cluster(w.archive(), calibration=after.calibration))


def test_update_checks_its_rows():
    w = World(fillers=3)
    stories = cluster(w.archive())
    with pytest.raises(ValueError, match="live articles"):
        update(stories, w.archive(w.rows[1:]), added=[w.rows[0]], removed=[])
    with pytest.raises(ValueError, match="live articles"):
        update(stories, w.archive(), added=[], removed=[w.rows[0]])
    with pytest.raises(ValueError, match="from scratch"):
        update(StoryIndex(), w.archive(), added=w.rows[:1], removed=[])


# ------------------------------------------------------------------ records and storage


def test_storage_round_trip(tmp_path):
    w, _ = _world_of_events(5)
    stories = cluster(w.archive())
    assert stories.clusters, "the world holds stories of two or more"
    stories.save(tmp_path)
    assert exists(tmp_path)
    back = StoryIndex.load(tmp_path)
    assert same(back, stories)
    cal, got = stories.calibration, back.calibration
    assert got.langs == cal.langs and np.array_equal(got.centroids, cal.centroids)
    assert np.array_equal(got.sums, cal.sums) and np.array_equal(got.counts, cal.counts)
    later = w.add("ru", content())
    assert same(update(back, w.archive(), added=[later], removed=[]), update(stories, w.archive(), added=[later],
                                                                             removed=[]))  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    StoryIndex().save(empty)
    assert same(StoryIndex.load(empty), StoryIndex())


def test_a_row_table_reads_as_a_mapping():
    from indexer.story_index import RowTable, sorted_member

    t = RowTable.of({9: 3, 2: 2, 5: 2})
    assert t.key_array.tolist() == [2, 5, 9] and dict(t) == {2: 2, 5: 2, 9: 3} and len(t) == 3
    assert t[5] == 2 and t.get(4) is None and 4 not in t and True not in t and "5" not in t and np.int64(9) in t
    with pytest.raises(KeyError):
        t[10]
    assert t.lookup(np.array([9, 4, 2]), np.array([-1, -2, -3])).tolist() == [3, -2, 2]
    assert RowTable.of(t) is t and len(RowTable.of({})) == 0 and RowTable.of({}).lookup(np.array([1]), [7]) == [7]
    assert sorted_member(np.array([2, 5, 9]), np.array([1, 5, 10])).tolist() == [False, True, False]
    stories = StoryIndex({4: 3, 3: 3, 8: 8, 9: 8}, {3: 4, 8: 8})
    assert stories.members(3) == [3, 4] and stories.members(8) == [8, 9] and stories.members(7) == [7]
    assert stories.stories_of(np.array([4, 7, 9])).tolist() == [3, 7, 8] and stories.count == 2
    assert stories.clusters == {3: [3, 4], 8: [8, 9]}


def _rewrite(folder: Path, **arrays: np.ndarray) -> None:
    """The stories file with some of its arrays replaced (or, given None, left out)."""
    with np.load(folder / FILE) as held:
        kept = {k: held[k] for k in held.files}
    kept.update(arrays)
    np.savez(folder / FILE, **{k: v for k, v in kept.items() if v is not None})


def test_damaged_storage_is_refused(tmp_path):
    w, _ = _world_of_events(6)
    stories = cluster(w.archive())
    stories.save(tmp_path)
    with np.load(tmp_path / FILE) as held:
        table, catalog = held["stories"], held["catalog"]
    bad_tables = (table[:, :2], table[table[:, 2] == 0], np.array([[5, 5, 1]]), table.astype(np.float64),
                  table[::-1], np.array([[5, 6, 1], [6, 6, 0]]))  # fmt: skip
    for bad in bad_tables:
        _rewrite(tmp_path, stories=bad)
        with pytest.raises(ValueError):
            StoryIndex.load(tmp_path)
    _rewrite(tmp_path, stories=table)
    for bad_catalog in (catalog[::-1], catalog["row"], None):
        _rewrite(tmp_path, catalog=bad_catalog)
        with pytest.raises(ValueError):
            StoryIndex.load(tmp_path)
    (tmp_path / FILE).write_bytes(b"garbage")
    with pytest.raises(ValueError):
        StoryIndex.load(tmp_path)
    stories.save(tmp_path)
    assert same(StoryIndex.load(tmp_path), stories)
    (tmp_path / FILE).unlink()
    assert not exists(tmp_path)
    with pytest.raises(OSError):
        StoryIndex.load(tmp_path)


def test_describe_lists_members_in_date_order():
    w = World()
    event = content()
    rows = [w.add("fr", event, day=day_number("2025-03-04")), w.add("de", event, day=day_number("2025-03-01")),
            w.add("en", event, day=day_number("2025-03-02"))]  # fmt: skip
    stories = cluster(w.archive())
    sid = stories.story_of(rows[0])
    dates = {rows[0]: "2025-03-04", rows[1]: "2025-03-01", rows[2]: "2025-03-02"}

    def meta(ids):
        return {r: ArticleMeta(r, f"a{r}", f"Title {r}", dates.get(r), w.langs[r - 1], f"src{r % 2}") for r in ids}

    story = stories.describe(sid, meta)
    assert story.rows == [rows[1], rows[2], rows[0]]
    assert (story.first_date, story.last_date) == ("2025-03-01", "2025-03-04")
    assert story.langs == ["de", "en", "fr"] and story.sources == ["src0", "src1"]
    assert story.title == f"Title {story.central}" and story.central in rows
    assert json.loads(json.dumps(story.to_json()))["members"][0]["article_id"] == f"a{rows[1]}"
    assert story.coverage == "covered in 2 sources, 3 languages"
    assert Story(1, 1, (ArticleMeta(1, "a", "A", None, "fr", None),)).coverage == "covered in 1 language"
    assert Story(1, 1, (ArticleMeta(1, "a", "A", None, None, None),)).coverage == ""
    alone = stories.describe(w.fillers[0], meta)
    assert alone.rows == [w.fillers[0]] and alone.central == w.fillers[0] and alone.first_date is None


# ------------------------------------------------------------------ article vectors


def test_mean_vectors_normalise_each_articles_passages():
    owners = np.array([7, 3, 7, 7], np.int64)
    vecs = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    av = mean_vectors(owners, vecs)
    assert av.rows.tolist() == [3, 7]
    assert np.allclose(av.take([7]), [[2 / np.sqrt(5), 1 / np.sqrt(5)]])
    assert np.allclose(av.take([3, 7])[0], [0, 1])
    with pytest.raises(KeyError, match="no vector"):
        av.take([4])
    assert 7 in av and 4 not in av and "7" not in av
    both = av.union(ArticleVectors(np.array([3, 9]), np.array([[1, 0], [0, 1]], np.float32)))
    assert both.rows.tolist() == [3, 7, 9] and np.allclose(both.take([3]), [[1, 0]])
    assert av.without([3]).rows.tolist() == [7]
    assert len(ArticleVectors.empty(4)) == 0 and ArticleVectors.empty(4).dim == 4
    zero = mean_vectors(np.array([1, 1]), np.array([[1, 0], [-1, 0]], np.float32))
    assert np.allclose(zero.vectors, 0), "opposite passages leave no direction, and match nothing"


def _corpus(folder: Path, extra: str = "") -> None:
    rows = [
        {"id": "summit-en", "title": "Arctic summit", "text": "The Arctic Council met in Tromso on Tuesday. " * 30,
         "lang": "en", "date": "2025-03-04", "source": "wire"},
        {"id": "summit-en-copy", "title": "Arctic summit", "text": "The Arctic Council met in Tromso on Tuesday. " * 30,
         "lang": "en", "date": "2025-03-05", "source": "daily"},
        {"id": "bakers", "title": "Grève", "text": "Les boulangers de Lyon sont en grève depuis lundi. " * 5,
         "lang": "fr", "date": "2025-03-04", "source": "local"},
        {"id": "undated", "title": "Chess", "text": "A rapid chess open was held. " + extra, "lang": "en"},
    ]  # fmt: skip
    write(folder / "news.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def test_index_archive_reads_a_built_version(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    _corpus(src)
    build([src], index, encoder=fake_encoder, model=fake_model)
    _corpus(src, extra="It was won by a newcomer. " * 20)  # the undated article changes: a new row, one deleted
    build([src], index, encoder=fake_encoder, model=fake_model)
    snap = IndexDir(index).open()
    try:
        assert len(snap.segments) == 2 and len(snap.state.deleted_rows) == 1
        archive = IndexArchive.of_snapshot(snap)
        cat = archive.catalog()
        assert len(cat.rows) == 4 and int(snap.state.deleted_rows[0]) not in cat.rows
        meta = archive.meta(cat.rows.tolist())
        by_id = {m.id: m.row for m in meta.values()}
        days = dict(zip(cat.rows.tolist(), cat.days.tolist()))
        assert days[by_id["summit-en"]] == day_number("2025-03-04") and days[by_id["undated"]] == 0
        facts = archive.facts([*cat.rows.tolist(), int(snap.state.deleted_rows[0])])
        assert len(facts.rows) == 5, "an article this version deleted still has its facts"
        dim = snap.manifest.model.dimension
        assert facts.vectors is not None
        live = facts.take(np.isin(facts.rows, cat.rows))
        assert live.vectors is not None and np.allclose(live.vectors, read_version(snap.store, dim).vectors)
        assert "Tromso" in archive.texts([by_id["summit-en"]])[by_id["summit-en"]]
        stories = cluster(archive)
        assert together(stories, by_id["summit-en"], by_id["summit-en-copy"]), "near-duplicates: one story"
        assert apart(stories, by_id["summit-en"], by_id["bakers"], by_id["undated"])
        story = stories.describe(stories.story_of(by_id["summit-en"]), archive.meta)
        assert story.sources == ["daily", "wire"] and story.title == "Arctic summit"
        folder = tmp_path / "version"
        folder.mkdir()
        stories.save(folder)
        assert same(StoryIndex.load(folder), stories)
    finally:
        snap.close()


def test_update_from_one_built_version_to_the_next(tmp_path, fake_encoder, fake_model):
    """What a build does: the live version's stories, updated with its new segment's rows and its deletions."""
    src, index = tmp_path / "src", tmp_path / "index"
    _corpus(src)
    build([src], index, encoder=fake_encoder, model=fake_model)
    first = IndexDir(index).open()
    before = cluster(IndexArchive.of_snapshot(first))
    first.close()
    _corpus(src, extra="A newcomer won it. " * 30)
    reprint = {"id": "summit-en-reprint", "title": "Arctic summit", "lang": "en", "date": "2025-03-06",
               "text": "The Arctic Council met in Tromso on Tuesday. " * 30, "source": "weekly"}  # fmt: skip
    write(src / "more.jsonl", json.dumps(reprint) + "\n")
    build([src], index, encoder=fake_encoder, model=fake_model)
    snap = IndexDir(index).open()
    try:
        archive = IndexArchive.of_snapshot(snap)
        added = list(range(*snap.segments[-1].info.rows))
        removed = snap.state.deleted_rows.tolist()
        assert len(added) == 2 and len(removed) == 1
        after = update(before, archive, added=added, removed=removed)
        assert same(after, cluster(archive, calibration=after.calibration))
        rows = {m.id: m.row for m in archive.meta(archive.catalog().rows.tolist()).values()}
        sid = after.story_of(rows["summit-en"])
        assert sid == before.story_of(rows["summit-en"]), "the story keeps its id when a member is added"
        assert set(after.members(sid)) == {rows["summit-en"], rows["summit-en-copy"], rows["summit-en-reprint"]}
    finally:
        snap.close()


def test_read_version_follows_segments_and_deletions(tmp_path, fake_encoder, fake_model):
    src, index = tmp_path / "src", tmp_path / "index"
    _corpus(src)
    build([src], index, encoder=fake_encoder, model=fake_model)
    _corpus(src, extra="More moves. " * 300)
    build([src], index, encoder=fake_encoder, model=fake_model)
    snap = IndexDir(index).open()
    try:
        dim = snap.manifest.model.dimension
        every = read_version(snap.store, dim)
        assert len(every) == 4 and not np.isin(snap.state.deleted_rows, every.rows).any()
        assert np.allclose(np.linalg.norm(every.vectors, axis=1), 1, atol=1e-5)
        for seg in snap.segments:
            con = seg.store.con
            for row in every.rows.tolist():
                pids = [p for (p,) in con.execute("SELECT id FROM passages WHERE article = ?", (row,))]
                if not pids:
                    continue
                passages = seg.store.vectors(pids, dim)
                expect = passages.sum(axis=0) / np.linalg.norm(passages.sum(axis=0))
                assert np.allclose(every.take([row])[0], expect, atol=1e-6)
                assert np.allclose(read_database(con, dim, [row]).vectors[0], expect, atol=1e-6)
        some = read_version(snap.store, dim, [int(every.rows[0]), 10_000, int(snap.state.deleted_rows[0])])
        assert some.rows.tolist() == [int(every.rows[0])]
        assert len(read_version(snap.store, dim, [])) == 0
    finally:
        snap.close()


# ------------------------------------------------------------------ the real model


@pytest.mark.slow
def test_real_model_joins_a_translation_and_keeps_another_summit_apart(tmp_path, e5_model):
    src, index = tmp_path / "src", tmp_path / "index"
    shutil.copytree(ARTICLES, src / "sample")  # some fifty articles in six languages give the centroids
    news = [
        {"id": "fr-2025", "lang": "fr", "date": "2025-05-12", "title": "Le Conseil de l'Arctique réuni à Tromsø",
         "text": "Les ministres des huit pays du Conseil de l'Arctique se sont réunis lundi à Tromsø. Ils ont adopté "
                 "un plan de 40 millions d'euros pour surveiller la fonte du pergélisol et ouvert un bureau "
                 "permanent pour les peuples autochtones. La Norvège transmet la présidence au Danemark."},
        {"id": "de-2025", "lang": "de", "date": "2025-05-13", "title": "Arktischer Rat tagt in Tromsø",
         "text": "Die Minister der acht Staaten des Arktischen Rates sind am Montag in Tromsø zusammengekommen. Sie "
                 "haben einen Plan über 40 Millionen Euro zur Überwachung des tauenden Permafrosts beschlossen und "
                 "ein ständiges Büro für die indigenen Völker eröffnet. Norwegen übergibt den Vorsitz an Dänemark."},
        {"id": "fr-2024", "lang": "fr", "date": "2025-05-14", "title": "Sommet polaire à Reykjavik",
         "text": "Un sommet sur la recherche polaire s'est ouvert à Reykjavik. Les scientifiques islandais "
                 "demandent un brise-glace supplémentaire et davantage de stations météorologiques au Groenland, "
                 "où la saison des campagnes de terrain a été écourtée par le manque de financement."},
    ]  # fmt: skip
    write(src / "news.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in news))
    build([src], index, model=e5_model)
    snap = IndexDir(index).open()
    try:
        archive = IndexArchive.of_snapshot(snap)
        rows = {m.id: m.row for m in archive.meta(archive.catalog().rows.tolist()).values()}
        stories = cluster(archive)
        assert together(stories, rows["fr-2025"], rows["de-2025"])
        assert apart(stories, rows["fr-2025"], rows["fr-2024"])
    finally:
        snap.close()
