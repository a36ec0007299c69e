"""Which sentence(s) of a passage best answer the query — in any language.

Sentences of the returned passages are embedded in one batch with the same
model and compared with the query vector, so a French sentence is found for an
English question; query terms found in a sentence add a small bonus, which
settles near-ties toward the sentence that names what was asked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from . import sentences
from .analysis import analyze

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


def unpack_sentences(blob: bytes, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A blob of ``pack_sentences`` back as (spans, float32 vectors)."""
    n = int(np.frombuffer(blob[:4], dtype="<i4")[0])
    spans = np.frombuffer(blob[4 : 4 + 8 * n], dtype="<i4").reshape(n, 2)
    vecs = np.frombuffer(blob[4 + 8 * n :], dtype="<f2").reshape(n, dim).astype(np.float32)
    return spans, vecs


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
