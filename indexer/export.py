"""Search results as a spreadsheet (CSV) or JSON lines: one row per hit, the same columns in both.

What the page's "Download results" buttons and ``indexer search --format csv`` write. The
columns: ``rank, title, date, source, language, url, article_id, passage, score, story_id``
(``story_id`` empty for an index built before stories), led by ``query`` when several
questions are exported together (``--queries``).

* **Limit**: one question exports at most ``EXPORT_LIMIT`` (1,000) rows, the most results
  a search returns; ``export_options`` turns the page's search into that export
  (same question, filters and grouping; first 1,000 results; no highlighting, which the
  rows do not carry).
* **Spreadsheet-safe CSV**: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return is prefixed with an apostrophe, so a spreadsheet shows it as text
  instead of running it as a formula (CSV injection, OWASP's rule). Numbers (rank,
  score, story id) are written as numbers.
* **UTF-8 with a byte-order mark** by default: Excel opens a BOM-less UTF-8 CSV in the
  system's legacy code page (é becomes Ã©, Cyrillic and Chinese are lost); with the BOM
  it reads UTF-8, and LibreOffice, Numbers, Google Sheets and pandas
  (``encoding="utf-8-sig"``) accept it. Lines end with ``\\n``, which all of them read;
  text cells are quoted (so a newline or carriage return in a passage stays in its cell),
  numbers are not.
* **JSON lines**: one object per row with the same keys; ``story_id`` is null when absent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from .settings import MAX_K

if TYPE_CHECKING:
    from .search import SearchOptions, SearchResult

EXPORT_LIMIT = MAX_K  # rows per question: the most results one search returns
COLUMNS = ("rank", "title", "date", "source", "language", "url", "article_id", "passage", "score", "story_id")
BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

__all__ = ["BOM", "COLUMNS", "EXPORT_LIMIT", "ExportRow", "export_options", "rows", "to_csv", "to_jsonl"]


@dataclass(frozen=True)
class ExportRow:
    """One exported hit."""

    rank: int
    title: str
    date: str | None
    source: str | None
    language: str | None
    url: str | None
    article_id: str
    passage: str
    score: float
    story_id: int | None = None
    query: str | None = None  # set when several questions are exported together

    def to_json(self, *, with_query: bool = False) -> dict[str, Any]:
        """The row as a JSON object (``query`` first when asked for)."""
        out = {k: v for k, v in asdict(self).items() if k != "query"}
        out["score"] = round(self.score, 6)
        return {"query": self.query, **out} if with_query else out


def export_options(options: SearchOptions, limit: int = EXPORT_LIMIT) -> SearchOptions:
    """The search an export runs: the same question, filters and grouping, its first ``limit`` results."""
    return replace(options, k=max(1, min(limit, EXPORT_LIMIT)), offset=0, highlight=False, explain=False)


def rows(result: SearchResult, *, with_query: bool = False) -> list[ExportRow]:
    """The result's hits as rows (at most ``EXPORT_LIMIT``), with the question when ``with_query``."""
    q = result.query if with_query else None
    return [
        ExportRow(rank=h.rank, title=h.title, date=h.date, source=h.source, language=h.lang, url=h.url,
                  article_id=h.article_id, passage=h.text, score=h.score, story_id=h.story_id, query=q)
        for h in result.hits[:EXPORT_LIMIT]
    ]  # fmt: skip


def safe_cell(value: object) -> object:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ tab or CR gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value


def header(*, with_query: bool = False) -> list[str]:
    """The column names, in order."""
    return ["query", *COLUMNS] if with_query else list(COLUMNS)


def csv_text(
    found: Iterable[ExportRow], *, with_query: bool = False, with_header: bool = True, bom: bool = True
) -> str:
    """Rows as CSV text: the BOM and the header line first unless told otherwise (to append to an export)."""
    buf = io.StringIO()
    if bom:
        buf.write(BOM)
    # every text cell quoted: a carriage return inside one cannot end the row, whatever the line end
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    if with_header:
        w.writerow(header(with_query=with_query))
    for r in found:
        values = r.to_json(with_query=with_query)
        w.writerow([safe_cell(values[c]) for c in header(with_query=with_query)])
    return buf.getvalue()


def jsonl_text(found: Iterable[ExportRow], *, with_query: bool = False) -> str:
    """Rows as JSON lines (UTF-8 text, non-ASCII kept), one object per line."""
    return "".join(json.dumps(r.to_json(with_query=with_query), ensure_ascii=False) + "\n" for r in found)


def to_csv(results: Sequence[SearchResult], *, bom: bool = True) -> str:
    """One or more results as one CSV document (a ``query`` column when there are several)."""
    several = len(results) > 1
    return csv_text((r for res in results for r in rows(res, with_query=several)), with_query=several, bom=bom)


def to_jsonl(results: Sequence[SearchResult]) -> str:
    """One or more results as JSON lines, one row per hit (a ``query`` key when there are several)."""
    several = len(results) > 1
    return jsonl_text((r for res in results for r in rows(res, with_query=several)), with_query=several)
