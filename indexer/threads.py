"""How a search or build process shares its cores among three thread pools.

ONNX Runtime (the embedding model) has its own intra-op pool, whose threads spin
for a while after each run; FAISS parallelises with OpenMP (libgomp in the
faiss-cpu wheels, which also drives the OpenBLAS FAISS bundles); numpy multiplies
with its own OpenBLAS (pthreads). Each is fast alone and slow beside the others,
so they were measured together, in the real sequence (bench/threads.py, 2 cores,
each configuration in a fresh process, p50 / p95 of 250 queries):

* a single-query FAISS search right after a query embedding runs on one OpenMP
  thread. With the default two, its second thread waits for a core that ORT's
  spinning worker holds: embed + exact search of 12k vectors takes 8.0 / 25 ms
  instead of 4.1 / 4.5 ms, of 100k vectors 39 / 49 ms instead of 16 / 16 ms. One
  query gains nothing from a second thread even alone (100k: 12.6 ms with two,
  10.0 ms with one: the scan is bound by memory bandwidth); an IVF search of one
  query is single-threaded anyway (``IVF1024,PQ192x4fs``, 200k: 4.3 ms either way).
* ORT keeps its defaults (one intra-op thread per core, spinning on): without
  spinning a query embeds in 4.9-5.7 ms instead of 3.3-3.7 ms and a batch loses 15 %
  of its tokens/s (9,600 against 11,200); one intra-op thread halves the batch's
  tokens/s; a shorter spin (100 µs) or ORT_PARALLEL gain nothing.
* FAISS keeps both threads for builds: one thread trains ``IVF1024,PQ192x4fs``
  1.7x and adds 200k vectors 1.9x slower.
* ``OMP_WAIT_POLICY=PASSIVE`` is not a substitute: the 100k search still takes 27 ms
  after an embedding, and training 1.6x longer.
* numpy's OpenBLAS is left alone: the re-scoring products (512 x 384 at most) take
  0.1-0.2 ms with one thread or two.

OpenMP's thread count is a per-thread setting (libgomp keeps it in each thread's
own ICVs), and the page searches from a new thread for every session, so a
process-wide ``faiss.omp_set_num_threads`` call cannot hold it: ``faiss_threads``
sets it around each search instead, for the calling thread only, and restores it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["query", "build"]
_KINDS = ("query", "build")


@dataclass(frozen=True)
class ThreadSettings:
    """Thread counts for the three pools; 0 keeps that library's default (one thread per core)."""

    ort_intra_op: int = 0  # ORT's default: one per physical core, with its own affinity setup
    ort_spinning: bool = True  # 15 % more tokens/s, and harmless once FAISS searches on one thread
    faiss_search: int = 1  # one query after an embedding: exact 12k p95 4.5 ms instead of 25 ms
    faiss_build: int = 0  # training and adding want every core (1.7-1.9x slower on one)


SETTINGS = ThreadSettings()


def _check(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}: choose one of {', '.join(_KINDS)}")


def ort_session_options(kind: Kind = "query", *, settings: ThreadSettings | None = None) -> Any:
    """ONNX Runtime session options with the threading for embedding queries or passages."""
    import onnxruntime as ort

    _check(kind)
    s = settings or SETTINGS
    opts = ort.SessionOptions()
    # the same for both kinds: measured, a batch and a single query both embed fastest with
    # ORT's defaults, and what a query's spinning threads did to FAISS is fixed on FAISS's side
    opts.intra_op_num_threads = s.ort_intra_op
    opts.inter_op_num_threads = 1  # sequential execution: a BERT graph has no parallel branches to use
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if s.ort_spinning else "0")
    return opts


def faiss_thread_count(kind: Kind = "query", *, settings: ThreadSettings | None = None) -> int:
    """OpenMP threads for a FAISS call of this kind (0: OpenMP's default, every core)."""
    _check(kind)
    s = settings or SETTINGS
    return s.faiss_search if kind == "query" else s.faiss_build


@contextlib.contextmanager
def faiss_threads(kind: Kind = "query", *, settings: ThreadSettings | None = None) -> Iterator[None]:
    """Run the block's FAISS calls on this kind's OpenMP threads (this thread only; restored after)."""
    n = faiss_thread_count(kind, settings=settings)
    if n <= 0:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
