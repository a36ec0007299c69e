"""The shape of the query path: every statement uses an index, a page costs a bounded number of
statements whatever k is, and filters keep returning k hits. Fast, with the fake encoder."""

from __future__ import annotations

import json
import random
import re

import pytest

from indexer import Filters, Searcher, SearchOptions, build
from indexer.settings import MODES

from .conftest import write

WORDS = {
    "en": ["harbour", "ship", "container", "port", "traffic", "crane", "dock", "cargo", "freight", "quay"],
    "fr": ["port", "navire", "conteneur", "trafic", "grue", "quai", "fret", "cargaison", "docker", "escale"],
    "de": ["hafen", "schiff", "container", "verkehr", "kran", "kai", "fracht", "ladung", "dock", "liegeplatz"],
}
SOURCES = [f"Source {i}" for i in range(40)]
# a table scan is "SCAN <table>" (possibly "USING COVERING INDEX": still every row)
_SCAN = re.compile(r"^SCAN (\w+)")


def _rows(n: int) -> list[dict]:
    rnd = random.Random(7)
    rows = []
    for i in range(n):
        lang = ("en", "fr", "de")[i % 3]
        words = WORDS[lang]
        text = " ".join(
            " ".join(rnd.choice(words) for _ in range(9)).capitalize() + f" {i}." for _ in range(rnd.randint(3, 8))
        )
        source = "Rare Wire" if i % 100 == 0 else SOURCES[int(rnd.paretovariate(1.2)) % len(SOURCES)]
        rows.append(
            {"id": f"a{i}", "title": f"{words[i % 10]} report {i}", "text": text, "lang": lang, "source": source,
             "date": f"{2020 + i % 5}-{1 + i % 12:02d}-{1 + i % 28:02d}"}
        )  # fmt: skip
        if i % 25 == 0:  # syndicated copies
            for c in range(1 + i % 3):
                rows.append({**rows[-1], "id": f"a{i}-copy{c}", "source": SOURCES[c]})
    return rows


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from .conftest import FAKE_MODEL, FakeEncoder

    root = tmp_path_factory.mktemp("archive")
    write(root / "src" / "news.jsonl", "\n".join(json.dumps(r) for r in _rows(900)))
    enc = FakeEncoder()
    build([root / "src"], root / "index", encoder=enc, model=FAKE_MODEL)
    s = Searcher(root / "index", encoder=enc)
    yield s
    s.close()


FILTERS = {
    "none": Filters(),
    "language": Filters(langs=("fr",)),
    "rare source": Filters(sources=("Rare Wire",)),
    "date range": Filters(date_from="2021-03", date_to="2022-06-15"),
    "until": Filters(date_to="2021"),
}


def _traced(searcher: Searcher, query: str, options: SearchOptions) -> list[str]:
    """The SQL statements one search runs (after a first, warming run of the same search)."""
    searcher.search(query, options)
    cons = [store.con for store in searcher.snapshot().store.stores()]
    seen: list[str] = []
    for con in cons:
        con.set_trace_callback(seen.append)
    try:
        searcher.search(query, options)
    finally:
        for con in cons:
            con.set_trace_callback(None)
    return seen


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(FILTERS))
def test_every_statement_on_the_query_path_uses_an_index(archive, mode, name):
    options = SearchOptions(k=10, mode=mode, filters=FILTERS[name])
    statements = _traced(archive, "container ship harbour navire hafen", options)
    assert statements
    con = archive.snapshot().store.stores()[0].con  # every segment has the same schema
    for sql in statements:
        plan = [row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [line for line in plan if _SCAN.match(line)]
        assert not scans, f"{sql[:160]!r} scans: {plan}"


@pytest.mark.parametrize("mode", MODES)
def test_a_page_costs_the_same_statements_whatever_k(archive, mode):
    counts = {k: len(_traced(archive, "container cargo port", SearchOptions(k=k, mode=mode))) for k in (5, 10, 50)}
    # the same statements, plus at most the duplicates lookup a page without copies skips
    assert max(counts.values()) <= 8 and counts[50] - counts[5] <= 1, counts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["language", "rare source", "date range", "until"])
def test_filtered_searches_return_k_hits_when_k_match(archive, mode, name):
    f = FILTERS[name]
    res = archive.search("container port traffic ship navire hafen", SearchOptions(k=9, mode=mode, filters=f))
    assert len(res.hits) == 9
    for h in res.hits:
        assert not f.langs or h.lang in f.langs
        assert not f.sources or h.source in f.sources
        lo, hi = f.normalized().date_from, f.normalized().date_to
        assert (lo is None or h.date >= lo) and (hi is None or h.date[:10] <= hi)


def test_duplicates_are_listed_for_every_copy_shown(archive):
    hits = archive.search("report 25", SearchOptions(k=50, mode="bm25")).hits
    by_id = {h.article_id: h for h in hits}
    shown = [h for h in hits if h.article_id in ("a25", "a25-copy0", "a25-copy1")]
    assert len(shown) == 1  # the copies collapse into one hit…
    assert set(shown[0].duplicates) == {"a25", "a25-copy0", "a25-copy1"} - {shown[0].article_id}  # …that names them
    assert all(not h.duplicates for aid, h in by_id.items() if aid in ("a1", "a2"))


def test_timings_cover_the_stages_a_search_ran(archive):
    res = archive.search("container ship", SearchOptions(k=10, mode="hybrid", filters=FILTERS["language"]))
    assert {"filters", "embed", "dense", "lexical", "fusion", "grouping", "highlights", "duplicates", "hits"} <= set(
        res.timings
    )
    assert sum(res.timings.values()) <= res.took_ms + 1e-6
    dense = archive.search("container ship", SearchOptions(k=10, mode="dense"))
    assert "fusion" not in dense.timings and "dense" in dense.timings
