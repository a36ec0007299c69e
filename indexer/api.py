"""The HTTP API (``indexer serve``): searches, articles and facts about the index, as JSON.

A thin shell like the CLI: each endpoint parses its parameters, calls the library's one
``Searcher`` (shared by every request, following new versions as the page does) and
returns what the library gives — a search is ``SearchResult.to_json()``, the line
``indexer search --json`` prints. Errors are the CLI's one-line messages in
``{"error": "..."}``: 400 for a bad request, 404 for an unknown article, story or endpoint,
503 when the index cannot be searched, 500
(and the traceback in the server's log only) for a bug.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from . import __version__
from .embedding import Encoder
from .errors import (
    IndexCorruptError,
    IndexerError,
    IndexNotFoundError,
    IndexVersionError,
    ModelMismatchError,
    ModelNotFoundError,
    QueryError,
    StoreError,
)
from .paths import default_index_dir, default_store
from .query import Filters
from .recency import parse_half_life
from .search import Searcher, SearchOptions
from .settings import MAX_K, MODES
from .similar import UnknownArticleError
from .story_search import GROUPS, StoryNotFoundError, parse_story_id

__all__ = [
    "ApiServer",
    "ArticleNotFoundError",
    "ServeError",
    "ServeSettings",
    "app_from_env",
    "bind",
    "create_app",
    "serve",
]

log = logging.getLogger("uvicorn.error")  # the server's log, formatted as uvicorn's own lines
T = TypeVar("T")

MAX_PER_ARTICLE = 100  # as the CLI's --per-article
#: how much of a request's line and headers uvicorn buffers (h11's default is 16 KB): a 100,000-character
#: query fits, and is then cut to MAX_QUERY_CHARS as the CLI cuts it; a request whose head is still
#: incomplete past this gets uvicorn's own 400 and never reaches the app
MAX_REQUEST_BYTES = 1 << 20
VERSION_HEADER = "X-Index-Version"
_ORIGIN = re.compile(r"\*|https?://[^/\s?#]+")
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ServeError(IndexerError):
    """The server cannot start as asked (address in use, bad settings); the message names the fix."""


class ArticleNotFoundError(IndexerError):
    """No article with that id in the live version (HTTP 404)."""

    def __init__(self, article_id: str) -> None:
        super().__init__(
            f"no article {article_id!r} in the index — use an article_id as /search returns it "
            "(URL-encoded: %23 for #, %3F for ?)"
        )


_STATUS: tuple[tuple[type[IndexerError], int], ...] = (
    (QueryError, 400),
    (ArticleNotFoundError, 404),
    (UnknownArticleError, 404),
    (StoryNotFoundError, 404),
    # the index cannot answer now; the message names the command that fixes it
    (IndexNotFoundError, 503),
    (IndexCorruptError, 503),
    (IndexVersionError, 503),
    (ModelMismatchError, 503),
    (ModelNotFoundError, 503),
    (StoreError, 503),
)


def status_of(exc: IndexerError) -> int:
    """The HTTP status an error is answered with (503 for any other library error: the index's state)."""
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 503)


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """Where and how ``serve`` listens."""

    host: str = "127.0.0.1"  # this machine only: the API has no login
    port: int = 8000  # 0: any free port (the address is given to ``on_ready``)
    index_dir: Path | None = None  # None: $INDEXER_INDEX, else data/index
    store: str | None = None  # a Milvus URI, as ``indexer search --store``
    cors_origins: tuple[str, ...] = ()  # origins whose pages may call the API from a browser; none by default
    log_level: str = "info"
    warm_up: bool = True  # load the model and the index before answering, as the page does

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ServeError("empty --host: use 127.0.0.1 (this machine only) or 0.0.0.0 (every network)")
        if not 0 <= self.port <= 65535:
            raise ServeError(f"--port {self.port} is not a port: use 1-65535 (or 0 for any free port)")
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ServeError(
                    f"invalid CORS origin {origin!r}: use scheme://host[:port], e.g. http://localhost:3000 (or *)"
                )
        if self.log_level not in _LOG_LEVELS:
            raise ServeError(f"unknown log level {self.log_level!r}: choose one of {', '.join(_LOG_LEVELS)}")


class ErrorBody(BaseModel):
    """Every error's body: one line saying what went wrong and how to fix it."""

    error: str


class _JSON(JSONResponse):
    """JSON as the CLI prints it (UTF-8, not ASCII-escaped).

    Text can hold lone surrogates (a JSON source may spell ``"\\ud800"``), which UTF-8
    cannot carry: such a body is sent ASCII-escaped instead of failing.
    """

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _JSON:
    return _JSON({"error": _one_line(message)}, status_code=status, headers=headers)


def _answer(content: Any, version: str | None) -> _JSON:
    return _JSON(content, headers={VERSION_HEADER: version} if version else None)


class _Engine:
    """The app's one ``Searcher``, opened on first use.

    A server started before its index exists (or while it is damaged) answers 503 with
    the fix, and opens the index at the first request after a build made it searchable.
    """

    def __init__(self, open_searcher: Callable[[], Searcher], searcher: Searcher | None) -> None:
        self._open = open_searcher
        self._searcher = searcher
        self._owned = searcher is None
        self._lock = threading.Lock()

    def get(self) -> Searcher:
        searcher = self._searcher
        if searcher is not None:
            return searcher
        with self._lock:
            if self._searcher is None:
                self._searcher = self._open()
            return self._searcher

    def warm_up(self) -> None:
        try:
            self.get().warm_up()
        except IndexerError as exc:  # not fatal: requests get the message (503) until a build fixes it
            log.warning("the index cannot be searched yet: %s", _one_line(str(exc)))

    def close(self) -> None:
        if self._owned and self._searcher is not None:
            self._searcher.close()


def _on_one_version(searcher: Searcher, read: Callable[[], T]) -> tuple[T, str | None]:
    """``read()``, and the version that answered it (None if it could not be told).

    The searcher moves to a new version by itself: a read that began and ended on the
    same version came wholly from it, and one that straddled a switch (once per publish)
    is read again.
    """
    for _ in range(3):
        before = searcher.snapshot().manifest.version
        out = read()
        if searcher.snapshot().manifest.version == before:
            return out, before
    return out, None


def _check_params(request: Request) -> None:
    """Unknown or repeated query parameters are errors, not silently ignored (``langs=fr`` would not filter)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    fields = {f.alias: f for f in dependant.query_params}
    for name in dict.fromkeys(request.query_params.keys()):
        field = fields.get(name)
        if field is None:
            known = ", ".join(fields) or "none"
            raise QueryError(f"unknown parameter {name!r} for {request.url.path} — its parameters: {known}")
        if len(request.query_params.getlist(name)) > 1 and not _repeatable(field.field_info.annotation):
            raise QueryError(f"{name} is given more than once — give it once")


def _repeatable(annotation: Any) -> bool:
    """A ``list[...]`` parameter (or ``list[...] | None``)."""
    if get_origin(annotation) is list:
        return True
    return any(get_origin(arg) is list for arg in get_args(annotation))


# the messages of FastAPI's validation errors, per parameter (the others: "NAME: pydantic's message")
_INVALID = {
    "q": "q is required: the question to search for, e.g. /search?q=arctic+cooperation",
    "id": "id is required: the article's id, e.g. /articles?id=dir/file.txt",
    "k": f"k must be a whole number between 1 and {MAX_K}",
    "offset": f"offset must be a whole number between 0 and {MAX_K - 1}",
    "per_article": f"per_article must be a whole number between 1 and {MAX_PER_ARTICLE}",
}

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": f'A bad parameter, e.g. `{{"error": "{_INVALID["k"]}"}}`'},
    503: {
        "model": ErrorBody,
        "description": "The index cannot be searched now (none yet, damaged, another model): the message names "
        "the fix, e.g. `indexer build`",
    },
    # "default" also keeps FastAPI from documenting a 422 this API never sends
    "default": {"model": ErrorBody, "description": "Any other error (404, 405, 500), in the same format"},
}


# /search's parameters, as the OpenAPI docs describe them
_Q = Annotated[str, Query(description="The question, in any language (cut to 2,000 characters).")]
_K = Annotated[int, Query(ge=1, le=MAX_K, description="Number of results.")]
_Explain = Annotated[bool, Query(description="Each hit's explanation: evidence on each side, matched terms, scores.")]
_Offset = Annotated[int, Query(ge=0, le=MAX_K - 1, description="Skip this many results (paging).")]
_PerArticle = Annotated[int, Query(ge=1, le=MAX_PER_ARTICLE, description="Passages allowed from one article.")]
_Langs = Annotated[list[str] | None, Query(description="Only this language (repeatable): lang=fr&lang=de.")]
_Sources = Annotated[list[str] | None, Query(description="Only this source (repeatable).")]
_DateFrom = Annotated[str | None, Query(description="Only articles dated on or after YYYY-MM-DD (or YYYY-MM, YYYY).")]
_DateTo = Annotated[str | None, Query(description="Only articles dated on or before YYYY-MM-DD (or YYYY-MM, YYYY).")]
_Mode = Annotated[str, Query(description="Ranking: dense + BM25 fused, or either alone.",
                             json_schema_extra={"enum": list(MODES)})]  # fmt: skip
_Group = Annotated[str, Query(description="One result per article, or per story (the articles about one event, "
                              "in any source and language): then `stories` replace `hits`.",
                              json_schema_extra={"enum": list(GROUPS)})]  # fmt: skip
_Id = Annotated[str, Query(description="The article's id, as /search returns it.")]
_Facets = Annotated[
    bool,
    Query(
        description='Add "facets": matching articles per language, source and period '
        "among the top 500 passages, each facet ignoring its own filter."
    ),
]
_Recency = Annotated[
    str | None,
    Query(
        description="Favour recent articles: a boost that halves every HALF_LIFE "
        "(30d, 2w, 6m, 1y), from the newest article in the index."
    ),
]


def create_app(
    index_dir: Path | str | None = None,
    *,
    searcher: Searcher | None = None,
    encoder: Encoder | None = None,
    store: str | None = None,
    cors_origins: tuple[str, ...] = (),
    warm_up: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The API over one index: ``searcher`` if given, else a warming ``Searcher`` opened on first use.

    ``encoder`` and ``store`` are that searcher's (as ``Searcher`` takes them).
    ``on_ready`` is called once the model and index are loaded (``warm_up``), just
    before requests are answered.
    """
    path = Path(index_dir) if index_dir is not None else default_index_dir()
    engine = _Engine(lambda: Searcher(path, encoder=encoder, store=store, warm_new_versions=True), searcher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            await run_in_threadpool(engine.warm_up)
        if on_ready is not None:
            on_ready()
        yield
        engine.close()

    app = FastAPI(
        title="indexer",
        version=__version__,
        summary="Multilingual semantic search over an article collection.",
        description="The JSON API of `indexer serve`. Searches return exactly what `indexer search --json` prints; "
        'every error is `{"error": "one line naming the fix"}` with status 400, 404 or 503. Responses that '
        f"come from the index carry `{VERSION_HEADER}`: the version that answered.",
        default_response_class=_JSON,
        lifespan=lifespan,
        redoc_url=None,
        responses=_ERRORS,
    )
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET"],
                           expose_headers=[VERSION_HEADER])  # fmt: skip
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/search", summary="Search the articles")
    def search(
        request: Request,
        q: _Q,
        k: _K = 10,
        offset: _Offset = 0,
        per_article: _PerArticle = 1,
        lang: _Langs = None,
        source: _Sources = None,
        date_from: _DateFrom = None,
        date_to: _DateTo = None,
        mode: _Mode = "hybrid",
        group: _Group = "article",
        explain: _Explain = False,
        facets: _Facets = False,
        recency: _Recency = None,
    ) -> _JSON:
        """The passages that best answer `q`: the JSON line of `indexer search --json` (`--facets` with facets)."""
        _check_params(request)
        if offset + k > MAX_K:
            raise QueryError(f"offset + k must be at most {MAX_K}: a search returns its first {MAX_K} results")
        filters = Filters(langs=tuple(lang or ()), sources=tuple(source or ()), date_from=date_from,
                          date_to=date_to).normalized()  # fmt: skip
        half_life = parse_half_life(recency) if recency is not None else None
        options = SearchOptions(k=k, offset=offset, per_article=per_article, mode=mode, filters=filters,
                                explain=explain, recency=half_life, group=group)  # fmt: skip
        s = engine.get()

        def read() -> dict[str, Any]:
            out = s.search(q, options).to_json()
            return {**out, "facets": s.match_counts(q, options).to_json()} if facets else out

        body, version = _on_one_version(s, read)
        return _answer(body, version)

    @app.get("/articles/{article_id:path}/similar", summary="Articles similar to one article, in any language")
    def similar(
        request: Request,
        article_id: str,
        k: _K = 10,
        lang: _Langs = None,
        source: _Sources = None,
        date_from: _DateFrom = None,
        date_to: _DateTo = None,
    ) -> _JSON:
        """The articles nearest to this one (less its near-duplicates): the JSON line of `indexer similar --json`."""
        _check_params(request)
        filters = Filters(langs=tuple(lang or ()), sources=tuple(source or ()), date_from=date_from,
                          date_to=date_to).normalized()  # fmt: skip
        s = engine.get()
        if s.article(article_id) is None:
            raise ArticleNotFoundError(article_id)
        result, version = _on_one_version(s, lambda: s.similar(article_id, k=k, filters=filters))
        return _answer(result.to_json(), version)

    @app.get("/articles/{article_id:path}", summary="One whole article")
    def article(request: Request, article_id: str) -> _JSON:
        """The article with this id (ids are paths such as `dir/file.txt`: slashes need no encoding)."""
        _check_params(request)
        return _article(engine, article_id)

    @app.get("/articles", summary="One whole article, its id as a parameter")
    def article_by_param(request: Request, id: _Id) -> _JSON:
        """The same as `/articles/{id}`, for an id that itself ends in `/similar`."""
        _check_params(request)
        return _article(engine, id)

    @app.get("/stories/{story_id}", summary="One story: the articles about one event")
    def story(request: Request, story_id: str) -> _JSON:
        """The story with this id (a `story_id` of `/search?group=story`): its articles in date order."""
        _check_params(request)
        sid = parse_story_id(story_id)
        s = engine.get()
        found, version = _on_one_version(s, lambda: s.story(sid))
        if found is None:
            raise StoryNotFoundError(sid)
        return _answer(found.to_json(), version)

    @app.get("/info", summary="The index: manifest, counts, facets")
    def info(request: Request) -> _JSON:
        """What `indexer info --json` prints: the live version's manifest, counts and facets."""
        _check_params(request)
        s = engine.get()
        facts, version = _on_one_version(s, s.info)
        return _answer(facts.to_json(), version)

    @app.get("/health", summary="Whether the index can be searched", responses={503: {"model": ErrorBody}})
    def health(request: Request) -> _JSON:
        """200 with the live version when the index opens, else 503 with the reason."""
        _check_params(request)
        try:
            facts = engine.get().info()
        except IndexerError as exc:
            return _JSON({"status": "unavailable", "error": _one_line(str(exc))}, status_code=status_of(exc))
        m = facts.manifest
        return _answer({"status": "ok", "version": m.version, "built_at": m.built_at, **facts.counts}, m.version)

    return app


def _article(engine: _Engine, article_id: str) -> _JSON:
    s = engine.get()
    found, version = _on_one_version(s, lambda: s.article(article_id))
    if found is None:
        raise ArticleNotFoundError(article_id)
    return _answer(asdict(found), version)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": "one line"}``: library errors, FastAPI's validation, routing, bugs."""

    async def library_error(_: Request, exc: Exception) -> _JSON:
        assert isinstance(exc, IndexerError)
        return _error(status_of(exc), str(exc))

    async def invalid(_: Request, exc: Exception) -> _JSON:
        # the issue asks for 400 with the CLI's style of message, not FastAPI's 422 and its error list
        assert isinstance(exc, RequestValidationError)
        first: dict[str, Any] = next(iter(exc.errors()), {})
        loc = first.get("loc") or ("request",)
        name = str(loc[-1])
        return _error(400, _INVALID.get(name) or f"{name}: {first.get('msg', 'invalid value')}")

    async def http_error(request: Request, exc: Exception) -> _JSON:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"no endpoint {request.url.path} — see /docs for the API"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path} — the API answers GET"
        else:
            message = str(exc.detail)
        return _error(exc.status_code, message, headers=dict(exc.headers or {}))

    async def bug(_: Request, exc: Exception) -> _JSON:
        # Starlette re-raises after this answer, so uvicorn writes the traceback to the server's log
        return _error(500, f"internal error ({type(exc).__name__}) — the server's log has the details")

    app.add_exception_handler(IndexerError, library_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, bug)


def app_from_env() -> FastAPI:
    """The API over ``$INDEXER_INDEX`` (and ``$INDEXER_STORE``), for ``uvicorn indexer.api:app_from_env --factory``."""
    return create_app(default_index_dir(), store=default_store())


def url_of(host: str, port: int) -> str:
    """The address a client uses (IPv6 hosts in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a ``ServeError`` naming the fix.

    Bound here rather than by uvicorn, so that a busy port is one line (uvicorn logs and
    exits) and port 0 gives its real number before the server starts.
    """
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]  # fmt: skip
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host!r} ({exc.strerror}) — use an address of this machine, "
                         "e.g. --host 127.0.0.1") from None  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)  # connections made while the model loads wait in the backlog
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use — stop what listens there, or pass --port N") from None
        if exc.errno == errno.EACCES:
            raise ServeError(f"not allowed to listen on port {port} — ports below 1024 need root: pass --port 8000"
                             ) from None  # fmt: skip
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServeError(f"{host} is not an address of this machine — use --host 127.0.0.1") from None
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    return sock


class ApiServer:
    """An app served by uvicorn on a socket from ``bind``: ``run()`` answers until SIGINT/SIGTERM or ``stop()``."""

    def __init__(self, app: FastAPI, sock: socket.socket, *, log_level: str = "info", configure_logging: bool = True):
        import uvicorn

        self.sock = sock
        self.port = int(sock.getsockname()[1])
        host = str(sock.getsockname()[0])
        self.url = url_of(host, self.port)
        kwargs: dict[str, Any] = {} if configure_logging else {"log_config": None}
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level=log_level,
            lifespan="on",
            h11_max_incomplete_event_size=MAX_REQUEST_BYTES,
            proxy_headers=False,  # no proxy is assumed: the addresses in the log are the clients' own
            **kwargs,
        )
        self._server = uvicorn.Server(config)

    @property
    def started(self) -> bool:
        """Whether it is answering (the model and index loaded)."""
        return bool(self._server.started)

    def run(self) -> None:
        """Serve until stopped (in the main thread, SIGINT and SIGTERM stop it cleanly)."""
        try:
            self._server.run(sockets=[self.sock])
        except SystemExit:  # uvicorn's way of saying the app did not start; it logged why
            raise ServeError("the server did not start — the lines above say why") from None
        finally:
            self.sock.close()

    def stop(self) -> None:
        """Ask ``run`` to finish the requests in flight and return."""
        self._server.should_exit = True


def serve(settings: ServeSettings | None = None, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the API until SIGINT or SIGTERM; ``on_ready(url)`` once it answers."""
    settings = settings or ServeSettings()
    if settings.store is not None:
        from .milvus import parse_uri

        parse_uri(settings.store)  # a malformed URI fails before anything listens
    sock = bind(settings.host, settings.port)
    url = url_of(settings.host, int(sock.getsockname()[1]))
    app = create_app(
        settings.index_dir or default_index_dir(),
        store=settings.store,
        cors_origins=settings.cors_origins,
        warm_up=settings.warm_up,
        on_ready=(lambda: on_ready(url)) if on_ready is not None else None,
    )
    ApiServer(app, sock, log_level=settings.log_level).run()
