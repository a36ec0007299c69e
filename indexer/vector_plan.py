"""Which vector index fits a collection, and the manifest entry that records it.

The index type follows the collection's size (``plan``): an exact scan
(``IDMap2,Flat``) while it still answers within the latency budget, then
``IVF{nlist},PQ{dim/2}x4fs``, whose best ``rerank`` candidates are re-scored with
the float32 vectors SQLite keeps (see vectors.py). Any FAISS factory string can
be forced instead and sticks until ``--faiss auto``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

EXACT = "IDMap2,Flat"
AUTO = "auto"


@dataclass(frozen=True)
class IndexPolicy:
    """How the automatic choice and the tuning behave (see bench/scale.py for the figures)."""

    # exact below this: a scan of 100k 384-d vectors takes ~15 ms on 2 cores, half the 30 ms budget
    # left beside the query embedding (~4 ms) and the rest of the search (bench/scale.py)
    exact_limit: int = 100_000
    target_recall: float = 0.97  # tuning aim for recall@10 against exact search
    min_recall: float = 0.95  # the promise: an updated index tuned below this is retrained
    # candidates re-scored with the stored float32 vectors, for types with PQ codes: at 1M e5-like
    # vectors, 512 lifts IVF4096,PQ192x4fs from recall 0.61 (top 10 by code) to 0.97 (bench/scale.py)
    rerank: int = 512
    regrow: float = 4.0  # retrain IVF when the size moved this factor away from the trained size
    tune_queries: int = 500  # held-out queries: recall is known to about ±0.005
    train_per_list: int = 40  # k-means sample per IVF list (FAISS asks for at least 39)
    max_train: int = 262_144  # bounds the training sample's memory (400 MB at 384 dimensions)
    seed: int = 1234  # k-means, sampling: the same vectors give the same index

    def to_dict(self) -> dict[str, Any]:
        """The policy as the manifest records it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> IndexPolicy:
        """A recorded policy; missing or unknown fields fall back to the defaults."""
        if not isinstance(data, dict):
            return cls()
        defaults = cls()
        kept: dict[str, Any] = {}
        for f in fields(cls):
            v = data.get(f.name)
            if isinstance(v, int | float) and not isinstance(v, bool):
                kept[f.name] = type(getattr(defaults, f.name))(v)
        return replace(defaults, **kept)


DEFAULT_POLICY = IndexPolicy()


@dataclass(frozen=True)
class VectorIndexInfo:
    """The manifest's ``vectors`` entry: the index type, how it was chosen and tuned."""

    faiss: str = EXACT
    auto: bool = True  # chosen by size (False: forced with --faiss)
    metric: str = "inner_product"
    normalized: bool = True
    count: int = 0
    recall_at_10: float = 1.0  # measured on held-out stored vectors (1.0 for an exact scan)
    tuning_queries: int | None = None
    nprobe: int | None = None  # IVF search breadth
    efSearch: int | None = None  # HNSW search breadth (FAISS's name)
    rerank: int | None = None  # candidates re-scored with the stored vectors (PQ codes)
    nlist: int | None = None
    trained_for: int | None = None  # the size an IVF index's lists were trained for
    warning: str | None = None  # why the index is not what was asked for, or misses the recall promise

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON holds it: settings a type does not have are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> VectorIndexInfo:
        """Decode the entry; raises ``TypeError`` on a value of the wrong type."""
        if not isinstance(data, dict):
            raise TypeError("vectors must be an object")
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data or data[f.name] is None:
                continue
            v = data[f.name]
            if f.name in ("faiss", "metric", "warning"):
                ok = isinstance(v, str)
            elif f.name in ("auto", "normalized"):
                ok = isinstance(v, bool)
            elif f.name == "recall_at_10":
                ok = isinstance(v, int | float) and not isinstance(v, bool)
            else:
                ok = isinstance(v, int) and not isinstance(v, bool)
            if not ok:
                raise TypeError(f"vectors.{f.name} has the wrong type")
            out[f.name] = v
        return cls(**out)

    @property
    def trained(self) -> int:
        """The size the lists were trained for; 0 for types without lists."""
        return int(self.trained_for or 0)

    def with_tuning(self, tuned: dict[str, Any]) -> VectorIndexInfo:
        """This entry with the settings a tuning run measured (``tuning.tune``)."""
        return replace(self, **{k: v for k, v in tuned.items() if k in _FIELDS})


_FIELDS = {f.name for f in fields(VectorIndexInfo)}


def nlist_for(n: int) -> int:
    """IVF lists for ``n`` vectors: about 4·√n (FAISS's rule of thumb), as a power of two.

    Powers of two keep the factory string stable until the size changes 4-fold.
    """
    return int(2 ** round(math.log2(max(16.0, 4 * math.sqrt(max(n, 1))))))


def auto_factory(n: int, *, dim: int | None = None, policy: IndexPolicy = DEFAULT_POLICY) -> str:
    """The automatic index type for ``n`` vectors of ``dim`` dimensions.

    Exact below ``exact_limit``, else IVF with 4-bit fast-scan PQ codes of two dimensions
    each (re-scored exactly at search time), or SQ8 when ``dim`` is odd or unknown.
    """
    if n < policy.exact_limit:
        return EXACT
    return f"IVF{nlist_for(n)}," + (f"PQ{dim // 2}x4fs" if dim and dim % 2 == 0 else "SQ8")


def rerank_depth(factory: str, *, policy: IndexPolicy = DEFAULT_POLICY) -> int:
    """Candidates to re-score with the stored vectors: for PQ codes only.

    SQ8 and exact vectors rank well enough by themselves, and a deeper HNSW search
    would cost more than it gains.
    """
    return policy.rerank if re.search(r"(^|,)PQ", factory) else 0


def within_training(info: VectorIndexInfo, n: int, policy: IndexPolicy) -> bool:
    """Whether an IVF index trained for ``info.trained`` vectors still fits ``n`` of them."""
    return info.trained / policy.regrow <= n <= info.trained * policy.regrow


def plan(
    n: int,
    *,
    dim: int | None = None,
    forced: str | None = None,
    previous: VectorIndexInfo | None = None,
    policy: IndexPolicy = DEFAULT_POLICY,
) -> str:
    """The factory string a build should end with, given the previous version's entry.

    ``forced``: a checked factory string, ``"auto"`` for the automatic choice, or
    None to keep what the previous version was forced to (else automatic). An
    automatic IVF index is kept down to half the exact limit and while the size
    stays within the regrow factor of its trained size, so a collection hovering
    around a boundary is not rebuilt on every build.
    """
    prev = previous or VectorIndexInfo()
    if forced is None and not prev.auto:
        return prev.faiss
    if forced is not None and forced != AUTO:
        return forced
    if prev.auto and prev.trained and n >= policy.exact_limit // 2 and within_training(prev, n, policy):
        return prev.faiss
    return auto_factory(n, dim=dim, policy=policy)


def is_auto(forced: str | None, previous: VectorIndexInfo | None) -> bool:
    """Whether the index a build ends with is the automatic choice."""
    return forced == AUTO or (forced is None and (previous or VectorIndexInfo()).auto)
