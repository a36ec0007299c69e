"""Sentence-aware passages measured in the embedding model's own tokens."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from . import sentences
from .records import Article, Chunk


@dataclass(frozen=True)
class ChunkSettings:
    """How articles are cut into passages; recorded in the manifest."""
    max_tokens: int = 200  # per passage body; the title is prefixed on top for embedding
    overlap_sentences: int = 1

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        if self.overlap_sentences < 0:
            raise ValueError("overlap_sentences cannot be negative")

    def to_dict(self) -> dict[str, int]:
        """The settings as the manifest records them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ChunkSettings:
        """Recorded settings; raises ``TypeError`` on a value of the wrong type."""
        if not isinstance(data, dict):
            raise TypeError("chunker must be an object")
        kept = {k: data[k] for k in ("max_tokens", "overlap_sentences") if k in data}
        if any(not isinstance(v, int) or isinstance(v, bool) for v in kept.values()):
            raise TypeError("chunker settings must be whole numbers")
        try:
            return cls(**kept)
        except ValueError as exc:
            raise TypeError(str(exc)) from None


class TokenCounter(Protocol):
    """What the chunker needs from a tokenizer."""

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens (no special tokens)."""
        ...


def _split_long(text: str, start: int, spans: list[tuple[int, int]], budget: int) -> list[tuple[int, int, int]]:
    """Cut one over-long sentence into pieces of at most ``budget`` tokens, at spaces when possible."""
    pieces: list[tuple[int, int, int]] = []
    i = 0
    while i < len(spans):
        j = min(i + budget, len(spans))
        if j < len(spans):
            # back off to a token that starts a word, if one is in the second half
            for k in range(j, i + budget // 2, -1):
                s = spans[k][0]
                if s > 0 and text[s - 1].isspace():
                    j = k
                    break
        # a piece runs to where the next one starts, so characters no token covers
        # (zero-width joiners, direction marks) stay in the text; trailing space is trimmed
        a = spans[i][0] if i else 0
        b = spans[j][0] if j < len(spans) else len(text)
        while b > a and text[b - 1].isspace():
            b -= 1
        pieces.append((start + a, start + b, j - i))
        i = j
    return pieces


def chunk_article(article: Article, counter: TokenCounter, settings: ChunkSettings) -> list[Chunk]:
    """Split an article into overlapping passages whose offsets map back to ``article.text``."""
    text = article.text
    spans = sentences.split(text, article.lang)
    if not spans:
        return []
    token_spans = counter.token_spans([text[s:e] for s, e in spans])
    units: list[tuple[int, int, int]] = []  # (start, end, n_tokens)
    budget = settings.max_tokens
    for (s, e), toks in zip(spans, token_spans):
        if len(toks) <= budget:
            units.append((s, e, max(len(toks), 1)))
        else:
            # nothing is truncated: an over-long sentence becomes several units
            for a, b, n in _split_long(text[s:e], s, toks, budget):
                while a < b and text[a].isspace():
                    a += 1
                if b > a:
                    units.append((a, b, n))

    chunks: list[Chunk] = []
    i, n = 0, len(units)
    while i < n:
        j, total = i, 0
        while j < n and (j == i or total + units[j][2] <= budget):
            total += units[j][2]
            j += 1
        start, end = units[i][0], units[j - 1][1]
        sents = tuple((u[0], u[1]) for u in units[i:j])
        chunks.append(Chunk(article.id, len(chunks), start, end, text[start:end], total, sents))
        if j >= n:
            break
        nxt = max(j - settings.overlap_sentences, i + 1)
        # drop the overlap when it would leave no room for the next sentence
        if nxt < j and sum(u[2] for u in units[nxt:j]) + units[j][2] > budget:
            nxt = j
        i = nxt
    return chunks
