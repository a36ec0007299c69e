"""Language identification (py3langid, 97 languages, ISO 639-1 codes)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_LANG_CODE = re.compile(r"^[a-z]{2,3}$")


@lru_cache(maxsize=1)
def _identifier():  # -> py3langid.langid.LanguageIdentifier
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str) -> tuple[str, float]:
    """Best language for ``text`` and its probability (0–1)."""
    sample = text[:3000]
    if not sample.strip():
        return "und", 0.0
    lang, prob = _identifier().classify(sample)
    return str(lang), float(prob)


# Language names as archives write them in a "lang" field, in English and in the language itself
_NAMES = {
    "en": "english anglais englisch inglés ingles inglese", "fr": "french français francais französisch francés",
    "de": "german deutsch allemand alemán aleman tedesco", "es": "spanish español espanol espagnol spanisch",
    "it": "italian italiano italien italienisch", "pt": "portuguese português portugues portugais",
    "nl": "dutch nederlands néerlandais niederländisch", "ru": "russian русский russe russisch ruso",
    "zh": "chinese 中文 汉语 chinois chinesisch", "ja": "japanese 日本語", "ar": "arabic العربية arabe",
    "pl": "polish polski polonais", "uk": "ukrainian українська", "sv": "swedish svenska", "tr": "turkish türkçe",
}  # fmt: skip
_CODE_OF_NAME = {name: code for code, names in _NAMES.items() for name in names.split()}


def normalize_code(value: str) -> str | None:
    """``"FR"``, ``"fr-CA"``, ``"fr_FR"``, ``"French"``, ``"français"`` → ``"fr"``; anything else → None."""
    text = value.strip().lower()
    if text in _CODE_OF_NAME:
        return _CODE_OF_NAME[text]
    code = text.replace("_", "-").split("-")[0]
    return code if _LANG_CODE.match(code) else None


# Writing system of languages not written in Latin script (the rest default to Latin).
_SCRIPTS = {
    "zh": "Han", "ja": "Han", "ko": "Hangul", "ru": "Cyrillic", "uk": "Cyrillic", "bg": "Cyrillic",
    "be": "Cyrillic", "sr": "Cyrillic", "mk": "Cyrillic", "kk": "Cyrillic", "ky": "Cyrillic", "mn": "Cyrillic",
    "ar": "Arabic", "fa": "Arabic", "ur": "Arabic", "ps": "Arabic", "he": "Hebrew", "yi": "Hebrew",
    "el": "Greek", "hi": "Devanagari", "mr": "Devanagari", "ne": "Devanagari", "bn": "Bengali",
    "ta": "Tamil", "te": "Telugu", "kn": "Kannada", "ml": "Malayalam", "gu": "Gujarati", "pa": "Gurmukhi",
    "th": "Thai", "lo": "Lao", "km": "Khmer", "my": "Myanmar", "ka": "Georgian", "hy": "Armenian",
    "am": "Ethiopic", "si": "Sinhala",
}  # fmt: skip
_UNICODE_SCRIPT = {"CJK": "Han", "HIRAGANA": "Han", "KATAKANA": "Han", "HANGUL": "Hangul"}


def script_of(lang: str | None) -> str | None:
    """The writing system a language is written in (None when the language is unknown)."""
    if not lang or lang == "und":
        return None
    return _SCRIPTS.get(lang, "Latin")


def scripts(text: str) -> set[str]:
    """Writing systems of the letters in ``text`` (``{"Latin"}``, ``{"Cyrillic", "Latin"}``…)."""
    found: set[str] = set()
    for ch in text:
        if ch.isalpha():
            word = unicodedata.name(ch, "").split(" ", 1)[0]
            found.add(_UNICODE_SCRIPT.get(word, word.capitalize()))
    return found
