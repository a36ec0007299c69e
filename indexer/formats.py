"""Parsers that turn one file's content into raw records (dicts with at least ``text``).

Each parser raises ``FormatError`` with a reason when the whole file is unusable;
multi-record formats yield ``(number, record)`` pairs (item, line or row number,
None for a file that holds one object) and a ``RecordError`` for a single bad
record, and go on.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .textio import NotText, decode, wide_codec

Record = dict[str, Any]


class FormatError(ValueError):
    """The file cannot be parsed; the message is the reason shown to the user."""


@dataclass(frozen=True)
class RecordError:
    """One record of a multi-record file was unusable (where: 'line 7', 'row 3', 'item 2')."""

    where: str
    reason: str


# --------------------------------------------------------------------------- txt
def parse_txt(text: str) -> Iterator[Record]:
    """First non-empty line is the title, the rest the body (the seed article's layout)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip():
            title = line.strip()
            body = "\n".join(lines[i + 1 :]).strip("\n")
            yield {"title": title, "text": body if body.strip() else title}
            return


# ---------------------------------------------------------------------------- md
# the closing fence may end the file, and the block may be empty
_FRONT = re.compile(r"\A---[ \t]*\n(?:(.*?)\n)?---[ \t]*(?:\n|\Z)", re.S)
_FRONT_KV = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")
_ATX = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> link text
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?!\w)"), r"\1"),
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]
_MD_LINE = [
    (re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$"), r"\1"),  # headings -> plain lines
    (re.compile(r"^\s{0,3}>\s?"), ""),  # block quotes
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+"), ""),  # list markers
]


def _md_plain(line: str) -> str:
    for pat, rep in _MD_LINE:
        line = pat.sub(rep, line)
    for pat, rep in _MD_INLINE:
        line = pat.sub(rep, line)
    return line


def parse_md(text: str) -> Iterator[Record]:
    """Title from the first heading (or front matter); body as plain text without markup."""
    record: Record = {}
    m = _FRONT.match(text)
    if m:
        for line in (m.group(1) or "").split("\n"):
            kv = _FRONT_KV.match(line)
            if kv and kv.group(2):
                record[kv.group(1).lower()] = kv.group(2).strip("\"'")
        text = text[m.end() :]
    lines = text.split("\n")
    title_at = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        atx = _ATX.match(line)
        if atx:
            title_at, heading = (i, i + 1), atx.group(1)
        elif i + 1 < len(lines) and _SETEXT.match(lines[i + 1]) and not _SETEXT.match(line):
            title_at, heading = (i, i + 2), line.strip()
        break
    if title_at is not None:
        record.setdefault("title", _md_plain(heading).strip())
        lines = lines[: title_at[0]] + lines[title_at[1] :]
    out, fenced = [], False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced and re.fullmatch(r"\s{0,3}([-*_])(\s*\1){2,}\s*", line):
            continue  # horizontal rule
        out.append(line if fenced else _md_plain(line))
    body = "\n".join(out).strip("\n")
    if not body.strip():
        body = record.get("title", "")
    record["text"] = body
    yield record


# -------------------------------------------------------------------------- html
_HTML_ROOT = re.compile(r"<html[\s>]", re.I)


def parse_html(text: str) -> Iterator[Record]:
    """Main text, title, date and author with trafilatura (boilerplate removed)."""
    import trafilatura

    if not _HTML_ROOT.search(text[:4096]):
        text = f"<html><body>{text}</body></html>"  # trafilatura finds nothing in a bare fragment
    try:
        doc = trafilatura.bare_extraction(
            text, with_metadata=True, favor_recall=True, include_comments=False, include_tables=True
        )
    except Exception as exc:  # trafilatura/lxml raise many types on broken markup
        raise FormatError(f"HTML could not be parsed ({type(exc).__name__})") from None
    if doc is None:
        raise FormatError("no article text found in the HTML")
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    body = (data.get("text") or "").strip()
    if not body:
        raise FormatError("no article text found in the HTML")
    title = (data.get("title") or "").strip()
    first, _, rest = body.partition("\n")
    if title and first.strip() == title and rest.strip():
        body = rest.strip()  # the headline is kept as the title, not repeated in the body
    record: Record = {"text": body, "title": title}
    for key, field in (("date", "date"), ("author", "author"), ("url", "url"), ("source", "sitename")):
        if data.get(field):
            record[key] = data[field]
    yield record


# -------------------------------------------------------------------------- json
def _records_from_json(value: Any) -> Iterator[tuple[int | None, Record | RecordError]]:
    if isinstance(value, dict) and "text" not in value:
        # {"articles": [...]} style wrappers: the one list of objects inside
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            value = lists[0]
    if isinstance(value, dict):
        yield None, value  # one article per file: its id is the path alone
        return
    for i, item in enumerate(value, start=1):
        if isinstance(item, dict):
            yield i, item
        else:
            yield i, RecordError(f"item {i}", f"expected an object, got {_json_type(item)}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def parse_json(text: str) -> Iterator[tuple[int | None, Record | RecordError]]:
    """Records of a JSON file: an object, a list of objects, or ``{"articles": [...]}``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise FormatError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"malformed JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, (dict, list)):
        raise FormatError("JSON must be an object or a list of objects")
    yield from _records_from_json(value)


def parse_jsonl_line(line: str, lineno: int) -> Record | RecordError | None:
    """The record of one JSONL line (None for a blank line)."""
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except RecursionError:
        return RecordError(f"line {lineno}", "JSON nested too deeply")
    except json.JSONDecodeError as exc:
        return RecordError(f"line {lineno}", f"malformed JSON ({exc.msg})")
    if not isinstance(value, dict):
        return RecordError(f"line {lineno}", f"expected an object, got {_json_type(value)}")
    return value


def iter_jsonl(stream: io.BufferedIOBase, max_line_bytes: int) -> Iterator[tuple[int, Record | RecordError]]:
    """Records of a JSON Lines file, read line by line so memory stays bounded."""
    head = stream.read(4096)
    stream.seek(0)
    codec = wide_codec(head)  # a binary file is one NotText, not an error per "line"
    readline: Callable[[int], bytes] = stream.readline
    if codec is not None:
        # UTF-16/32 must be decoded before splitting lines; re-encoded so the rest is shared
        text = io.TextIOWrapper(stream, encoding=codec)  # type: ignore[type-var]
        readline = lambda n: text.readline(n).encode("utf-8")  # noqa: E731
    for lineno, raw in enumerate(_bounded_lines(readline, max_line_bytes), start=1):
        if isinstance(raw, RecordError):
            yield lineno, RecordError(f"line {lineno}", raw.reason)
            continue
        try:
            line = _decode_line(raw, first=lineno == 1)
        except NotText as exc:
            yield lineno, RecordError(f"line {lineno}", str(exc))
            continue
        rec = parse_jsonl_line(line, lineno)
        if rec is not None:
            yield lineno, rec


def _bounded_lines(readline: Callable[[int], bytes], limit: int) -> Iterator[bytes | RecordError]:
    while True:
        line = readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            # skip the rest of the over-long line without holding it in memory
            while True:
                more = readline(1 << 20)
                if not more or more.endswith(b"\n"):
                    break
            yield RecordError("", f"line longer than {megabytes(limit)} (raise --max-file-mb to read it)")
            continue
        yield line


def megabytes(n: float) -> str:
    """``20 MB``, ``0.0195 MB``: small limits (in tests, or set by hand) do not show as 0."""
    return f"{n / 2**20:.3g} MB"


def _decode_line(raw: bytes, *, first: bool) -> str:
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if not raw.strip():
            return ""
        return decode(raw)


# --------------------------------------------------------------------------- csv
_DELIMITERS = ",;\t|"


def _csv_delimiter(text: str) -> str:
    """The delimiter that gives the header a 'text' column, else the sniffer's guess.

    Only the delimiter is guessed: the sniffer's other guesses (quote doubling,
    spaces) come from a sample and misread rows further down.
    """
    for delimiter in _DELIMITERS:
        try:
            header = next(csv.reader(io.StringIO(text[:65536], newline=""), delimiter=delimiter))
        except (StopIteration, csv.Error):
            continue
        if "text" in (h.strip().lower() for h in header):
            return delimiter
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def parse_csv(text: str, max_field: int) -> Iterator[tuple[int, Record | RecordError]]:
    """Records of a CSV file, one per row, with the delimiter sniffed."""
    csv.field_size_limit(min(max_field, sys.maxsize))
    # strict: a broken quote is an error for its row instead of silently swallowing the next rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_csv_delimiter(text), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("empty CSV") from None
    except csv.Error as exc:
        raise FormatError(f"malformed CSV header ({exc})") from None
    names = [h.strip().lower() for h in header]
    if "text" not in names:
        raise FormatError(f"CSV has no 'text' column (columns: {', '.join(names[:8]) or 'none'})")
    row_no = 1  # the header; rows are numbered as a spreadsheet shows them
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on with the next line
            row_no += 1
            yield row_no, RecordError(f"row {row_no}", f"malformed CSV row ({exc}); check its quotes")
            continue
        row_no += 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield row_no, RecordError(f"row {row_no}", f"{len(row)} fields where the header has {len(names)}")
            continue
        yield row_no, {k: v for k, v in zip(names, row) if k}
