"""Sentence spans in a text, via sentencex (rule-based, ~300 languages)."""

from __future__ import annotations

import re

_LINE = re.compile(r"[^\n]*(?:\n|$)")
_TERMINAL = tuple('.!?:;…»"”’)]。！？」』')
_HEADING_MAX = 60  # a line this short without punctuation is a heading, not a wrapped line


def _blocks(text: str) -> list[tuple[int, int]]:
    """Split at line breaks that end a sentence: after terminal punctuation or a short line.

    Hard-wrapped prose (long lines without final punctuation) stays together so
    its sentences are not cut at every line end.
    """
    blocks: list[tuple[int, int]] = []
    start = 0
    for m in _LINE.finditer(text):
        line = m.group().rstrip()
        if not m.group():
            break
        if m.group().endswith("\n") and (
            not line.strip() or line.endswith(_TERMINAL) or len(line.strip()) < _HEADING_MAX
        ):
            blocks.append((start, m.end()))
            start = m.end()
    if start < len(text):
        blocks.append((start, len(text)))
    return blocks


def split(text: str, lang: str | None) -> list[tuple[int, int]]:
    """Sentence ``(start, end)`` offsets into ``text``, whitespace trimmed, in order."""
    from sentencex import get_sentence_boundaries

    spans: list[tuple[int, int]] = []
    code = lang if lang and lang != "und" else "en"
    for b0, b1 in _blocks(text):
        block = text[b0:b1]
        if not block.strip():
            continue
        for seg in get_sentence_boundaries(code, block):
            s, e = b0 + seg["start_index"], b0 + seg["end_index"]
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if e > s:
                spans.append((s, e))
    return spans
