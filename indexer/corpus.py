"""Read articles from files and folders; every unusable file or record is reported, never fatal."""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import formats, language
from .errors import SourceNotFoundError
from .formats import FormatError, Record, RecordError, megabytes
from .layout import IndexLayout
from .records import Article, Skipped
from .textio import NotText, decode

EXTENSIONS = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
KNOWN_FIELDS = ("id", "text", "title", "url", "date", "source", "author", "lang")
# multi-record formats: (id suffix, where a bad record is) for record number n
NUMBERING = {"json": ("#{}", "item {}"), "jsonl": ("#L{}", "line {}"), "csv": ("#row{}", "row {}")}


@dataclass(frozen=True)
class ReadSettings:
    """How source files are read."""

    follow_symlinks: bool = False  # follow links that lead outside the source roots
    max_file_mb: float = 20.0  # whole files (all but JSONL); JSONL is streamed, this bounds its lines
    detect_language: bool = True

    @property
    def max_bytes(self) -> int:
        """The size limit in bytes."""
        return int(self.max_file_mb * 2**20)


@dataclass(frozen=True)
class Unchanged:
    """A file ``read_sources`` did not open because its ``skip`` callback vouched for it."""

    path: Path  # absolute and resolved, the file cache's key
    state: object  # what ``skip`` returned for the file


@dataclass(frozen=True, slots=True)
class _Found:
    """A readable file under the sources, as the walk met it."""

    path: Path
    root: Path
    st: os.stat_result  # followed through symlinks, taken before the file is read
    target: Path | None  # where a symlink leads (already resolved); None for a plain file


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as printable text: undecodable bytes and control characters escaped."""
    return _printable(os.fsencode(path).decode("utf-8", "backslashreplace"))


def _printable(text: str) -> str:
    # escape only what breaks a line or a terminal: "café 漢字" stays readable
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text
    )


def check_sources(sources: Iterable[Path]) -> list[Path]:
    """Validate sources up front: each must exist, and a source that is a link must lead somewhere."""
    out = []
    for src in sources:
        p = Path(src)
        try:
            p.resolve(strict=True)
        except FileNotFoundError:
            raise SourceNotFoundError(p, "a symlink to nothing" if p.is_symlink() else "") from None
        except (RuntimeError, OSError) as exc:  # RuntimeError: Python 3.11's "Symlink loop"; OSError: ELOOP, EACCES
            why = "a symlink loop" if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP else exc.strerror
            raise SourceNotFoundError(p, why or str(exc)) from None
        out.append(p)
    return out


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _is_index_folder(directory: Path) -> bool:
    """A folder ``indexer build`` writes: ``versions/`` beside a manifest or a ``.work/`` folder."""
    return IndexLayout(directory).looks_like_index()


def iter_files(sources: Iterable[Path], settings: ReadSettings) -> Iterator[tuple[Path, Path] | Skipped]:
    """``(file, root)`` for every supported file under the sources, in a stable order."""
    for item in _walk(sources, settings):
        yield item if isinstance(item, Skipped) else (item.path, item.root)


def _walk(sources: Iterable[Path], settings: ReadSettings) -> Iterator[_Found | Skipped]:
    """Every supported file under the sources with its ``stat``, in a stable order; problems as ``Skipped``."""
    roots = check_sources(sources)
    real_roots = [r.resolve() for r in roots]
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()  # a link to a file already read would duplicate its articles

    def walk(directory: Path, root: Path) -> Iterator[_Found | Skipped]:
        try:
            st = directory.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                yield Skipped(display_path(directory), "folder already read (symlink loop or repeat)")
                return
            seen_dirs.add(key)
            if _is_index_folder(directory):
                # an index kept inside its sources: its manifests and data are not articles
                yield Skipped(display_path(directory), "an index folder, not read as a source")
                return
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except PermissionError:
            yield Skipped(display_path(directory), "permission denied")
            return
        except OSError as exc:
            if directory == root and isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                # gone since check_sources: a build that went on would delete every article it holds
                raise SourceNotFoundError(root) from None
            yield Skipped(display_path(directory), f"cannot list folder ({exc.strerror or exc})")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files and folders (.git, .DS_Store, editor swap files)
            path = Path(entry.path)
            yield from visit(path, root)

    def visit(path: Path, root: Path) -> Iterator[_Found | Skipped]:
        shown = display_path(path)
        target = None
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                yield Skipped(shown, "broken or looping symlink")
                return
            if not settings.follow_symlinks and not _within(target, real_roots):
                yield Skipped(shown, "symlink leads outside the sources (pass --follow-symlinks to read it)")
                return
        try:
            st = path.stat()
        except PermissionError:
            yield Skipped(shown, "permission denied")
            return
        except OSError as exc:
            yield Skipped(shown, f"cannot read ({exc.strerror or exc})")
            return
        if stat.S_ISDIR(st.st_mode):
            yield from walk(path, root)
        elif not stat.S_ISREG(st.st_mode):
            yield Skipped(shown, "not a regular file")
        elif path.suffix.lower() not in EXTENSIONS:
            yield Skipped(shown, f"unsupported file type '{_printable(path.suffix) or '(none)'}'")
        elif (st.st_dev, st.st_ino) in seen_files:
            yield Skipped(shown, "same file as one already read (a link to it)")
        else:
            seen_files.add((st.st_dev, st.st_ino))
            yield _Found(path, root, st, target)

    for root in roots:
        if root.is_dir():
            yield from walk(root, root)
        else:
            yield from visit(root, root.parent)


# ------------------------------------------------------------------ records
def normalize_date(value: Any) -> str | None:
    """ISO 8601 date (``YYYY-MM-DD``) or timestamp for the common ways dates are written."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 1e9 <= value < 1e13:  # Unix seconds or milliseconds
            ts = value / 1000 if value >= 1e11 else value
            return datetime.fromtimestamp(ts, tz=UTC).date().isoformat()
        return None
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d{10,13}(\.\d+)?", text):  # Unix time as text (CSV cells are all text)
        return normalize_date(float(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None:
        from email.utils import parsedate_to_datetime

        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None:
        parsed = _parse_full_date(text)
        if parsed is None:
            return None
    if parsed.hour == parsed.minute == parsed.second == 0 and len(text) <= 12:
        return parsed.date().isoformat()
    return parsed.date().isoformat() if parsed.tzinfo is None else parsed.isoformat()


# Month names (and their usual abbreviations and genitive forms) of the languages news archives are
# most often written in, for dates such as "27 février 2025", "27. Februar 2025", "1 de marzo de 2025" or
# "27 февраля 2025"; dateutil reads English ones itself.
_MONTHS = {
    1: "janvier janv january januar jänner enero gennaio janeiro januari января январь styczeń stycznia",
    2: "février févr fevrier february februar febrero febbraio fevereiro februari февраля февраль luty lutego",
    3: "mars march märz maerz marzo março maart марта март marzec marca",
    4: "avril avr april abril aprile апреля апрель kwiecień kwietnia",
    5: "mai may mayo maggio maio mei мая май maj maja",
    6: "juin june juni junio giugno junho июня июнь czerwiec czerwca",
    7: "juillet juil july juli julio luglio julho июля июль lipiec lipca",
    8: "août aout august agosto augustus августа август sierpień sierpnia",
    9: "septembre sept september septiembre settembre setembro сентября сентябрь wrzesień września",
    10: "octobre oct october oktober octubre ottobre outubro октября октябрь październik października",
    11: "novembre nov november noviembre novembro ноября ноябрь listopad listopada",
    12: "décembre déc decembre december dezember diciembre dicembre dezembro декабря декабрь grudzień grudnia",
}
_MONTH_OF = {name: m for m, names in _MONTHS.items() for name in names.split()}
_MONTH_WORD = re.compile(r"[^\W\d_]+\.?")
_FILLERS = frozenset(("de", "del", "le", "den", "der", "el", "года", "г", "r", "roku"))


def _english_months(text: str) -> str:
    """``text`` with other languages' month names as numbers dateutil reads ("27 février 2025" → "27 2 2025")."""
    text = re.sub(r"\b1(er|º|°)(?=\s)", "1", text)  # "1er mars", "1º de marzo"

    def month(m: re.Match[str]) -> str:
        word = m.group().rstrip(".").lower()
        if word in _MONTH_OF:
            return f" {_MONTH_OF[word]} "
        return " " if word in _FILLERS else m.group()

    out = _MONTH_WORD.sub(month, text)
    return " ".join(out.replace(".", " ").split()) if out != text else text


def _parse_full_date(text: str) -> datetime | None:
    """Dateutil's reading of ``text`` if it names a whole day, else None.

    Dateutil fills a missing year, month or day from today ("2025" → today's date in
    2025), so a date read differently with two different defaults was incomplete.
    """
    text = _english_months(text)
    try:
        from dateutil import parser as dateparser

        a = dateparser.parse(text, dayfirst=True, fuzzy=False, default=datetime(2000, 1, 1))
        b = dateparser.parse(text, dayfirst=True, fuzzy=False, default=datetime(2001, 2, 2))
    except (ImportError, ValueError, OverflowError, TypeError):
        return None
    return a if a.date() == b.date() else None


def _clean_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return None
    text = _SURROGATE.sub("\ufffd", str(value)).strip()
    return text or None


# a JSON "\ud800" decodes to a lone surrogate, which no UTF-8 writer (SQLite, the sentence splitter) accepts
_SURROGATE = re.compile("[\ud800-\udfff]")


def to_article(record: Record, default_id: str, path: str) -> Article | str:
    """Build an ``Article`` from a raw record, or return the reason it is unusable."""
    fields = {str(k).strip().lower(): v for k, v in record.items()}
    text = fields.get("text")
    if not isinstance(text, str):
        return "no 'text' field" if text is None else "'text' is not a string"
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).replace("\x00", "")
    text = _SURROGATE.sub("\ufffd", text)
    if not text.strip():
        return "empty text"
    ident = _clean_str(fields.get("id")) or default_id
    title = unicodedata.normalize("NFC", _clean_str(fields.get("title")) or "")
    lang = _clean_str(fields.get("lang"))
    code = language.normalize_code(lang) if lang else None
    meta = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS}
    raw_date = fields.get("date")
    date = normalize_date(raw_date)
    if raw_date not in (None, "") and date is None:
        meta["date_raw"] = str(raw_date)
    return Article(
        id=ident,
        text=text,
        title=title,
        url=_clean_str(fields.get("url")),
        date=date,
        source=_clean_str(fields.get("source")),
        author=_clean_str(fields.get("author")),
        lang=code,
        path=path,
        meta=meta,
    )


def _with_language(article: Article) -> Article:
    if article.lang:
        return article

    lang, _ = language.detect(f"{article.title}\n{article.text}")
    return replace(article, lang=lang)


def _relative(path: Path, root: Path) -> str:
    """The file's name below its source root, as articles' ``path`` and default ids spell it."""
    rel = path.relative_to(root).as_posix() if path != root else path.name
    return _printable(os.fsencode(rel).decode("utf-8", "backslashreplace"))


def read_file(path: Path, root: Path, settings: ReadSettings) -> Iterator[Article | Skipped]:
    """Articles of one file; problems come out as ``Skipped`` entries, never exceptions."""
    rel = _relative(path, root)
    shown = display_path(path)
    kind = EXTENSIONS[path.suffix.lower()]
    produced = False
    more: Counter[str] = Counter()  # skipped records past the first few: counted, not listed
    try:
        size = path.stat().st_size
        listed = 0
        for n, rec in _records(path, kind, size, settings):
            for out in _emit(rec, kind, n, rel, shown, settings):
                produced = True
                if isinstance(out, Skipped):
                    listed += 1
                    if listed > SKIPS_LISTED_PER_FILE:
                        more[out.reason if len(more) < 8 or out.reason in more else "other reasons"] += 1
                        continue
                yield out
        if not produced:
            yield Skipped(shown, "empty file" if size == 0 else "no articles found in the file")
    except PermissionError:
        yield Skipped(shown, "permission denied")
    except (NotText, FormatError) as exc:
        yield Skipped(shown, str(exc))
    except UnicodeDecodeError as exc:  # a streamed UTF-16/32 JSONL file, invalid further on
        yield Skipped(shown, f"invalid {exc.encoding} text further on in the file ({exc.reason})")
    except RecursionError:
        yield Skipped(shown, "structure nested too deeply")
    except MemoryError:
        yield Skipped(shown, "too large to read in memory")
    except OSError as exc:
        yield Skipped(shown, f"cannot read ({exc.strerror or exc})")
    except Exception as exc:  # a parser bug must cost this file, not the build
        yield Skipped(shown, " ".join(f"cannot read ({type(exc).__name__}: {exc})".split()))
    if more:
        # one line for the rest, however many: a file of two million bad records is not a report of them
        reasons = ", ".join(f"{n:,} × {why}" for why, n in more.most_common())
        yield Skipped(shown, f"{more.total():,} more records skipped ({reasons})")


SKIPS_LISTED_PER_FILE = 5  # bad records of one file reported one by one; the rest are counted


def _records(
    path: Path, kind: str, size: int, settings: ReadSettings
) -> Iterator[tuple[int | None, Record | RecordError]]:
    """``(record number or None, record)`` of one file; raises for a file unusable as a whole."""
    if kind == "jsonl":  # streamed line by line: a dump may be far larger than memory
        with open(path, "rb") as stream:
            yield from formats.iter_jsonl(stream, settings.max_bytes)
        return
    if size > settings.max_bytes:
        raise FormatError(
            f"too large ({megabytes(size)} > {settings.max_file_mb:g} MB; raise --max-file-mb to read it)"
        )
    with open(path, "rb") as stream:
        data = stream.read(settings.max_bytes + 1)
    text = decode(data)
    if kind == "json":
        yield from formats.parse_json(text)
    elif kind == "csv":
        yield from formats.parse_csv(text, settings.max_bytes)
    else:
        parse = {"txt": formats.parse_txt, "md": formats.parse_md, "html": formats.parse_html}[kind]
        for rec in parse(text):
            yield None, rec


def _emit(
    rec: Record | RecordError, kind: str, n: int | None, rel: str, shown: str, settings: ReadSettings
) -> Iterator[Article | Skipped]:
    if isinstance(rec, RecordError):
        yield Skipped(f"{shown} ({rec.where})" if rec.where else shown, rec.reason)
        return
    suffix, where = NUMBERING[kind] if n is not None else ("", "")
    art = to_article(rec, rel + suffix.format(n), rel)
    if isinstance(art, str):
        yield Skipped(f"{shown} ({where.format(n)})" if where else shown, art)
        return
    yield _with_language(art) if settings.detect_language else art


def count_files(sources: Iterable[Path], settings: ReadSettings | None = None) -> int:
    """How many readable files the sources hold (for a progress bar)."""
    return sum(1 for f in iter_files(sources, settings or ReadSettings()) if not isinstance(f, Skipped))


def read_sources(
    sources: Iterable[Path],
    settings: ReadSettings | None = None,
    *,
    on_file: Callable[[Path], None] | None = None,
    skip: Callable[[Path, os.stat_result], object | None] | None = None,
    on_read: Callable[[Path, os.stat_result, list[str]], None] | None = None,
    on_problem: Callable[[Path, str], None] | None = None,
) -> Iterator[Article | Skipped | Unchanged]:
    """Every article under ``sources``, streamed; duplicate ids are reported, not merged.

    Args:
        sources: Files and folders to read.
        settings: How to read them.
        on_file: Called with each file once it is done (read or vouched for).
        skip: Asked ``(absolute resolved path, stat)`` before a file is opened; a non-None
            answer means the file is not read and an ``Unchanged`` carrying it is yielded.
            When that answer has an ``articles`` sequence of ids, they count as read (for
            duplicate ids) and, should one of them already be taken, the file is read after all.
        on_read: Called ``(absolute resolved path, stat, article ids)`` after a file was read
            cleanly, every record an article; not called for a file with a problem, so that
            it is read, and its problems reported, again next time. The stat is the one taken
            before reading, so a file changed meanwhile differs from it next time.
        on_problem: Called ``(absolute resolved path, shown path)`` after a file that could not be
            read cleanly (skipped whole, or some of its records), so its earlier articles can be kept.
    """
    settings = settings or ReadSettings()
    seen: dict[str, str] = {}
    resolved_dirs: dict[Path, Path] = {}
    for item in _walk(sources, settings):
        if isinstance(item, Skipped):
            yield item
            continue
        path, root = item.path, item.root
        wanted = skip is not None or on_read is not None or on_problem is not None
        real = _resolved(item, resolved_dirs) if wanted else path
        if skip is not None:
            state = skip(real, item.st)
            if state is not None and _claim(state, display_path(path), seen):
                yield Unchanged(real, state)
                if on_file is not None:
                    on_file(path)
                continue
        ids: list[str] = []
        clean = True
        shown = display_path(path)
        for art in read_file(path, root, settings):
            if isinstance(art, Article):
                derived = bool(art.path and art.id.startswith(art.path))  # from the file's name, not a record's id
                if art.id in seen and derived and root.name and f"{root.name}/{art.id}" not in seen:
                    # two sources hold the same relative path: the later one's ids are spelt with its
                    # folder's name, so both are kept (the first keeps the id it always had)
                    art = replace(art, id=f"{root.name}/{art.id}")
                first = seen.get(art.id)
                if first is not None:
                    clean = False
                    fix = ("rename one of the files" if derived
                           else 'give the records distinct "id" fields')  # fmt: skip
                    yield Skipped(shown, f"duplicate article id {art.id!r}, already read from {first} — {fix}")
                    continue
                seen[art.id] = shown
                ids.append(art.id)
            else:
                clean = False
            yield art
        if on_read is not None and clean:
            on_read(real, item.st, ids)
        elif on_problem is not None and not clean:
            on_problem(real, shown)
        if on_file is not None:
            on_file(path)


def _resolved(found: _Found, resolved_dirs: dict[Path, Path]) -> Path:
    """The file's absolute resolved path, resolving each folder once.

    ``Path.resolve`` costs ~20 µs a file (an lstat per path component); a plain file's
    path is its resolved folder plus its name, and a symlink's target the walk resolved already.
    """
    if found.target is not None:
        return found.target
    folder = found.path.parent
    real = resolved_dirs.get(folder)
    if real is None:
        real = resolved_dirs[folder] = folder.resolve()
    return real / found.path.name


def _claim(state: object, rel: str, seen: dict[str, str]) -> bool:
    """Take the ids an unchanged file held, unless one is already taken (then the file must be read)."""
    ids = getattr(state, "articles", None)
    if not isinstance(ids, (tuple, list)):
        return True  # an opaque state: nothing to check
    if any(i in seen for i in ids):
        # read it as a full build would, so the duplicate is reported the same way
        return False
    for i in ids:
        seen[i] = rel
    return True
