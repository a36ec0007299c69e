"""Text analysis for the lexical (BM25) side: per-language stop words and Snowball stems.

Words are lower-cased, stop words of the text's language dropped, stemmed with
that language's Snowball stemmer, then folded to ASCII-like letters (``é`` →
``e``) so accents typed or not still match. Scripts written without spaces
(Chinese, Japanese, Thai, …) are cut into overlapping character bigrams, the
usual choice of search engines for them when no dictionary segmenter is used.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

_SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
    "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
    "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
    "nn": "norwegian", "fa": "persian", "pl": "polish", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish",
    "yi": "yiddish",
}  # fmt: skip
#: Bump when analysis changes: indexes built with another version re-analyse their passages.
ANALYZER_VERSION = 2

_STOPWORDS = {
    "en": "STOPWORDS_EN_PLUS", "fr": "STOPWORDS_FRENCH", "de": "STOPWORDS_GERMAN", "es": "STOPWORDS_SPANISH",
    "it": "STOPWORDS_ITALIAN", "pt": "STOPWORDS_PORTUGUESE", "nl": "STOPWORDS_DUTCH", "da": "STOPWORDS_DANISH",
    "sv": "STOPWORDS_SWEDISH", "no": "STOPWORDS_NORWEGIAN", "nb": "STOPWORDS_NORWEGIAN",
    "ru": "STOPWORDS_RUSSIAN", "tr": "STOPWORDS_TURKISH", "zh": "STOPWORDS_CHINESE",
}  # fmt: skip

# Question words are noise for ranking (every question has one); standard lists lack some.
_QUESTION_WORDS = {
    "en": "who whom whose what which when where why how",
    "fr": "qui quoi quand où pourquoi comment quel quelle quels quelles combien lequel laquelle",
    "de": "wer wen wem wessen was wann wo wohin woher warum wieso weshalb wie welche welcher welches welchen",
    "es": "quién quiénes qué cuál cuáles cuándo dónde cómo cuánto cuánta cuántos cuántas",
    "it": "chi cosa quando dove perché come quale quali quanto quanta quanti quante",
    "pt": "quem que qual quais quando onde porque como quanto quanta quantos quantas",
    "nl": "wie wat wanneer waar waarom hoe welke welk",
    "ru": "кто что когда где почему зачем как какой какая какое какие сколько",
}

# Runs of characters from scripts that do not separate words with spaces.
_NO_SPACE = (
    r"\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff"  # Thai, Lao, Myanmar, Khmer
    r"\u3040-\u30ff\u31f0-\u31ff"  # Hiragana, Katakana
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    r"\uac00-\ud7af"  # Hangul syllables (spaced, but compounds are long: bigrams help)
)
_TOKEN = re.compile(rf"[{_NO_SPACE}]+|[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_NO_SPACE_RUN = re.compile(rf"^[{_NO_SPACE}]+$")
_ELISION = re.compile(r"^(?:[ldjmnstcq]|qu|jusqu|lorsqu|puisqu|quoiqu)['’]", re.IGNORECASE)


def fold(word: str) -> str:
    """Strip accents: ``Éléphant`` → ``elephant`` (letters of other scripts are kept)."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Raw lower-cased words and no-space runs, in order."""
    return [m.group().lower() for m in _TOKEN.finditer(text)]


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


@lru_cache(maxsize=64)
def _stemmer(lang: str) -> Callable[[list[str]], list[str]] | None:
    name = _SNOWBALL.get(lang)
    if name is None:
        return None
    import Stemmer

    return Stemmer.Stemmer(name).stemWords


@lru_cache(maxsize=64)
def stopwords(lang: str) -> frozenset[str]:
    """Stop words of ``lang`` (with question words), empty where bm25s has none."""
    import bm25s.stopwords

    name = _STOPWORDS.get(lang)
    words_ = set(getattr(bm25s.stopwords, name)) if name else set()
    words_ |= set(_QUESTION_WORDS.get(lang, "").split())
    return frozenset(w.lower() for w in words_)


def analyze(text: str, lang: str | None, *, also_stop: frozenset[str] = frozenset()) -> list[str]:
    """Index terms of ``text`` read as language ``lang`` (None or unknown: no stemming)."""
    lang = (lang or "").lower()
    stop = stopwords(lang) | also_stop if also_stop else stopwords(lang)
    stem = _stemmer(lang)
    out: list[str] = []
    plain: list[str] = []
    for w in words(text):
        if _NO_SPACE_RUN.match(w):
            out.extend(_bigrams(w))
            continue
        # French/Italian/Catalan elisions ("l'Arctique"), stripped whatever the
        # analysis language since queries are analysed under several languages
        w = _ELISION.sub("", w).replace("’", "'")
        if w in stop or (len(w) == 1 and not w.isdigit()):
            continue
        plain.append(w)
    if stem is not None and plain:
        plain = stem(plain)
    out.extend(fold(w) for w in plain)
    return out


def analyze_query(text: str, langs: Iterable[str]) -> list[str]:
    """Query terms under each candidate language, without repeats.

    A short query's language is uncertain and the passages it should find may be
    in any language of the collection, so the query is analysed as each of them.
    """
    langs = list(langs)
    # a stop word of any candidate language is not a search term under the others
    stop = frozenset().union(*(stopwords(lang) for lang in langs)) if langs else frozenset()
    seen: dict[str, None] = {}
    for lang in langs:
        for term in analyze(text, lang, also_stop=stop):
            seen.setdefault(term, None)
    return list(seen)


def query_groups(text: str, weights: dict[str, float]) -> list[dict[str, float]]:
    """For each query word, its term under each candidate language, weighted by that language.

    The same word stems differently per language ("energy": en ``energi``, de
    ``energy``); scoring a word by its best variant (``postings.Collection.grouped_scores``)
    instead of summing them keeps a rare foreign variant from dominating by its IDF.
    """
    langs = list(weights)
    stop = frozenset().union(*(stopwords(lang) for lang in langs)) if langs else frozenset()
    groups: dict[tuple[int, int], dict[str, float]] = {}
    for wi, word in enumerate(words(text)):
        if _ELISION.sub("", word).replace("’", "'") in stop:
            continue
        for lang in langs:
            for ti, term in enumerate(analyze(word, lang, also_stop=stop)):
                group = groups.setdefault((wi, ti), {})
                group[term] = max(group.get(term, 0.0), weights[lang])
    return [g for g in groups.values() if g]
