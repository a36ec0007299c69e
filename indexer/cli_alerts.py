"""``indexer alerts``: save searches, and see what each build added that matches them. Logic in alerts.py."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import click

from . import terminal
from .cli_options import index_dir as _index_dir
from .cli_options import index_option as _index_option
from .settings import MODES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}




@click.group(context_settings=CONTEXT)
def alerts() -> None:
    """Saved searches: what each build added that matches them.

    Every build that publishes (indexer build, indexer watch) runs the saved searches against
    the articles it added or changed, and records those scoring at least the search's threshold.

    \b
    Examples:
      indexer alerts add arctic "Arctic shipping routes" --lang en --lang fr
      indexer alerts list
      indexer alerts new                 # each search's matches since you last asked
      indexer alerts new arctic --since 2026-12-01 --json
      indexer alerts rm arctic
    """


@alerts.command(context_settings=CONTEXT)
@click.argument("name")
@click.argument("query")
@_index_option
@click.option("--lang", "langs", multiple=True, help="Only articles in this language (repeatable), e.g. --lang fr.")
@click.option("--source", "sources", multiple=True, help="Only articles from this source (repeatable).")
@click.option("--date-from", default=None, help="Only articles dated on or after YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--date-to", default=None, help="Only articles dated on or before YYYY-MM-DD (or YYYY-MM, YYYY).")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True, help="Ranking, as for search.")
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="S",
    help="Score (0–1, the calibrated chance shown by search) a match needs; default: the calibration's "
    "no-close-match threshold for the mode.",
)
def add(
    name: str,
    query: str,
    index_dir: Path | None,
    langs: tuple[str, ...],
    sources: tuple[str, ...],
    date_from: str | None,
    date_to: str | None,
    mode: str,
    min_score: float | None,
) -> None:
    """Save QUERY under NAME; from the next build on, its new matches are recorded.

    \b
    Examples:
      indexer alerts add arctic "Arctic shipping routes"
      indexer alerts add wind "Offshore-Windparks in der Nordsee" --lang de --min-score 0.5
    """
    from . import alerts as lib
    from .query import Filters

    filters = Filters(langs=langs, sources=sources, date_from=date_from, date_to=date_to)
    target = _index_dir(index_dir)
    s = lib.add(target, name, query, mode=mode, filters=filters, min_score=min_score)
    click.echo(f"Saved {s.name!r}: {s.query!r} ({_settings(s)}); builds after version {s.created_version} report to it")


@alerts.command(name="list", context_settings=CONTEXT)
@_index_option
@click.option("--json", "as_json", is_flag=True, help="One JSON line per saved search.")
def list_cmd(index_dir: Path | None, as_json: bool) -> None:
    """List the saved searches, with their matches and how many you have not seen.

    \b
    Example:
      indexer alerts list --index ~/news-index
    """
    from . import alerts as lib

    found = lib.saved(_index_dir(index_dir))
    if as_json:
        for summary in found:
            click.echo(terminal.json_safe(summary.to_json()))
        return
    if not found:
        click.echo('No saved searches — save one with: indexer alerts add NAME "QUERY"')
        return
    for x in found:
        s = x.search
        bar = f"{x.threshold:.3f}" + (" (calibration's no-close-match threshold)" if x.default_threshold else "")
        click.echo(f"{s.name}: {s.query!r}  [{_settings(s)}]")
        last = f", the last in version {x.last_version}" if x.last_version else ""
        click.echo(f"  {x.matches} match(es){last}; {x.unseen} not seen yet; a match needs score ≥ {bar}")


@alerts.command(context_settings=CONTEXT)
@click.argument("name")
@_index_option
def rm(name: str, index_dir: Path | None) -> None:
    """Forget the saved search NAME and its matches.

    \b
    Example:
      indexer alerts rm arctic
    """
    from . import alerts as lib

    gone = lib.remove(_index_dir(index_dir), name)
    click.echo(f"Removed {name!r} and its {gone} match(es)")


@alerts.command(context_settings=CONTEXT)
@click.argument("name", required=False)
@_index_option
@click.option(
    "--since",
    default=None,
    metavar="VERSION|DATE",
    help="Matches found by builds after this version (14, 000014-…) or on or after this date (YYYY-MM-DD, local "
    "time); moves no mark. Default: since you last ran alerts new for that search.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per saved search, with its matches.")
def new(name: str | None, index_dir: Path | None, since: str | None, as_json: bool) -> None:
    """Show what builds found for NAME (or for every saved search) that is new to you.

    Without --since, "new" means found since you last ran this for that search, and
    running it marks them seen.

    \b
    Examples:
      indexer alerts new
      indexer alerts new arctic --since 000012
      indexer alerts new --since 2026-12-01 --json
    """
    from . import alerts as lib

    when = lib.Since.parse(since) if since is not None else None
    found = lib.new_matches(_index_dir(index_dir), name, since=when)
    if as_json:
        for batch in found:
            click.echo(terminal.json_safe(batch.to_json()))
        return
    if not found:
        click.echo('No saved searches — save one with: indexer alerts add NAME "QUERY"')
    for batch in found:
        s = batch.search
        click.echo(f"{s.name}: {len(batch.matches)} new {batch.since.describe()}  ({s.query!r})")
        for m in batch.matches:
            facts = " · ".join(x for x in (m.source, m.date, m.lang) if x)
            what = "changed" if m.updated else "added"
            click.echo(f"  [{m.score:.3f}] {m.title or m.article_id}" + (f"  {facts}" if facts else ""))
            click.echo(f"      {m.article_id}, {what} in version {m.version}" + (f"  {m.url}" if m.url else ""))
            excerpt = textwrap.shorten(" ".join(m.passage.split()), 200, placeholder=" …")
            click.echo(textwrap.indent(textwrap.fill(excerpt, 94), "      "))


def _settings(s: Any) -> str:
    f = s.filters
    parts = [s.mode]
    parts += [f"lang {', '.join(f.langs)}"] if f.langs else []
    parts += [f"source {', '.join(f.sources)}"] if f.sources else []
    if f.date_from or f.date_to:
        parts.append(f"dated {f.date_from or '…'} – {f.date_to or '…'}")
    if s.min_score is not None:
        parts.append(f"score ≥ {s.min_score:g}")
    return ", ".join(parts)
