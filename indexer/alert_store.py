"""Where saved searches and their matches are kept (records: alert_records.py): one SQLite database.

It lives at ``<index>/alerts/alerts.sqlite`` (``IndexLayout.alerts``), outside ``versions/``
and ``segments/``, so publishing, merging, collecting garbage and ``--full`` rebuilds leave
it alone. Every change is one SQLite transaction (atomic, and safe between processes:
the CLI adding or removing a search while a build records matches). Besides the searches
and their matches it keeps the percolator's state (percolate.py): per search its query
vector and the candidates it was last ranked against, and collection statistics.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .alert_records import AlertMatch, Cuts, FrameState, RunRecord, SavedSearch, version_number
from .errors import AlertError
from .frame import Frame
from .query import Filters

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a search saved again under a removed name starts afresh
    name TEXT NOT NULL UNIQUE,
    query TEXT NOT NULL,
    mode TEXT NOT NULL,
    filters TEXT NOT NULL,        -- JSON: langs, sources, date_from, date_to
    min_score REAL,               -- NULL: the calibration's no-close-match threshold
    created_at TEXT NOT NULL,
    created_version TEXT NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0,  -- the newest match "alerts new" has shown
    seen_at TEXT,
    -- the percolator's state (percolate.py)
    fingerprint TEXT,             -- the model of ``vector``
    vector BLOB,                  -- the query's embedding, float32
    frame BLOB,                   -- the passages it was last ranked against, with their scores' inputs (frame.py)
    frame_key TEXT,               -- the passage set (``percolate.corpus_key``) the frame was taken from
    cuts TEXT,                    -- JSON: the 100th and 200th best score of each side in the frame
    lexical TEXT,                 -- JSON: the query as the lexical side reads it, for the languages it names
    lost INTEGER NOT NULL DEFAULT 0  -- frame members deleted since it was last taken from the whole version
);
CREATE TABLE IF NOT EXISTS matches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- increasing: the order matches were found in
    search INTEGER NOT NULL,
    version TEXT NOT NULL,
    version_no INTEGER NOT NULL,
    found_at TEXT NOT NULL,
    article_id TEXT NOT NULL,
    title TEXT NOT NULL,
    passage_id INTEGER NOT NULL,
    passage TEXT NOT NULL,
    score REAL NOT NULL,
    url TEXT, date TEXT, source TEXT, lang TEXT,
    updated INTEGER NOT NULL,     -- 1: a new version of an article the index held
    UNIQUE (search, version, article_id)
);
CREATE INDEX IF NOT EXISTS matches_search ON matches(search, id);
CREATE TABLE IF NOT EXISTS runs (
    version TEXT PRIMARY KEY, at TEXT NOT NULL, searches INTEGER NOT NULL, passages INTEGER NOT NULL,
    matches INTEGER NOT NULL, seconds REAL NOT NULL, full INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (id INTEGER PRIMARY KEY CHECK (id = 1), key TEXT NOT NULL, data TEXT NOT NULL);
"""


def name_taken(name: str) -> AlertError:
    """The error for a name in use."""
    return AlertError(f'a search named {name!r} is saved already — choose another name, or run "indexer alerts rm '
                      f'{name}" first')  # fmt: skip


class AlertStore:
    """The saved searches' database of one index."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        self._frames: dict[int, Frame] = {}
        if not create and not path.is_file():
            raise AlertError(
                f'no saved searches at {path.parent.parent} — save one with "indexer alerts add NAME QUERY"'
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a build and the CLI may write at the same time: wait for the other's transaction
            self.con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.con.execute("PRAGMA journal_mode = WAL")
            self.con.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise AlertError(f"the saved searches at {path} are unreadable ({exc}) — move the file away") from None
        except OSError as exc:
            raise AlertError(f"cannot open the saved searches at {path} ({exc.strerror or exc})") from None

    def _migrate(self) -> None:
        """Create the tables of a new database; an existing one is only read (the page opens it on every rerun)."""
        row = self.con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'info'").fetchone()
        found = self.con.execute("SELECT value FROM info WHERE key = 'schema_version'").fetchone() if row else None
        if found is not None and found[0] == str(SCHEMA_VERSION):
            return
        if found is not None and (not str(found[0]).isdigit() or int(found[0]) > SCHEMA_VERSION):
            raise AlertError(
                f"the saved searches at {self.path} were written by a newer indexer (schema {found[0]}) — upgrade"
            )
        self.con.executescript(_SCHEMA)
        self.con.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (so two writers queue instead of failing halfway)."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # ------------------------------------------------------------ searches
    def searches(self) -> list[SavedSearch]:
        """Every saved search, by name."""
        rows = self.con.execute(
            "SELECT id, name, query, mode, filters, min_score, created_at, created_version, seen FROM searches"
            " ORDER BY name"
        )
        return [_search(r) for r in rows]

    def get(self, name: str) -> SavedSearch | None:
        """The search saved under ``name``, or None."""
        r = self.con.execute(
            "SELECT id, name, query, mode, filters, min_score, created_at, created_version, seen FROM searches"
            " WHERE name = ?",
            (name,),
        ).fetchone()
        return _search(r) if r is not None else None

    def insert(self, s: SavedSearch, state: FrameState) -> SavedSearch:
        """Save a search with its first percolator state; refuses a name in use."""
        f = s.filters
        filters = json.dumps({"langs": list(f.langs), "sources": list(f.sources), "date_from": f.date_from,
                              "date_to": f.date_to})  # fmt: skip
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM searches WHERE name = ?", (s.name,)).fetchone():
                raise name_taken(s.name)
            # matches found before it was saved are not news to it: its mark starts at the newest
            seen = con.execute("SELECT coalesce(max(id), 0) FROM matches").fetchone()[0]
            cur = con.execute(
                "INSERT INTO searches (name, query, mode, filters, min_score, created_at, created_version, seen,"
                " fingerprint, vector, frame_key, cuts, lexical, lost, frame)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.name, s.query, s.mode, filters, s.min_score, s.created_at, s.created_version, seen,
                 *_state_columns(state), state.frame.to_bytes()),
            )  # fmt: skip
        rowid = cur.lastrowid
        assert rowid is not None
        return SavedSearch(s.name, s.query, s.mode, s.filters, s.min_score, s.created_at, s.created_version, rowid,
                           seen)  # fmt: skip

    def remove(self, name: str) -> int:
        """Forget a search and its matches; returns how many matches went with it (raises if unknown)."""
        with self.transaction() as con:
            row = con.execute("SELECT id FROM searches WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AlertError(f"no saved search named {name!r}{self._known()}")
            gone = con.execute("DELETE FROM matches WHERE search = ?", (row[0],)).rowcount
            con.execute("DELETE FROM searches WHERE id = ?", (row[0],))
        return int(gone)

    def _known(self) -> str:
        names = [s.name for s in self.searches()]
        return f" — saved: {', '.join(names)}" if names else ' — none is saved ("indexer alerts add NAME QUERY")'

    def require(self, name: str) -> SavedSearch:
        """The search saved under ``name``; raises naming the saved ones when there is none."""
        found = self.get(name)
        if found is None:
            raise AlertError(f"no saved search named {name!r}{self._known()}")
        return found

    # ------------------------------------------------------------- matches
    def matches(
        self, search: int, *, after: int = 0, since_version: int | None = None, since_time: str | None = None
    ) -> list[AlertMatch]:
        """A search's matches, oldest first, with an id above ``after``.

        And, when given, of a version after ``since_version``, or found at or after ``since_time`` (UTC ISO 8601).
        """
        sql = (
            "SELECT m.id, s.name, m.version, m.found_at, m.article_id, m.title, m.passage_id, m.passage, m.score,"
            " m.url, m.date, m.source, m.lang, m.updated FROM matches m JOIN searches s ON s.id = m.search"
            " WHERE m.search = ? AND m.id > ?"
        )
        args: list[Any] = [search, after]
        if since_version is not None:
            sql += " AND m.version_no > ?"
            args.append(since_version)
        if since_time is not None:
            sql += " AND m.found_at >= ?"
            args.append(since_time)
        rows = self.con.execute(sql + " ORDER BY m.id", args)
        return [_match(r) for r in rows]

    def mark_seen(self, search: int, match: int, at: str) -> None:
        """Record that ``alerts new`` showed a search's matches up to ``match``."""
        with self.transaction() as con:
            con.execute("UPDATE searches SET seen = max(seen, ?), seen_at = ? WHERE id = ?", (match, at, search))

    def counts_after(self, match: int) -> dict[int, int]:
        """Per search id, its matches with an id above ``match``."""
        rows = self.con.execute("SELECT search, count(*) FROM matches WHERE id > ? GROUP BY search", (match,))
        return {int(s): int(n) for s, n in rows}

    def totals(self) -> dict[int, tuple[int, str | None]]:
        """Per search id, its number of matches and the version of the newest."""
        rows = self.con.execute("SELECT search, count(*), max(version) FROM matches GROUP BY search")
        return {int(s): (int(n), v) for s, n, v in rows}

    def latest(self) -> int:
        """The newest match's id (0 when there is none)."""
        return int(self.con.execute("SELECT coalesce(max(id), 0) FROM matches").fetchone()[0])

    # ---------------------------------------------------------- percolator
    def states(self) -> dict[int, FrameState]:
        """The percolator's state of every search."""
        rows = self.con.execute("SELECT id, fingerprint, vector, frame, frame_key, cuts, lexical, lost FROM searches")
        states = {int(r[0]): _state(r[1:]) for r in rows}
        self._frames = {sid: st.frame for sid, st in states.items()}  # a frame given back unchanged is not rewritten
        return states

    def stats(self) -> tuple[str, dict[str, Any]] | None:
        """The collection statistics the last run left, and the passage set they describe."""
        row = self.con.execute("SELECT key, data FROM stats WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[1])
        except ValueError:
            return None  # recomputed by the next run
        return (row[0], data) if isinstance(data, dict) else None

    def record(self, run: RunRecord) -> int:
        """Write one build's percolation at once; returns the matches recorded.

        A search removed meanwhile gets nothing; one saved meanwhile keeps its own state.
        """
        with self.transaction() as con:
            present = {int(r[0]) for r in con.execute("SELECT id FROM searches")}
            for sid, state in run.states.items():
                if sid not in present:
                    continue
                con.execute(
                    "UPDATE searches SET fingerprint = ?, vector = ?, frame_key = ?, cuts = ?, lexical = ?, lost = ?"
                    " WHERE id = ?",
                    (*_state_columns(state), sid),
                )
                if state.frame is not self._frames.get(sid):
                    con.execute("UPDATE searches SET frame = ? WHERE id = ?", (state.frame.to_bytes(), sid))
            number = version_number(run.version)
            found = 0
            for m in run.matches:
                if m.search not in present:
                    continue
                cur = con.execute(
                    "INSERT OR IGNORE INTO matches (search, version, version_no, found_at, article_id, title,"
                    " passage_id, passage, score, url, date, source, lang, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (m.search, run.version, number, run.at, m.article_id, m.title, m.passage_id, m.passage,
                     m.score, m.url, m.date, m.source, m.lang, int(m.updated)),
                )  # fmt: skip
                found += cur.rowcount
            con.execute(
                "INSERT OR REPLACE INTO stats VALUES (1, ?, ?)", (run.stats_key, json.dumps(run.stats, sort_keys=True))
            )
            con.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.version, run.at, run.searches, run.passages, found, run.seconds, int(run.full)),
            )
        return found


def _search(r: Sequence[Any]) -> SavedSearch:
    f = json.loads(r[4])
    filters = Filters(tuple(f.get("langs") or ()), tuple(f.get("sources") or ()), f.get("date_from"), f.get("date_to"))
    return SavedSearch(r[1], r[2], r[3], filters, r[5], r[6], r[7], int(r[0]), int(r[8]))


def _match(r: Sequence[Any]) -> AlertMatch:
    return AlertMatch(
        id=int(r[0]), alert=r[1], version=r[2], found_at=r[3], article_id=r[4], title=r[5], passage_id=int(r[6]),
        passage=r[7], score=float(r[8]), url=r[9], date=r[10], source=r[11], lang=r[12], updated=bool(r[13]),
    )  # fmt: skip


def _state(r: Sequence[Any]) -> FrameState:
    vector = np.frombuffer(r[1], np.float32).copy() if r[1] is not None else None
    key = r[3]
    try:
        frame = Frame.from_bytes(r[2]) if r[2] is not None else Frame()
    except (OSError, KeyError, TypeError, ValueError):
        frame, key = Frame(), None  # only a cache: the next run ranks the search against the whole version
    lexical = _json(r[5])
    lexical = lexical if isinstance(lexical, dict) else None
    return FrameState(r[0], vector, frame, key, _cuts(_json(r[4])), lexical, int(r[6] or 0))


def _cuts(data: Any) -> Cuts | None:
    try:
        d, lex = data["dense"], data["lexical"]
        return Cuts((float(d[0]), float(d[1])), (float(lex[0]), float(lex[1])), int(data["passages"]))
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # only a cache: the next run ranks the search and takes them again


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None  # only a cache: the next run makes it again


def _state_columns(s: FrameState) -> tuple[Any, ...]:
    """A state as its columns fingerprint, vector, frame_key, cuts, lexical and lost (the frame goes apart)."""
    vector = np.asarray(s.vector, np.float32).tobytes() if s.vector is not None else None
    c = s.cuts
    cuts = json.dumps({"dense": c.dense, "lexical": c.lexical, "passages": c.passages}) if c is not None else None
    lexical = json.dumps(s.lexical, ensure_ascii=False) if s.lexical is not None else None
    return s.fingerprint, vector, s.key, cuts, lexical, s.lost
