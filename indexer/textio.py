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


def _utf16_without_bom(data: bytes) -> str | None:
    # Latin-script UTF-16 has a NUL in every other byte; which half tells the byte order.
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0) / (len(sample) / 2)
    odd = sample[1::2].count(0) / (len(sample) / 2)
    for ratio, other, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if ratio > 0.3 and other < 0.05:
            try:
                return data[: len(data) - len(data) % 2].decode(codec)
            except UnicodeDecodeError:
                return None
    return None


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
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise NotText("not valid UTF-8 and no other text encoding fits")
    return str(best)
