"""Language identification (py3langid, 97 languages, ISO 639-1 codes)."""

from __future__ import annotations

import re
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


def normalize_code(value: str) -> str | None:
    """``"FR"``, ``"fr-CA"``, ``"fr_FR"`` → ``"fr"``; anything else → None."""
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if _LANG_CODE.match(code) else None
