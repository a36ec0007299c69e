"""Export: hits as spreadsheet-safe CSV and JSON lines, from the library and ``indexer search --format``."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from indexer import Searcher, SearchOptions
from indexer import export as exporting
from indexer.cli import main
from indexer.records import Hit
from indexer.search import SearchResult

from .conftest import FakeEncoder, write
from .desk_helpers import build_records
from .reliability_helpers import build_args, cli

HOSTILE = ['=HYPERLINK("http://x")', "+1+2", "-3", "@SUM(A1)", "\tTab", "\rCR", "plain", "", "a=b", " =spaced"]


def hit(rank: int, title: str, **extra) -> Hit:
    fields = {"score": 0.5, "article_id": f"id{rank}", "passage_id": rank, "text": f"passage {rank}", "start": 0,
              "end": 9, "date": "2024-05-17", "source": "Wire", "lang": "fr", "url": "https://x.example/a"}  # fmt: skip
    return Hit(rank=rank, title=title, **{**fields, **extra})


def result(query: str, hits: list[Hit]) -> SearchResult:
    return SearchResult(query, hits, 1.0)


def read_csv(text: str) -> list[dict[str, str]]:
    assert text.startswith(exporting.BOM)
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_csv_has_the_columns_and_the_values():
    res = result("q", [hit(1, "Été arctique", text="La banquise, \"fond\"\nvite.", score=0.123456789, url=None),
                       hit(2, "Путин", date=None, source=None, lang="ru")])  # fmt: skip
    rows = read_csv(exporting.to_csv([res]))
    assert list(rows[0]) == ["rank", "title", "date", "source", "language", "url", "article_id", "passage", "score",
                             "story_id"]  # fmt: skip
    assert rows[0] == {"rank": "1", "title": "Été arctique", "date": "2024-05-17", "source": "Wire", "language": "fr",
                       "url": "", "article_id": "id1", "passage": "La banquise, \"fond\"\nvite.", "score": "0.123457",
                       "story_id": ""}  # fmt: skip
    assert rows[1]["title"] == "Путин" and rows[1]["date"] == "" and rows[1]["language"] == "ru"


def test_cells_a_spreadsheet_would_run_as_formulas_are_text():
    res = result("q", [hit(i + 1, t, text=t, article_id=t or "x", source=t, url=t) for i, t in enumerate(HOSTILE)])
    rows = read_csv(exporting.to_csv([res]))
    for row, value in zip(rows, HOSTILE):
        want = "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
        for col in ("title", "passage", "source", "url"):
            assert row[col] == want, (col, value, row[col])
        assert row["rank"][0].isdigit() and row["score"] == "0.5"  # numbers stay numbers


def test_a_bom_can_be_left_out_and_lines_end_with_newline():
    text = exporting.to_csv([result("q", [hit(1, "x")])], bom=False)
    assert not text.startswith(exporting.BOM) and text.endswith("\n") and "\r\n" not in text


def test_several_queries_lead_with_a_query_column():
    rows = read_csv(exporting.to_csv([result("first", [hit(1, "a"), hit(2, "b")]), result("=second", [hit(1, "c")])]))
    assert next(iter(rows[0])) == "query"
    assert [(r["query"], r["title"]) for r in rows] == [("first", "a"), ("first", "b"), ("'=second", "c")]


def test_jsonl_rows_have_the_same_keys():
    lines = exporting.to_jsonl([result("q", [hit(1, "=a"), hit(2, "b")])]).splitlines()
    rows = [json.loads(line) for line in lines]
    assert list(rows[0]) == list(exporting.COLUMNS)
    assert rows[0]["title"] == "=a"  # JSON is not a spreadsheet: the text is kept as it is
    assert rows[0]["story_id"] is None and rows[1]["rank"] == 2
    several = [json.loads(x) for x in exporting.to_jsonl([result("a", [hit(1, "x")]), result("b", [])]).splitlines()]
    assert several == [{"query": "a", **rows[0], "title": "x", "article_id": "id1", "passage": "passage 1"}]


def test_a_story_id_is_exported_when_hits_carry_one():
    h = replace(hit(1, "a"), story_id=42)
    assert read_csv(exporting.to_csv([result("q", [h])]))[0]["story_id"] == "42"


def test_export_options_keep_the_question_and_take_the_limit():
    opts = SearchOptions(k=10, offset=20, mode="bm25", per_article=2, recency=30.0)
    out = exporting.export_options(opts)
    assert (out.k, out.offset, out.mode, out.per_article, out.recency, out.highlight) == (1000, 0, "bm25", 2, 30.0,
                                                                                          False)  # fmt: skip
    assert exporting.export_options(opts, limit=5).k == 5 and exporting.EXPORT_LIMIT == 1000


def test_a_real_search_exports_every_hit(tmp_path):
    records = [{"id": f"a{i}", "title": f"=Title {i}", "text": f"Harbour strike day {i} over wages."}
               for i in range(30)]  # fmt: skip
    s = Searcher(build_records(tmp_path, records), encoder=FakeEncoder())
    res = s.search("harbour strike", exporting.export_options(SearchOptions()))
    rows = read_csv(exporting.to_csv([res]))
    assert len(rows) == len(res.hits) == 30
    assert [r["article_id"] for r in rows] == [h.article_id for h in res.hits]
    assert all(r["title"].startswith("'=Title") for r in rows)


# ------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-cli")
    write(root / "src" / "ice.txt", "Ice\nArctic sea ice is melting fast this summer.")
    write(root / "src" / "fox.txt", "=cmd|' /C calc'!A0\nThe quick brown fox jumps over the lazy dog.")
    write(root / "src" / "news.jsonl", json.dumps({"title": "Hafen", "text": "Hafen Streik in Hamburg.", "lang": "de",
                                                   "source": "Blatt", "date": "2023-02-01"}) + "\n")  # fmt: skip
    res = cli(*build_args(root / "src", root / "index"))
    assert res.returncode == 0, res.stderr
    return root / "index"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_csv_for_one_query_and_for_queries(index, tmp_path):
    res = run("search", "brown fox", "--index", index, "--format", "csv", "-k", "3")
    assert res.exit_code == 0, res.output
    rows = read_csv(res.stdout)
    assert len(rows) == 3 and "query" not in rows[0]
    assert rows[0]["article_id"] == "fox.txt" and rows[0]["title"] == "'=cmd|' /C calc'!A0"
    queries = write(tmp_path / "q.txt", "brown fox\n\nsea ice\n")
    res = run("search", "--queries", queries, "--index", index, "--format", "csv", "-k", "2")
    assert res.exit_code == 0, res.output
    assert res.stdout.count(exporting.BOM) == 1 and res.stdout.count('"query","rank","title"') == 1
    rows = read_csv(res.stdout)
    assert [r["query"] for r in rows] == ["brown fox", "brown fox", "sea ice", "sea ice"]
    assert "empty query" in res.stderr  # the blank line: said on stderr, no row


def test_cli_json_is_format_jsonl_and_keeps_its_shape(index):
    a = run("search", "sea ice", "--index", index, "--json", "-k", "2")
    b = run("search", "sea ice", "--index", index, "--format", "jsonl", "-k", "2")
    assert a.exit_code == 0 and b.exit_code == 0
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert {**ja, "took_ms": 0} == {**jb, "took_ms": 0}
    assert list(ja) == ["query", "mode", "group", "truncated", "took_ms", "no_close_match", "calibrated", "hits"]


def test_cli_facets_in_text_and_json(index):
    res = run("search", "Hafen Streik", "--index", index, "--facets", "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    want = Searcher(index).match_counts("Hafen Streik").to_json()
    assert body["facets"] == want and body["facets"]["depth"] == 500
    text = run("search", "Hafen Streik", "--index", index, "--facets", "--lang", "de")
    assert text.exit_code == 0, text.output
    assert "Matching articles among the top 500 passages" in text.stdout
    # the languages ignore the language filter; the histogram applies it (the English articles are undated)
    assert "languages: en 2, de 1" in text.stdout and "per day:" in text.stdout and "undated: 0" in text.stdout


def test_cli_recency(index):
    on = run("search", "sea ice", "--index", index, "--recency", "30d", "--json")
    off = run("search", "sea ice", "--index", index, "--json")
    assert on.exit_code == 0 and off.exit_code == 0
    assert json.loads(on.stdout)["hits"][0]["article_id"] == json.loads(off.stdout)["hits"][0]["article_id"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--recency", "soon"], "invalid recency 'soon'"), (["--recency", "0d"], "invalid recency '0d'"),
     (["--json", "--format", "csv"], "--json is --format jsonl"), (["--facets", "--format", "csv"], "--facets works"),
     (["--format", "xlsx"], "'xlsx' is not one of")],
)  # fmt: skip
def test_cli_bad_combinations_are_one_line(index, args, needle):
    res = run("search", "sea ice", "--index", index, *args)
    assert res.exit_code == 2 and needle in res.stderr and "Traceback" not in res.output
