"""Thread pools of ONNX Runtime, FAISS (OpenMP) and numpy (OpenBLAS), measured together on this machine.

    python bench/threads.py [--iters 250] [--rounds 2] [--passages 256] [--only NAME,NAME]

Three pools share the cores of a search or build process: ONNX Runtime's intra-op
threads (which spin after each run), FAISS's OpenMP team (libgomp, which also
drives FAISS's own OpenBLAS) and numpy's OpenBLAS (pthreads). Each is fast alone
and slow beside the others, so every configuration is timed in the real sequence,
in a fresh process, all in one run, against today's default measured alongside:

* query path — one real query embedded with the default model (int8 ONNX through
  ``OrtRunner``), then a FAISS search, then the numpy products that follow it in
  ``search.py``: on an exact ``IDMap2,Flat`` index of 12k and of 100k vectors
  (k = 100, then 100 lexical-only candidates re-scored: ``vecs @ q``) and on an
  ``IVF1024,PQ192x4fs`` index of 200k vectors, nprobe 32 (k = 512 by code, re-scored
  exactly and sorted, as ``FaissDense`` does). p50/p95 per stage and in total;
  "search alone" is the same search repeated without embeddings in between;
* build path — tokens/s of batch embedding (``Embedder.embed_passages``, batch 8,
  ~256 passages), and, for the FAISS settings, training and filling the IVF index
  as ``vectors.build`` does, then an incremental build's rhythm (embed 64 passages,
  add their vectors) in tokens/s.

The vectors are synthetic but e5-like: unit vectors around the mean direction of
real e5 passages (random pairs at cosine ~0.74, as in bench/scale.py), grouped in
topics so IVF lists are uneven. FAISS is called directly (not through
``vectors.search``) and sessions are created here, so "default" stays today's
default once ``indexer.threads`` is wired into the library. Rounds interleave the
configurations so that drift on a shared machine spreads over all of them.
Passages and questions come from PIAF in ../shared/bench-data (never copied here).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("BENCH_DATA", ROOT.parent / "shared" / "bench-data"))
WORK = Path(os.environ.get("BENCH_THREADS_CACHE", "/tmp/indexer-bench-threads"))
DIM = 384
SIZES = {"exact 12k": 12_000, "exact 100k": 100_000, "IVF 200k": 200_000}
IVF_FACTORY, NPROBE, RERANK, CANDIDATES = "IVF1024,PQ192x4fs", 32, 512, 100
TRAIN = 40 * 1024  # vectors.IndexPolicy.train_per_list × nlist, as a build samples


@dataclass(frozen=True)
class Variant:
    """One configuration of the three pools."""

    name: str
    intra: int = 0  # ORT intra_op_num_threads; 0 = ORT's default (one per physical core: 2 here)
    spin: str | None = None  # session.intra_op.allow_spinning; None = ORT's default ("1")
    spin_us: int | None = None  # session.intra_op.spin_duration_us (ORT ≥ 1.26)
    parallel: bool = False  # execution_mode ORT_PARALLEL, inter_op_num_threads 2
    faiss: int | None = None  # faiss.omp_set_num_threads for the whole process (thread); None = untouched (2)
    scoped: int | None = None  # FAISS threads set only around each search, restored afterwards
    blas: int | None = None  # numpy's OpenBLAS threads (threadpoolctl); None = untouched (2)
    env: dict[str, str] = field(default_factory=dict)  # set before the worker starts (OpenMP reads it at load)
    chosen: bool = False  # the settings of indexer.threads, through its public API
    build: bool = False  # also time the FAISS build (IVF training, adding, incremental rhythm)


VARIANTS = [
    Variant("default (today)", build=True),
    Variant("faiss 1", faiss=1, build=True),
    Variant("faiss 1 around searches", scoped=1),
    Variant("no spin", spin="0"),
    Variant("no spin + faiss 1", spin="0", faiss=1),
    Variant("spin 100 µs + faiss 1", spin_us=100, faiss=1),
    Variant("ort 1", intra=1),
    Variant("ort 1 + faiss 1", intra=1, faiss=1),
    Variant("OMP_WAIT_POLICY=PASSIVE", env={"OMP_WAIT_POLICY": "PASSIVE"}, build=True),
    Variant("no spin + PASSIVE", spin="0", env={"OMP_WAIT_POLICY": "PASSIVE"}),
    Variant("no spin + faiss 1 + blas 1", spin="0", faiss=1, blas=1),
    Variant("ORT_PARALLEL inter 2", parallel=True),
    Variant("indexer.threads (chosen)", chosen=True, build=True),
]


# ------------------------------------------------------------------ data
def passages_and_questions(n_pass: int) -> tuple[list[str], list[str]]:
    """PIAF paragraphs cut to ~200 tokens (title first, as ``passage_text``) and PIAF questions."""
    from indexer.embedding import passage_text

    f = DATA / "piaf" / "piaf-v1.0.json"
    if f.exists():
        d = json.loads(f.read_text(encoding="utf-8"))
        paras = [(a["title"], p["context"]) for a in d["data"] for p in a["paragraphs"]]
        qs = [q["question"] for a in d["data"] for p in a["paragraphs"] for q in p["qas"]]
    else:  # no bench data: French-looking filler, same shapes
        words = ["le", "la", "des", "une", "énergie", "réforme", "volcan", "élection", "marché", "région"]
        rng0 = np.random.default_rng(1)
        paras = [(f"Titre {i}", " ".join(rng0.choice(words, 160))) for i in range(800)]
        qs = [" ".join(rng0.choice(words, 9)) + " ?" for _ in range(4000)]
    rng = np.random.default_rng(0)
    picked = [paras[i] for i in rng.choice(len(paras), size=min(n_pass, len(paras)), replace=False)]
    out = []
    for title, body in picked:
        body = body if len(body) <= 900 else body[:900].rsplit(" ", 1)[0]
        out.append(passage_text(title, body))
    return out, [qs[i] for i in rng.permutation(len(qs))]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def e5_like(n: int, mean: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``mean`` (norm 0.86): random pairs at cosine ~0.74, in 2,000 topics."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(0.257 / DIM)  # the spread that puts random pairs at e5's cosine (bench/scale.py)
    topics = rng.standard_normal((2000, DIM)).astype(np.float32) * sigma
    out = np.empty((n, DIM), np.float32)
    for i in range(0, n, 50_000):
        k = min(50_000, n - i)
        z = rng.standard_normal((k, DIM)).astype(np.float32) * sigma
        t = topics[rng.integers(0, len(topics), k)]
        out[i : i + k] = unit(mean + np.sqrt(0.4) * t + np.sqrt(0.6) * z)
    return out


def new_ivf(faiss: Any) -> Any:
    """An empty IVF index set up as ``vectors.build`` sets it up."""
    index = faiss.index_factory(DIM, IVF_FACTORY, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = 1234
    ivf.cp.min_points_per_centroid = 1
    return index


def prepare(work: Path, n_pass: int) -> dict[str, Any]:
    """Vectors and indexes shared by every worker, made once (in a worker of their own)."""
    stamp = work / "ready.json"
    if stamp.exists():
        return dict(json.loads(stamp.read_text()))
    work.mkdir(parents=True, exist_ok=True)
    import faiss

    from indexer.embedding import Embedder
    from indexer.models import resolve

    passages, _ = passages_and_questions(n_pass)
    real = Embedder(resolve()).embed_passages(passages)
    # the direction of real e5 passages; the norm of a multilingual collection's mean (bench/scale.py:
    # 0.86, random pairs at 0.74), where one language's Wikipedia passages sit closer together
    mean = 0.862 * unit(real.mean(0))
    base = e5_like(max(SIZES.values()), mean)
    np.save(work / "base.npy", base)
    for name, n in SIZES.items():
        if name.startswith("exact"):
            index = faiss.index_factory(DIM, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
        else:
            index = new_ivf(faiss)
            sample = base[np.random.default_rng(1234).choice(n, TRAIN, replace=False)]
            index.train(sample)
            faiss.extract_index_ivf(index).nprobe = NPROBE
        index.add_with_ids(base[:n], np.arange(n, dtype=np.int64))
        faiss.write_index(index, str(work / f"{name.replace(' ', '_')}.faiss"))
    pair = base[:2000] @ base[2000:4000].T
    info = {"mean_norm": float(np.linalg.norm(base[:10_000].mean(0))), "random_pair": float(pair.mean())}
    stamp.write_text(json.dumps(info))
    return info


# --------------------------------------------------------------- worker
def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def session_options(v: Variant, kind: str) -> Any:
    import onnxruntime as ort

    if v.chosen:
        from indexer import threads

        opts = threads.ort_session_options("build" if kind == "build" else "query")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as OrtRunner sets it
        return opts
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = v.intra
    if v.spin is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", v.spin)
    if v.spin_us is not None:
        opts.add_session_config_entry("session.intra_op.spin_duration_us", str(v.spin_us))
    if v.parallel:
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        opts.inter_op_num_threads = 2
    return opts


def embedder(v: Variant, kind: str) -> Any:
    """The default model's ``Embedder`` whose ONNX session has this variant's options."""
    import onnxruntime as ort

    from indexer.embedding import Embedder, onnx_export, onnx_file
    from indexer.models import resolve

    emb = Embedder(resolve())
    runner = emb._runner  # the runner the library builds; only its session is replaced
    assert runner is not None, "the default model is expected to run through OrtRunner"
    path = onnx_export(emb.model) / onnx_file(emb.backend)
    runner.session = None
    gc.collect()
    runner.session = ort.InferenceSession(str(path), session_options(v, kind), providers=["CPUExecutionProvider"])
    return emb


def faiss_scope(v: Variant, faiss: Any) -> Any:
    """A context manager around each search: the variant's scoped setting, or nothing."""
    if v.chosen:
        from indexer import threads

        return threads.faiss_threads("query")
    if v.scoped is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(v.scoped)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)

    return scope()


def build_scope(v: Variant) -> Any:
    """Around the build's FAISS calls: indexer.threads' build setting for the chosen variant."""
    if not v.chosen:
        return contextlib.nullcontext()
    from indexer import threads

    return threads.faiss_threads("build")


def apply_pools(v: Variant, faiss: Any) -> None:
    """The variant's process-wide settings (for this thread, as far as OpenMP is concerned)."""
    if v.faiss is not None:
        faiss.omp_set_num_threads(v.faiss)
    if v.blas is not None:
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController()
        for lib in ctl.lib_controllers:
            if "numpy" in lib.filepath:  # numpy's OpenBLAS only; FAISS's follows OpenMP
                lib.set_num_threads(v.blas)


def pools() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {k: p.get(k) for k in ("internal_api", "threading_layer", "num_threads")} | {"lib": Path(p["filepath"]).name}
        for p in threadpool_info()
    ]


def count(emb: Any, texts: list[str]) -> int:
    """Tokens the model reads for these passages (prompt and special tokens in, cut at its maximum)."""
    return sum(min(t, emb.max_seq_length) for t in emb.count_tokens([emb.passage_prompt + p for p in texts]))


def tokens_per_second(emb: Any, passages: list[str], reps: int) -> list[float]:
    ntok = count(emb, passages)
    emb.embed_passages(passages[:16])  # warm-up: allocations, first-run kernels
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        emb.embed_passages(passages)
        out.append(ntok / (time.perf_counter() - t))
    return out


def worker_query(v: Variant, work: Path, iters: int, n_pass: int, reps: int) -> dict[str, Any]:
    import faiss

    passages, questions = passages_and_questions(n_pass)
    res: dict[str, Any] = {}
    if v.chosen:  # the build's session first, then the query's, each alone in the process
        emb = embedder(v, "build")
        res["tokens_per_s"] = tokens_per_second(emb, passages, reps)
        del emb
        gc.collect()
        emb = embedder(v, "query")
    else:
        emb = embedder(v, "query")
    apply_pools(v, faiss)
    if "tokens_per_s" not in res:
        res["tokens_per_s"] = tokens_per_second(emb, passages, reps)
    base = np.load(work / "base.npy")
    rng = np.random.default_rng(7)
    qi = 0
    for name, n in SIZES.items():
        index = faiss.read_index(str(work / f"{name.replace(' ', '_')}.faiss"))
        ivf = faiss.try_extract_index_ivf(index)
        k = RERANK if ivf is not None else CANDIDATES
        params = None
        if ivf is not None:
            params = faiss.SearchParametersIVF()
            params.nprobe = NPROBE
        stages: dict[str, list[float]] = {"embed": [], "search": [], "numpy": [], "total": []}
        qvecs = []
        for it in range(iters + 20):  # the first 20: warm-up
            text = questions[qi % len(questions)]
            qi += 1
            t0 = time.perf_counter()
            q = emb.embed_queries([text])
            t1 = time.perf_counter()
            with faiss_scope(v, faiss):
                _, ids = index.search(q, k, params=params) if params is not None else index.search(q, k)
            t2 = time.perf_counter()
            qv = q[0]
            if ivf is not None:  # FaissDense: the candidates by code, re-scored with the exact vectors
                exact = base[ids[0]] @ qv
                top = np.argsort(-exact, kind="stable")[:CANDIDATES]
                _ = exact[top]
            else:  # hybrid fusion: lexical-only candidates need their dense score
                only_lex = rng.integers(0, n, CANDIDATES)
                _ = base[only_lex] @ qv
            t3 = time.perf_counter()
            if it >= 20:
                for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    stages[key].append(dt * 1000)
                qvecs.append(q)
        alone = []
        for q in qvecs[:200]:
            t = time.perf_counter()
            with faiss_scope(v, faiss):
                index.search(q, k, params=params) if params is not None else index.search(q, k)
            alone.append((time.perf_counter() - t) * 1000)
        stages["alone"] = alone
        res[name] = stages
        del index
    res["faiss_threads"] = faiss.omp_get_max_threads()
    res["pools"] = pools()
    return res


def worker_build(v: Variant, work: Path, n_pass: int) -> dict[str, Any]:
    import faiss

    passages, _ = passages_and_questions(n_pass)
    emb = embedder(v, "build")
    apply_pools(v, faiss)
    emb.embed_passages(passages[:64])  # the build embeds first: ORT's pool has run when FAISS starts
    base = np.load(work / "base.npy")
    n = SIZES["IVF 200k"]
    index = new_ivf(faiss)
    sample = base[np.random.default_rng(1234).choice(n, TRAIN, replace=False)]
    with build_scope(v):
        t = time.perf_counter()
        index.train(sample)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(0, n, 65536):
            index.add_with_ids(base[i : i + 65536], np.arange(i, min(n, i + 65536), dtype=np.int64))
        add_s = time.perf_counter() - t
    # an incremental build's rhythm (build.py _flush): embed 64 passages, add their vectors, repeat
    ntok = 0
    spent = 0.0
    fresh = e5_like(len(passages), base[:1000].mean(0), seed=3)
    for rep in range(2):
        for i in range(0, len(passages), 64):
            part = passages[i : i + 64]
            t = time.perf_counter()
            emb.embed_passages(part)
            dt = time.perf_counter() - t
            with build_scope(v):
                index.add_with_ids(fresh[i : i + 64], np.arange(n + i, n + i + len(part), dtype=np.int64))
            if rep:  # the first pass warms up
                spent += dt
                ntok += count(emb, part)
        index.remove_ids(np.arange(n, n + len(passages), dtype=np.int64))
    return {"train_s": train_s, "add_s": add_s, "interleaved_tokens_per_s": ntok / spent}


# ---------------------------------------------------------------- parent
def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return sum(f) - idle, sum(f)


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait until other processes use less than ``limit`` of the CPUs over 2 s; returns the seconds waited."""
    t0 = time.time()
    while True:
        b0, a0 = cpu_jiffies()
        time.sleep(2)
        b1, a1 = cpu_jiffies()
        if (b1 - b0) / max(1, a1 - a0) < limit or time.time() - t0 > timeout:
            return time.time() - t0


def run_worker(mode: str, v: Variant, args: argparse.Namespace) -> dict[str, Any]:
    """One worker in a fresh process; records the CPU share other processes took meanwhile."""
    env = {**os.environ, **v.env}
    cmd = [sys.executable, __file__, "--worker", mode, "--variant", v.name, "--iters", str(args.iters),
           "--passages", str(args.passages), "--reps", str(args.reps)]  # fmt: skip
    waited = wait_quiet(args.quiet, args.quiet_timeout) if args.quiet > 0 else 0.0
    own0 = os.times()
    b0, a0 = cpu_jiffies()
    nice = args.nice
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, preexec_fn=(lambda: os.nice(nice)) if nice else None
    )
    b1, a1 = cpu_jiffies()
    own1 = os.times()
    if out.returncode != 0:
        raise SystemExit(f"worker {mode} {v.name!r} failed:\n{out.stderr[-3000:]}")
    tick = os.sysconf("SC_CLK_TCK")
    own = (own1.children_user + own1.children_system - own0.children_user - own0.children_system) * tick
    res = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    # busy ticks of all CPUs not spent by the worker, as a share of all CPUs' ticks: 0 on a quiet machine
    res["others"] = max(0.0, (b1 - b0 - own) / max(1, a1 - a0))
    res["waited_s"] = waited
    return res


def fmt(x: float, nd: int = 1) -> str:
    return f"{x:,.{nd}f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def report(data: dict[str, Any], max_others: float = 1.0) -> str:
    """The markdown tables of one run (``data`` as saved by ``main``), from the workers during which
    other processes used at most ``max_others`` of the CPUs (all of a configuration's, if none did)."""
    meta = data["meta"]

    def clean(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [r for r in runs if r["others"] <= max_others]
        return kept or runs

    query = {n: clean(r) for n, r in data["query"].items()}
    build = {n: clean(r) for n, r in data["build"].items()}
    names = [n for n in meta["order"] if query.get(n)]
    ref = VARIANTS[0].name
    first = query[ref][0]
    pool_text = ", ".join(f"{p['lib']} ({p['internal_api']}, {p['threading_layer'] or '-'}, {p['num_threads']})"
                          for p in first["pools"])  # fmt: skip
    rounds = max(len(data["query"][n]) for n in names)
    kept = sum(len(query[n]) for n in names)
    total = sum(len(data["query"][n]) for n in names)
    out = [
        "# Thread pools: ONNX Runtime × FAISS × numpy\n",
        f"{meta['machine']}; pools in a worker (library, API, threading, threads): {pool_text}; "
        f"OpenMP/BLAS environment variables: {meta['env'] or 'none'}; "
        f"vectors: mean norm {meta['mean_norm']:.2f}, random pair cosine {meta['random_pair']:.2f}; "
        f"{rounds} round(s) × {meta['iters']} queries per index and configuration, each in a fresh process"
        f"{f' ({kept} of {total} query workers kept: others used ≤ {max_others:.0%})' if kept < total else ''}; "
        f"load average {meta['load_before']} → {meta.get('load_after', '?')}; {meta.get('minutes', 0):.0f} min"
        f"{'; workers at niceness ' + str(meta['nice']) if meta.get('nice') else ''}. "
        '"others\' CPU": the largest share of all CPUs that other processes used while one of its workers ran.\n',
    ]

    def pooled(name: str, idx: str, stage: str) -> list[float]:
        return [x for run in query[name] for x in run[idx][stage]]

    for idx in SIZES:
        rows = []
        ref_p50 = pct(pooled(ref, idx, "total"), 50)
        ref_p95 = pct(pooled(ref, idx, "total"), 95)
        for name in names:
            tot = pooled(name, idx, "total")
            s = pooled(name, idx, "search")
            rows.append([
                name,
                fmt(pct(pooled(name, idx, "embed"), 50), 2),
                f"{fmt(pct(s, 50), 2)} / {fmt(pct(s, 95), 2)}",
                fmt(pct(pooled(name, idx, "numpy"), 50), 2),
                f"{fmt(pct(tot, 50), 2)} / {fmt(pct(tot, 95), 2)}",
                f"{pct(tot, 50) / ref_p50:.2f} / {pct(tot, 95) / ref_p95:.2f}",
                fmt(pct(pooled(name, idx, "alone"), 50), 2),
                f"{max(run['others'] for run in query[name]):.0%}",
            ])  # fmt: skip
        heads = ["configuration", "embed p50 ms", "search p50 / p95", "numpy p50", "total p50 / p95",
                 "× default p50 / p95", "search alone p50", "others' CPU"]  # fmt: skip
        out.append(f"## Query path, {idx} ({'k=512, nprobe 32, re-scored' if 'IVF' in idx else 'k=100'})\n")
        out.append(table(heads, rows) + "\n")

    ref_tps = statistics.median([x for run in query[ref] for x in run["tokens_per_s"]])
    ref_build = build.get(ref)
    rows = []
    for name in names:
        tps = [x for run in query[name] for x in run["tokens_per_s"]]
        row = [name, f"{fmt(statistics.median(tps), 0)} ({fmt(min(tps), 0)}–{fmt(max(tps), 0)})",
               f"{statistics.median(tps) / ref_tps:.2f}"]  # fmt: skip
        b = build.get(name)
        if b and ref_build:
            med = {k: statistics.median(x[k] for x in b) for k in ("train_s", "add_s", "interleaved_tokens_per_s")}
            refm = {k: statistics.median(x[k] for x in ref_build) for k in med}
            row += [f"{med['train_s']:.1f} ({med['train_s'] / refm['train_s']:.2f})",
                    f"{med['add_s']:.1f} ({med['add_s'] / refm['add_s']:.2f})",
                    f"{fmt(med['interleaved_tokens_per_s'], 0)} "
                    f"({med['interleaved_tokens_per_s'] / refm['interleaved_tokens_per_s']:.2f})",
                    f"{max(x['others'] for x in b):.0%}"]  # fmt: skip
        else:
            row += ["", "", "", ""]
        rows.append(row)
    heads = ["configuration", "batch tokens/s (min–max)", "× default", f"{IVF_FACTORY} train s (×)",
             "add 200k s (×)", "embed 64 + add, tokens/s (×)", "others' CPU (build)"]  # fmt: skip
    out.append(f"## Build path ({meta['passages']} PIAF passages, batch 8; FAISS build on 200k vectors)\n")
    out.append(table(heads, rows))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=250, help="timed queries per index and configuration")
    ap.add_argument("--rounds", type=int, default=2, help="passes over all configurations, interleaved")
    ap.add_argument("--passages", type=int, default=256, help="passages for the throughput measurement")
    ap.add_argument("--reps", type=int, default=3, help="throughput repetitions per process")
    ap.add_argument("--only", help="comma-separated configuration names (default: all)")
    ap.add_argument("--json", type=Path, default=WORK / "results.json", help="raw results, saved after each worker")
    ap.add_argument("--render", type=Path, help="only print the tables of a saved --json file (a partial run too)")
    ap.add_argument(
        "--quiet",
        type=float,
        default=0.10,
        help="before each worker, wait until other processes use less than this CPU share (0: never)",
    )
    ap.add_argument("--quiet-timeout", type=float, default=3600, help="seconds to wait for a quiet machine at most")
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the workers at this niceness (negative, as root: ahead of other work on a shared machine)",
    )
    ap.add_argument(
        "--max-others",
        type=float,
        default=0.15,
        help="report only workers during which other processes used at most this CPU share (if any did)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()  # fmt: skip
    by_name = {v.name: v for v in VARIANTS}
    if args.worker:
        v = by_name[args.variant]
        if args.worker == "prepare":
            out = prepare(WORK, 256)
        elif args.worker == "query":
            out = worker_query(v, WORK, args.iters, args.passages, args.reps)
        else:
            out = worker_build(v, WORK, args.passages)
        print(json.dumps(out))
        return
    if args.render:
        print(report(json.loads(args.render.read_text()), args.max_others))
        return

    chosen = [v for v in VARIANTS if not args.only or v.name in args.only.split(",") or v.name == VARIANTS[0].name]
    try:
        from indexer import threads  # noqa: F401
    except ImportError:
        chosen = [v for v in chosen if not v.chosen]
    import faiss
    import onnxruntime

    started = time.time()
    prefixes = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_")
    meta: dict[str, Any] = {
        **run_worker("prepare", VARIANTS[0], args),
        "machine": f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}); onnxruntime "
        f"{onnxruntime.__version__}, faiss {faiss.__version__}, numpy {np.__version__}",
        "env": ", ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith(prefixes)),
        "iters": args.iters,
        "passages": args.passages,
        "order": [v.name for v in chosen],
        "load_before": load_avg(),
        "nice": args.nice,
    }
    data: dict[str, Any] = {"meta": meta, "query": {v.name: [] for v in chosen}, "build": {}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for r in range(args.rounds):
        order = chosen[r % len(chosen) :] + chosen[: r % len(chosen)]  # another first each round
        for v in order:
            print(f"round {r + 1}/{args.rounds}: {v.name}", file=sys.stderr, flush=True)
            data["query"][v.name].append(run_worker("query", v, args))
            if v.build:
                data["build"].setdefault(v.name, []).append(run_worker("build", v, args))
            meta.update(load_after=load_avg(), minutes=(time.time() - started) / 60)
            args.json.write_text(json.dumps(data))
    print(report(data, args.max_others))


if __name__ == "__main__":
    main()
