"""Turn a file's bytes into text, or say precisely why it is not text."""

from __future__ import annotations

import codecs
import unicodedata

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ALLOWED_CONTROLS = {"\t", "\n", "\r", "\f", "\v"}


class NotText(ValueError):
    """The bytes are not readable text; the message is the reason shown to the user."""


def _utf16_order(sample: bytes) -> str | None:
    # Latin-script UTF-16 has a NUL in every other byte; which half tells the byte order.
    sample = sample[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0) / (len(sample) / 2)
    odd = sample[1::2].count(0) / (len(sample) / 2)
    for ratio, other, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if ratio > 0.3 and other < 0.05:
            return codec
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    codec = _utf16_order(data)
    if codec is None:
        return None
    try:
        return data[: len(data) - len(data) % 2].decode(codec)
    except UnicodeDecodeError:
        return None


def wide_codec(head: bytes) -> str | None:
    """The UTF-16/32 codec of data that starts with ``head``, or None for byte-oriented text.

    Wide encodings cannot be split into lines at ``b"\\n"`` bytes (Windows tools
    write UTF-16). Raises ``NotText`` when NUL bytes show the data is binary.
    """
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return None if codec == "utf-8" else codec
    order = _utf16_order(head)
    if order is None and b"\x00" in head:
        raise NotText("binary file (contains NUL bytes)")
    return order


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS)
    return bad / len(sample)


def decode(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), UTF-16/32 with BOM or detected, else a detected charset.

    Newlines become ``\\n`` and text is NFC-normalised, so offsets computed on
    the returned string are stable. Raises ``NotText`` with a reason.
    """
    if not data:
        raise NotText("empty file")
    text: str | None = None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise NotText(f"invalid {codec} after its byte-order mark ({exc.reason})") from None
            break
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text:
            text = _utf16_without_bom(data)
        if text is None:
            if b"\x00" in data[:65536]:
                raise NotText("binary file (contains NUL bytes)")
            text = _detect(data)
    if "\x00" in text:
        raise NotText("binary file (contains NUL bytes)")
    if _control_ratio(text) > 0.01:
        raise NotText("binary file (control characters)")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise NotText("no text (whitespace only)")
    return text


def _detect(data: bytes) -> str:
    western = _western(data)
    if western is not None:
        return western
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    if results.best() is None:
        raise NotText("not valid UTF-8 and no other text encoding fits")
    # equally good guesses come first; one that splits words with symbols is wrong
    best = next((m for m in results if not _symbol_in_word(str(m)[:20000])), results.best())
    return str(best)


# Latin-script languages whose own code pages (cp1250, cp1254, cp1257, cp1258) also
# decode as cp1252, into near-miss letters: Czech "představila" as "pøedstavila".
_OTHER_LATIN = {"cs", "sk", "pl", "hu", "hr", "sl", "bs", "ro", "tr", "az", "lt", "lv", "vi"}


def _western(data: bytes) -> str | None:
    """``data`` as cp1252 when it reads as Western European words, else None.

    Charset detection guesses poorly on short text ("café" came out as cp1006,
    French "à" as cp1250 "ŕ"), and cp1252/Latin-1 is the likeliest legacy encoding.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None  # a byte cp1252 leaves undefined
    sample = text[:20000]
    words = [w for w in "".join(c if c.isalpha() else " " for c in sample).split() if not w.isascii()]
    # Cyrillic, Greek, Hebrew or Arabic code pages turn whole words into accented letters
    if sum(1 for w in words if any(c.isascii() for c in w)) * 2 < len(words):
        return None
    if _symbol_in_word(sample):
        return None
    from .language import detect

    if detect(text)[0] in _OTHER_LATIN:
        return None
    return text


def _symbol_in_word(text: str) -> bool:
    """Polish "Za¿ó³æ": letters of another code page shown as symbols between letters."""
    return any(
        a.isalpha() and c.isalpha() and not b.isalpha() and not b.isascii() and b not in "’·"
        for a, b, c in zip(text, text[1:], text[2:])
    )
