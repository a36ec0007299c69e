"""Checking a FAISS factory string before FAISS builds anything with it.

FAISS checks some parameters with C++ exceptions, which Python can catch, and others
with assertions, which abort the process (``HNSW0``, ``HNSW1``, ``PQ8x0``, ``NSG0``)
or leave an index that fails later (``IVF0,Flat`` raises at the first search). So a
string is checked three ways, each catching what the one before cannot:

1. the integer parameters of the components a user is likely to write are checked
   against the ranges FAISS can work with (a clear message per component);
2. ``faiss.index_factory`` itself (its parse errors and C++ exceptions);
3. a probe in a separate Python process: the index is built, trained on random
   vectors, filled and searched there, so an assertion or a hang kills the probe,
   not the build.
"""

from __future__ import annotations

import re
import subprocess
import sys

from .errors import BuildError

MAX_NLIST = 1 << 20  # lists of an IVF index: beyond a million, k-means alone needs 39M training vectors
HNSW_M = (4, 256)  # neighbours per HNSW node: below 4 FAISS crashes or the graph falls apart
PQ_BITS = (1, 16)
SQ_BITS = ("4", "6", "8", "fp16", "bf16", "8_direct", "8_direct_signed", "6_direct", "4_direct")
PROBE_TIMEOUT_S = 60.0

_HINT = 'try "IVF4096,SQ8", "HNSW32,SQ8", "Flat", or leave --faiss out for the automatic choice'

# the probe: build, train, add, search 2,000 random unit vectors; any failure is a non-zero exit
_PROBE = r"""
import sys
import numpy as np
import faiss
dim, factory = int(sys.argv[1]), sys.argv[2]
faiss.omp_set_num_threads(1)
index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
rng = np.random.default_rng(0)
x = rng.standard_normal((2000, dim)).astype("float32")
x /= np.linalg.norm(x, axis=1, keepdims=True)
ivf = faiss.try_extract_index_ivf(index)
if not index.is_trained:
    if ivf is not None and ivf.nlist > 64:
        sys.exit(0)  # its k-means needs real data: the build checks list count against the collection
    index.train(x)
ids = np.arange(len(x), dtype="int64")
index.add_with_ids(x, ids)
d, i = index.search(x[:4], 10)
assert i.shape == (4, 10)
"""


def check_parameters(text: str, dim: int) -> None:
    """Refuse integer parameters FAISS cannot work with, naming the component and its range."""
    for part in re.split(r"[,_]", text):
        if not part:
            continue
        _check_component(part, dim, text)


def _check_component(part: str, dim: int, text: str) -> None:
    def refuse(reason: str) -> None:
        raise BuildError(f"invalid FAISS factory {text!r}: {reason} — {_HINT}")

    m = re.fullmatch(r"IVF(\d+)", part)
    if m and not 1 <= int(m[1]) <= MAX_NLIST:
        refuse(f"IVF needs between 1 and {MAX_NLIST:,} lists, not {m[1]}")
    m = re.fullmatch(r"(HNSW|NSG)(\d+)(.*)", part)
    if m and not HNSW_M[0] <= int(m[2]) <= HNSW_M[1]:
        refuse(f"{m[1]} needs between {HNSW_M[0]} and {HNSW_M[1]} neighbours per node (16 to 64 are usual), not {m[2]}")
    m = re.fullmatch(r"(?:PQ|RQ|LSQ|PRQ|PLSQ)(\d+)(?:x(\d+))?(fs|np)?", part)
    if m:
        if int(m[1]) < 1 or int(m[1]) > dim:
            refuse(f"{part} needs between 1 and {dim} sub-quantizers, not {m[1]}")
        if m[2] is not None and not PQ_BITS[0] <= int(m[2]) <= PQ_BITS[1]:
            refuse(f"{part} needs {PQ_BITS[0]} to {PQ_BITS[1]} bits per code, not {m[2]}")
    m = re.fullmatch(r"SQ(.+)", part)
    if m and m[1] not in SQ_BITS:
        refuse(f"scalar quantizers are SQ4, SQ6, SQ8, SQfp16 or SQbf16, not {part}")
    m = re.fullmatch(r"(?:OPQ|PCAW?R?|ITQ|RR)(\d+)", part)
    if m and not 1 <= int(m[1]) <= dim:
        refuse(f"{part} must keep between 1 and {dim} dimensions (or sub-quantizers), not {m[1]}")
    if re.fullmatch(r"[A-Za-z]+0+", part):  # any other component: a zero count or size is never meant
        refuse(f"{part} has a zero parameter")


def probe(text: str, dim: int) -> None:
    """Build, train, fill and search an index of ``text`` in a child process; a crash or hang there is an error."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(dim), text],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"invalid FAISS factory {text!r}: a test index of it did not answer in "
                         f"{PROBE_TIMEOUT_S:.0f} s — {_HINT}") from None  # fmt: skip
    if proc.returncode == 0:
        return
    if proc.returncode < 0:
        why = f"FAISS crashed on a test index of it (signal {-proc.returncode})"
    else:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        why = "FAISS failed on a test index of it: " + re.sub(r"^.*?\.cpp:\d+: (Error: )?", "", last)[:160]
    raise BuildError(f"invalid FAISS factory {text!r}: {why} — {_HINT}")
