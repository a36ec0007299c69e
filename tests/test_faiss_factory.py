"""FAISS factory strings with out-of-range parameters: a one-line error, never an abort, a hang or a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from indexer import vectors
from indexer.errors import BuildError

from .conftest import write
from .reliability_helpers import ROOT, cli_env

DIM = 64

# every integer parameter of the usual components, at 0, -1 and huge
TEMPLATES = ["IVF{},Flat", "IVF16,PQ{}", "IVF16,PQ8x{}", "HNSW{}", "HNSW{},SQ8", "IVF16_HNSW{},Flat", "NSG{}",
             "PQ{}", "PQ8x{}", "PCA{},Flat", "OPQ{},PQ8", "OPQ8_{},PQ8", "SQ{}", "IVF16,SQ{}", "PCAR{},Flat",
             "RQ{}", "LSQ{}"]  # fmt: skip
BAD = [t.format(v) for t in TEMPLATES for v in ("0", "-1", "99999999999")]
# not parameters but broken combinations FAISS only notices later
BROKEN = ["HNSW1", "HNSW3", "IVF16,Flat,RFlat", "RFlat", "LSH", "Flat,Refine(PQ0)", "IVF16,PQ8x0fs", "PQ8x17"]


@pytest.mark.parametrize("factory", BAD + BROKEN)
def test_bad_factory_is_a_build_error_in_this_process(factory):
    # a crash in FAISS would kill pytest itself: the probe must keep it in its own process
    with pytest.raises(BuildError, match=r"invalid FAISS factory|does not support inner product") as info:
        vectors.check_factory(factory, DIM)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400
    assert "leave --faiss out" in msg or "choose another type" in msg


@pytest.mark.parametrize("factory", ["Flat", "HNSW32", "HNSW16,SQ8", "IVF16,Flat", "IVF16,PQ8x4fs", "PQ8",
                                     "IVF16,SQ8", "SQfp16", "PCA32,Flat", "OPQ8,PQ8", "HNSW4", "HNSW256"])  # fmt: skip
def test_good_factories_still_pass(factory):
    text = vectors.check_factory(factory, DIM)
    assert text.endswith(factory)


@pytest.mark.parametrize("factory", ["HNSW0", "IVF0,Flat", "PQ8x0", "NSG0", "IVF16_HNSW1,Flat"])
def test_cli_refuses_with_one_line_and_leaves_nothing(tmp_path, factory):
    src, index = tmp_path / "src", tmp_path / "index"
    write(src / "a.txt", "Arctic\nThe Arctic council met in Tromsø to discuss shipping routes.")
    args = [sys.executable, "-m", "indexer", "build", str(src), "--index", str(index), "--faiss", factory, "-q"]
    res = subprocess.run(args, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid FAISS factory"), res.stderr
    assert "Traceback" not in res.stderr
    left = [p.name for p in index.rglob("*")] if index.exists() else []
    assert not [n for n in left if n.endswith(".partial") or n == "manifest.json"], left
