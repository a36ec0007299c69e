"""A query as the engine reads it: its cleaned text, its analysis for BM25, and its filters."""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from . import fusion
from .analysis import analyze, fold, query_groups, stopwords, words
from .errors import QueryError
from .language import normalize_code, scripts
from .records import TermMatch

if TYPE_CHECKING:
    from .index import Snapshot
    from .postings import Collection

MAX_QUERY_CHARS = 2000  # the model reads 512 tokens at most; longer queries only cost time


@dataclass(frozen=True)
class Filters:
    """Restrictions applied inside the search, not after it."""

    langs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    date_from: str | None = None  # inclusive, ISO date
    date_to: str | None = None  # inclusive, ISO date

    def __bool__(self) -> bool:
        return bool(self.langs or self.sources or self.date_from or self.date_to)

    def normalized(self) -> Filters:
        """Checked and canonical: language codes lower-cased, dates completed to full days.

        Raises ``QueryError`` naming the bad value.
        """
        langs = []
        for raw in self.langs:
            code = normalize_code(str(raw))
            if code is None:
                raise QueryError(f"invalid language {raw!r}: use a two-letter code such as fr, en, de")
            langs.append(code)
        lo = _iso_day(self.date_from, end=False, flag="--date-from")
        hi = _iso_day(self.date_to, end=True, flag="--date-to")
        if lo and hi and lo > hi:
            raise QueryError(f"--date-from {lo} is after --date-to {hi}")
        sources = tuple(s.strip() for s in self.sources if s and s.strip())
        return Filters(langs=tuple(dict.fromkeys(langs)), sources=sources, date_from=lo, date_to=hi)


def _iso_day(value: str | None, *, end: bool, flag: str) -> str | None:
    """``2024`` / ``2024-05`` / ``2024-05-17`` → a full ISO day (first or last of the period)."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", text)
    try:
        if not m:
            raise ValueError
        year, month, day = int(m[1]), int(m[2] or (12 if end else 1)), m[3]
        last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
        d = date(year, month, int(day) if day else (last if end else 1))
    except ValueError:
        raise QueryError(f"invalid date {text!r} for {flag}: use YYYY-MM-DD (or YYYY-MM, YYYY)") from None
    return d.isoformat()


def clean_query(query: str) -> tuple[str, bool]:
    """Drop control characters, collapse whitespace, cap the length; reject empty queries."""
    if not isinstance(query, str):
        raise QueryError("the query must be text")
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in query)
    text = " ".join(text.split())
    if not text:
        raise QueryError("empty query — type a few words to search for")
    truncated = len(text) > MAX_QUERY_CHARS
    return text[:MAX_QUERY_CHARS], truncated


def query_language_probs(text: str) -> dict[str, float]:
    """The query's language distribution (flat for names and numbers, peaked for sentences)."""
    from .language import _identifier

    return {lang: float(p) for lang, p in _identifier().rank(text)[:20]}


@dataclass(frozen=True)
class LexicalQuery:
    """A query as the lexical side sees it."""

    groups: list[dict[str, float]]  # per query word: its term under each language, with that language's weight
    probs: dict[str, float]  # the query's language distribution
    scripts: set[str]  # writing systems the query uses
    langs: tuple[str, ...] = ()  # the languages it was analysed as ("" for no stemming)

    @property
    def terms(self) -> list[str]:
        """Every analysed term, once, in query order (what highlights look for)."""
        return list(dict.fromkeys(t for g in self.groups for t in g))

    @property
    def scored_terms(self) -> list[str]:
        """The terms BM25 scores (those of a language with a positive weight), once, in query order."""
        return list(dict.fromkeys(t for g in self.groups for t, w in g.items() if w > 0))


def lexical_query(text: str, snap: Snapshot) -> LexicalQuery:
    """Analyse the query as its likely language and as the collection's main languages."""
    probs = query_language_probs(text)
    qscripts = scripts(text)
    likely = [lang for lang, p in sorted(probs.items(), key=lambda kv: -kv[1])[:2] if p > 0.2]
    langs = list(dict.fromkeys(likely + list(snap.languages)[:3])) or [""]
    weights = {lang: fusion.language_weight(probs, lang or None, qscripts) for lang in langs}
    return LexicalQuery(query_groups(text, weights), probs, qscripts, tuple(langs))


@dataclass(frozen=True)
class TermOrigin:
    """Where an analysed query term comes from: the word as typed, and the analysis that made it."""

    word: str  # e.g. ``l'Arctique``
    analysis: str  # e.g. ``fr stemmer``, ``as written``, ``character bigrams``


def term_origins(text: str, langs: tuple[str, ...]) -> dict[str, TermOrigin]:
    """For each term of ``lexical_query(text)``, the query word and the analysis it came from.

    Analyses the query word by word exactly as ``analysis.query_groups`` does (for
    ``--explain``: the groups keep only the terms).
    """
    stop = frozenset().union(*(stopwords(lang) for lang in langs)) if langs else frozenset()
    lower = text.lower()
    same_length = len(lower) == len(text)  # so offsets in the lower-cased text are offsets in the text
    made: dict[str, tuple[str, list[str], bool]] = {}  # term -> word, languages, whether stemming changed it
    pos = 0
    for word in words(text):
        at = lower.find(word, pos)
        shown = text[at : at + len(word)] if same_length and at >= 0 else word
        pos = at + len(word) if at >= 0 else pos
        plain = fold(word.split("'")[-1].split("’")[-1])
        for lang in langs:
            for term in analyze(word, lang, also_stop=stop):
                _, used, stemmed = made.setdefault(term, (shown, [], term != plain))
                if lang and lang not in used:
                    used.append(lang)
    out = {}
    for term, (word, used, stemmed) in made.items():
        if term and _is_bigram(term):
            how = "character bigrams"
        elif stemmed:
            how = f"{'/'.join(used) or 'no'} stemmer"
        else:
            how = "as written" if fold(word.lower()) == word.lower() else "accents folded"
        out[term] = TermOrigin(word, how)
    return out


def _is_bigram(term: str) -> bool:
    return bool(scripts(term) & {"Han", "Hiragana", "Katakana", "Hangul", "Thai", "Lao", "Myanmar", "Khmer"})


def matched_share(lq: LexicalQuery, passage_terms: dict[int, str]) -> dict[int, float]:
    """Per passage (its analysed BM25 terms, space separated), the share of the query's words it holds."""
    groups = [{t for t, w in g.items() if w > 0} for g in lq.groups]
    if not groups:
        return {pid: 0.0 for pid in passage_terms}
    out = {}
    for pid, terms in passage_terms.items():
        held = set(terms.split())
        out[pid] = sum(1 for g in groups if not g.isdisjoint(held)) / len(groups)
    return out


def matched_terms(lex: Collection, lq: LexicalQuery, text: str, pids: list[int]) -> dict[int, list[TermMatch]]:
    """For each passage, the query words it holds: per word its best-scoring term, as BM25 counted it, best first.

    ``text`` is the query as searched. Costs one postings read per term: for ``--explain``.
    """
    origins = term_origins(text, lq.langs)
    out: dict[int, list[TermMatch]] = {pid: [] for pid in pids}
    pos, held = lex.position(np.asarray(pids, dtype=np.int64))
    where = {int(p): pid for p, pid, h in zip(pos.tolist(), pids, held.tolist()) if h}
    wanted = np.asarray(sorted(where), dtype=np.int64)
    for group in lq.groups:
        best: dict[int, tuple[float, str]] = {}
        for term, weight in group.items():
            found = lex.postings(term) if weight > 0 and len(wanted) else None
            if found is None:
                continue
            idx, val = found
            for i in np.flatnonzero(np.isin(idx, wanted)).tolist():
                pid, score = where[int(idx[i])], float(val[i]) * weight
                if score > best.get(pid, (0.0, ""))[0]:
                    best[pid] = (score, term)
        for pid, (score, term) in best.items():
            origin = origins.get(term, TermOrigin(term, "as written"))
            out[pid].append(TermMatch(term, origin.word, origin.analysis, score))
    for found_terms in out.values():
        found_terms.sort(key=lambda m: -m.bm25)
    return out
