"""Parsers that turn one file's content into raw records (dicts with at least ``text``).

Each parser raises ``FormatError`` with a reason when the whole file is unusable;
multi-record formats yield ``RecordError`` for a single bad record and go on.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .textio import NotText, decode

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
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
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
        for line in m.group(1).split("\n"):
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
def parse_html(text: str) -> Iterator[Record]:
    """Main text, title, date and author with trafilatura (boilerplate removed)."""
    import trafilatura

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
def _records_from_json(value: Any) -> Iterator[Record | RecordError]:
    items = value if isinstance(value, list) else [value]
    if isinstance(value, dict) and "text" not in value:
        # {"articles": [...]} style wrappers: the one list of objects inside
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(lists) == 1:
            items = lists[0]
    for i, item in enumerate(items):
        if isinstance(item, dict):
            yield item
        else:
            yield RecordError(f"item {i + 1}", f"expected an object, got {type(item).__name__}")


def parse_json(text: str) -> Iterator[Record | RecordError]:
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
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except RecursionError:
        return RecordError(f"line {lineno}", "JSON nested too deeply")
    except json.JSONDecodeError as exc:
        return RecordError(f"line {lineno}", f"malformed JSON ({exc.msg})")
    if not isinstance(value, dict):
        return RecordError(f"line {lineno}", f"expected an object, got {type(value).__name__}")
    return value


def iter_jsonl(stream: io.BufferedIOBase, max_line_bytes: int) -> Iterator[tuple[int, Record | RecordError]]:
    """Records of a JSON Lines file, read line by line so memory stays bounded."""
    for lineno, raw in enumerate(_bounded_lines(stream, max_line_bytes), start=1):
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


def _bounded_lines(stream: io.BufferedIOBase, limit: int) -> Iterator[bytes | RecordError]:
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            # skip the rest of the over-long line without holding it in memory
            while True:
                more = stream.readline(1 << 20)
                if not more or more.endswith(b"\n"):
                    break
            yield RecordError("", f"line longer than {limit // 2**20} MB")
            continue
        yield line


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
def parse_csv(text: str, max_field: int) -> Iterator[Record | RecordError]:
    csv.field_size_limit(min(max_field, sys.maxsize))
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("empty CSV") from None
    except csv.Error as exc:
        raise FormatError(f"malformed CSV header ({exc})") from None
    names = [h.strip().lower() for h in header]
    if "text" not in names:
        raise FormatError(f"CSV has no 'text' column (columns: {', '.join(names[:8]) or 'none'})")
    row_no = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FormatError(f"malformed CSV at row {row_no + 1} ({exc})") from None
        row_no += 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield RecordError(f"row {row_no}", f"{len(row)} fields where the header has {len(names)}")
            continue
        yield {k: v for k, v in zip(names, row) if k}
