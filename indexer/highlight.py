"""Which sentence(s) of a passage best answer the query — in any language.

Sentences of the returned passages are embedded in one batch with the same
model and compared with the query vector, so a French sentence is found for an
English question; query terms found in a sentence add a small bonus, which
settles near-ties toward the sentence that names what was asked.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Collection
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from . import sentences
from .analysis import _NO_SPACE_RUN, analyze, fold

if TYPE_CHECKING:
    from .embedding import Encoder

LEXICAL_BONUS = 0.05  # at most, when every query term is in the sentence
KEEP_WITHIN = 0.01  # other sentences this close to the best are highlighted too…
MAX_SPANS = 2  # …up to this many, so a highlight still points somewhere
MAX_SENTENCE_CHARS = 600


def pack_sentences(spans: list[tuple[int, int]], vecs: np.ndarray) -> bytes:
    """One passage's sentence spans (relative to the passage) and float16 vectors, as one blob."""
    head = np.asarray([len(spans)], dtype="<i4").tobytes()
    return head + np.asarray(spans, dtype="<i4").reshape(-1, 2).tobytes() + np.asarray(vecs, dtype="<f2").tobytes()


_BLOB_HEAD = 4  # int32 sentence count, then int32 (start, end) spans, then float16 vectors


def unpack_sentences(blob: bytes, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A blob of ``pack_sentences`` back as (spans, float32 vectors)."""
    n = int(np.frombuffer(blob[:_BLOB_HEAD], dtype="<i4")[0])
    spans = np.frombuffer(blob[_BLOB_HEAD : _BLOB_HEAD + 8 * n], dtype="<i4").reshape(n, 2)
    vecs = np.frombuffer(blob[_BLOB_HEAD + 8 * n :], dtype="<f2").reshape(n, dim).astype(np.float32)
    return spans, vecs


def sentence_vector_bytes(blob: bytes, dim: int) -> tuple[int, bytes] | None:
    """A blob's sentence count and its raw float16 vectors; None when it is no well-formed blob of ``dim``."""
    if len(blob) < _BLOB_HEAD:
        return None
    n = int(np.frombuffer(blob[:_BLOB_HEAD], dtype="<i4")[0])
    start = _BLOB_HEAD + 8 * n
    if n <= 0 or len(blob) != start + 2 * n * dim:
        return None
    return n, blob[start:]


class Highlighter:
    """Picks each hit's best sentences, from stored sentence vectors or by embedding them now."""

    def __init__(self, encoder: Encoder, cache_size: int = 4096) -> None:
        self.encoder = encoder
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def _vectors(self, texts: list[str]) -> list[np.ndarray]:
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            vecs = self.encoder.embed_passages(todo)
            known.update(zip(todo, vecs))
            with self._lock:  # shared by the page's sessions, from several threads
                self._cache.update(zip(todo, vecs))
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return [known[t] for t in texts]

    def best(
        self,
        qvec: np.ndarray | None,
        terms: list[str],
        passages: list[tuple[str, int, str | None]],
        stored: list[tuple[np.ndarray, np.ndarray] | None] | None = None,
    ) -> list[list[tuple[int, int]]]:
        """For each ``(passage_text, passage_start, lang)``, the best sentence spans in article offsets.

        ``stored`` gives, per passage, sentence spans and vectors kept by the build; passages
        without them have their sentences embedded now (slower: one model call per page).
        """
        stored = stored or [None] * len(passages)
        spans: list[list[tuple[int, int]]] = []
        for (text, _, lang), kept in zip(passages, stored):
            if kept is not None and len(kept[0]):
                spans.append([(int(s), int(e)) for s, e in kept[0]])
            else:
                spans.append(sentences.split(text, lang) or [(0, len(text))])
        wanted = set(terms)
        flat: list[str] = []
        for (text, _, _), sp, kept in zip(passages, spans, stored):
            if len(sp) > 1 and (kept is None or not len(kept[0])):
                flat += [text[s:e][:MAX_SENTENCE_CHARS] for s, e in sp]
        fresh = iter(self._vectors(flat) if (flat and qvec is not None) else [])
        out: list[list[tuple[int, int]]] = []
        for (text, start, lang), sp, kept in zip(passages, spans, stored):
            if len(sp) == 1:
                out.append([(start + sp[0][0], start + sp[0][1])])
                continue
            vecs = iter(kept[1]) if kept is not None and len(kept[0]) else fresh
            scores = [float(np.dot(next(vecs), qvec)) if qvec is not None else 0.0 for _ in sp]
            if wanted:
                # the bonus is at most LEXICAL_BONUS, so a sentence further than that (and the
                # tie margin) below the best vector score can be neither best nor kept: only the
                # others are analysed, which is most of a highlight's cost
                floor = max(scores) - LEXICAL_BONUS - KEEP_WITHIN
                for i, (s, e) in enumerate(sp):
                    if scores[i] >= floor:
                        found = wanted & set(analyze(text[s:e], lang))
                        scores[i] += LEXICAL_BONUS * len(found) / len(wanted)
            top = max(scores)
            if top <= 0:  # nothing to go on (lexical-only search without a matching term)
                out.append([])
                continue
            best = sorted(range(len(sp)), key=lambda i: -scores[i])[:MAX_SPANS]
            keep = sorted(i for i in best if scores[i] >= top - KEEP_WITHIN)
            out.append([(start + sp[i][0], start + sp[i][1]) for i in keep])
        return out


@lru_cache(maxsize=65536)
def _terms_of(word: str, lang: str | None) -> frozenset[str]:
    # words repeat across passages and queries (Zipf): most lookups are cache hits
    return frozenset(analyze(word, lang))


def term_spans(text: str, start: int, lang: str | None, terms: Collection[str]) -> list[tuple[int, int]]:
    """Where ``text`` (found at ``start`` in its article) holds one of the analysed ``terms``, in article offsets.

    Each word is analysed as the index analysed the passage (its language's stop words,
    stemmer and folding; bigrams for scripts without spaces), so ``l'Arctique`` is marked
    for the term ``arctiqu`` and ``北极`` inside a longer Chinese run for the bigram.
    """
    if not terms:
        return []
    wanted = frozenset(terms)
    out: list[tuple[int, int]] = []
    words, bigrams = _candidates(wanted)
    if words is not None:
        low = text.lower()
        if len(low) != len(text) or not _COMMON.issuperset(low):
            # letters the common accents do not cover: fold them one for one (offsets stay the text's)
            runs = _NO_SPACE_RUNS.search(text) is not None
            low, words = text.translate(_folding()), _candidates(wanted, plain=True, after_runs=runs)[0]
        assert words is not None
        for m in words.finditer(low):
            a, b = _whole_word(text, m.start(), m.end())
            if _terms_of(text[a:b].lower(), lang) & wanted:
                out.append((start + a, start + b))
    for run in _NO_SPACE_RUNS.finditer(text) if bigrams else ():
        word, at = run.group(), run.start()
        for i in range(max(1, len(word) - 1)):
            if word[i : i + 2] in bigrams:
                out.append((start + at + i, start + at + min(i + 2, len(word))))
    out.sort()
    merged: list[tuple[int, int]] = []
    for a, b in out:  # overlapping bigrams of one run become one mark
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


_HEAD = 3  # letters a word shares with its stem (Snowball stemmers rewrite endings, not openings)
_APOSTROPHES = "'’"
_NO_SPACE_CLASS = _NO_SPACE_RUN.pattern.removeprefix("^").removesuffix("+$")  # "[…]": one such letter
_NO_SPACE_RUNS = re.compile(_NO_SPACE_CLASS + "+")


#: lower-case letters with their common accents, as regex classes: small enough to compile fast
_ACCENTS = {
    "a": "àáâãäå", "c": "ç", "e": "èéêë", "i": "ìíîï", "n": "ñ", "o": "òóôõöø", "s": "ß", "u": "ùúûü", "y": "ýÿ",
}  # fmt: skip
_COMMON = frozenset(
    "abcdefghijklmnopqrstuvwxyz0123456789 \t\n\r.,;:!?'’\"«»()[]-–—/%&+*=<>@#$€…“”„‘·" + "".join(_ACCENTS.values())
)


@lru_cache(maxsize=256)
def _candidates(
    terms: frozenset[str], *, plain: bool = False, after_runs: bool = False
) -> tuple[re.Pattern[str] | None, frozenset[str]]:
    """A regex finding where words that may analyse to one of ``terms`` open, and the terms that are bigrams.

    It finds words (or the part after an elision, ``arctique`` in ``l'arctique``) opening
    like some term; only those are analysed, so a passage costs one regex scan instead
    of a stemmer call per word.
    """
    bigrams = frozenset(t for t in terms if _NO_SPACE_RUN.match(t))
    # a term no longer than the head may end in a rewritten letter (English "icy" → "ici"): drop it
    heads = {t[: min(_HEAD, max(1, len(t) - 1))] for t in terms if t not in bigrams}
    # German stemming writes ß as "ss", and folding writes it "s": "fuss" opens like "fus"
    heads = {h.replace("ss", "s") for h in heads}
    # it also reads "ue", "ae", "oe" as umlauts, folded to a vowel: "zurst" (zuerst) opens like "zue"
    heads |= {(h[: i + 1] + "e" + h[i + 1 :])[:_HEAD] for h in heads for i in range(1, len(h)) if h[i] in "aou"}
    if not heads:
        return None, bigrams

    # for lower-cased text, each letter or its common accents ("eta" finds "états"); ``plain`` for folded
    # text. Classes of every accented letter would cost milliseconds to compile, per query.
    def pattern(head: str) -> str:
        return "".join(f"[{c}{_ACCENTS[c]}]" if c in _ACCENTS and not plain else re.escape(c) for c in head)

    alternatives = "|".join(pattern(h) for h in sorted(heads, key=lambda h: (-len(h), h)))
    # a word opens after a non-letter, or (``after_runs``, slower) right after a run of a script without
    # spaces, as in "1455年"
    opens = rf"(?:\b|(?<={_NO_SPACE_CLASS}))" if after_runs else r"\b"
    return re.compile(rf"{opens}(?:{alternatives})[^\W_]*"), bigrams


def _whole_word(text: str, a: int, b: int) -> tuple[int, int]:
    """The word ``text[a:b]`` belongs to, as ``analysis`` splits words: joined by apostrophes (``l'Arctique``)."""
    while a >= 2 and text[a - 1] in _APOSTROPHES and text[a - 2].isalnum():
        a -= 1
        while a and text[a - 1].isalnum():
            a -= 1
    while b + 1 < len(text) and text[b] in _APOSTROPHES and text[b + 1].isalnum():
        b += 1
        while b < len(text) and text[b].isalnum():
            b += 1
    return a, b


@lru_cache(maxsize=1)
def _folding() -> dict[int, str]:
    """A ``str.translate`` table: each letter to its folded lower-case letter, one for one (``É`` → ``e``)."""
    table: dict[int, str] = {}
    for code in (*range(0x41, 0x250), *range(0x370, 0x530), *range(0x1E00, 0x1F00)):
        base = fold(chr(code).lower())
        if len(base) == 1 and base != chr(code):
            table[code] = base
    table[ord("ß")] = table[ord("ẞ")] = "s"
    return table
