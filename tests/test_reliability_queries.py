"""Hostile queries and filters: never a crash; a clear message where the input is invalid."""

from __future__ import annotations

import json

import pytest

from indexer import BuildSettings, Filters, Searcher, SearchOptions, build
from indexer.errors import QueryError
from indexer.search import MAX_QUERY_CHARS, MODES

from .conftest import write
from .reliability_helpers import build_args, check_index, cli, one_line_error

ROWS = [
    {"id": f"r{i}", "title": t, "text": x, "lang": lang, "date": d, "source": s}
    for i, (t, x, lang, d, s) in enumerate(
        [
            ("Energy prices", "Energy prices rose again this winter. Households pay more.", "en", "2024-01-15", "Wire"),
            ("Prix de l'énergie", "Les prix de l'énergie augmentent encore cet hiver.", "fr", "2024-02-01", "Dépêche"),
            ("Energiepreise", "Die Energiepreise steigen in diesem Winter weiter.", "de", "2024-03-10", "Wire"),
            ("Flood", "The river flooded the old town after the storm.", "en", "2023-11-05", "Courier"),
            ("الطاقة", "ارتفعت أسعار الطاقة مرة أخرى هذا الشتاء.", "ar", "2024-04-01", "Wire"),
            ("Emoji ⚡", "Power ⚡ prices 📈 went up; people 😟 worry.", "en", "2024-05-01", "Blog"),
        ]
    )
]

# queries that are odd but valid: each must be answered
ODD = {
    "100,000 characters": "energy prices " * 7143,
    "one 100,000-character word": "x" * 100_000,
    "control characters": "energy\x00\x01\x1b[31m prices\x7f\x9b",
    "right-to-left": "أسعار الطاقة",
    "right-to-left override": "\u202eseirp ygrene\u202c",
    "Hebrew and bidi marks": "\u200fמחירי אנרגיה\u200e",
    "emoji": "⚡📈😟",
    "emoji ZWJ and flags": "👩\u200d👩\u200d👧 🇫🇷 🏳️\u200d🌈",
    "SQL injection": "'; DROP TABLE articles; --",
    "SQL tautology": '" OR 1=1 -- energy',
    "LIKE wildcards": "%energy_%' OR '1'='1",
    "regex star": ".*",
    "regex catastrophic": "(a+)+$ (x|x)*y",
    "regex unbalanced": "[(energy{",
    "backslashes": "\\\\ \\x00 \\d+ \\",
    "FTS syntax": 'energy AND NOT "prices" NEAR(a b) title:x *',
    "JSON": '{"text": "energy", "$where": "1"}',
    "HTML": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "lone surrogate": "energy \ud800 prices",
    "noncharacters and private use": "\uffff\ufffe\U0010ffff\ue000 energy",
    "combining marks": "e" + "\u0301" * 5000,
    "digits only": "12345678901234567890",
    "punctuation only": "?!.,;:-()[]{}",
    "zero-width only": "\u200b\u200c\u200d\u2060",
    "mixed scripts": "énergie Energie энергия エネルギー 能源 ऊर्जा",
}
EMPTY = {"empty": "", "spaces": "   ", "whitespace": "\t\n\r\u00a0\u3000\u2028", "controls only": "\x00\x01\x02\x1f"}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    from .conftest import FAKE_MODEL, FakeEncoder

    root = tmp_path_factory.mktemp("queries")
    write(root / "src" / "rows.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS))
    enc = FakeEncoder()
    build([root / "src"], root / "index", BuildSettings(), encoder=enc, model=FAKE_MODEL)
    return Searcher(root / "index", encoder=enc)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(ODD))
def test_odd_queries_are_answered(searcher, name, mode):
    before = check_index(searcher.idx.path)
    result = searcher.search(ODD[name], SearchOptions(k=5, mode=mode))
    assert len(result.query) <= MAX_QUERY_CHARS
    assert result.truncated == (len(" ".join(ODD[name].split())) > MAX_QUERY_CHARS)
    ids = {r["id"] for r in ROWS}
    assert all(h.article_id in ids for h in result.hits)
    assert check_index(searcher.idx.path) == before  # nothing a query says changes the index


@pytest.mark.parametrize("name", list(EMPTY))
def test_empty_queries_are_refused_clearly(searcher, name):
    with pytest.raises(QueryError, match="empty query"):
        searcher.search(EMPTY[name])


def test_not_text_is_refused(searcher):
    with pytest.raises(QueryError, match="text"):
        searcher.search(None)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="text"):
        searcher.search(b"energy")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"k": 0}, "-k"),
        ({"k": 10**9}, "-k"),
        ({"k": -5}, "-k"),
        ({"offset": -1}, "offset"),
        ({"per_article": 0}, "per-article"),
        ({"mode": "sql"}, "unknown mode"),
        ({"mode": ""}, "unknown mode"),
    ],
)
def test_invalid_options_are_refused_clearly(options, needle):
    with pytest.raises(QueryError, match=needle):
        SearchOptions(**options)


BAD_FILTERS = {
    "month 13": (Filters(date_from="2024-13-45"), "invalid date"),
    "day 45": (Filters(date_to="2024-01-45"), "invalid date"),
    "February 30": (Filters(date_from="2023-02-30"), "invalid date"),
    "a word": (Filters(date_from="yesterday"), "invalid date"),
    "SQL in a date": (Filters(date_to="2024' OR '1'='1"), "invalid date"),
    "reversed range": (Filters(date_from="2024-05-01", date_to="2024-01-01"), "after"),
    "unknown language": (Filters(langs=("xx-zz-1",)), "language"),
    "not a language code": (Filters(langs=("english!",)), "language"),
    "empty language": (Filters(langs=("",)), "language"),
    "language absent from the index": (Filters(langs=("ja",)), "language"),
    "unknown source": (Filters(sources=("'; DROP TABLE articles; --",)), "source"),
}


@pytest.mark.parametrize("name", list(BAD_FILTERS))
def test_invalid_filters_are_refused_clearly(searcher, name):
    filters, needle = BAD_FILTERS[name]
    with pytest.raises(QueryError, match=needle) as exc:
        searcher.search("energy prices", SearchOptions(filters=filters))
    assert "\n" not in str(exc.value)


def test_valid_filters_still_work(searcher):
    def ids(filters):
        return sorted(h.article_id for h in searcher.search("energy prices", SearchOptions(k=10, filters=filters)).hits)

    assert ids(Filters(langs=("FR",))) == ["r1"]
    assert ids(Filters(langs=("de-AT",))) == ["r2"]
    assert ids(Filters(date_from="2024-02", date_to="2024-03")) == ["r1", "r2"]
    assert ids(Filters(sources=("Wire",), date_to="2024")) == ["r0", "r2", "r4"]
    assert ids(Filters(langs=("en", "ja"))) == ["r0", "r3", "r5"]  # one language absent is no error


# ------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def cli_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-queries")
    write(root / "src" / "rows.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS))
    res = cli(*build_args(root / "src", root / "index"))
    assert res.returncode == 0, res.stderr
    return root / "index"


@pytest.mark.slow
def test_cli_odd_queries_answered_in_one_process(cli_index, tmp_path):
    """Every odd query, one per line of --queries: each gets a JSON answer, the process exits 0."""
    lines = [q for q in ODD.values() if "\n" not in q and "\r" not in q and "\x00" not in q]
    lines += ["", "   "]
    qfile = tmp_path / "q.txt"
    qfile.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    res = cli("search", "--queries", qfile, "--index", cli_index, "--json")
    assert res.returncode == 0, res.stderr
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(docs) == len(qfile.read_text(encoding="utf-8", errors="surrogatepass").splitlines())
    assert [d.get("error", "") for d in docs[-2:]] == ["empty query — type a few words to search for"] * 2
    assert all("error" not in d for d in docs[:-2]), [d for d in docs if "error" in d][:2]
    assert "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["100,000 characters", "right-to-left", "emoji", "SQL injection", "regex star"])
def test_cli_odd_query_as_argument(cli_index, name):
    res = cli("search", ODD[name], "--index", cli_index, "--json", "-k", "3")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["hits"]) <= 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needle",
    [
        (["   "], "empty query"),
        (["energy", "--date-from", "2024-13-45"], "invalid date"),
        (["energy", "--date-to", "yesterday"], "invalid date"),
        (["energy", "--date-from", "2024-05", "--date-to", "2024-01"], "after"),
        (["energy", "--lang", "xx-zz-1"], "language"),
        (["energy", "--lang", "english!"], "language"),
        (["energy", "--source", "nowhere"], "source"),
    ],
)
def test_cli_invalid_input_is_one_line_error(cli_index, args, needle):
    one_line_error(cli("search", *args, "--index", cli_index), needle)


@pytest.mark.slow
def test_cli_undecodable_argument_bytes(cli_index):
    """Bytes that are not UTF-8 in argv (surrogate-escaped by Python) do not crash the CLI."""
    import os
    import subprocess
    import sys

    from .reliability_helpers import ROOT, cli_env

    tail = [os.fsencode(cli_index), b"--json"]
    res = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"indexer", b"search", b"\xff\xfe energy \xc3", b"--index", *tail],
        capture_output=True,
        env=cli_env(),
        cwd=ROOT,
    )
    assert res.returncode in (0, 2), res.stderr
    assert b"Traceback" not in res.stderr
