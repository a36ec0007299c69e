"""The search path as the user waits for it: ``Searcher.search`` on real and archive-sized indexes.

    python bench/search_path.py [--sizes 100000,1000000] [--queries N] [--parts real,synth,app]
                                [--work DIR] [--synth-index SIZE=DIR ...] [--cell-seconds S] [--json FILE]

Everything is timed in one run, one query at a time, after ``Searcher.warm_up()``,
through ``Searcher.search`` with what the page and ``indexer search`` ask for
(``SearchOptions(k=10, per_article=1, highlight=True)``), every question new to the
searcher (no query-vector cache hit):

1. real — PIAF articles and XQuAD paragraphs (each paragraph an article) from
   ../shared/bench-data (read in place; the generated article files go under --work),
   with made-up dates and sources so the filters have something to work on, built
   with the default model by ``indexer.build``; queries are the sets' real questions
   (French, English, German, Spanish, Russian, Chinese, mixed).
2. synth — archives of ``--sizes`` passages generated and built by
   ``bench/synth_archive.py`` (complete index versions: articles with dates, sources,
   languages, passages, BM25 terms, sentence vectors, near-duplicate groups, e5-shaped
   vectors, the automatic FAISS type; the default model in the manifest, so queries
   are embedded by the real model, onnx-int8). Cached under --work (or where
   ``--synth-index SIZE=DIR`` says); queries are 2–9 word phrases cut from random
   stored passages.
3. app — ``bench/app_latency.py --index <largest archive>``: the page's server time
   over real HTTP, for new questions.
4. sentences — the cost of the best-sentence evidence (``indexer/best_sentence.py``) on the
   real index: each question searched twice in the same process, alternately with the
   sentence evidence and without it (``best_sentence.cosines`` answering nothing: the
   ranking before it), query vectors embedded beforehand, so the ratio is the
   search's own cost; in hybrid and dense mode.

For each index: p50/p95 of every mode (hybrid, dense, bm25) without a filter and
with a language filter, a source filter keeping ~1 % of the passages and a date
range; where the time goes per stage (the library's own ``SearchResult.timings``); a
"parts only" row (query embedding + the FAISS step alone, as bench/scale.py's
end-to-end row times it); the page's other call per question (``Searcher.info()``);
a cProfile of 30 hybrid searches (top 25 by cumulative time, full listing in --work);
and, at the largest size, EXPLAIN QUERY PLAN of every SQL statement the searches ran,
flagging full scans of articles or passages.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth_archive  # noqa: E402

from indexer import Filters, Searcher, SearchOptions, build  # noqa: E402

DATA = synth_archive.DATA
MODES = ("hybrid", "dense", "bm25")
FILTERS = ("none", "language", "source ~1 %", "date range")
LANG_FILTER = "fr"
DATE_FROM, DATE_TO = "2023-01-01", "2023-06-30"
WARM_PER_CELL = 3  # untimed searches per mode × filter before the timed ones
PROFILED = 30
MIN_PER_CELL = 20  # a cell over --cell-seconds stops here at the earliest
STAGE_ORDER = ["embed", "filters", "dense", "lexical", "fusion", "grouping", "duplicates", "highlights", "hits"]


# ------------------------------------------------------------------ helpers
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_avg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}  (load {load_avg()})", file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "–" if v != v else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}")
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def status_mb(key: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return 0


def as_dict(value: Any) -> dict[str, Any]:
    """A manifest entry as a plain dict, whether the library keeps it as a dict or a dataclass."""
    import dataclasses

    if isinstance(value, dict):
        return value
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(vars(value))


def dense_backend(searcher: Searcher) -> Any:
    """The searcher's own dense step (FAISS, re-scored), wherever this version of the library keeps it."""
    backends = getattr(searcher, "backends", None)
    found = getattr(backends, "dense", None) or getattr(searcher, "_dense", None)
    if found is not None:
        return found
    from indexer import search as search_mod

    return search_mod.FaissDense()


# ---------------------------------------------------------- real corpus
def _made_up_metadata(i: int, lang: str, rng: random.Random) -> dict[str, Any]:
    """Dates and sources for the real articles (they have none), so the filters can be timed."""
    weights = [1 / (k + 1) ** synth_archive.SOURCE_EXPONENT for k in range(60)]
    k = rng.choices(range(60), weights)[0]
    span = (datetime(synth_archive.LAST_YEAR + 1, 1, 1) - datetime(synth_archive.FIRST_YEAR, 1, 1)).total_seconds()
    when = datetime(synth_archive.FIRST_YEAR, 1, 1, tzinfo=UTC) + timedelta(seconds=span * rng.random() ** 0.5)
    return {"source": f"{lang}-source-{k:02d}", "date": when.replace(microsecond=0).isoformat(),
            "url": f"https://{lang}-source-{k:02d}.example/{i}"}  # fmt: skip


def real_corpus(folder: Path) -> list[str]:
    """PIAF (one article per Wikipedia article) and XQuAD (one per paragraph) as JSONL; their questions."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    questions: list[str] = []
    sets = [("fr", DATA / "piaf" / "piaf-v1.0.json")] + [
        (lang, DATA / "xquad" / f"xquad.{lang}.json") for lang in ("en", "de", "es", "ru", "zh")
    ]
    for lang, path in sets:
        rows = []
        for art in json.loads(path.read_text(encoding="utf-8"))["data"]:
            paragraphs = [p["context"] for p in art["paragraphs"]]
            texts = ["\n\n".join(paragraphs)] if lang == "fr" else paragraphs
            for text in texts:
                i = len(rows)
                rows.append({"id": f"{lang}-{i:04d}", "title": art["title"], "text": text, "lang": lang,
                             **_made_up_metadata(i, lang, rng)})  # fmt: skip
            questions += [q["question"] for p in art["paragraphs"] for q in p["qas"]]
        content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        target = folder / f"{lang}.jsonl"
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
    random.Random(7).shuffle(questions)
    return questions


def ensure_real_index(work: Path) -> tuple[Path, list[str], dict[str, Any]]:
    """The real index (built, or brought up to date: a no-op when cached) and its questions."""
    index = work / "real-index"
    questions = real_corpus(work / "real-articles")
    log(f"real: building {index} with the default model (incremental: nothing to do when cached)")
    t = time.perf_counter()
    rep = build([work / "real-articles"], index)
    took = time.perf_counter() - t
    shape_file = work / "e5-shape.npz"
    if rep.published or not shape_file.exists():
        synth_archive.save_shape(synth_archive.shape_from_index(index), shape_file)
    info = {"articles": rep.articles, "passages": rep.passages, "embedded": rep.embedded,
            "build_s": round(took, 1), "published": rep.published}  # fmt: skip
    return index, questions, info


# ----------------------------------------------------------- synth corpus
def phrase_queries(searcher: Searcher, n: int, seed: int) -> list[str]:
    """``n`` distinct 2–9 word phrases (4–12 characters in Chinese) cut from random stored passages."""
    snap = searcher.snapshot()
    top = int(snap.store.stores()[-1].con.execute("SELECT max(id) FROM passages").fetchone()[0])
    rng = np.random.default_rng(seed)
    ids = (rng.choice(top, min(top, n * 2), replace=False) + 1).tolist()
    rows = snap.store.passages(ids)
    out: dict[str, None] = {}
    for pid in ids:
        r = rows.get(pid)
        if r is None:
            continue
        if r.lang == "zh":
            k = int(rng.integers(4, 13))
            start = int(rng.integers(0, max(1, len(r.text) - k)))
            q = r.text[start : start + k]
        else:
            words = r.text.split()
            k = int(rng.integers(2, 5)) if rng.random() < 0.5 else int(rng.integers(5, 10))
            start = int(rng.integers(0, max(1, len(words) - k)))
            q = " ".join(w.strip(".,;:()") for w in words[start : start + k])
        if q.strip():
            out[q] = None
        if len(out) >= n:
            break
    return list(out)


# ----------------------------------------------------------- measurement
def pick_filters(searcher: Searcher) -> tuple[dict[str, Filters], dict[str, float]]:
    """The language, ~1 % source and date-range filters for this index, with their share of passages."""
    snap = searcher.snapshot()
    con = snap.store.stores()[-1].con
    per_source = con.execute(
        "SELECT a.source, count(*) FROM passages p JOIN articles a ON a.rowid = p.article "
        "WHERE a.source IS NOT NULL GROUP BY a.source"
    ).fetchall()
    total = int(snap.ntotal)
    source = min(per_source, key=lambda r: abs(r[1] / total - 0.01))[0]
    langs = list(snap.languages)
    lang = LANG_FILTER if LANG_FILTER in langs else langs[0]
    filters = {
        "none": Filters(),
        "language": Filters(langs=(lang,)),
        "source ~1 %": Filters(sources=(source,)),
        "date range": Filters(date_from=DATE_FROM, date_to=DATE_TO),
    }
    shares = {name: len(snap.allowed(f.normalized())) / total if f else 1.0 for name, f in filters.items()}
    return filters, shares


def archive_stats(searcher: Searcher) -> dict[str, Any]:
    """What the index holds: language and source shares, dates, near-duplicate groups, file sizes."""
    snap = searcher.snapshot()
    con = snap.store.stores()[-1].con
    total = int(snap.ntotal)
    per_source = sorted(
        (
            r[0]
            for r in con.execute(
                "SELECT count(*) FROM passages p JOIN articles a ON a.rowid = p.article GROUP BY a.source"
            )
        ),
        reverse=True,
    )
    groups = dict(
        con.execute(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM articles GROUP BY dup_group) WHERE n > 1 GROUP BY n"
        )
    )
    articles = con.execute("SELECT count(*), min(date), max(date) FROM articles").fetchone()
    in_groups = sum(n * c for n, c in groups.items())
    seg = snap.segments[-1].folder  # an archive built in one go is one segment
    files = {p.name: p.stat().st_size for p in seg.iterdir() if p.is_file()}
    lexical = sum(p.stat().st_size for p in (seg / "postings").glob("*") if p.is_file())
    return {
        "languages": ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in snap.languages.items()),
        "sources": len(per_source), "top_source": per_source[0] / total if per_source else 0.0,
        "tenth_source": per_source[9] / total if len(per_source) > 9 else 0.0,
        "dates": f"{(articles[1] or '')[:10]} … {(articles[2] or '')[:10]}",
        "dup_groups": ", ".join(f"{c:,} of {n}" for n, c in sorted(groups.items())),
        "in_groups": in_groups / max(1, articles[0]),
        "db_gb": files.get("store.sqlite", 0) / 1e9, "faiss_mb": files.get("vectors.faiss", 0) / 1e6,
        "lexical_mb": lexical / 1e6,
    }  # fmt: skip


def describe(f: Filters) -> str:
    if f.langs:
        return f"lang={','.join(f.langs)}"
    if f.sources:
        return f"source={f.sources[0]!r}"
    if f.date_from or f.date_to:
        return f"{f.date_from}..{f.date_to}"
    return "–"


def options(mode: str, f: Filters) -> SearchOptions:
    return SearchOptions(k=10, per_article=1, mode=mode, highlight=True, filters=f)


def measure_index(
    label: str, index: Path, make_queries: Callable[[Searcher], Iterator[str]], n: int, work: Path,
    cell_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """Every figure of one index, in one process and one sequence."""
    import faiss

    gc.collect()
    rss0 = status_mb()
    t0 = time.perf_counter()
    searcher = Searcher(index)
    opened = time.perf_counter() - t0
    t0 = time.perf_counter()
    searcher.warm_up()
    warm = time.perf_counter() - t0
    snap = searcher.snapshot()
    total = int(snap.ntotal)
    log(f"{label}: opened in {opened:.1f} s, warm-up {warm:.1f} s; {total:,} passages")
    queries = make_queries(searcher)
    filters, shares = pick_filters(searcher)
    stats = archive_stats(searcher)
    searcher.search(next(queries), options("hybrid", Filters()))
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for mode in MODES:
        for fname in FILTERS:
            f = filters[fname]
            for _ in range(WARM_PER_CELL):
                searcher.search(next(queries), options(mode, f))
            walls, stages, hits = [], defaultdict(list), []
            started = time.perf_counter()
            for _ in range(n):
                if len(walls) >= MIN_PER_CELL and time.perf_counter() - started > cell_seconds:
                    break  # a slow cell: enough queries for its p50/p95, the run stays bounded
                q = next(queries)
                t = time.perf_counter()
                res = searcher.search(q, options(mode, f))
                walls.append((time.perf_counter() - t) * 1000)
                hits.append(len(res.hits))
                # milliseconds per stage, as the library reports them (none before SearchResult.timings)
                for k, v in (getattr(res, "timings", None) or {}).items():
                    stages[k].append(float(v))
            done = len(walls)
            cells[(mode, fname)] = {
                "n": done, "p50": pct(walls, 50), "p95": pct(walls, 95), "mean": float(np.mean(walls)),
                "stages": {k: float(np.sum(v)) / done for k, v in stages.items()}, "hits": float(np.mean(hits)),
            }  # fmt: skip
            log(f"{label}: {mode:6} {fname:12} p50 {cells[(mode, fname)]['p50']:.1f} ms")
    parts = parts_only(searcher, queries, n)
    info_ms = []
    for _ in range(10):
        t = time.perf_counter()
        searcher.info()
        info_ms.append((time.perf_counter() - t) * 1000)
    profile = profile_searches(searcher, queries, label, work)
    out = {
        "label": label, "index": str(index), "passages": total, "articles": snap.store.counts()["articles"],
        "vectors": as_dict(snap.manifest.vectors), "open_s": opened, "warm_up_s": warm, "rss_mb": status_mb() - rss0,
        "filters": {k: describe(v) for k, v in filters.items()}, "shares": shares, "stats": stats,
        "cells": {f"{m}|{f}": v for (m, f), v in cells.items()},
        "parts": parts, "info_ms": {"p50": pct(info_ms, 50), "p95": pct(info_ms, 95)}, "profile": profile,
        "faiss_threads": faiss.omp_get_max_threads(),
    }  # fmt: skip
    out["searcher"], out["queries"] = searcher, queries  # for the SQL plans; dropped before the JSON
    return out


def sentence_cost(index: Path, questions: list[str], n: int) -> dict[str, Any]:
    """Each question with and without the best-sentence evidence, alternately, in one process (see part 4)."""
    from indexer import best_sentence

    searcher = Searcher(index)
    searcher.warm_up()
    asked = (questions * (2 * n // max(len(questions), 1) + 1))[: 2 * n]
    for q in dict.fromkeys(asked):
        searcher.query_vector(q)  # embedded once, before any timing
    shipped = best_sentence.cosines

    def without(*_: Any, **__: Any) -> dict[int, float]:
        return {}

    out: dict[str, Any] = {}
    try:
        for mode in ("hybrid", "dense"):
            walls: dict[str, list[float]] = {"without": [], "with": []}
            stage: list[float] = []
            for i, q in enumerate(asked):
                for arm in ("without", "with") if i % 2 else ("with", "without"):
                    best_sentence.cosines = without if arm == "without" else shipped  # type: ignore[assignment]
                    # a question keeps its passages' cosines (question.py): each arm reads its own
                    searcher._questions.clear()
                    t = time.perf_counter()
                    res = searcher.search(q, options(mode, Filters()))
                    walls[arm].append((time.perf_counter() - t) * 1000)
                    if arm == "with":
                        stage.append(res.timings.get("sentences", 0.0))
            out[mode] = {"n": len(asked), "p50_without": pct(walls["without"], 50), "p50_with": pct(walls["with"], 50),
                         "mean_without": float(np.mean(walls["without"])), "mean_with": float(np.mean(walls["with"])),
                         "sentences_stage_p50": pct(stage, 50)}  # fmt: skip
            log(f"sentences: {mode} p50 {out[mode]['p50_without']:.2f} → {out[mode]['p50_with']:.2f} ms")
    finally:
        best_sentence.cosines = shipped  # type: ignore[assignment]
    return out


def print_sentence_cost(r: dict[str, Any]) -> None:
    print("\n## Best-sentence evidence: the search without the query's embedding, alternately without and with it\n")
    rows = [[mode, c["n"], c["p50_without"], c["p50_with"], f"{c['p50_with'] / c['p50_without']:.2f}×",
             c["mean_without"], c["mean_with"], c["sentences_stage_p50"]] for mode, c in r.items()]  # fmt: skip
    print(table(["mode", "questions", "p50 without ms", "p50 with ms", "ratio", "mean without", "mean with",
                 "sentences stage p50 ms"], rows))  # fmt: skip


def parts_only(searcher: Searcher, queries: Iterator[str], n: int) -> dict[str, Any]:
    """Query embedding, then the FAISS step (re-scoring included) as the hybrid search asks for it."""
    from indexer import search as search_mod

    snap = searcher.snapshot()
    encoder = searcher.encoder
    dense = dense_backend(searcher)
    depth = int(getattr(search_mod, "CANDIDATES", 100))
    embed, faiss_ms, total, vecs = [], [], [], []
    for _ in range(n):
        q = next(queries)
        t0 = time.perf_counter()
        v = encoder.embed_queries([q])[0]
        t1 = time.perf_counter()
        dense.search(snap, v, depth, Filters(), None)
        t2 = time.perf_counter()
        embed.append((t1 - t0) * 1000)
        faiss_ms.append((t2 - t1) * 1000)
        total.append((t2 - t0) * 1000)
        vecs.append(v)
    alone = []
    for v in vecs:  # the same searches with no model run in between: the thread pools' contention shows
        t0 = time.perf_counter()
        dense.search(snap, v, depth, Filters(), None)
        alone.append((time.perf_counter() - t0) * 1000)
    return {
        "n": n, "embed_p50": pct(embed, 50), "embed_p95": pct(embed, 95), "faiss_p50": pct(faiss_ms, 50),
        "faiss_p95": pct(faiss_ms, 95), "p50": pct(total, 50), "p95": pct(total, 95),
        "faiss_alone_p50": pct(alone, 50), "faiss_alone_p95": pct(alone, 95),
    }  # fmt: skip


def profile_searches(searcher: Searcher, queries: Iterator[str], label: str, work: Path) -> dict[str, Any]:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    prof = cProfile.Profile()
    qs = [next(queries) for _ in range(PROFILED)]
    prof.enable()
    for q in qs:
        searcher.search(q, options("hybrid", Filters()))
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats()
    full = work / f"profile-{slug}.txt"
    full.write_text(buf.getvalue(), encoding="utf-8")
    prof.dump_stats(str(work / f"profile-{slug}.prof"))
    top = io.StringIO()
    pstats.Stats(prof, stream=top).sort_stats("cumulative").print_stats(25)
    lines = top.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return {"file": str(full), "top": "\n".join(lines[start:]).rstrip(), "searches": PROFILED}


# ------------------------------------------------------------ SQL plans
_IN_LIST = re.compile(r"IN \((?:[-\d]+|'[^']*')(?:,\s*(?:[-\d]+|'[^']*'))*\)")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?![\w.])")


def sql_plans(searcher: Searcher, filters: dict[str, Filters], queries: Iterator[str]) -> list[dict[str, Any]]:
    """Every distinct statement one search per mode × filter (and the page's ``info()``) runs on the
    version's SQLite, with its EXPLAIN QUERY PLAN and its time when run again alone."""
    con = searcher.snapshot().store.stores()[-1].con
    seen: dict[str, str] = {}  # statement with its values → the first one run (values filled in)
    where: dict[str, str] = {}
    shown: dict[str, str] = {}
    current = ""

    def trace(sql: str) -> None:
        short = _IN_LIST.sub("IN (…)", " ".join(sql.split()))
        key = _NUMBER.sub("?", short)
        if key not in seen:
            seen[key], where[key], shown[key] = sql, current, short

    con.set_trace_callback(trace)
    try:
        for mode in MODES:
            for fname in FILTERS:
                current = f"{mode}, {fname}"
                searcher.search(next(queries), options(mode, filters[fname]))
        current = "info() (page, every run)"
        searcher.info()
    finally:
        con.set_trace_callback(None)
    out = []
    for key, sql in seen.items():
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        plan = [r[3] for r in con.execute("EXPLAIN QUERY PLAN " + sql)]
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            runs.append((time.perf_counter() - t) * 1000)
        scans = [p for p in plan if p.startswith("SCAN") and re.search(r"\b(articles|passages|a|p|b)\b", p)]
        out.append({"sql": shown[key], "first_seen": where[key], "plan": plan, "ms": statistics.median(runs),
                    "scans": scans})  # fmt: skip
    return out


# ---------------------------------------------------------------- output
def print_index(r: dict[str, Any]) -> None:
    print(f"\n## {r['label']}: {r['passages']:,} passages, {r['articles']:,} articles, "
          f"FAISS {r['vectors'].get('faiss')} (nprobe {r['vectors'].get('nprobe') or '–'}, "
          f"rerank {r['vectors'].get('rerank') or '–'}) (load {load_avg()})\n")  # fmt: skip
    print(
        f"Opened in {r['open_s']:.1f} s, warm-up {r['warm_up_s']:.1f} s, resident memory +{r['rss_mb']:,} MB; "
        f"FAISS OpenMP threads (process default) {r['faiss_threads']}. Filters: "
        + "; ".join(f"{k}: {r['filters'][k]} ({100 * r['shares'][k]:.2f} % of passages)" for k in FILTERS[1:])
    )
    st = r["stats"]
    print(f"\nHolds: {st['languages']}; {st['sources']} sources (largest {100 * st['top_source']:.1f} % of the "
          f"passages, 10th {100 * st['tenth_source']:.1f} %); dates {st['dates']}; near-duplicate groups "
          f"{st['dup_groups'] or 'none'} ({100 * st['in_groups']:.1f} % of the articles in a group); "
          f"store.sqlite {st['db_gb']:.2f} GB, vectors.faiss {st['faiss_mb']:.0f} MB, "
          f"lexical/ {st['lexical_mb']:.0f} MB")  # fmt: skip
    rows = []
    for key, c in r["cells"].items():
        mode, fname = key.split("|")
        rows.append([mode, fname, c["n"], c["p50"], c["p95"], c["mean"], c["hits"]])
    print(f"\n### {r['label']}: Searcher.search, ms (k=10, per_article=1, highlight=True)\n")
    print(table(["mode", "filter", "n", "p50", "p95", "mean", "hits"], rows))
    from indexer import search as search_mod

    order = list(getattr(search_mod, "STAGES", STAGE_ORDER))
    stages = list(dict.fromkeys([s for s in order if any(s in c["stages"] for c in r["cells"].values())]
                                + [s for c in r["cells"].values() for s in c["stages"]]))  # fmt: skip
    rows = []
    for key, c in r["cells"].items():
        mode, fname = key.split("|")
        rows.append([mode, fname, *(c["stages"].get(s, float("nan")) for s in stages),
                     sum(c["stages"].values()), c["mean"]])  # fmt: skip
    print(f"\n### {r['label']}: mean ms per stage (SearchResult.timings)\n")
    print(table(["mode", "filter", *stages, "sum of stages", "wall mean"], rows))
    p = r["parts"]
    hyb = r["cells"]["hybrid|none"]
    print(f"\n### {r['label']}: parts only vs the whole search, ms (n = {p['n']})\n")
    print(table(
        ["what", "p50", "p95"],
        [["query embedding (onnx-int8)", p["embed_p50"], p["embed_p95"]],
         ["FAISS step right after the embedding (top 100, re-scored)", p["faiss_p50"], p["faiss_p95"]],
         ["FAISS step alone, same vectors, no model run between", p["faiss_alone_p50"], p["faiss_alone_p95"]],
         ["**parts only: embedding + FAISS**", p["p50"], p["p95"]],
         ["whole Searcher.search, hybrid, no filter", hyb["p50"], hyb["p95"]],
         ["whole Searcher.search, dense, no filter", r["cells"]["dense|none"]["p50"], r["cells"]["dense|none"]["p95"]],
         ["Searcher.info() (the page calls it on every run)", r["info_ms"]["p50"], r["info_ms"]["p95"]]],
    ))  # fmt: skip
    print(
        f"\n### {r['label']}: cProfile of {r['profile']['searches']} hybrid searches, top 25 by cumulative time "
        f"(full listing: {r['profile']['file']})\n"
    )
    print("```\n" + r["profile"]["top"] + "\n```")


def print_plans(label: str, plans: list[dict[str, Any]]) -> None:
    print(f"\n### {label}: EXPLAIN QUERY PLAN of the statements on the query path\n")
    rows = []
    for p in plans:
        flag = "**SCAN: " + "; ".join(p["scans"]) + "**" if p["scans"] else "no scan of articles/passages"
        sql = p["sql"] if len(p["sql"]) <= 160 else p["sql"][:157] + "…"
        rows.append([f"`{sql}`", p["first_seen"], "<br>".join(p["plan"]), p["ms"], flag])
    print(table(["statement", "first run by", "plan", "ms alone", "finding"], rows))


def print_summary(results: list[dict[str, Any]]) -> None:
    print(f"\n## Summary: p50 / p95 ms by index (load {load_avg()})\n")
    headers = ["mode", "filter"] + [f"{r['label']} ({r['passages']:,})" for r in results]
    rows = []
    for mode in MODES:
        for fname in FILTERS:
            cells = [r["cells"][f"{mode}|{fname}"] for r in results]
            rows.append([mode, fname, *(f"{c['p50']:.1f} / {c['p95']:.1f}" for c in cells)])
    rows.append(["parts only", "embedding + FAISS", *(f"{r['parts']['p50']:.1f} / {r['parts']['p95']:.1f}"
                                                      for r in results)])  # fmt: skip
    print(table(headers, rows))


def run_app(index: Path) -> dict[str, Any]:
    """The page's latency over real HTTP against ``index`` (bench/app_latency.py, its own process)."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "app_latency.py"), "--index", str(index), "--json"]
    log(f"app: {' '.join(cmd)}")
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - t
    text = out.stdout.strip()
    print(f"\n## The page (bench/app_latency.py --index {index}), {took:.0f} s\n")
    lines = [line for line in text.splitlines() if not line.startswith("{")]
    print("```\n" + "\n".join(lines) + "\n```")
    if out.returncode != 0:
        print("```\n" + out.stderr[-3000:] + "\n```")
    figures = next((json.loads(line) for line in text.splitlines() if line.startswith("{")), {})
    return {"returncode": out.returncode, "seconds": took, **figures}


# ------------------------------------------------------------------ main
def build_synth(index: Path, n: int, work: Path) -> tuple[dict[str, Any], bool]:
    """Build (or reuse) an archive in a fresh process: its workers are forked before any model
    or thread pool exists, and its memory is returned when it ends."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "synth_archive.py"), "--passages", str(n),
           "--index", str(index), "--shape", str(work / "e5-shape.npz"), "--work", str(work)]  # fmt: skip
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)  # its progress goes to our stderr
    if out.returncode != 0:
        raise SystemExit(f"synth_archive.py failed ({out.returncode}): {' '.join(cmd)}")
    meta = json.loads(out.stdout)
    return meta, bool(meta.pop("cached"))


def synth_targets(sizes: list[int], work: Path, overrides: list[str]) -> dict[int, Path]:
    out = {n: work / f"synth-{n}" for n in sizes}
    for item in overrides:
        size, _, path = item.partition("=")
        out[int(size)] = Path(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="passages of the synthetic archives")
    ap.add_argument("--queries", type=int, default=100, help="timed queries per mode × filter")
    ap.add_argument(
        "--cell-seconds",
        type=float,
        default=120.0,
        help=f"stop a mode × filter cell after this long (once it has {MIN_PER_CELL} queries)",
    )
    ap.add_argument("--parts", default="real,synth,app", help="which parts to run")
    ap.add_argument("--work", type=Path, default=None, help="where indexes and profiles are kept (default: temp)")
    ap.add_argument("--synth-index", action="append", default=[], metavar="SIZE=DIR",
                    help="keep the archive of SIZE passages in DIR (e.g. 1000000=/tmp/synth-archive)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = args.work or Path(tempfile.mkdtemp(prefix="search-path-"))
    work.mkdir(parents=True, exist_ok=True)
    import faiss
    import onnxruntime

    started = time.perf_counter()
    print(f"# bench/search_path.py — {os.cpu_count()} cores, load {load_avg()}, work {work}, "
          f"faiss {faiss.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"commit {git_head()}\n")  # fmt: skip
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {"sizes": sizes, "work": str(work)}
    real_index, questions, real_info = ensure_real_index(work)
    report["real_build"] = real_info
    print(f"Real index: {real_info['articles']:,} articles, {real_info['passages']:,} passages "
          f"({'built' if real_info['published'] else 'cached, up to date'}: {real_info['build_s']:.0f} s)")  # fmt: skip
    if "real" in parts:
        need = 12 * (args.queries + WARM_PER_CELL) + args.queries + PROFILED + 20
        pool = questions * (need // len(questions) + 1)
        r = measure_index("real", real_index, lambda _: iter(pool), args.queries, work, args.cell_seconds)
        print_index(r)
        r.pop("searcher"), r.pop("queries")
        results.append(r)
    if "sentences" in parts:
        report["sentences"] = sentence_cost(real_index, questions, args.queries)
        print_sentence_cost(report["sentences"])
    largest: Path | None = None
    if "synth" in parts or "app" in parts:
        targets = synth_targets(sizes, work, args.synth_index)
        builds = []
        for n in sizes:
            log(f"synth {n:,}: building or reusing {targets[n]}")
            meta, cached = build_synth(targets[n], n, work)
            phases = ", ".join(f"{k} {v:.0f} s" for k, v in meta.get("phases", {}).items())
            builds.append([f"{n:,}", str(targets[n]), f"{meta['articles']:,}", f"{meta['passages']:,}",
                           meta["duplicate_clusters"], meta.get("via", "?"), f"{meta['build_s']:.0f}", phases,
                           meta["vectors"].get("faiss"), "cached" if cached else "built now"])  # fmt: skip
            report.setdefault("synth_builds", []).append({**meta, "cached": cached, "index": str(targets[n])})
        print(
            "\n## Synthetic archives (bench/synth_archive.py; via direct: the build's steps in parallel "
            "workers, via build: indexer.build itself)\n"
        )
        print(table(["size", "index", "articles", "passages", "duplicate groups", "via", "build s (all)",
                     "phases", "FAISS", "this run"], builds))  # fmt: skip
        largest = targets[max(sizes)] if sizes else None
    if "synth" in parts:
        for n in sizes:
            label = f"synth {n // 1000:,}k" if n < 1_000_000 else f"synth {n / 1e6:g}M"
            need = 12 * (args.queries + WARM_PER_CELL) + args.queries + PROFILED + 40
            r = measure_index(label, targets[n], lambda s, need=need, seed=n: iter(phrase_queries(s, need, seed)),
                              args.queries, work, args.cell_seconds)  # fmt: skip
            print_index(r)
            if n == max(sizes):
                filters, _ = pick_filters(r["searcher"])
                plans = sql_plans(r["searcher"], filters, r["queries"])
                print_plans(label, plans)
                r["sql_plans"] = plans
            r.pop("searcher"), r.pop("queries")
            results.append(r)
            gc.collect()
    if results:
        print_summary(results)
    report["indexes"] = results
    if "app" in parts and largest is not None:
        report["app"] = run_app(largest)
    report["wall_s"] = time.perf_counter() - started
    print(f"\nWall time {report['wall_s'] / 60:.1f} min; load at the end {load_avg()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False))


def git_head() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        dirty = subprocess.run(["git", "status", "--porcelain", "indexer"], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip() + (" (indexer/ modified)" if dirty.stdout.strip() else "") if out.stdout else "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
