"""Command line: parse, call the library, format. No search logic lives here."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__, terminal
from .cli_alerts import alerts as alerts_commands
from .cli_options import index_dir as _index_dir
from .cli_options import index_option as _index_option
from .cli_output import ProgressBar, print_counts, print_hits, print_merge, print_report, print_similar, print_sync
from .errors import IndexerError, QueryError
from .settings import BACKENDS, MAX_K, MODES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FORMATS = ("text", "jsonl", "csv")


class _Group(click.Group):
    """Turns library errors into one line on stderr and exit code 2, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        # article titles, sources, urls, paths and the messages quoting them are untrusted:
        # nothing printed from here on reaches the terminal as an escape sequence
        terminal.protect_std_streams()
        try:
            return super().invoke(ctx)
        except IndexerError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="indexer")
def main() -> None:
    """Multilingual semantic search over folders of articles.

    \b
    Examples:
      indexer build                       # index seeds/ and data/articles/ into data/index/
      indexer search "coopération dans l'Arctique"
      indexer search "Who offered Washington cooperation on rare earths?" --json
      indexer info
    """




def _read_options(f: Any) -> Any:
    """How files are read: ``build`` and ``watch`` take the same (they must match the index's build)."""
    f = click.option(
        "--max-file-mb",
        type=click.FloatRange(0.001),
        default=20.0,
        show_default=True,
        help="Skip single-document files larger than this.",
    )(f)
    return click.option("--follow-symlinks", is_flag=True, help="Also read symlinks that lead outside the sources.")(f)


def _store_option(f: Any) -> Any:
    return click.option(
        "--store",
        default=None,
        envvar="INDEXER_STORE",
        metavar="URI",
        help="Milvus collection holding the vectors: milvus://HOST:19530/COLLECTION (a standalone or "
        "distributed server) or milvus-lite:///path/file.db/COLLECTION; default $INDEXER_STORE (the page "
        "uses it too). Needs: pip install '.[milvus]'.",
    )(f)


def _check_store(uri: str | None) -> None:
    """A malformed --store fails before any work (and without importing pymilvus)."""
    if uri is not None:
        from .milvus import parse_uri

        parse_uri(uri)


# ------------------------------------------------------------------ build
@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_index_option
@click.option(
    "--model",
    default=None,
    help="sentence-transformers model name or local folder "
    "(default: the index's model, else intfloat/multilingual-e5-small).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Embedding backend (default: the index's, else onnx-int8).",
)
@click.option("--full", is_flag=True, help="Ignore the existing index and rebuild everything.")
@click.option("--strict", is_flag=True, help="Fail (keeping the previous index) if any file is skipped.")
@click.option(
    "--max-tokens",
    type=click.IntRange(8, 2048),
    default=None,
    help="Passage budget in the model's tokens (default: the index's, else 200).",
)
@click.option(
    "--overlap",
    type=click.IntRange(0, 10),
    default=None,
    help="Sentences shared by consecutive passages (default: the index's, else 1).",
)
@_read_options
@click.option(
    "--faiss",
    default=None,
    metavar="FACTORY",
    help='FAISS index type as a factory string, e.g. "IVF4096,SQ8" or "HNSW32,SQ8"; "auto" chooses '
    "by size (default: the index's forced type, else auto: exact below 100,000 passages, above it IVF with "
    "4-bit PQ codes whose best candidates are re-scored with the exact vectors).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Re-read every file, even those whose size and modification time are unchanged since the last build.",
)
@click.option(
    "--gate",
    "gate_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help='Publish only if the new version answers these labelled queries (JSON lines, as for "indexer eval") '
    "about as well as the live one; otherwise keep the live version, keep the new one under "
    "<index>/.work/rejected/ and list the queries that got worse (exit code 2).",
)
@click.option(
    "--min-recall",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.95,
    show_default=True,
    metavar="R",
    help="With --gate: the new version must keep at least R × the live version's R@10 and R × its MRR@10.",
)
@_store_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def build(
    paths: tuple[Path, ...],
    index_dir: Path | None,
    model: str | None,
    backend: str | None,
    full: bool,
    strict: bool,
    max_tokens: int | None,
    overlap: int | None,
    follow_symlinks: bool,
    max_file_mb: float,
    faiss: str | None,
    check: bool,
    gate_file: Path | None,
    min_recall: float,
    quiet: bool,
    store: str | None,
) -> None:
    """Build or update the index from files and folders (txt, md, html, json, jsonl, csv).

    Unchanged articles are not embedded again, changed ones are, vanished ones are
    removed. The new index replaces the old one only when complete.

    \b
    Examples:
      indexer build                          # seeds/ and data/articles/
      indexer build ~/news --index ~/news-index
      indexer build --full --model sentence-transformers/all-MiniLM-L6-v2
      indexer build --store milvus://localhost:19530/passages   # then sync Milvus
      indexer build --faiss "HNSW32,SQ8"     # force an index type (--faiss auto: by size again)
      indexer build --full --max-tokens 120 --gate labelled.jsonl   # publish only if it ranks as well
    """
    from .build import BuildSettings
    from .build import build as run_build
    from .chunking import ChunkSettings
    from .corpus import ReadSettings
    from .gate import GateRefusedError, GateSettings, report_lines, summary
    from .paths import default_sources

    if gate_file is None and min_recall != 0.95:
        raise click.UsageError("--min-recall needs --gate FILE")
    chunk = None  # the index's own settings, so a plain "indexer build" never re-chunks everything
    if max_tokens is not None or overlap is not None:
        defaults = ChunkSettings()
        try:
            chunk = ChunkSettings(
                max_tokens=defaults.max_tokens if max_tokens is None else max_tokens,
                overlap_sentences=defaults.overlap_sentences if overlap is None else overlap,
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    settings = BuildSettings(
        model=model,
        backend=backend,
        chunk=chunk,
        full=full,
        strict=strict,
        read=ReadSettings(follow_symlinks=follow_symlinks, max_file_mb=max_file_mb),
        faiss=faiss,
        check=check,
        gate=GateSettings(queries=gate_file, min_recall=min_recall) if gate_file is not None else None,
    )
    sources = list(paths) or default_sources()
    target = _index_dir(index_dir)
    bar = None if quiet else ProgressBar()
    try:
        _check_store(store)
        report = run_build(sources, target, settings, progress=bar, store=store)
    except GateRefusedError as refused:
        if bar:
            bar.close()
            bar = None
        lines = report_lines(refused.report)
        click.echo(f"error: {lines[0]}", err=True)
        for line in lines[1:]:
            click.echo(line, err=True)
        click.get_current_context().exit(2)
    finally:
        if bar:
            bar.close()
    print_report(report, target)
    if report.gate is not None:
        click.echo(f"  {summary(report.gate)}")


# ------------------------------------------------------------------ watch
@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_index_option
@click.option(
    "--interval",
    type=float,
    default=1.0,
    show_default=True,
    metavar="S",
    help="Seconds a changed file must stay unchanged before it is published (a file still open for writing "
    "waits longer, up to 30 intervals); also the polling period.",
)
@click.option("--poll", is_flag=True, help="Poll the folders instead of using inotify (which is used where it works).")
@_read_options
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
def watch(
    paths: tuple[Path, ...],
    index_dir: Path | None,
    interval: float,
    poll: bool,
    follow_symlinks: bool,
    max_file_mb: float,
    quiet: bool,
) -> None:
    """Follow files and folders, and publish what changes in them to the index.

    Builds once to catch up, then builds each batch of added, changed and deleted files
    once they have settled, keeping the index's model and settings. One line per batch;
    Ctrl-C or SIGTERM stops it (a build in progress is abandoned: the index stays as it was).

    \b
    Examples:
      indexer watch                          # seeds/ and data/articles/ into data/index/
      indexer watch ~/news --index ~/news-index
      indexer watch /mnt/share --poll --interval 5
    """
    import signal
    import time

    from .build import BuildSettings
    from .corpus import ReadSettings
    from .paths import default_sources
    from .watch import Notice, Watcher, WatchSettings

    try:
        read = ReadSettings(follow_symlinks=follow_symlinks, max_file_mb=max_file_mb)
        settings = WatchSettings(interval=interval, poll=poll, build=BuildSettings(read=read))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--interval'") from None

    def show(notice: Notice) -> None:
        if notice.error or not quiet:
            click.echo(f"{time.strftime('%H:%M:%S')} {notice.text}", err=notice.error)

    watcher = Watcher(list(paths) or default_sources(), _index_dir(index_dir), settings, on_notice=show)
    received: list[str] = []

    def on_signal(signum: int, _: object) -> None:
        if received:  # a second signal: stop at once (still safe, builds are atomic)
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        watcher.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = watcher.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not quiet:
        how = "a build in progress was abandoned, " if summary.abandoned else ""
        click.echo(
            f"{time.strftime('%H:%M:%S')} stopped by {received[0] if received else 'request'} after "
            f"{summary.builds} build(s): {how}the index is at version {summary.version.split('-', 1)[0] or '-'}"
        )


# ------------------------------------------------------------------ merge
@main.command(context_settings=CONTEXT)
@_index_option
@click.option("--all", "everything", is_flag=True, help="Merge every segment into one (and drop deleted rows).")
def merge(index_dir: Path | None, everything: bool) -> None:
    """Merge the index's segments now (builds merge what is due by themselves).

    \b
    Examples:
      indexer merge           # the merges the policy calls for
      indexer merge --all     # one segment, as after a full build
    """
    from .index import IndexDir
    from .merge import merge as run_merge

    target = _index_dir(index_dir)
    idx = IndexDir(target)
    idx.manifest()  # no index, or a damaged one: its own message
    lock = idx.lock()
    try:
        report = run_merge(idx, everything=everything)
    finally:
        lock.release()
    print_merge(report, target)


# ------------------------------------------------------------------ serve
@main.command(context_settings=CONTEXT)
@_index_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on: 127.0.0.1 is this machine only; 0.0.0.0 every network (the API has no login).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let web pages from this origin call the API (repeatable), e.g. http://localhost:3000; none by default.",
)
@_store_option
def serve(index_dir: Path | None, host: str, port: int, cors_origins: tuple[str, ...], store: str | None) -> None:
    """Serve the index as a JSON API over HTTP, following new versions as builds publish them.

    GET /search?q=… (&group=story), /articles/{id}, /articles/{id}/similar, /stories/{id}, /info, /health;
    the OpenAPI description is at /openapi.json, /docs.

    \b
    Examples:
      indexer serve                                   # http://127.0.0.1:8000, index data/index
      indexer serve --index ~/news-index --port 8080
      curl 'http://127.0.0.1:8000/search?q=Arctic+cooperation&k=3&lang=fr'
    """
    from .api import ServeSettings
    from .api import serve as run_server

    target = _index_dir(index_dir)
    settings = ServeSettings(host=host, port=port, index_dir=target, cors_origins=cors_origins, store=store)

    def ready(url: str) -> None:
        click.echo(f"serving {target} at {url} (docs: {url}/docs) — Ctrl-C stops")

    try:
        run_server(settings, on_ready=ready)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has finished the requests in flight and shut down
        click.echo("stopped")


# ----------------------------------------------------------------- search
@main.command(context_settings=CONTEXT)
@click.argument("query", required=False)
@_index_option
@click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True, help="Number of results.")
@click.option(
    "--per-article",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Passages allowed from the same article.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per query (the same as --format jsonl).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="text (default): for reading; jsonl: one JSON line per query, as the API answers; csv: one row per hit "
    "for spreadsheets (title, date, source, language, url, article id, passage, score, story id; a query column "
    "with --queries; UTF-8 with BOM).",
)
@click.option(
    "--facets",
    is_flag=True,
    help="Also count the matching articles per language, source and period among the top 500 passages "
    '(each facet ignoring its own filter); in JSON under "facets".',
)
@click.option(
    "--recency",
    default=None,
    metavar="HALF_LIFE",
    help="Favour recent articles: a boost that halves every HALF_LIFE (30d, 2w, 6m, 1y), counted back from "
    "the newest article in the index; undated articles get no boost. Off by default.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Why each hit is where it is: dense similarity, BM25 and the query terms it matched (with the analysis "
    "that matched them), language weight, coverage, fused and calibrated scores, rank on each side.",
)
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Answer each line of this file (or pipe, or - for standard input), in order, loading the model once.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="hybrid",
    show_default=True,
    help="Ranking: dense + BM25 fused, or either alone.",
)
@click.option(
    "--group",
    type=click.Choice(("article", "story")),
    default="article",
    show_default=True,
    help="One result per article, or per story: the articles about one event, in any source and language, "
    "each story with its best passage and its articles in date order.",
)
@click.option("--lang", "langs", multiple=True, help="Only articles in this language (repeatable), e.g. --lang fr.")
@click.option("--source", "sources", multiple=True, help="Only articles from this source (repeatable).")
@click.option("--date-from", default=None, help="Only articles dated on or after YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--date-to", default=None, help="Only articles dated on or before YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--model", default=None, help="Must be the model the index was built with (checked).")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Query embedding backend (default: the index's).",
)
@_store_option
def search(
    query: str | None,
    index_dir: Path | None,
    k: int,
    per_article: int,
    as_json: bool,
    fmt: str | None,
    facets: bool,
    recency: str | None,
    explain: bool,
    queries_file: Path | None,
    mode: str,
    group: str,
    langs: tuple[str, ...],
    sources: tuple[str, ...],
    date_from: str | None,
    date_to: str | None,
    model: str | None,
    backend: str | None,
    store: str | None,
) -> None:
    """Find the passages that best answer QUERY, in any language.

    \b
    Examples:
      indexer search "Who offered Washington cooperation on rare earths?"
      indexer search "coopération dans l'Arctique" -k 5 --json
      indexer search "Peskov" --mode bm25 --lang fr --date-from 2025-01
      indexer search "Arctic shipping" --explain        # why each hit is where it is
      indexer search "Arctic shipping" --facets --recency 30d
      indexer search "Arctic shipping" -k 1000 --format csv > results.csv
      indexer search "Arctic Council summit" --group story   # the stories: who covered it, when, in which languages
      indexer search --queries questions.txt --json > answers.jsonl
      indexer search "Arctic shipping" --store milvus://localhost:19530/passages
    """
    from . import export as exporting
    from .query import Filters
    from .recency import parse_half_life
    from .search import Searcher, SearchOptions

    if (query is None) == (queries_file is None):
        raise click.UsageError("give a QUERY or --queries FILE (one of them)")
    if as_json and fmt not in (None, "jsonl"):
        raise click.UsageError(f"--json is --format jsonl: give one of --json and --format {fmt}")
    fmt = "jsonl" if as_json else fmt or "text"
    if facets and fmt == "csv":
        raise click.UsageError("--facets works with --format text or jsonl (a CSV holds one row per hit)")
    queries: Iterable[str] = [query or ""] if queries_file is None else _query_lines(queries_file)
    filters = Filters(langs=langs, sources=sources, date_from=date_from, date_to=date_to).normalized()
    half_life = parse_half_life(recency) if recency is not None else None
    options = SearchOptions(k=k, per_article=per_article, mode=mode, filters=filters, explain=explain,
                            recency=half_life, group=group)  # fmt: skip
    _check_store(store)
    searcher = Searcher(_index_dir(index_dir), model=model, backend=backend, store=store)
    several = queries_file is not None  # a --queries export names each row's question
    first = True
    try:
        for q in queries:
            try:
                result = searcher.search(q, options)
                counts = searcher.match_counts(q, options) if facets else None
            except QueryError as exc:
                if queries_file is None:
                    raise
                if fmt == "jsonl":
                    results = "stories" if group == "story" else "hits"
                    click.echo(terminal.json_safe({"query": q, results: [], "error": str(exc)}))
                elif fmt == "csv":
                    click.echo(f"{q!r}: {exc}", err=True)
                else:
                    click.echo(f"{q!r}: {exc}\n")
                continue
            if fmt == "jsonl":
                out = result.to_json()
                click.echo(terminal.json_safe(out if counts is None else {**out, "facets": counts.to_json()}))
            elif fmt == "csv":
                rows = exporting.rows(result, with_query=several)
                click.echo(exporting.csv_text(rows, with_query=several, with_header=first, bom=first), nl=False)
                first = False
            else:
                print_hits(result, explain=explain)
                if counts is not None:
                    print_counts(counts)
    finally:
        searcher.close()


# ------------------------------------------------------------------ story
@main.command(context_settings=CONTEXT)
@click.argument("story_id")
@_index_option
@click.option("--json", "as_json", is_flag=True, help="Print the story as one JSON line.")
def story(story_id: str, index_dir: Path | None, as_json: bool) -> None:
    """Show one story: its articles in date order, with their sources, languages and dates.

    STORY_ID is a story_id as "indexer search --group story" prints it.

    \b
    Examples:
      indexer search "Arctic Council summit" --group story
      indexer story 1042
      indexer story 1042 --json
    """
    from .cli_output import print_story
    from .search import Searcher
    from .story_search import StoryNotFoundError, parse_story_id

    sid = parse_story_id(story_id)
    searcher = Searcher(_index_dir(index_dir))
    try:
        found = searcher.story(sid)
    finally:
        searcher.close()
    if found is None:
        raise StoryNotFoundError(sid)
    if as_json:
        click.echo(terminal.json_safe(found.to_json()))
    else:
        print_story(found)


def _query_lines(path: Path) -> Iterator[str]:
    """The lines of a queries file, pipe, FIFO or ``-`` (stdin), opened now and read as they are answered."""
    try:
        stream = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise IndexerError(
            f"queries file not found: {path} — give a file of one question per line, or - for stdin"
        ) from None
    except IsADirectoryError:
        raise IndexerError(f"--queries {path} is a folder — give a file of one question per line") from None
    except OSError as exc:
        raise IndexerError(f"cannot read the queries file {path} ({exc.strerror or exc})") from None

    def lines() -> Iterator[str]:
        try:
            for raw in stream:
                yield raw.decode("utf-8-sig", errors="replace").rstrip("\r\n")
        except OSError as exc:  # e.g. EISDIR from reading a folder opened on some systems
            raise IndexerError(f"cannot read the queries file {path} ({exc.strerror or exc})") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    return lines()


# ---------------------------------------------------------------- similar
@main.command(context_settings=CONTEXT)
@click.argument("article_id")
@_index_option
@click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True, help="Number of articles.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line.")
@click.option("--lang", "langs", multiple=True, help="Only articles in this language (repeatable).")
@click.option("--source", "sources", multiple=True, help="Only articles from this source (repeatable).")
@click.option("--date-from", default=None, help="Only articles dated on or after YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--date-to", default=None, help="Only articles dated on or before YYYY-MM-DD (or YYYY-MM, YYYY).")
def similar(
    article_id: str,
    index_dir: Path | None,
    k: int,
    as_json: bool,
    langs: tuple[str, ...],
    sources: tuple[str, ...],
    date_from: str | None,
    date_to: str | None,
) -> None:
    """The articles that cover the same ground as ARTICLE_ID, in any language.

    ARTICLE_ID is an id as search prints it (under each hit; "article_id" in --json).
    Its own near-duplicates are left out; a neighbour's copies are listed with it.

    \b
    Examples:
      indexer similar news/wire.jsonl#L12
      indexer similar dossier/arctic.md -k 20 --lang de --json
    """
    from .query import Filters
    from .search import Searcher

    filters = Filters(langs=langs, sources=sources, date_from=date_from, date_to=date_to).normalized()
    searcher = Searcher(_index_dir(index_dir))
    try:
        result = searcher.similar(article_id, k=k, filters=filters)
    finally:
        searcher.close()
    if as_json:
        click.echo(terminal.json_safe(result.to_json()))
    else:
        print_similar(result)


# ----------------------------------------------------------------- export
@main.command(context_settings=CONTEXT)
@_index_option
@click.option(
    "--store",
    required=True,
    metavar="URI",
    help="Milvus collection to fill: milvus://HOST:19530/COLLECTION or milvus-lite:///path/file.db/COLLECTION.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def export(index_dir: Path | None, store: str, quiet: bool) -> None:
    """Copy the index's live version into a Milvus collection (migrating a FAISS index).

    Only the difference is sent: run again after a build, it inserts new passages and
    deletes vanished ones; when the collection already holds the version it does nothing.
    Then search with --store URI. The index directory stays the source of truth.

    \b
    Examples:
      indexer export --store milvus://localhost:19530/passages
      indexer export --index ~/news-index --store milvus-lite:///srv/news.db/news
    """
    from .milvus_sync import export as run_export

    _check_store(store)
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="passage", file=sys.stderr, dynamic_ncols=True, disable=None, leave=False)
        bar.n = done
        bar.refresh()

    try:
        report = run_export(_index_dir(index_dir), store, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print_sync(report)


# ------------------------------------------------------------------- info
@main.command(context_settings=CONTEXT)
@_index_option
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and counts as JSON.")
def info(index_dir: Path | None, as_json: bool) -> None:
    """Describe an index: model, backend, chunker settings, counts, build time.

    \b
    Example:
      indexer info --index data/index
    """
    from .cli_output import print_info
    from .index import IndexDir

    idx = IndexDir(_index_dir(index_dir))
    snap_info = idx.info()
    if as_json:
        data = snap_info.to_json()
        click.echo(terminal.json_safe(data))
        return
    print_info(idx.path, snap_info)


# ------------------------------------------------------------------- eval
@main.command(name="eval", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_index_option
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="hybrid",
    show_default=True,
    help="Ranking to evaluate.",
)
@click.option("--compare", is_flag=True, help="Evaluate dense, BM25 and hybrid side by side in one run.")
@click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True, help="Results per query.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_cmd(file: Path, index_dir: Path | None, mode: str, compare: bool, k: int, as_json: bool) -> None:
    """Measure retrieval quality on labelled queries.

    FILE holds JSON lines {"query": ..., "relevant": [article ids]} (optionally
    "answer": text the top passage should contain). Prints R@1, R@5, R@10,
    MRR@10, nDCG@10 and query latency p50/p95.

    \b
    Examples:
      indexer eval questions.jsonl
      indexer eval questions.jsonl --compare
    """
    from .evaluate import evaluate, load_queries
    from .search import Searcher, SearchOptions

    queries = load_queries(file)
    searcher = Searcher(_index_dir(index_dir))
    modes = ["dense", "bm25", "hybrid"] if compare else [mode]
    rows = [(m, evaluate(searcher, queries, SearchOptions(k=k, mode=m, highlight=False))) for m in modes]
    if as_json:
        click.echo(terminal.json_safe({m: r.to_json() for m, r in rows}))
        return
    click.echo(f"{len(queries)} queries, index {searcher.idx.path}")
    click.echo(f"{'mode':8} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'nDCG@10':>8} {'p50 ms':>7} {'p95 ms':>7}")
    for m, r in rows:
        click.echo(
            f"{m:8} {r.r1:6.3f} {r.r5:6.3f} {r.r10:6.3f} {r.mrr10:7.3f} {r.ndcg10:8.3f} {r.p50_ms:7.1f} {r.p95_ms:7.1f}"
            + (f"  answer in top passage {r.answer_in_passage:.3f}" if r.answer_in_passage is not None else "")
        )


main.add_command(alerts_commands)
