"""The FAISS side of an index version.

Vectors are L2-normalised and searched by inner product, which equals cosine
similarity on unit vectors. FAISS ids are the passages' SQLite row ids (int64),
so a hit maps straight back to its passage.

The index type follows a segment's size (``plan``): an exact scan (``IDMap2,Flat``)
while it still answers within the latency budget, then ``IVF{nlist},PQ{dim/2}x4fs`` —
4-bit product-quantisation codes scanned with SIMD ("fast scan"), 1/16 of the memory of
float32, with ids held natively. Codes this coarse cannot rank the top 10 by
themselves, so the search takes the ``rerank`` best candidates (512) by code and
re-scores them with the exact float32 vectors that SQLite keeps on disk (``FaissDense``
in backends.py): memory stays at the codes' size, and the ranking is exact among the
candidates. Any FAISS factory string can be forced instead (``indexer build --faiss
"IVF4096,SQ8"``, ``"HNSW32,SQ8"``), checked first by ``faiss_factory``.

Every segment has its own index, built once when the segment is written (from the
float32 vectors SQLite keeps, streamed in batches so memory stays bounded) and never
edited: later builds add segments and deletion markers, merges write new segments.

After the build of an approximate index its search breadth (``nprobe`` for IVF,
``efSearch`` for HNSW) is tuned: a sample of the stored vectors is held out as queries,
their exact neighbours come from a scan of the SQLite vectors, and the smallest setting
with recall@10 ≥ ``target_recall`` is kept — for a re-scored type, the share of each
query's exact top 10 among its ``rerank`` candidates, which is exactly the recall after
re-scoring (on 1,961 real e5 paragraphs, this estimate and the recall of 2,000 real
questions agreed within 0.01 — bench/scale.py). The setting is stored on the index
object, which FAISS saves with the file, so ``search`` needs no parameter. An
automatic type that reaches ``min_recall`` at no breadth is replaced by an exact scan,
with a warning (``segment_write.VectorChoice``).
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import faiss_factory, tuning
from .errors import BuildError
from .vector_plan import (
    AUTO,
    DEFAULT_POLICY,
    EXACT,
    IndexPolicy,
    VectorIndexInfo,
    auto_factory,
    is_auto,
    nlist_for,
    plan,
    rerank_depth,
)

__all__ = ["AUTO", "EXACT", "IndexPolicy", "VectorIndexInfo", "auto_factory", "plan", "rerank_depth"]

VECTORS_FILE = "vectors.faiss"

#: a fresh stream of (ids, float32 vectors) batches on every call
Batches = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def _faiss() -> Any:
    import faiss

    return faiss


def check_factory(factory: str, dim: int) -> str:
    """A factory string, checked (``faiss_factory``: ranges, FAISS's parser, a probe), normalised; ``"auto"`` as is.

    Types without their own ids (Flat, HNSW, PQ) are wrapped in ``IDMap2``, whose
    ids are the passages' row ids. Raises ``BuildError`` naming the fix.
    """
    text = "".join(factory.split())
    if text.lower() == AUTO:
        return AUTO
    if text.startswith("IDMap,"):
        text = "IDMap2," + text[len("IDMap,") :]  # IDMap2 can also decode vectors (exact filtered scans)
    faiss_factory.check_parameters(text, dim)
    faiss = _faiss()
    try:
        index = faiss.index_factory(dim, text, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        # keep the reason of FAISS's C++ message, without its source location
        detail = re.sub(r"^.*?\.cpp:\d+: (Error: '.*?' failed: )?", "", " ".join(str(exc).split()))
        raise BuildError(
            f"invalid FAISS factory {factory!r} for {dim}-dimensional vectors ({detail[:120]}) — "
            'try "IVF4096,SQ8", "HNSW32,SQ8", "Flat", or leave --faiss out for the automatic choice'
        ) from None
    if getattr(index, "metric_type", faiss.METRIC_INNER_PRODUCT) != faiss.METRIC_INNER_PRODUCT:
        raise BuildError(f"FAISS factory {factory!r} does not support inner product — choose another type")
    if faiss.try_extract_index_ivf(index) is None and not text.startswith("IDMap"):
        text = "IDMap2," + text
    faiss_factory.probe(text, dim)  # an assertion in FAISS would abort the build: it aborts a child instead
    return text


# ---------------------------------------------------------- build, update
def new_index(dim: int, factory: str = EXACT) -> Any:
    """An empty index of ``factory`` type (default: exact, with explicit ids)."""
    faiss = _faiss()
    return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)


def build(
    batches: Batches, n: int, dim: int, factory: str, *, policy: IndexPolicy = DEFAULT_POLICY
) -> tuple[Any, VectorIndexInfo]:
    """A new index of ``factory`` type holding every streamed vector, trained and tuned.

    Two passes over the stream at most: one draws the training and query samples,
    one adds the vectors and finds the queries' exact neighbours. Returns the index
    and its manifest entry.
    """
    faiss = _faiss()
    index = new_index(dim, factory)
    nlist = _nlist(index)
    if nlist and n < nlist:
        raise BuildError(
            f"{factory} needs at least {nlist} vectors to train its lists, the collection has {n} — "
            f'use fewer lists (e.g. "IVF{max(1, nlist_for(n) // 4)},SQ8") or leave --faiss out'
        )
    m_train = 0 if index.is_trained else min(n, policy.max_train, max(policy.train_per_list * (nlist or 0), 10_000))
    m_query = _query_count(index, n, policy)
    truth = None
    if m_train or m_query:
        (train, _), (queries, qids) = tuning.sample(
            batches, n, dim, [m_train, m_query], np.random.default_rng(policy.seed)
        )
        if m_train:
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is not None:
                ivf.cp.seed = policy.seed
                ivf.cp.min_points_per_centroid = 1  # small collections: no warning, the lists are just coarser
            for part in (faiss.downcast_index(p) for p in (ivf, _inner(index)) if p is not None):
                if hasattr(part, "do_polysemous_training"):
                    # polysemous codes serve Hamming pre-filtering, which inner-product search never
                    # uses, and training them takes 20x longer than the codes themselves
                    part.do_polysemous_training = False
            try:
                index.train(train)
            except RuntimeError as exc:
                raise BuildError(f"cannot train {factory} on {len(train)} vectors ({_first_line(exc)})") from None
        del train
        truth = tuning.Truth(queries, qids) if m_query else None
    for ids, vecs in batches():
        if truth is not None:  # the queries are held out until tuned: an HNSW graph finds its own nodes too easily
            keep = ~np.isin(ids, qids)
            ids, vecs = ids[keep], vecs[keep]
            truth.update(ids, vecs)
        add(index, ids, vecs)
    info = VectorIndexInfo(faiss=factory)
    if truth is not None:
        info = info.with_tuning(_tune(index, truth, factory, policy))
        add(index, qids, queries)
    if nlist:
        info = replace(info, nlist=nlist, trained_for=int(index.ntotal))
    return index, info


def build_segment(
    batches: Batches,
    n: int,
    dim: int,
    *,
    forced: str | None = None,
    previous: VectorIndexInfo | None = None,
    policy: IndexPolicy = DEFAULT_POLICY,
    small: bool = False,
) -> tuple[Any, VectorIndexInfo]:
    """The vector index of a new segment of ``n`` vectors, trained and tuned once: segments never change.

    ``small``: an update's segment, which may hold fewer vectors than a forced IVF type
    needs to train; it is then searched exactly. An automatic approximate index that
    cannot reach ``policy.min_recall`` at any breadth is replaced by an exact one, and
    the entry says so (``warning``); a forced one is kept, with the warning.
    """
    prev = previous or VectorIndexInfo()
    auto = is_auto(forced, prev)
    factory = plan(n, dim=dim, forced=forced, previous=prev, policy=policy)
    warning = None
    nlist = _nlist(new_index(dim, factory))
    if small and nlist and n < nlist:
        factory = EXACT  # an update's few vectors: an exact scan of them costs microseconds
    index, info = build(batches, n, dim, factory, policy=policy)
    if auto and rerank_depth(factory, policy=policy) and info.recall_at_10 < policy.min_recall:
        # vectors that 4-bit codes describe too coarsely even with re-scoring (seen with
        # sparse, hash-like embeddings, never with e5): the automatic choice steps up to SQ8
        factory = re.sub(r"PQ\d+x4fs$", "SQ8", factory)
        index, info = build(batches, n, dim, factory, policy=policy)
    if info.recall_at_10 < policy.min_recall:
        missed = f"{factory} reached recall@10 {info.recall_at_10:.3f} < {policy.min_recall}"
        if auto:
            # never a cliff: the exact scan keeps the promise, slower; the next merge tries again
            warning = f"{missed} at every breadth tried: this segment is searched exactly instead"
            index, info = build(batches, n, dim, EXACT, policy=policy)
        else:
            warning = f"{missed} (forced with --faiss): results may miss close passages — try --faiss auto"
    return index, replace(info, auto=auto, count=int(index.ntotal), warning=warning)


def summary(parts: list[VectorIndexInfo], count: int, *, auto: bool) -> VectorIndexInfo:
    """The manifest's ``vectors`` entry for a version: its largest segment's, with the totals."""
    if not parts:
        return VectorIndexInfo(auto=auto, count=count)
    main = max(parts, key=lambda p: p.count)
    warning = next((p.warning for p in parts if p.warning), None)
    return replace(main, auto=auto, count=count, recall_at_10=min(p.recall_at_10 for p in parts), warning=warning)


def add(index: Any, ids: np.ndarray, vecs: np.ndarray) -> None:
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, dtype=np.int64))


def stored_ids(index: Any) -> np.ndarray:
    """Every id held by the index, sorted (for checks and tests)."""
    faiss = _faiss()
    if hasattr(index, "id_map"):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(ivf.nlist) if lists.list_size(i)
    ]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, np.int64)


# --------------------------------------------------------------- file I/O
def load(path: Path) -> Any:
    return _faiss().read_index(str(path))


def save(index: Any, path: Path) -> None:
    try:
        _faiss().write_index(index, str(path))
    except RuntimeError as exc:
        # FAISS reports a failed write as C++ text ending in "(No space left on device)";
        # an OSError with its errno lets callers treat it as any other failed write
        text = str(exc)
        reason = text[text.rfind("(") + 1 : -1] if text.endswith(")") else text.splitlines()[0]
        code = next((e for e in sorted(errno.errorcode) if os.strerror(e) == reason), errno.EIO)
        raise OSError(code, reason, str(path)) from None


# ------------------------------------------------------------------ search
_EXACT_SHARE = 0.05  # exact or HNSW: a filter keeping less than this share is answered by an exact scan


def selector(allowed: np.ndarray) -> Any:
    """A FAISS selector of ``allowed`` ids; building one for 300k ids takes ~20 ms, so callers keep it."""
    return _faiss().IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))


def excluding(ids: np.ndarray) -> Any:
    """A FAISS selector of every id but ``ids`` (a segment's deleted passages)."""
    faiss = _faiss()
    inner = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    sel = faiss.IDSelectorNot(inner)
    sel.referenced_objects = [inner]  # the C++ object points at ``inner``: keep it alive with it
    return sel


def search(
    index: Any, query: np.ndarray, k: int, allowed: np.ndarray | None = None, *, sel: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (scores, ids) for one query; ``allowed`` restricts the search to those ids.

    The filter runs inside FAISS, so ``k`` hits come back whenever ``k`` ids match:
    an IVF search probes more lists when the filter thins them out (all of them if
    it must), an HNSW search widens its beam, and an exact index or HNSW scans the
    allowed vectors directly when they are few. ``sel`` is ``selector(allowed)``, if kept.
    """
    faiss = _faiss()
    q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    k = max(1, min(k, index.ntotal))
    share = 1.0
    if allowed is not None:
        if len(allowed) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        allowed = np.ascontiguousarray(allowed, dtype=np.int64)
        k = min(k, len(allowed))
        share = len(allowed) / max(1, index.ntotal)
    ivf = faiss.try_extract_index_ivf(index)
    hnsw = _hnsw(index)
    if allowed is not None and ivf is None and share < _EXACT_SHARE:
        return _scan(index, q, k, allowed)  # a few allowed vectors: decoding them beats any scan
    if allowed is not None and sel is None:
        sel = selector(allowed)
    if ivf is not None:
        # The tuned nprobe alone keeps recall@10 ≥ 0.97 under filters keeping 0.35–31 % of 1M
        # e5-like passages (the candidates are then all allowed ones, from deeper in the ranking);
        # 1/√share more lists is the margin for filters whose passages lie away from the query's
        # lists (another language than the question's), at most 2× the lists for a share of 1/4.
        # params replace the index's own settings, so nprobe is passed on explicitly.
        nprobe = min(ivf.nlist, math.ceil(ivf.nprobe / math.sqrt(share)))
        while True:
            scores, ids = index.search(q, k, params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe))
            if (ids[0] >= 0).sum() >= k or nprobe >= ivf.nlist:
                break
            nprobe = min(ivf.nlist, nprobe * 4)
    elif hnsw is not None:
        # a filter hides nodes the beam still walks through: widen it, at most 4x (then it costs
        # more than the exact scan of the allowed vectors would)
        ef = max(k, min(math.ceil(hnsw.efSearch / share), 4 * hnsw.efSearch))
        scores, ids = index.search(q, k, params=faiss.SearchParametersHNSW(sel=sel, efSearch=ef))
        if allowed is not None and (ids[0] >= 0).sum() < k:
            return _scan(index, q, k, allowed)
    elif sel is not None:
        scores, ids = index.search(q, k, params=faiss.SearchParameters(sel=sel))
    else:
        scores, ids = index.search(q, k)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]


def _scan(index: Any, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` among ``allowed``, from vectors decoded out of the index (IDMap2 types)."""
    best_s, best_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
    for i in range(0, len(allowed), 16384):
        part = allowed[i : i + 16384]
        scores = index.reconstruct_batch(part) @ q[0]
        best_s, best_i = np.concatenate([best_s, scores]), np.concatenate([best_i, part])
        if len(best_s) > k:
            top = np.argpartition(-best_s, k - 1)[:k]
            best_s, best_i = best_s[top], best_i[top]
    order = np.argsort(-best_s, kind="stable")
    return best_s[order].astype(np.float32), best_i[order]


# ---------------------------------------------------------------- helpers
def _hnsw(index: Any) -> Any:
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else faiss.downcast_index(index)
    return inner.hnsw if hasattr(inner, "hnsw") else None


def _nlist(index: Any) -> int | None:
    ivf = _faiss().try_extract_index_ivf(index)
    return int(ivf.nlist) if ivf is not None else None


def _query_count(index: Any, n: int, policy: IndexPolicy) -> int:
    """Held-out queries to measure recall with: none for an exact scan, which is the reference."""
    exact = isinstance(_inner(index), _faiss().IndexFlat)
    return 0 if exact or n <= tuning.K + 1 else min(policy.tune_queries, n)


def _inner(index: Any) -> Any:
    faiss = _faiss()
    return faiss.downcast_index(index.index) if hasattr(index, "id_map") else faiss.downcast_index(index)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:160]


def _tune(index: Any, truth: tuning.Truth, factory: str, policy: IndexPolicy) -> dict[str, Any]:
    ivf = _faiss().try_extract_index_ivf(index)
    depth = rerank_depth(factory, policy=policy)
    info = tuning.tune(index, truth, ivf=ivf, hnsw=_hnsw(index), target=policy.target_recall, depth=depth)
    return {**info, "rerank": depth} if depth else info
