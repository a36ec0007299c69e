"""Recall of an approximate index against exact search, and tuning its search breadth.

The exact neighbours of a sample of stored vectors are found by scanning the
stored vectors batch by batch (memory bounded by the batch), then nprobe or
efSearch is raised step by step until recall@10 reaches the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

K = 10  # recall is measured and tuned at this depth
STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)


def sample(
    batches: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    n: int,
    dim: int,
    sizes: list[int],
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each size, that many (vectors, ids) drawn at random positions of one pass over the stream."""
    picks = [np.sort(rng.choice(n, size=min(m, n), replace=False)) if m else np.zeros(0, np.int64) for m in sizes]
    out: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in sizes]
    start = 0
    for ids, vecs in batches():
        end = start + len(ids)
        for pick, (vs, ix) in zip(picks, out):
            lo, hi = np.searchsorted(pick, [start, end])
            if hi > lo:
                vs.append(np.array(vecs[pick[lo:hi] - start], dtype=np.float32))
                ix.append(np.asarray(ids)[pick[lo:hi] - start].astype(np.int64))
        start = end
    return [
        (
            np.concatenate(vs) if vs else np.zeros((0, dim), np.float32),
            np.concatenate(ix) if ix else np.zeros(0, np.int64),
        )
        for vs, ix in out
    ]


class Truth:
    """Exact neighbours of held-out queries, merged batch by batch over the stream."""

    EXTRA = 10  # neighbours beyond K, so ties (duplicate passages) count as found

    def __init__(self, queries: np.ndarray, qids: np.ndarray) -> None:
        self.queries, self.qids = queries, qids
        width = K + 1 + self.EXTRA  # + 1: the query itself, dropped at the end
        self.scores = np.full((len(qids), width), -np.inf, np.float32)
        self.ids = np.full((len(qids), width), -1, np.int64)

    def update(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Fold a batch of stored vectors into each query's exact top 10."""
        if not len(ids):
            return
        import faiss

        d, pos = faiss.knn(self.queries, np.ascontiguousarray(vecs, np.float32), min(self.ids.shape[1], len(ids)),
                           metric=faiss.METRIC_INNER_PRODUCT)  # fmt: skip
        scores = np.concatenate([self.scores, d], axis=1)
        found = np.concatenate([self.ids, np.asarray(ids, np.int64)[pos]], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.ids.shape[1]]
        self.scores = np.take_along_axis(scores, order, axis=1)
        self.ids = np.take_along_axis(found, order, axis=1)

    def recall(self, found: np.ndarray, depth: int = K) -> float:
        """Mean share of each query's exact top ``K`` (itself left out) in ``found``'s top ``depth``.

        With ``depth`` > ``K`` this is the recall@K after the candidates are re-scored
        exactly: an exact top-``K`` vector among them is ranked into the top ``K``.
        """
        total = 0.0
        for row, qid in enumerate(self.qids):
            keep = self.ids[row] != qid
            ids, scores = self.ids[row][keep], self.scores[row][keep]
            want = min(K, int((ids >= 0).sum()))
            if want == 0:
                total += 1.0
                continue
            # anything scoring as well as the K-th neighbour is as good (identical passages tie)
            good = set(ids[scores >= scores[want - 1] - 1e-6].tolist())
            got = [i for i in found[row].tolist() if i != qid and i >= 0][: max(K, depth)]
            total += min(want, sum(1 for i in got if i in good)) / want
        return total / max(1, len(self.qids))


def tune(index: Any, truth: Truth, *, ivf: Any, hnsw: Any, target: float, depth: int = K) -> dict[str, Any]:
    """Set on ``index`` the smallest search breadth whose recall@10 reaches ``target``.

    That is nprobe (``ivf``) or efSearch (``hnsw``), counting the top ``depth`` candidates
    for re-scored types; returns the setting and its recall, for the manifest.
    """
    depth = max(K, depth)
    if ivf is not None:
        name, steps = "nprobe", [s for s in STEPS if s < ivf.nlist] + [ivf.nlist]
    elif hnsw is not None:
        name, steps = "efSearch", [s for s in STEPS if s >= 16]
    else:  # a type with no search-time knob: measure it as it is
        _, found = index.search(truth.queries, depth + 1)
        return {"recall_at_10": round(truth.recall(found, depth), 4), "tuning_queries": len(truth.qids)}

    def use(value: int) -> None:
        if ivf is not None:
            ivf.nprobe = value
        else:
            hnsw.efSearch = value

    measured: list[tuple[int, float]] = []
    for value in steps:
        use(value)
        measured.append((value, truth.recall(index.search(truth.queries, depth + 1)[1], depth)))
        if measured[-1][1] >= target:
            break
        if len(measured) > 3 and measured[-1][1] - measured[-4][1] < 0.005:
            break  # the codes' precision caps recall (PQ, SQ8 without residuals): breadth buys nothing
    top = max(r for _, r in measured)
    best, best_recall = next((v, r) for v, r in measured if r >= min(target, top - 0.005))
    use(best)  # set on the index object: FAISS saves it with the file
    return {name: best, "recall_at_10": round(best_recall, 4), "tuning_queries": len(truth.qids)}
