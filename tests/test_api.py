"""The HTTP API (``indexer.api``), always over real HTTP on a loopback port.

Fast tests serve the app from uvicorn in a thread of this process, over an index built
with the fake encoder; the process tests start ``serve()`` (what ``indexer serve`` runs)
or ``uvicorn indexer.api:app_from_env --factory`` as real processes; the slow ones use
the small real model, as the CLI tests do, with concurrent clients while builds publish.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from indexer import BuildSettings, Searcher, SearchOptions, build
from indexer.api import (
    MAX_REQUEST_BYTES,
    VERSION_HEADER,
    ApiServer,
    ServeError,
    ServeSettings,
    bind,
    create_app,
)
from indexer.cli import main as cli_main
from indexer.index import IndexDir
from indexer.query import Filters

from .conftest import FAKE_MODEL, FakeEncoder, write
from .reliability_helpers import (
    QUERIES,
    ROOT,
    build_args,
    change_corpus,
    cli,
    cli_env,
    minilm_encoder,
    news_corpus,
    same_hits,
    text_key,
    wait_for,
)


# ------------------------------------------------------------------ HTTP
@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def version(self) -> str | None:
        return self.headers.get(VERSION_HEADER)


def get(base: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    req = urllib.request.Request(base + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def query(**params: Any) -> str:
    return "/search?" + urllib.parse.urlencode(params, doseq=True)


def article_path(article_id: str) -> str:
    return "/articles/" + urllib.parse.quote(article_id, safe="/")


def one_line_error(reply: Reply, status: int, *needles: str) -> str:
    """The error format: that status, JSON ``{"error": one line}`` naming each needle, no traceback."""
    assert reply.status == status, (reply.status, reply.raw)
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    body = reply.body
    assert set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str) and message and "\n" not in message
    assert "Traceback" not in reply.raw.decode("utf-8", "replace")
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@contextmanager
def live(app) -> Iterator[str]:
    """``app`` served by uvicorn from a thread of this process, on a free loopback port."""
    server = ApiServer(app, bind("127.0.0.1", 0), log_level="warning", configure_logging=False)
    thread = threading.Thread(target=server.run, name="api-test-server", daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started or not thread.is_alive(), 60), "the server did not start"
        assert server.started, "the server thread ended before it started"
        yield server.url
    finally:
        server.stop()
        thread.join(30)
        assert not thread.is_alive()


# ---------------------------------------------------------------- corpus
def corpus(src: Path) -> None:
    write(src / "fox.txt", "Fox\nThe quick brown fox jumps over the lazy dog near the river.")
    write(src / "ice.txt", "Ice\nArctic sea ice is melting fast this summer, scientists say.")
    write(
        src / "dossier" / "été.md",
        "---\ntitle: Été arctique\ndate: 2024-05-17\nsource: Le Monde\n---\n"
        "La banquise de l'Arctique fond vite cet été, disent les scientifiques.\n",
    )
    records = [
        {"title": "Harbour strike", "text": "Dock workers at the harbour strike over wages.", "source": "Wire",
         "date": "2023-01-10", "lang": "en"},
        {"title": "Hafen Streik", "text": "Die Hafenarbeiter streiken für höhere Löhne im Hafen.", "source": "Wire",
         "date": "2023-02-01", "lang": "de"},
        {"title": "Harbour deal", "text": "The harbour strike ends with a deal on wages and hours.", "source": "Wire",
         "date": "2023-01-20", "lang": "en"},
    ]  # fmt: skip
    write(src / "news" / "wire.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    odd = [
        {"id": "notes/similar", "title": "Notes", "text": "Notes on the similar harbour strikes of the past."},
        {"id": "a?b #c", "title": "Reserved", "text": "An id holding characters a URL reserves, about ice."},
        {"id": "ниже/日本", "title": "Unicode id", "text": "An id in Cyrillic and Japanese, about the river fox."},
    ]
    write(src / "records.json", json.dumps(odd, ensure_ascii=False))


IDS = ["fox.txt", "dossier/été.md", "news/wire.jsonl#L2", "a?b #c", "ниже/日本"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("api")
    corpus(root / "src")
    build([root / "src"], root / "index", BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
    return root / "index"


@pytest.fixture(scope="module")
def api(index) -> Iterator[str]:
    with live(create_app(index, encoder=FakeEncoder())) as url:
        yield url


@pytest.fixture(scope="module")
def library(index) -> Searcher:
    return Searcher(index, encoder=FakeEncoder())


def without_time(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "took_ms"}


# ------------------------------------------------------------------ search
def test_search_answers_the_json_line_of_indexer_search(api, index, library):
    reply = get(api, query(q="arctic sea ice melting", k=3))
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.body
    want = library.search("arctic sea ice melting", SearchOptions(k=3)).to_json()
    assert list(body) == list(want)  # the same fields, in the same order
    assert without_time(body) == without_time(want)
    assert body["hits"] and body["hits"][0]["article_id"] == "ice.txt"
    assert reply.version == IndexDir(index).manifest().version


@pytest.mark.parametrize(
    ("params", "options"),
    [
        ({"lang": "fr"}, SearchOptions(filters=Filters(langs=("fr",)))),
        ({"lang": ["de", "fr"]}, SearchOptions(filters=Filters(langs=("de", "fr")))),
        ({"lang": "FR"}, SearchOptions(filters=Filters(langs=("fr",)))),
        ({"source": "Wire"}, SearchOptions(filters=Filters(sources=("Wire",)))),
        ({"source": ["Wire", "Le Monde"]}, SearchOptions(filters=Filters(sources=("Wire", "Le Monde")))),
        ({"date_from": "2023-01", "date_to": "2023-01-31"},
         SearchOptions(filters=Filters(date_from="2023-01-01", date_to="2023-01-31"))),
        ({"date_from": "2024"}, SearchOptions(filters=Filters(date_from="2024-01-01"))),
        ({"mode": "bm25"}, SearchOptions(mode="bm25")),
        ({"mode": "dense"}, SearchOptions(mode="dense")),
        ({"k": 2, "offset": 2}, SearchOptions(k=2, offset=2)),
        ({"k": 1000}, SearchOptions(k=1000)),
        ({"per_article": 3, "k": 20}, SearchOptions(per_article=3, k=20)),
        ({"group": "article"}, SearchOptions()),
        ({"group": "story"}, SearchOptions(group="story")),
        ({"group": "story", "k": 2, "offset": 1, "lang": "en"},
         SearchOptions(group="story", k=2, offset=1, filters=Filters(langs=("en",)))),
        ({"explain": "true"}, SearchOptions(explain=True)),
    ],
)  # fmt: skip
def test_search_parameters_are_the_cli_options(api, library, params, options):
    q = "harbour strike wages ice"
    reply = get(api, query(q=q, **params))
    assert reply.status == 200, reply.raw
    want = library.search(q, options).to_json()
    assert without_time(reply.body) == without_time(want)


def test_filters_and_paging_hold(api):
    hits = get(api, query(q="harbour strike", source="Wire", k=10)).body["hits"]
    assert hits and {h["source"] for h in hits} == {"Wire"}
    hits = get(api, query(q="harbour strike", date_from="2023-01-15", date_to="2023-01", k=10)).body["hits"]
    assert [h["date"] for h in hits] == ["2023-01-20"]
    hits = get(api, query(q="harbour", lang=["de"], k=10)).body["hits"]
    assert hits and {h["lang"] for h in hits} == {"de"}
    whole = get(api, query(q="the harbour river ice fox", k=6)).body["hits"]
    pages = [get(api, query(q="the harbour river ice fox", k=2, offset=o)).body["hits"] for o in (0, 2, 4)]
    assert [h["article_id"] for page in pages for h in page] == [h["article_id"] for h in whole]
    assert [h["rank"] for page in pages for h in page] == list(range(1, len(whole) + 1))


@pytest.mark.parametrize(
    ("qs", "needles"),
    [
        ("", ["q is required"]),
        ("k=3", ["q is required"]),
        ("q=", ["empty query"]),
        ("q=%20%00%09", ["empty query"]),
        ("q=x&k=0", ["k must be a whole number between 1 and 1000"]),
        ("q=x&k=1001", ["k must be a whole number between 1 and 1000"]),
        ("q=x&k=abc", ["k must be a whole number between 1 and 1000"]),
        ("q=x&k=1.5", ["k must be a whole number between 1 and 1000"]),
        ("q=x&k=", ["k must be a whole number between 1 and 1000"]),
        ("q=x&offset=-1", ["offset must be a whole number between 0 and 999"]),
        ("q=x&offset=999&k=5", ["offset + k must be at most 1000"]),
        ("q=x&per_article=0", ["per_article must be a whole number between 1 and 100"]),
        ("q=x&mode=semantic", ["unknown mode 'semantic'", "hybrid, dense, bm25"]),
        ("q=x&mode=", ["unknown mode ''"]),
        ("q=x&lang=klingon", ["invalid language 'klingon'", "two-letter code"]),
        ("q=x&lang=ja", ["no articles in language ja", "this index has"]),
        ("q=x&source=Nowhere", ["no articles from source Nowhere", "sources include"]),
        ("q=x&date_from=2024-13", ["invalid date '2024-13'", "YYYY-MM-DD"]),
        ("q=x&date_to=yesterday", ["invalid date 'yesterday'"]),
        ("q=x&date_from=2024-06&date_to=2024-01", ["2024-06-01 is after", "2024-01-31"]),
        ("q=x&group=story&per_article=2", ["per_article", "leave it at 1"]),
        ("q=x&group=topic", ["unknown group 'topic'", "article", "story"]),
        ("q=x&langs=fr", ["unknown parameter 'langs'", "lang, source"]),
        ("q=x&k=1&k=2", ["k is given more than once"]),
        ("q=x&q=y", ["q is given more than once"]),
    ],
)
def test_bad_parameters_are_400_with_one_line(api, qs, needles):
    one_line_error(get(api, "/search?" + qs), 400, *needles)


def test_long_hostile_and_odd_queries_are_answered(api, library):
    long = "harbour " * 12_500  # 100,000 characters: cut to the first 2,000, as the CLI cuts it
    body = get(api, query(q=long)).body
    assert body["truncated"] is True and len(body["query"]) == 2000
    assert without_time(body) == without_time(library.search(long).to_json())
    for q in ["'; DROP TABLE articles; --", "(.*)+[", "שלום עולם", "🦊🧊", "a\u202eb", "ice\x00\x1b[31m", "%s%n{0}"]:
        reply = get(api, query(q=q))
        assert reply.status == 200, (q, reply.raw)
        assert without_time(reply.body) == without_time(library.search(q).to_json())
    assert get(api, "/health").status == 200


def test_a_request_far_over_the_limit_is_refused_and_the_server_goes_on(api):
    try:
        reply = get(api, query(q="x" * (4 * MAX_REQUEST_BYTES)))
    except (urllib.error.URLError, ConnectionError):
        pass  # uvicorn answered 400 and closed the connection while the request was still being sent
    else:
        assert reply.status == 400, reply.raw[:200]  # uvicorn's own answer: the request never reached the app
    assert get(api, query(q="fox")).status == 200


# ---------------------------------------------------------------- articles
@pytest.mark.parametrize("article_id", IDS)
def test_articles_by_id_with_slashes_unicode_and_reserved_characters(api, library, article_id):
    want = asdict(library.article(article_id))
    for path in (article_path(article_id), "/articles?" + urllib.parse.urlencode({"id": article_id})):
        reply = get(api, path)
        assert reply.status == 200, (path, reply.raw)
        assert reply.body == want
        assert reply.version
    assert want["id"] == article_id and want["text"]


def test_an_id_ending_in_similar_is_read_with_the_id_parameter(api, library):
    one_line_error(get(api, "/articles/notes/similar"), 404, "no article 'notes'")  # the similar route, for "notes"
    reply = get(api, "/articles?id=notes/similar")
    assert reply.status == 200 and reply.body == asdict(library.article("notes/similar"))


def test_search_hits_link_to_their_articles(api):
    for hit in get(api, query(q="harbour ice fox river", k=10)).body["hits"]:
        article = get(api, "/articles?" + urllib.parse.urlencode({"id": hit["article_id"]})).body
        assert article["text"][hit["start"] : hit["end"]] == hit["text"]


def test_unknown_article_is_404(api):
    one_line_error(get(api, "/articles/no/such.txt"), 404, "no article 'no/such.txt'")
    one_line_error(get(api, "/articles/fox.TXT"), 404, "no article 'fox.TXT'")
    one_line_error(get(api, "/articles?id="), 404, "no article ''")
    one_line_error(get(api, "/articles"), 400, "id is required")
    one_line_error(get(api, "/articles/fox.txt?full=1"), 400, "unknown parameter 'full'")


def test_similar_articles_are_the_librarys(api, library):
    for article_id in ("news/wire.jsonl#L1", "dossier/été.md", "a?b #c"):
        reply = get(api, article_path(article_id) + "/similar")
        assert reply.status == 200, reply.raw
        assert without_time(reply.body) == without_time(library.similar(article_id).to_json())
        assert reply.body["article_id"] == article_id and reply.body["hits"] and reply.version
    reply = get(api, article_path("news/wire.jsonl#L1") + "/similar?" + urllib.parse.urlencode({"k": 2, "lang": "de"}))
    want = library.similar("news/wire.jsonl#L1", k=2, filters=Filters(langs=("de",)))
    assert without_time(reply.body) == without_time(want.to_json())
    assert {h["lang"] for h in reply.body["hits"]} == {"de"}


def test_similar_errors(api):
    one_line_error(get(api, "/articles/nope.txt/similar"), 404, "no article 'nope.txt'")
    one_line_error(get(api, "/articles/fox.txt/similar?k=0"), 400, "k must be a whole number between 1 and 1000")
    one_line_error(get(api, "/articles/fox.txt/similar?lang=klingon"), 400, "invalid language 'klingon'")
    one_line_error(get(api, "/articles/fox.txt/similar?q=x"), 400, "unknown parameter 'q'", "k, lang")


def test_search_with_facets_and_recency_is_the_librarys(api, library):
    q = "harbour strike wages ice"
    body = get(api, query(q=q, facets="true", lang="en")).body
    options = SearchOptions(filters=Filters(langs=("en",)))
    want = {**library.search(q, options).to_json(), "facets": library.match_counts(q, options).to_json()}
    assert without_time(body) == without_time(want) and body["facets"]["depth"] == 500
    assert "facets" not in get(api, query(q=q)).body
    body = get(api, query(q=q, recency="2w")).body
    assert without_time(body) == without_time(library.search(q, SearchOptions(recency=14.0)).to_json())
    one_line_error(get(api, query(q=q, recency="soon")), 400, "invalid recency 'soon'", "30d")
    one_line_error(get(api, query(q=q, recency="")), 400, "invalid recency ''")
    one_line_error(get(api, query(q=q, facets="perhaps")), 400, "facets")


# ----------------------------------------------------------------- stories
def test_search_by_story_and_each_story_by_id(api, library):
    reply = get(api, query(q="harbour strike wages", group="story", k=3))
    assert reply.status == 200 and reply.body["group"] == "story" and "hits" not in reply.body
    stories = reply.body["stories"]
    assert [s["rank"] for s in stories] == [1, 2, 3] and len({s["story_id"] for s in stories}) == 3
    for found in stories:
        one = get(api, f"/stories/{found['story_id']}")
        assert one.status == 200 and one.version
        assert one.body == library.story(found["story_id"]).to_json()
        assert one.body["members"] == found["members"] and found["hit"]["story_id"] == found["story_id"]
    hits = get(api, query(q="harbour strike wages", k=3)).body["hits"]
    assert all(isinstance(h["story_id"], int) for h in hits)


@pytest.mark.parametrize(
    ("path", "status", "needles"),
    [("/stories/abc", 400, ["'abc' is not a story id"]), ("/stories/0", 400, ["is not a story id"]),
     ("/stories/-1", 400, ["is not a story id"]), ("/stories/99999999", 404, ["no story 99999999"]),
     ("/stories/1?full=1", 400, ["unknown parameter 'full'"]), ("/stories/", 404, ["no endpoint /stories/"])],
)  # fmt: skip
def test_bad_or_unknown_story_ids(api, path, status, needles):
    one_line_error(get(api, path), status, *needles)


def test_an_index_without_stories_says_to_build(tmp_path, monkeypatch):
    from indexer import story_versions
    from indexer.story_versions import StoriesMade

    corpus(tmp_path / "src")
    monkeypatch.setattr(story_versions, "make", lambda *a, **k: StoriesMade(0, 0.0, False))  # as before stories
    build([tmp_path / "src"], tmp_path / "index", encoder=FakeEncoder(), model=FAKE_MODEL)
    monkeypatch.undo()
    with live(create_app(tmp_path / "index", encoder=FakeEncoder())) as url:
        one_line_error(get(url, query(q="fox", group="story")), 400, "no stories yet", 'run "indexer build"')
        one_line_error(get(url, "/stories/1"), 400, "no stories yet", 'run "indexer build"')
        assert get(url, query(q="fox")).body["hits"][0]["story_id"] is None
        build([tmp_path / "src"], tmp_path / "index", encoder=FakeEncoder(), model=FAKE_MODEL)  # publishes stories
        assert wait_for(lambda: get(url, query(q="fox", group="story")).status == 200, 30)
        assert get(url, "/stories/1").status == 200


# -------------------------------------------------------------- info, health
def test_info_is_indexer_info_json(api, index):
    res = CliRunner().invoke(cli_main, ["info", "--index", str(index), "--json"])
    assert res.exit_code == 0, res.output
    reply = get(api, "/info")
    assert reply.status == 200 and reply.body == json.loads(res.output)
    assert reply.version == reply.body["manifest"]["version"]


def test_health_names_the_live_version(api, index):
    reply = get(api, "/health")
    manifest = IndexDir(index).manifest()
    assert reply.status == 200
    assert reply.body == {"status": "ok", "version": manifest.version, "built_at": manifest.built_at,
                          **manifest.counts}  # fmt: skip
    assert reply.body["articles"] == 9
    assert reply.version == manifest.version


# ------------------------------------------------------ routing, docs, CORS
def test_routing_errors_are_json_one_liners(api):
    one_line_error(get(api, "/nope"), 404, "no endpoint /nope", "/docs")
    one_line_error(get(api, "/search", method="POST"), 405, "POST is not allowed on /search", "GET")
    one_line_error(get(api, "/articles/fox.txt", method="DELETE"), 405, "DELETE is not allowed")


def test_openapi_docs_describe_every_endpoint(api):
    page = get(api, "/docs")
    assert page.status == 200 and "swagger-ui" in page.raw.decode()
    assert get(api, "/").raw == page.raw  # the root leads to the docs
    spec = get(api, "/openapi.json").body
    assert set(spec["paths"]) == {"/search", "/articles/{article_id}/similar", "/articles/{article_id}",
                                  "/articles", "/stories/{story_id}", "/info", "/health"}  # fmt: skip
    params = {p["name"]: p for p in spec["paths"]["/search"]["get"]["parameters"]}
    assert list(params) == ["q", "k", "offset", "per_article", "lang", "source", "date_from", "date_to", "mode",
                            "group", "explain", "facets", "recency"]  # fmt: skip
    similar = {p["name"] for p in spec["paths"]["/articles/{article_id}/similar"]["get"]["parameters"]}
    assert similar == {"article_id", "k", "lang", "source", "date_from", "date_to"}
    assert params["q"]["required"] is True and params["k"]["schema"]["maximum"] == 1000
    assert params["mode"]["schema"]["enum"] == ["hybrid", "dense", "bm25"]
    assert "422" not in json.dumps(spec)  # errors are 400, as the API answers them
    assert spec["paths"]["/search"]["get"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_cors_is_off_by_default(api):
    reply = get(api, query(q="fox"), headers={"Origin": "http://evil.example"})
    assert reply.status == 200 and "access-control-allow-origin" not in {k.lower() for k in reply.headers}
    preflight = get(api, "/search", method="OPTIONS", headers={"Origin": "http://evil.example",
                                                               "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert preflight.status == 405 and "access-control-allow-origin" not in {k.lower() for k in preflight.headers}


def test_cors_for_the_origins_given(index):
    with live(create_app(index, encoder=FakeEncoder(), cors_origins=("http://localhost:3000",))) as url:
        ok = get(url, query(q="fox"), headers={"Origin": "http://localhost:3000"})
        assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert VERSION_HEADER.lower() in ok.headers["access-control-expose-headers"].lower()
        other = get(url, query(q="fox"), headers={"Origin": "http://elsewhere.example"})
        assert other.status == 200 and "access-control-allow-origin" not in {k.lower() for k in other.headers}


# ------------------------------------------------------------------ errors
class BrokenSearcher(Searcher):
    """A searcher with a bug: what the catch-all handler is for."""

    def search(self, query, options=None):
        raise RuntimeError("boom\nsecond line of a bug")


def test_a_bug_is_a_500_one_liner_and_its_traceback_goes_to_the_log(index, caplog):
    app = create_app(index, searcher=BrokenSearcher(index, encoder=FakeEncoder()), warm_up=False)
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"), live(app) as url:
        reply = get(url, query(q="fox"))
        message = one_line_error(reply, 500, "internal error (RuntimeError)", "log")
        assert "boom" not in message
        assert wait_for(lambda: any(r.exc_info for r in caplog.records), 10)
        assert get(url, "/health").status == 200  # and the server goes on
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


def test_lone_surrogates_in_text_are_escaped_not_a_500():
    from indexer.api import _JSON

    body = _JSON({"title": "bad \ud800 half"}).body
    assert json.loads(body) == {"title": "bad \ud800 half"}
    assert _JSON({"title": "été"}).body == '{"title":"été"}'.encode()  # UTF-8 otherwise, as the CLI prints


def test_no_index_is_503_until_a_build_then_it_is_served(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    corpus(src)
    with live(create_app(index, encoder=FakeEncoder())) as url:
        health = get(url, "/health")
        assert health.status == 503
        assert health.body == {
            "status": "unavailable",
            "error": f'no index at {index} — run "indexer build" to create it',
        }
        for path in (query(q="fox"), "/info", "/articles/fox.txt", "/articles/fox.txt/similar"):
            one_line_error(get(url, path), 503, f"no index at {index}", '"indexer build"')
        build([src], index, BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
        assert get(url, "/health").body["version"] == IndexDir(index).manifest().version
        assert get(url, query(q="arctic ice")).body["hits"][0]["article_id"] == "ice.txt"


def test_a_damaged_index_is_503_with_the_fix(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    corpus(src)
    build([src], index, BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
    with live(create_app(index, encoder=FakeEncoder())) as url:
        assert get(url, "/health").status == 200
        (index / "manifest.json").write_text("{ not json", encoding="utf-8")  # a new manifest: damaged
        assert wait_for(lambda: get(url, "/health").status == 503, 30)
        assert "damaged" in get(url, "/health").body["error"]
        one_line_error(get(url, query(q="fox")), 503, "damaged", "indexer build")
        one_line_error(get(url, "/info"), 503, "damaged")


def test_another_model_is_503_with_the_fix(index):
    # the index was built with the fake encoder: a server without it cannot embed the question
    with live(create_app(index)) as url:
        one_line_error(get(url, query(q="fox")), 503, "'fake-bow'", "not on this machine", "indexer build --full")
        assert get(url, "/health").status == 200 and get(url, "/articles/fox.txt").status == 200


# ---------------------------------------------------------- version following
def test_the_server_follows_new_versions_and_each_answer_is_one_versions(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    corpus(src)
    q = "volcano eruption lava harbour"

    def publish() -> tuple[str, dict]:
        build([src], index, BuildSettings(), encoder=FakeEncoder(), model=FAKE_MODEL)
        version = IndexDir(index).manifest().version
        return version, without_time(Searcher(index, encoder=FakeEncoder()).search(q, SearchOptions(k=5)).to_json())

    v1, answer = publish()
    expected = {v1: answer}
    replies: list[list[Reply]] = [[] for _ in range(4)]
    stop = threading.Event()
    with live(create_app(index, encoder=FakeEncoder())) as url:

        def client(out: list[Reply]) -> None:
            while not stop.is_set() and len(out) < 2000:
                out.append(get(url, query(q=q, k=5)))

        threads = [threading.Thread(target=client, args=(out,)) for out in replies]
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: all(len(r) >= 3 for r in replies), 30)
            write(src / "volcano.txt", "Volcano\nThe volcano eruption sent lava down to the harbour.")
            v2, answer = publish()
            expected[v2] = answer
            (src / "volcano.txt").unlink()
            v3, answer = publish()
            expected[v3] = answer
            assert wait_for(lambda: get(url, "/health").version == v3, 30), "the server did not move to v3"
            counts = [len(r) for r in replies]
            assert wait_for(lambda: all(len(r) >= c + 3 for r, c in zip(replies, counts)), 30)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
    assert v1 < v2 < v3
    assert expected[v2]["hits"][0]["article_id"] == "volcano.txt"
    for out in replies:
        assert all(r.status == 200 for r in out), [r.raw for r in out if r.status != 200][:3]
        seen = [r.version for r in out]
        assert all(v is not None and v1 <= v <= v3 for v in seen), set(seen)
        assert seen == sorted(seen), "a client saw an older version after a newer one"  # type: ignore[type-var]
        assert seen[0] == v1 and seen[-1] == v3
        for r in out:
            # wholly the answer of the version it names
            assert without_time(r.body) == expected[answered_by(expected, r.version)], r.version


def answered_by(expected: dict[str, Any], version: str) -> str:
    """The version whose answers ``version`` gives: itself, or the merge its build published right after it
    (deleting an article leaves a segment to rewrite; merging changes no result)."""
    return version if version in expected else min(v for v in expected if v > version)


# ---------------------------------------------------------------- settings
def test_bind_errors_are_one_line_with_the_fix():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is in use — .*--port N"):
            bind("127.0.0.1", port)
    with pytest.raises(ServeError, match=re.escape("192.0.2.1 is not an address of this machine")):
        bind("192.0.2.1", 0)  # TEST-NET-1: never on this machine, and binding sends nothing


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"port": 70000}, "--port 70000 is not a port"),
        ({"port": -1}, "--port -1 is not a port"),
        ({"host": " "}, "empty --host"),
        ({"cors_origins": ("localhost:3000",)}, "invalid CORS origin 'localhost:3000'"),
        ({"cors_origins": ("http://a.example/path",)}, "invalid CORS origin"),
        ({"log_level": "loud"}, "unknown log level 'loud'"),
    ],
)
def test_bad_settings_are_refused(kwargs, needle):
    with pytest.raises(ServeError, match=re.escape(needle)):
        ServeSettings(**kwargs)


def test_defaults_are_loopback_and_no_cors():
    settings = ServeSettings()
    assert (settings.host, settings.port, settings.cors_origins) == ("127.0.0.1", 8000, ())


# ------------------------------------------------------- real server processes
SERVE = (
    "import sys; from pathlib import Path; from indexer.api import ServeSettings, serve; "
    "serve(ServeSettings(index_dir=Path(sys.argv[1]), port=0), on_ready=lambda url: print('ready', url, flush=True))"
)  # what "indexer serve --index DIR --port 0" runs (default host)


@dataclass
class Process:
    proc: subprocess.Popen
    out: Path
    err: Path
    url: str = ""
    logs: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


@contextmanager
def server_process(args: list[str], tmp_path: Path, ready: str, **env: str) -> Iterator[Process]:
    """A server in its own process; its output in files (never a pipe that could fill and block it)."""
    out, err = tmp_path / "server.out", tmp_path / "server.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, *args], stdout=o, stderr=e, env=cli_env(**env), cwd=ROOT)
    p = Process(proc, out, err)
    try:
        found: list[str] = []

        def started() -> bool:
            m = re.search(ready, p.log())
            if m:
                found.append(m[1])
            return bool(m) or proc.poll() is not None

        assert wait_for(started, 120, 0.1) and found, p.log()
        p.url = found[0]
        yield p
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def stopped(server: Process) -> None:
    """SIGTERM ends the server cleanly: requests finished, the app shut down, then the process ends by that
    signal (uvicorn re-raises it once shut down, so a supervisor sees why it ended)."""
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) in (0, -signal.SIGTERM), server.log()
    assert "Application shutdown complete." in server.log() and "Traceback" not in server.log()


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc spells them) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.rsplit(":", 1)
                if state == "0A" and int(hexport, 16) == port:
                    found.add(addr)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads /proc/net/tcp")
def test_serve_listens_on_loopback_by_default_and_stops_cleanly_on_sigterm(index, tmp_path):
    with server_process(["-c", SERVE, str(index)], tmp_path, r"ready (http://\S+)") as server:
        assert server.url.startswith("http://127.0.0.1:")
        port = int(server.url.rsplit(":", 1)[1])
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only
        assert get(server.url, "/health").status == 200
        assert get(server.url, "/articles/dossier/%C3%A9t%C3%A9.md").body["source"] == "Le Monde"
        # this process has no fake encoder: the model the index names is missing, and the message says so
        one_line_error(get(server.url, query(q="fox")), 503, "not on this machine")
        stopped(server)
        log = server.log()
        assert "the index cannot be searched yet" in log  # the warm-up's notice, one line
        assert "Traceback" not in log, log


def test_serve_refuses_a_busy_port_in_one_line(index, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is in use"):
            from indexer.api import serve

            serve(ServeSettings(index_dir=index, port=port, warm_up=False))


def test_uvicorn_factory_entry_point_reads_indexer_index(index, tmp_path):
    args = ["-m", "uvicorn", "indexer.api:app_from_env", "--factory", "--host", "127.0.0.1", "--port", "0"]
    ready = r"Uvicorn running on (http://127\.0\.0\.1:\d+)"
    with server_process(args, tmp_path, ready, INDEXER_INDEX=str(index)) as server:
        reply = get(server.url, "/health")
        assert reply.status == 200 and reply.body["version"] == IndexDir(index).manifest().version
        stopped(server)


# ------------------------------------------------------ the real model (slow)
def keys(hits: list[dict]) -> list[tuple]:
    return [(h["article_id"], h["passage_id"], float(h["score"]), text_key(h["text"])) for h in hits]


@pytest.mark.slow
def test_real_server_answers_what_indexer_search_json_prints(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 40, seed=11)
    assert cli(*build_args(src, index)).returncode == 0
    qfile = write(tmp_path / "queries.txt", "\n".join(QUERIES) + "\n")
    res = cli("search", "--queries", qfile, "--index", index, "--json", "-k", "5", "--lang", "en")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    with server_process(["-c", SERVE, str(index)], tmp_path, r"ready (http://\S+)") as server:
        for q, want in zip(QUERIES, lines):
            got = get(server.url, query(q=q, k=5, lang="en")).body
            assert {k: v for k, v in got.items() if k not in ("took_ms", "hits")} == {
                k: v for k, v in want.items() if k not in ("took_ms", "hits")
            }
            assert same_hits(keys(got["hits"]), keys(want["hits"])), q
            assert [{k: v for k, v in h.items() if k != "score"} for h in got["hits"]] == [
                {k: v for k, v in h.items() if k != "score"} for h in want["hits"]
            ]
        assert "Traceback" not in server.log()


CLIENTS = 8
MIN_REQUESTS = 50


@pytest.mark.slow
def test_concurrent_clients_while_builds_publish_twice(tmp_path):
    src, index = tmp_path / "src", tmp_path / "index"
    news_corpus(src, 150, seed=7)
    assert cli(*build_args(src, index)).returncode == 0
    searcher = Searcher(index, encoder=minilm_encoder())

    def answers() -> dict[str, list[tuple]]:
        return {q: keys([h.to_json() for h in searcher.search(q, SearchOptions(k=10)).hits]) for q in QUERIES}

    expected = {IndexDir(index).manifest().version: answers()}
    records: list[list[tuple[int, str | None, str, Any]]] = [[] for _ in range(CLIENTS)]
    stop = threading.Event()
    with server_process(["-c", SERVE, str(index)], tmp_path, r"ready (http://\S+)") as server:

        def client(n: int, out: list) -> None:
            i = n
            while len(out) < 5000 and not (stop.is_set() and len(out) >= MIN_REQUESTS):
                q = QUERIES[i % len(QUERIES)]
                i += 1
                r = get(server.url, query(q=q, k=10))
                out.append((r.status, r.version, q, keys(r.body["hits"]) if r.status == 200 else r.raw))
                time.sleep(0.02)  # a brisk client: leave the builds some of the two cores

        threads = [threading.Thread(target=client, args=(n, out)) for n, out in enumerate(records)]
        for t in threads:
            t.start()
        try:
            assert wait_for(lambda: all(len(r) >= 5 for r in records), 120, 0.1), "clients did not start"
            for step in (1, 2):
                change_corpus(src, seed=7 + step, add=20, modify=20, delete=10)
                res = cli(*build_args(src, index))
                assert res.returncode == 0, res.stderr
                expected[IndexDir(index).manifest().version] = answers()
            last = max(expected)
            assert wait_for(lambda: get(server.url, "/health").version == last, 120, 0.2), server.log()
            counts = [len(r) for r in records]
            assert wait_for(lambda: all(len(r) >= c + 3 for r, c in zip(records, counts)), 120, 0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(300)
        assert "Traceback" not in server.log()

    assert len(expected) == 3
    first = min(expected)

    for out in records:
        assert len(out) >= MIN_REQUESTS
        bad = [(status, raw) for status, _, _, raw in out if status != 200]
        assert not bad, bad[:3]
        versions = [v for _, v, _, _ in out]
        assert all(v is not None for v in versions)
        assert versions == sorted(versions), "a client saw an older version after a newer one"  # type: ignore[type-var]
        assert versions[0] == first and versions[-1] == last
        for _, version, q, hits in out:
            assert same_hits(hits, expected[answered_by(expected, version)][q]), (version, q)
    print(f"clients: {[len(r) for r in records]} requests, {len(expected)} versions, all 200 and consistent")
