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
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .language import script_of

#: Weight of the dense side. General parameter, tuned on the average of all
#: benchmark sets (not per set); 0.5–0.8 all beat both single sides.
DENSE_WEIGHT = 0.6


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
