"""Scores a reader can trust: a hit's raw evidence mapped to the chance that it answers the question.

The ranking score (``fusion.convex``) is min-max normalised within each query, so the
best hit of any query scores near 1, answer or not. Calibration reads evidence that
means the same thing across queries instead — the passage's cosine and how far it
stands above the query's other candidates, its BM25 score against the best of the
query, the share of the query's words the collection knows, the language weight —
and maps it through a logistic model fitted offline (``bench/calibration.py``: the
gold passage of each shared benchmark question is a positive, the other hits are
negatives, and a fifth of the articles are left out of each index so that some
questions have no answer at all). The fitted constants live in ``calibration_params``.

A cosine's scale belongs to its model, so the fit holds only for the model it was
made on (matched by fingerprint). Any other model gets the generic mapping: fitted
the same way, but only on evidence that does not depend on the cosine's scale
(standard scores within the query, BM25, coverage); it orders hits and flags
"no close match" sensibly, and says it is not calibrated for that model
(``Calibration.fitted``, ``"calibrated": false`` in the JSON, ``indexer info``).

The ranking itself does not change: only what ``Hit.score`` means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .records import Evidence

Feature = Callable[[Evidence], float]

#: how high both sides must rank a passage for them to agree on it (feature ``agree``)
AGREE = 3


def _dense_lift(e: Evidence) -> float:
    # how far the passage stands above the query's background of candidates
    return (e.dense or 0.0) - (e.dense_mean or 0.0)


def _dense_z(e: Evidence) -> float:
    # the same in units of the background's spread: free of the model's cosine scale
    return _dense_lift(e) / max(e.dense_spread or 0.0, 1e-3)


def _dense_top_z(e: Evidence) -> float:
    # how far the query's best candidate stands out: a property of the query, not of the hit
    return ((e.dense_top or 0.0) - (e.dense_mean or 0.0)) / max(e.dense_spread or 0.0, 1e-3)


def _sentence(e: Evidence) -> float:
    # an index without sentence vectors: the passage's own cosine stands in
    return e.sentence if e.sentence is not None else e.dense or 0.0


def _sentence_z(e: Evidence) -> float:
    # how far the hit's best sentence stands above the best sentences of the query's background
    if e.sentence is None or e.sentence_mean is None:
        return _dense_z(e)
    return (e.sentence - e.sentence_mean) / max(e.sentence_spread or 0.0, 1e-3)


def _sentence_top_z(e: Evidence) -> float:
    # how far the query's best sentence stands out: a property of the query
    if e.sentence_top is None or e.sentence_mean is None:
        return _dense_top_z(e)
    return (e.sentence_top - e.sentence_mean) / max(e.sentence_spread or 0.0, 1e-3)


def _margin(e: Evidence) -> float:
    # the hit's ranking score minus the best other article's: a clear winner, or one of several alike
    return e.fused - e.runner_up if e.runner_up is not None else 0.0


def _agree(e: Evidence) -> float:
    # both sides rank the passage among their first few: independent evidence pointing the same way
    return 1.0 if (e.dense_rank or 99) <= AGREE and (e.bm25_rank or 99) <= AGREE else 0.0


def _bm25_share(e: Evidence) -> float:
    top = e.bm25_top or 0.0
    return (e.bm25 or 0.0) / top if top > 0 else 0.0


def _weight(e: Evidence) -> float:
    return 1.0 if e.lang_weight is None else e.lang_weight


#: every feature a fitted model may use, by the name ``calibration_params`` records
FEATURES: dict[str, Feature] = {
    "dense": lambda e: e.dense or 0.0,
    "dense_lift": _dense_lift,
    "dense_z": _dense_z,
    "dense_top_z": _dense_top_z,
    "bm25_log": lambda e: math.log1p(max(e.bm25 or 0.0, 0.0)),
    "bm25_share": _bm25_share,
    "lexical": lambda e: _weight(e) * (e.coverage or 0.0) * _bm25_share(e),  # as fusion weighs it
    "coverage": lambda e: e.coverage or 0.0,
    "lang_weight": _weight,
    # query words the collection lacks although it is in the query's language: made-up words, a
    # name it never mentions (in another language, no word is expected to be there)
    "unknown": lambda e: _weight(e) * (1.0 - e.coverage) if e.coverage is not None else 0.0,
    "matched": lambda e: e.matched or 0.0,
    # words the passage holds, discounted when the collection lacks some query words at all
    "matched_coverage": lambda e: (e.matched or 0.0) * (e.coverage or 0.0),
    "wmatched": lambda e: _weight(e) * (e.matched or 0.0),
    "fused": lambda e: e.fused,
    "sentence": _sentence,
    "sentence_lift": lambda e: _sentence(e) - (e.sentence_mean if e.sentence_mean is not None else e.dense_mean or 0.0),
    "sentence_z": _sentence_z,
    "sentence_top_z": _sentence_top_z,
    "margin": _margin,
    "agree": _agree,
    "dense_rr": lambda e: 1.0 / e.dense_rank if e.dense_rank else 0.0,
    "bm25_rr": lambda e: 1.0 / e.bm25_rank if e.bm25_rank else 0.0,
}


@dataclass(frozen=True)
class ModeModel:
    """A logistic model for one search mode: ``p = σ(intercept + Σ coef · feature)``, and its no-match threshold."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float  # a query whose best hit scores below this has no close match

    def __post_init__(self) -> None:
        unknown = [name for name in self.features if name not in FEATURES]
        if unknown or len(self.coef) != len(self.features):
            raise ValueError(f"bad calibration model: features {self.features}, {len(self.coef)} coefficients")

    def probability(self, evidence: Evidence) -> float:
        """The estimated chance that a hit with this evidence answers the query."""
        z = self.intercept
        for name, c in zip(self.features, self.coef):
            z += c * FEATURES[name](evidence)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


@dataclass(frozen=True)
class Calibration:
    """How a search turns evidence into ``Hit.score``, and when nothing is close."""

    modes: Mapping[str, ModeModel]
    fitted: bool  # fitted for the index's model (else: the generic mapping)
    label: str  # what it is, for explanations and ``indexer info``
    fitted_on: str = ""  # the data it was fitted on

    def probability(self, mode: str, evidence: Evidence) -> float:
        """``Hit.score`` of a hit with this evidence, in a search of ``mode``."""
        return self.modes[mode].probability(evidence)

    def no_close_match(self, mode: str, best: float | None) -> bool:
        """Whether a query whose best hit has calibrated score ``best`` (None: no hit) has nothing close."""
        return best is None or best < self.modes[mode].threshold


def mode_model(params: Mapping[str, Any]) -> ModeModel:
    """One mode's model from its ``calibration_params`` entry."""
    return ModeModel(
        tuple(params["features"]),
        tuple(float(c) for c in params["coef"]),
        float(params["intercept"]),
        float(params["threshold"]),
    )


def _from_params(params: Mapping[str, Any], *, fitted: bool, label: str, fitted_on: str) -> Calibration:
    return Calibration({mode: mode_model(m) for mode, m in params["modes"].items()}, fitted, label, fitted_on)


_CACHE: dict[str, Calibration] = {}


def for_model(name: str, fingerprint: str) -> Calibration:
    """The calibration fitted for this model (by fingerprint), else the generic mapping, labelled as such."""
    key = f"{name}\0{fingerprint}"
    found = _CACHE.get(key)
    if found is not None:
        return found
    from . import calibration_params as p

    fit = next((f for f in p.FITTED if f["fingerprint"] == fingerprint), None)
    if fit is not None:
        cal = _from_params(fit, fitted=True, label=f"fitted for {fit['model']}", fitted_on=p.FITTED_ON)
    else:
        label = f"generic mapping, not fitted for {name}"
        cal = _from_params(p.GENERIC, fitted=False, label=label, fitted_on=p.FITTED_ON)
    _CACHE[key] = cal
    return cal
