"""Combine the dense and BM25 candidate lists into one ranking.

Choice (measured with ``bench/quality.py``, see the README table): a convex
combination of min-max normalised scores beat reciprocal rank fusion, because
it keeps how *far* ahead a candidate is on each side, not only its rank.

The lexical side is weighted, per passage, by how likely the query is written in
that passage's language (``language_weight``), times the share of the query's
terms the collection knows at all (``coverage``): BM25 has little to say across
languages, so an English question over German passages is ranked by the dense
side alone, while a query whose language is unclear (a name, a number) keeps
the lexical side everywhere — that is where exact matching helps most.

The dense side is the passage's cosine blended with its best sentence's
(``with_sentences``, ``best_sentence.py``): in dense and hybrid mode alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .language import script_of
from .records import Evidence

#: Weight of the dense side. General parameter, tuned on the average of all
#: benchmark sets (not per set); 0.5–0.8 all beat both single sides.
DENSE_WEIGHT = 0.6
#: Share of the dense side given to the passage's best sentence (its cosine to the
#: question), the rest to the passage's own cosine. General parameter, chosen on the
#: average of all benchmark sets (0.5 and 0.6 both beat the passage alone on every set
#: in dense mode; 0.6 keeps hybrid at least as good as dense alone on every set).
SENTENCE_WEIGHT = 0.6


def minmax(scores: Mapping[int, float]) -> dict[int, float]:
    """Scores scaled to [0, 1] (all 1.0 when they are equal)."""
    if not scores:
        return {}
    vals = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo < 1e-12:
        return {k: 1.0 for k in scores}
    return {k: (v - lo) / (hi - lo) for k, v in scores.items()}


def language_weight(query_probs: Mapping[str, float], lang: str | None, query_scripts: set[str]) -> float:
    """How much the lexical side counts for a passage in ``lang``, in [0, 1].

    0 when ``lang`` is written in a script the query does not use (Chinese
    passages for a Latin-script question: only borrowed tokens could match).
    Otherwise ``1 - c * (1 - p(lang) / p(top))`` where ``c`` = p(top) is how
    sure the language identifier is: a clearly English question gives German
    passages a weight near 0; a name or a number (flat distribution, small
    ``c``) keeps a weight near 1 for every language of its script.
    """
    script = script_of(lang)
    if script is not None and query_scripts and script not in query_scripts:
        return 0.0
    if not query_probs or lang is None:
        return 1.0
    top = max(query_probs.values())
    if top <= 0:
        return 1.0
    return 1.0 - top * (1.0 - min(1.0, query_probs.get(lang, 0.0) / top))


def coverage(known: int, total: int) -> float:
    """Share of the query's terms found anywhere in the collection's vocabulary."""
    return known / total if total else 0.0


def with_sentences(
    dense: Mapping[int, float], sentence: Mapping[int, float], *, weight: float = SENTENCE_WEIGHT
) -> dict[int, float]:
    """The dense side's similarity per passage: its cosine blended with its best sentence's, where it has one."""
    return {pid: (1 - weight) * cos + weight * sentence[pid] if pid in sentence else cos for pid, cos in dense.items()}


def by_score(scores: Mapping[int, float]) -> list[tuple[int, float]]:
    """Passages best first; ties by passage id, so an order never depends on how the map was built."""
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def convex(
    dense: Mapping[int, float],
    lexical: Mapping[int, float],
    lex_weight: Mapping[int, float],
    *,
    dense_weight: float = DENSE_WEIGHT,
) -> list[tuple[int, float]]:
    """Fused ranking over the union of candidates; both score maps cover every candidate."""
    d, b = minmax(dense), minmax(lexical)
    fused = {}
    for pid in set(dense) | set(lexical):
        w = lex_weight.get(pid, 1.0)
        dn = d.get(pid, 0.0)
        # where the lexical side does not apply (w = 0), the dense side takes its share:
        # a passage in another language is judged on dense evidence alone, not penalised
        fused[pid] = dense_weight * dn + (1 - dense_weight) * (w * b.get(pid, 0.0) + (1 - w) * dn)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class Fused:
    """A query's candidates in ranking order, with the evidence each was ranked on.

    What calibration and explanations read: the raw scores of each side, the lexical
    weight per passage, and what the query's candidates look like as a whole.
    """

    order: list[tuple[int, float]]  # (passage id, the mode's ranking score), best first
    dense: dict[int, float] = field(default_factory=dict)  # cosine per candidate; empty in bm25 mode
    #: the best sentence's cosine per candidate that has stored sentence vectors (``best_sentence``)
    sentence: dict[int, float] = field(default_factory=dict)
    lexical: dict[int, float] = field(default_factory=dict)  # BM25 per candidate; empty in dense mode
    #: per candidate (hybrid), how much BM25 counts for its language (``language_weight``); fusion
    #: weighs the lexical side by this times ``coverage``
    lang_weights: dict[int, float] = field(default_factory=dict)
    coverage: float | None = None  # share of the query's words the collection holds (None: no lexical side)
    dense_top: float | None = None  # the best cosine of any candidate
    dense_background: float | None = None  # the mean cosine of the BACKGROUND best dense candidates
    dense_spread: float | None = None  # and their standard deviation
    bm25_top: float | None = None  # the best BM25 score of any candidate

    def evidence(self, pid: int, score: float, matched: float | None = None) -> Evidence:
        """Passage ``pid``'s evidence; ``score`` is its ranking score, ``matched`` the share of query words it holds."""
        lexical = self.coverage is not None
        return Evidence(
            fused=score,
            dense=self.dense.get(pid) if self.dense else None,
            sentence=self.sentence.get(pid),
            bm25=self.lexical.get(pid, 0.0) if lexical else None,
            lang_weight=self.lang_weights.get(pid) if self.lang_weights else None,
            coverage=self.coverage,
            matched=matched,
            dense_top=self.dense_top,
            dense_mean=self.dense_background,
            dense_spread=self.dense_spread,
            bm25_top=self.bm25_top if lexical else None,
        )

    def dense_rank(self, pid: int) -> int | None:
        """The passage's rank among the dense candidates by what the dense side ranks on (1 = the most similar)."""
        if pid not in self.dense:
            return None
        similar = with_sentences(self.dense, self.sentence)
        mine = similar[pid]
        return 1 + sum(1 for v in similar.values() if v > mine)

    def bm25_rank(self, pid: int) -> int | None:
        """The passage's rank by BM25 among the lexical candidates; None when it holds no query term."""
        mine = self.lexical.get(pid, 0.0)
        if mine <= 0:
            return None
        return 1 + sum(1 for v in self.lexical.values() if v > mine)


#: how many of a query's best dense candidates make its background: what a hit must stand out from
BACKGROUND = 100


def background(sorted_scores: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """The best, the mean and the standard deviation of the ``BACKGROUND`` best scores (sorted best first)."""
    if not len(sorted_scores):
        return None, None, None
    head = np.asarray(sorted_scores[:BACKGROUND], dtype=np.float64)
    return float(head[0]), float(head.mean()), float(head.std())
