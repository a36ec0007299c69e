"""Small archives for the desk tools' tests (facets, recency, similar, export): records with known
languages, sources and dates, and an encoder whose vectors carry a language component as e5's do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from indexer import BuildSettings, build

from .conftest import FAKE_MODEL, FakeEncoder, write


def records_file(path: Path, records: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def build_records(root: Path, records: list[dict], encoder: FakeEncoder | None = None) -> Path:
    """An index of ``records`` (one JSONL file, ids ``news.jsonl#L<n>`` unless given) built with ``encoder``."""
    records_file(root / "src" / "news.jsonl", records)
    build([root / "src"], root / "index", BuildSettings(), encoder=encoder or FakeEncoder(), model=FAKE_MODEL)
    return root / "index"


class LanguageEncoder(FakeEncoder):
    """Each word a fixed random direction, a text the normalised sum of its words' directions.

    A language's marker word, repeated in each of its articles, is the shared "language
    component": uncentred, articles of one language are each other's nearest neighbours
    whatever they are about, as with e5; centred per language, their topics decide.
    """

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, np.float64)
        for w in text.lower().split():
            w = w.strip(".,")
            if not w:
                continue
            seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            v += np.random.default_rng(seed).standard_normal(self.dimension)
        n = np.linalg.norm(v)
        return (v / n if n else np.eye(self.dimension)[0]).astype(np.float32)


MARKERS = {"en": "english", "de": "deutsch", "fr": "francais"}
TOPICS = {
    "zorblat": "zorblat festival lanterns glassblowers quenvik",
    "volcano": "volcano lava eruption ashcloud magmaflow",
    "harbour": "harbour dockers strike wages quayside",
}


def article(lang: str, topic_words: str, **extra: object) -> dict:
    """A record in ``lang`` about ``topic_words`` (the marker repeated: the language component)."""
    text = " ".join([MARKERS[lang]] * 6) + " " + topic_words
    return {"title": topic_words.split()[0], "text": text, "lang": lang, **extra}


def multilingual_records() -> list[dict]:
    """Three topics in three languages, 12 filler articles per language, and syndicated copies.

    Ids: ``<lang>-<topic>``; ``en-zorblat-copy`` repeats ``en-zorblat`` word for word (another
    source), as ``fr-zorblat-copy`` repeats ``fr-zorblat``.
    """
    out = []
    for lang in MARKERS:
        for topic, words in TOPICS.items():
            out.append({"id": f"{lang}-{topic}", **article(lang, words, source=f"{lang} daily", date="2024-03-01")})
        for i in range(12):
            filler = f"filler{lang}{i}a filler{lang}{i}b filler{lang}{i}c filler{lang}{i}d"
            weekly = article(lang, filler, source=f"{lang} weekly", date="2024-02-01")
            out.append({"id": f"{lang}-filler-{i}", **weekly})
    en = next(r for r in out if r["id"] == "en-zorblat")
    fr = next(r for r in out if r["id"] == "fr-zorblat")
    out.append({**en, "id": "en-zorblat-copy", "source": "wire"})
    out.append({**fr, "id": "fr-zorblat-copy", "source": "agence", "date": "2024-03-02"})
    return out
