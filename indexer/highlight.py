"""Which sentence(s) of a passage best answer the query — in any language.

Sentences of the returned passages are embedded in one batch with the same
model and compared with the query vector, so a French sentence is found for an
English question; query terms found in a sentence add a small bonus, which
settles near-ties toward the sentence that names what was asked.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from . import sentences
from .analysis import analyze

LEXICAL_BONUS = 0.05  # at most, when every query term is in the sentence
KEEP_WITHIN = 0.01  # other sentences this close to the best are highlighted too…
MAX_SPANS = 2  # …up to this many, so a highlight still points somewhere
MAX_SENTENCE_CHARS = 600


@dataclass(frozen=True)
class Span:
    start: int  # offsets in the article text
    end: int


class Highlighter:
    def __init__(self, encoder: object, cache_size: int = 4096) -> None:
        self.encoder = encoder
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache_size

    def _vectors(self, texts: list[str]) -> list[np.ndarray]:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vecs = self.encoder.embed_passages(todo)  # type: ignore[attr-defined]
            for t, v in zip(todo, vecs):
                self._cache[t] = v
                if len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return [self._cache[t] for t in texts]

    def best(
        self,
        qvec: np.ndarray | None,
        terms: list[str],
        passages: list[tuple[str, int, str | None]],
    ) -> list[list[tuple[int, int]]]:
        """For each ``(passage_text, passage_start, lang)``, the best sentence spans in article offsets."""
        spans = [sentences.split(text, lang) or [(0, len(text))] for text, _, lang in passages]
        wanted = set(terms)
        flat: list[str] = []
        for (text, _, _), sp in zip(passages, spans):
            if len(sp) > 1:
                flat += [text[s:e][:MAX_SENTENCE_CHARS] for s, e in sp]
        vecs = iter(self._vectors(flat) if (flat and qvec is not None) else [])
        out: list[list[tuple[int, int]]] = []
        for (text, start, lang), sp in zip(passages, spans):
            if len(sp) == 1:
                out.append([(start + sp[0][0], start + sp[0][1])])
                continue
            scores = []
            for s, e in sp:
                score = float(np.dot(next(vecs), qvec)) if qvec is not None else 0.0
                if wanted:
                    found = wanted & set(analyze(text[s:e], lang))
                    score += LEXICAL_BONUS * len(found) / len(wanted)
                scores.append(score)
            top = max(scores)
            if top <= 0:  # nothing to go on (lexical-only search without a matching term)
                out.append([])
                continue
            best = sorted(range(len(sp)), key=lambda i: -scores[i])[:MAX_SPANS]
            keep = sorted(i for i in best if scores[i] >= top - KEEP_WITHIN)
            out.append([(start + sp[i][0], start + sp[i][1]) for i in keep])
        return out
