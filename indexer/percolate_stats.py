"""The collection statistics a percolation needs, carried from version to version at the cost of the change.

A saved search is ranked against a build's new passages only (percolate.py), but its
BM25 scores must be those a search of the whole version would give: the same passage
count, mean length and document frequency of each query term, and the same main
languages to analyse the query in. Computing them from the version costs what the
archive holds (every segment's postings and metadata); so they are kept beside the
saved searches and moved forward by what each build added and deleted — exactly, as
the alive passages' own statistics (``postings.Collection``), for the terms the saved
searches use. ``corpus_key`` names the passage set they describe: a merge keeps it (it
keeps ids and drops only deleted rows), any change of content moves it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .index import Snapshot


def corpus_key(snap: Snapshot) -> str:
    """What identifies a version's alive passages: the next passage id, their number, the text analysis."""
    next_id = max((s.info.ids[1] for s in snap.segments), default=0)
    return f"{next_id}:{snap.ntotal}:{snap.manifest.lexical.analyzer}"


def first_unseen(key: str) -> int | None:
    """The first passage id the version of ``corpus_key`` had not given out (None: not such a key)."""
    head = key.split(":", 1)[0]
    return int(head) if head.isdigit() else None


@dataclass(frozen=True)
class CorpusStats:
    """Alive passages, their total length in terms, passages per language, and document frequencies."""

    passages: int = 0
    total_length: int = 0
    languages: dict[str, int] = field(default_factory=dict)
    df: dict[str, int] = field(default_factory=dict)  # the terms tracked: those of the saved searches

    @property
    def avgdl(self) -> float:
        """The mean passage length, computed as ``postings.Collection`` does."""
        return self.total_length / self.passages if self.passages else 0.0

    def ranked_languages(self) -> dict[str, int]:
        """Passages per language, most frequent first (``Snapshot.languages``'s order)."""
        order = sorted((-n, lang) for lang, n in self.languages.items() if n > 0)
        return {lang: -n for n, lang in order}

    def to_json(self) -> dict[str, Any]:
        """What the alerts database keeps."""
        return {"passages": self.passages, "total_length": self.total_length, "languages": self.languages,
                "df": self.df}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CorpusStats:
        """Read back ``to_json``; raises ``KeyError``/``TypeError``/``ValueError`` on a bad record."""
        langs = {str(k): int(v) for k, v in dict(data["languages"]).items()}
        df = {str(k): int(v) for k, v in dict(data["df"]).items()}
        return cls(int(data["passages"]), int(data["total_length"]), langs, df)

    @classmethod
    def exact(cls, snap: Snapshot, terms: Iterable[str]) -> CorpusStats:
        """Computed from a whole version: what a rebuild, or a first percolation, pays once."""
        lex = snap.lexical
        n = len(lex)
        total = round(lex.avgdl * n)  # a sum of integers: exact in a float64 at any archive size
        return cls(n, total, dict(snap.languages), {}).tracking(snap, terms)

    def tracking(self, snap: Snapshot, terms: Iterable[str]) -> CorpusStats:
        """These statistics with the document frequency of ``terms`` they lack, counted in ``snap``."""
        missing = [t for t in dict.fromkeys(terms) if t not in self.df]
        if not missing:
            return self
        lex = snap.lexical
        df = dict(self.df)
        for term in missing:
            found = lex.postings(term)
            df[term] = 0 if found is None else len(found[0])
        return replace(self, df=df)

    def advanced(
        self, added: Iterable[tuple[str, str | None]], removed: Iterable[tuple[str, str | None]]
    ) -> CorpusStats:
        """The statistics after a build: ``added`` and ``removed`` passages as (analysed terms, language)."""
        passages, total = self.passages, self.total_length
        langs: Counter[str] = Counter(self.languages)
        df: Counter[str] = Counter(self.df)
        tracked = set(self.df)
        for sign, items in ((1, added), (-1, removed)):
            for text, lang in items:
                words = text.split()
                passages += sign
                total += sign * len(words)
                if lang is not None:
                    langs[lang] += sign
                for term in tracked.intersection(words):
                    df[term] += sign
        return CorpusStats(
            passages,
            total,
            {k: v for k, v in langs.items() if v > 0},
            {t: df[t] for t in self.df},
        )
