"""Search latency against the segment layout: one segment, a base + N updates, merged, and during a merge.

    python bench/segments_search.py [--passages 50000] [--queries 200] [--updates 10,30]
                                    [--work DIR] [--keep] [--seed N] [--shape FILE.npz] [--json FILE]

The promise checked: a search costs the same whatever the index's segments, during
and after merges. What is timed is what the user waits for, ``Searcher.search(query,
SearchOptions(k=10, per_article=1, highlight=True, mode=…, filters=…))`` as the page
calls it, after ``Searcher.warm_up()``, with the real default model (onnx-int8, loaded
offline) embedding every query.

One archive, its contents the same in every layout (``bench/synth_archive.py``'s
generator: sources, dates, six languages, syndicated copies, news-shaped text, written
as JSONL files and read back by ``indexer.build.build`` with ``SynthEncoder`` for the
passages and the default model in the manifest). The archive first holds its base
articles; then ``max(--updates)`` updates each add ``ADDED`` new articles (a new
JSONL file), change ``CHANGED`` and delete ``DELETED`` live ones (base or added
earlier: the small segments get deletion markers too). The layouts, all of the final
contents:

1. ``one segment``: a full build (``BuildSettings(full=True)``) of the final files;
2. ``base + N updates``: a full build of the files as they were N updates before the
   end, then those N updates one build each, with merging turned off in this process
   (``indexer.merge.due`` replaced by a function that finds nothing due: builds call
   ``merge()``, which asks ``due`` for the next run — ``DEFAULT_MERGE`` is bound as a
   default argument and cannot be patched). Checked: 1 + N segments;
3. ``merged``: a hard-linked copy of the largest layout 2 after ``indexer merge --all``
   (segment and version files are immutable, so links are safe; a merge unlinks, never
   rewrites);
4. ``during a merge``: on another such copy, the same kind of queries before, while a
   subprocess runs ``python -m indexer merge --all --index COPY`` (the searcher follows
   the new version by itself, as the page's does), and after it. The merge is run again
   on fresh copies, at least ``MIN_MERGES`` times and until every mode × filter has
   ``--queries`` searches during merges (at most ``MAX_MERGES`` runs); each run has its
   own before and after (``--queries / MIN_MERGES`` per cell), so the three phases share
   the machine's changing load. Each question also goes, moments apart, to a control
   searcher on the untouched layout 2 (both searchers opened anew each run): what the merge costs every process on the
   machine (CPU, disk) and what it costs the index being merged are told apart. The
   cells are taken in turn, in a new random order each round. The first ``SWITCH``
   searches on the new version are shown apart, one by one.

Layouts 1–3 are timed interleaved in one process: each question goes to every layout in
turn, the order rotating, so a change of machine load hits them all alike, and the
ratios are also given as the median of the per-question ratios. The questions are split
over ``ROUNDS`` rounds, each with newly opened searchers: two searchers on identical
indexes were seen to differ by up to ~15 % in the dense step from one set of opened
searchers to the next, which more questions do not average away (layouts 1 and 3 have
the same contents in one segment each: their ratio is the noise floor). The searchers
share one encoder (the page holds one model; their query caches stay apart), and each
question is new to each searcher. Queries: the PIAF (fr) and XQuAD (en, de, es, ru,
zh) questions from ../shared/bench-data (read in place), the languages taken in turn.
Modes hybrid, dense, bm25, each without a filter and with the language filter ``fr``.

Printed: the layouts (segments, live and deleted passages, vector types, build time),
p50/p95 per mode and filter with ratios to the one-segment layout, the mean per-stage
times of ``SearchResult.timings``, the during-merge tables (before / during / after with
ratios to before, the first searches on the new version, the merges' wall and CPU
time), and the 1-minute load average at each phase (other work slows searches down).

Indexes and sources go under ``--work`` (default: a temporary folder) and are removed at
the end unless ``--keep``; a kept work folder is reused when it holds the same archive
(same ``--passages``, ``--updates``, ``--seed``, generator).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth_archive as sa  # noqa: E402
from scale import Mixture  # noqa: E402

import indexer  # noqa: E402
import indexer.merge  # noqa: E402
from indexer import Filters, Searcher, SearchOptions  # noqa: E402
from indexer.build import BuildSettings, build  # noqa: E402
from indexer.models import resolve  # noqa: E402

ADDED, CHANGED, DELETED = 20, 3, 2  # per update
MODES = ("hybrid", "dense", "bm25")
FILTERS = {"none": Filters(), "lang=fr": Filters(langs=("fr",))}
WARM = 5  # untimed searches per cell and searcher before the timed ones
ROUNDS = 3  # sets of newly opened searchers the layout comparison is split over
MIN_MERGES, MAX_MERGES = 4, 8  # merge runs: before and after are spread over at least this many
SWITCH = 6  # searches on a new version shown apart: the first ones load what it added
PHASES = ("before", "during", "after")
WHO = ("merging copy", "control")  # the searcher on the index being merged; one on an untouched copy
LAYOUT_VERSION = 1  # bump when the layouts built here change: kept work folders are rebuilt
STAGES = ("filters", "embed", "dense", "lexical", "fusion", "grouping", "highlights", "duplicates", "hits")


def log(msg: str) -> None:
    print(f"[segments {time.strftime('%H:%M:%S')}] {msg}  (load {load()})", file=sys.stderr, flush=True)


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "–" if v != v else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}")
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


# ------------------------------------------------------------- archive
@dataclass
class Sources:
    """The archive's JSONL files, and the updates made to them (deterministic for a seed)."""

    articles: sa.Articles
    folder: Path
    n_base: int
    story_of: dict[str, int]  # title → story, shared with the encoder
    rng: random.Random
    file_of: dict[int, Path] = field(default_factory=dict)  # live article → its file
    next_new: int = 0

    @classmethod
    def generate(cls, n_passages: int, reserve: int, folder: Path, seed: int) -> Sources:
        vocab = sa.load_vocabularies()
        per_article = sa._calibrate(vocab, seed)
        plan = sa.make_plan(n_passages, per_article, seed, vocab)
        n = len(plan.source)
        # the newest articles of the plan are the ones updates add, as an archive grows
        src = cls(sa.Articles(plan, vocab), folder, n - reserve, {}, random.Random(seed), next_new=n - reserve)
        folder.mkdir(parents=True, exist_ok=True)
        for s in range(0, src.n_base, sa.SHARD):
            ids = range(s, min(src.n_base, s + sa.SHARD))
            src._write(folder / f"articles-{s // sa.SHARD:04d}.jsonl", ids)
        return src

    def _record(self, i: int) -> dict[str, Any]:
        rec = self.articles.record(i)
        self.story_of.setdefault(rec["title"], int(self.articles.plan.story[i]))
        return rec

    def _write(self, path: Path, ids: range) -> None:
        path.write_text("".join(json.dumps(self._record(i), ensure_ascii=False) + "\n" for i in ids), encoding="utf-8")
        self.file_of.update(dict.fromkeys(ids, path))

    def _rewrite(self, path: Path, edits: dict[str, str | None]) -> None:
        """``path`` with the articles named in ``edits`` given a new sentence (str) or removed (None)."""
        out = []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            rec = json.loads(line)
            if rec["id"] not in edits:
                out.append(line)
            elif (note := edits[rec["id"]]) is not None:
                paras = rec["text"].split("\n\n")
                paras[len(paras) // 2] += f" ({note})"
                out.append(json.dumps({**rec, "text": "\n\n".join(paras)}, ensure_ascii=False) + "\n")
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(out), encoding="utf-8")
        os.replace(tmp, path)

    def update(self, u: int) -> None:
        """Update ``u``: ``ADDED`` new articles in a file of their own, ``CHANGED`` edited, ``DELETED`` removed."""
        live = sorted(self.file_of)
        picks = self.rng.sample(live, CHANGED + DELETED)
        edits: dict[Path, dict[str, str | None]] = defaultdict(dict)
        for k, i in enumerate(picks):
            edits[self.file_of[i]][f"syn-{i:07d}"] = f"correction {u}" if k < CHANGED else None
        for i in picks[CHANGED:]:
            del self.file_of[i]
        for path, e in edits.items():
            self._rewrite(path, e)
        first, self.next_new = self.next_new, self.next_new + ADDED
        self._write(self.folder / f"update-{u:04d}.jsonl", range(first, self.next_new))


def link_copy(src: Path, dst: Path) -> Path:
    """A copy of an index whose segment and version files are hard links (they are never rewritten)."""
    if dst.exists():
        shutil.rmtree(dst)

    def copy(a: str, b: str) -> None:
        rel = Path(a).relative_to(src).parts[0]
        (os.link if rel in ("segments", "versions") else shutil.copy2)(a, b)

    shutil.copytree(src, dst, copy_function=copy)
    return dst


def build_layouts(work: Path, n_passages: int, updates: list[int], seed: int, shape: Path | None) -> dict[str, Any]:
    """The indexes of layouts 1 and 2, built once per work folder; returns their description."""
    meta_file = work / "layouts.json"
    want = {"layout_version": LAYOUT_VERSION, "generator": sa.GENERATOR_VERSION, "passages": n_passages,
            "updates": updates, "seed": seed, "shape": str(shape) if shape else None}  # fmt: skip
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("want") == want and all((work / p / "manifest.json").exists() for p in meta["indexes"].values()):
            log(f"reusing the indexes in {work}")
            return {**meta, "cached": True}
    work.mkdir(parents=True, exist_ok=True)
    for p in work.iterdir():  # only what this bench makes: --work may hold other things
        if p.is_dir() and (p.name in ("sources", "one-segment") or p.name.startswith(("updates-", "merging-"))):
            shutil.rmtree(p)
    most = max(updates)
    t0 = time.perf_counter()
    src = Sources.generate(n_passages, most * ADDED, work / "sources", seed)
    log(f"{src.n_base:,} base articles written in {time.perf_counter() - t0:.0f} s")
    encoder = sa.SynthEncoder(Mixture(n_passages, sa.load_shape(shape)[0], seed=1), src.story_of)
    model = resolve()
    builds: dict[str, float] = {}

    def run(index: Path, full: bool) -> None:
        t = time.perf_counter()
        rep = build([src.folder], index, BuildSettings(full=full), encoder=encoder, model=model)
        builds[index.name] = builds.get(index.name, 0.0) + time.perf_counter() - t
        if full:
            log(f"full build {index.name}: {rep.passages:,} passages in {time.perf_counter() - t:.0f} s")

    indexes = {f"base + {n} updates": f"updates-{n}" for n in sorted(updates)}
    due = indexer.merge.due
    indexer.merge.due = lambda *a, **k: None  # no merges in this process: updates stay segments of their own
    try:
        for u in range(most + 1):  # u updates made to the files so far
            for n in updates:
                if u >= most - n:
                    run(work / f"updates-{n}", u == most - n)
            if u and u % 10 == 0:
                log(f"update {u}/{most} built")
            if u < most:
                src.update(u + 1)
    finally:
        indexer.merge.due = due
    run(work / "one-segment", True)
    indexes = {"one segment": "one-segment", **indexes}
    for n in updates:
        segs = len(json.loads((work / f"updates-{n}" / "manifest.json").read_text())["segments"])
        if segs != 1 + n:
            raise RuntimeError(f"updates-{n} has {segs} segments, not {1 + n}: merging was not turned off")
    meta = {"want": want, "indexes": indexes, "build_s": builds, "base_articles": src.n_base}
    meta_file.write_text(json.dumps(meta, indent=2))
    return {**meta, "cached": False}


# ------------------------------------------------------------- queries
def question_stream(seed: int) -> tuple[Iterator[str], int]:
    """The datasets' questions, one language after the other, endlessly (each language shuffled, as many of each)."""
    per_lang: list[list[str]] = []
    for lang in ("fr", "en", "de", "es", "ru", "zh"):
        path = sa.DATA / "piaf" / "piaf-v1.0.json" if lang == "fr" else sa.DATA / "xquad" / f"xquad.{lang}.json"
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        qs = list(dict.fromkeys(q["question"].strip() for a in data for p in a["paragraphs"] for q in p["qas"]))
        random.Random(seed).shuffle(qs)
        per_lang.append(qs)
    pool: list[str] = []
    for k in range(min(len(q) for q in per_lang)):  # as many of each: every stretch of the pool is as mixed
        pool += [q[k] for q in per_lang]

    def cycle() -> Iterator[str]:
        while True:
            yield from pool  # thousands of questions: a repeat is long out of the 256-entry query cache

    return cycle(), len(pool)


# --------------------------------------------------------- measurement
@dataclass
class Cell:
    """The searches of one mode × filter on one layout."""

    walls: list[float] = field(default_factory=list)
    hits: int = 0
    stages: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, wall: float, timings: dict[str, float], hits: int) -> None:
        self.walls.append(wall)
        self.hits += hits
        for k, v in timings.items():
            self.stages[k] += v

    def summary(self) -> dict[str, Any]:
        n = max(1, len(self.walls))
        return {"n": len(self.walls), "p50": pct(self.walls, 50), "p95": pct(self.walls, 95),
                "mean": float(np.mean(self.walls)) if self.walls else float("nan"),
                "max": max(self.walls, default=float("nan")), "hits": self.hits / n,
                "stages": {k: v / n for k, v in self.stages.items()}}  # fmt: skip


CELLS = [(m, f) for m in MODES for f in FILTERS]


def paired(a: Cell, b: Cell) -> float:
    """The median over questions of a's time / b's time for the same question, asked moments apart."""
    n = min(len(a.walls), len(b.walls))
    return float(np.median(np.array(a.walls[:n]) / np.array(b.walls[:n]))) if n else float("nan")


def options(mode: str, fname: str) -> SearchOptions:
    return SearchOptions(k=10, per_article=1, highlight=True, mode=mode, filters=FILTERS[fname])


def timed(searcher: Searcher, q: str, mode: str, fname: str) -> tuple[float, dict[str, float], int]:
    t = time.perf_counter()
    res = searcher.search(q, options(mode, fname))
    return (time.perf_counter() - t) * 1000, res.timings, len(res.hits)


def open_searcher(index: Path, encoder: Any = None) -> Searcher:
    s = Searcher(index, encoder=encoder)
    s.warm_up()
    return s


def interleaved(paths: dict[str, Path], n: int, stream: Iterator[str], encoder: Any) -> dict[str, dict[str, Any]]:
    """Every cell: ``n`` questions, each asked of every layout in turn (the order rotating).

    The questions are split over ``ROUNDS`` rounds, each with newly opened searchers (in
    a rotated order): how one process's memory happens to be laid out moves one
    layout's dense step by up to ~15 %, a difference more questions alone do not average away.
    """
    labels = list(paths)
    cells = {label: {f"{m}|{f}": Cell() for m, f in CELLS} for label in labels}
    rounds: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in labels}
    per_round = -(-n // ROUNDS)
    for r in range(ROUNDS):
        opening = labels[r % len(labels) :] + labels[: r % len(labels)]
        searchers = {label: open_searcher(paths[label], encoder) for label in opening}
        for mode, fname in CELLS:
            key = f"{mode}|{fname}"
            for _ in range(WARM):
                q = next(stream)
                for s in searchers.values():
                    s.search(q, options(mode, fname))
            this = {label: Cell() for label in labels}
            for j in range(per_round):
                q = next(stream)
                for k in range(len(labels)):
                    label = labels[(j + k) % len(labels)]
                    res = timed(searchers[label], q, mode, fname)
                    this[label].add(*res)
                    cells[label][key].add(*res)
            for label in labels:
                rounds[label][key].append(paired(this[label], this[labels[0]]))
        log(f"round {r + 1}/{ROUNDS}: " + ", ".join(f"{lb} {cells[lb]['hybrid|none'].summary()['p50']:.1f}"
                                                      for lb in labels))  # fmt: skip
        for s in searchers.values():
            s.close()
        del searchers
        gc.collect()
    return {label: {key: {**c.summary(), "paired": paired(c, cells[labels[0]][key]), "rounds": rounds[label][key]}
                    for key, c in cells[label].items()} for label in labels}  # fmt: skip


def cell_order(seed: int) -> Iterator[tuple[str, str]]:
    """The cells in turn, each round in a new order: a fixed order would give each cell one question language."""
    rng = random.Random(seed)
    while True:
        yield from rng.sample(CELLS, len(CELLS))


def version_of(searcher: Searcher) -> str:
    # the version the last search used; read without Searcher.snapshot(), which would move to a
    # new version outside the timed search and hide what switching costs
    snap = getattr(searcher, "_snap", None)
    return snap.manifest.version if snap is not None else "?"


class Paired:
    """One question at a time to the searcher on the merging copy and to the control, the order alternating."""

    def __init__(self, stream: Iterator[str]) -> None:
        self.stream = stream
        self.control: Searcher | None = None
        self.order = cell_order(7)
        self.cells = {(who, p): {f"{m}|{f}": Cell() for m, f in CELLS} for who in WHO for p in PHASES}
        self.flip = False

    def ask(self, searcher: Searcher) -> tuple[str, dict[str, tuple[float, dict[str, float], int]]]:
        """One question of the next cell to both searchers: the cell, and each one's wall ms, stages, hits."""
        mode, fname = next(self.order)
        q = next(self.stream)
        self.flip = not self.flip
        assert self.control is not None
        pair = [(WHO[0], searcher), (WHO[1], self.control)]
        return f"{mode}|{fname}", {who: timed(s, q, mode, fname) for who, s in (pair if self.flip else pair[::-1])}

    def record(self, phase: str, key: str, got: dict[str, tuple[float, dict[str, float], int]]) -> None:
        for who, res in got.items():
            self.cells[(who, phase)][key].add(*res)

    def round(self, searcher: Searcher, n: int, phase: str) -> None:
        for _ in range(n * len(CELLS)):
            self.record(phase, *self.ask(searcher))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"{w}|{p}": {k: c.summary() for k, c in cells.items()}
                               for (w, p), cells in self.cells.items()}  # fmt: skip
        keys = [f"{m}|{f}" for m, f in CELLS]
        out["paired"] = {p: {k: paired(self.cells[(WHO[0], p)][k], self.cells[(WHO[1], p)][k]) for k in keys}
                         for p in PHASES}  # fmt: skip
        return out

    def during(self, who: str) -> int:
        return min(len(c.walls) for c in self.cells[(who, "during")].values())


def during_merges(source: Path, work: Path, n: int, stream: Iterator[str], encoder: Any) -> dict[str, Any]:
    """Searches before, during and after ``indexer merge --all`` runs on copies of ``source``.

    Each question goes to the searcher on the merging copy and to a control searcher on
    ``source`` itself (the same layout, never merged), so what the machine's load does
    and what the merge does to its own index can be told apart. Each run measures its
    own before and after (``n / MIN_MERGES`` questions per cell each), so the phases
    spread over the same stretch of time. The first ``SWITCH`` searches on the new
    version are kept apart: they load what it added.
    """
    pairs = Paired(stream)
    switch: list[list[tuple[str, float, dict[str, float]]]] = []  # per run: the first searches on the new version
    runs: list[dict[str, Any]] = []
    loads: dict[str, list[float]] = {p: [] for p in PHASES}
    per_run = -(-n // MIN_MERGES)
    merged: Path | None = None
    for r in range(MAX_MERGES):
        copy = link_copy(source, work / f"merging-{r}")
        # both opened anew each run, in turn first: a searcher's age or opening order must not differ
        first_open = [copy, source] if r % 2 == 0 else [source, copy]
        opened = {p: open_searcher(p, encoder) for p in first_open}
        searcher, pairs.control = opened[copy], opened[source]
        for _ in range(WARM * len(CELLS)):
            pairs.ask(searcher)
        pairs.round(searcher, per_run, "before")
        loads["before"].append(os.getloadavg()[0])
        old = version_of(searcher)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        said = work / f"merge-{r}.txt"
        t0 = time.perf_counter()
        with said.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "indexer", "merge", "--all", "--index", str(copy)],
                                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        first: list[tuple[str, float, dict[str, float]]] = []
        searches, switched_at = 0, None
        while proc.poll() is None or (len(first) < SWITCH and switched_at is not None):
            key, got = pairs.ask(searcher)
            searches += 1
            if version_of(searcher) != old:
                switched_at = switched_at or time.perf_counter() - t0
                if len(first) < SWITCH:  # loading what the new version added: shown apart
                    first.append((key, *got[WHO[0]][:2]))
                    continue
            pairs.record("during", key, got)
        wall_s = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        loads["during"].append(os.getloadavg()[0])
        output = said.read_text(errors="replace").strip()
        said.unlink()
        if proc.returncode != 0:
            raise RuntimeError(f"indexer merge --all failed ({proc.returncode}): {output}")
        while len(first) < SWITCH:  # published after the last search during the merge: the next ones switch
            key, got = pairs.ask(searcher)
            first.append((key, *got[WHO[0]][:2]))
        switch.append(first)
        pairs.round(searcher, per_run, "after")
        loads["after"].append(os.getloadavg()[0])
        runs.append({"wall_s": wall_s, "cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
                     "searches": searches, "switched_at_s": switched_at,
                     "said": output.splitlines()[-1].strip() if output else ""})  # fmt: skip
        log(f"merge {r + 1}: {wall_s:.1f} s, {searches} questions during it, the new version used after "
            f"{switched_at or float('nan'):.1f} s")  # fmt: skip
        searcher.close()
        pairs.control.close()
        del searcher, opened
        pairs.control = None
        gc.collect()
        if merged is None:
            merged = copy  # layout 3
        else:
            shutil.rmtree(copy, ignore_errors=True)
        if r + 1 >= MIN_MERGES and pairs.during(WHO[0]) >= n:
            break
    assert merged is not None
    return {**pairs.summary(), "switch": switch, "runs": runs, "loads": loads, "merged": merged}


def describe(index: Path) -> dict[str, Any]:
    """What a layout is: its segments, live and deleted passages, vector index types."""
    from indexer.index import IndexDir

    snap = IndexDir(index).open()
    try:
        sizes = [s.info.passages for s in snap.segments]
        types = sorted({s.info.vectors.faiss for s in snap.segments})
        return {"segments": len(sizes), "sizes": sizes, "live": int(snap.ntotal),
                "deleted": len(snap.state.deleted_ids), "deleted_articles": len(snap.state.deleted_rows),
                "faiss": ", ".join(types), "version": snap.manifest.version}  # fmt: skip
    finally:
        snap.close()


# ------------------------------------------------------------ printing
def sizes_text(sizes: list[int]) -> str:
    if len(sizes) == 1:
        return f"{sizes[0]:,}"
    rest = sizes[1:]
    return f"{sizes[0]:,} + {len(rest)} × {min(rest)}–{max(rest)}"


def ratios_text(cell: dict[str, Any], ref: dict[str, Any]) -> str:
    text = f"{cell['p50'] / ref['p50']:.2f} / {cell['p95'] / ref['p95']:.2f}"
    return f"{text} ({cell['paired']:.2f})" if "paired" in cell else text


def latency_tables(layouts: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]) -> str:
    ref = results["one segment"]
    keys = [f"{m}|{f}" for m, f in CELLS]
    heads = [k.replace("|", " · ") for k in keys]
    rows, ratios = [], []
    for label, cells in results.items():
        d = layouts[label]
        head = [label, d["segments"], d["deleted"]]
        rows.append([*head, *(f"{cells[k]['p50']:.1f} / {cells[k]['p95']:.1f}" for k in keys)])
        ratios.append([*head, *(ratios_text(cells[k], ref[k]) for k in keys)])
    hdr = ["layout", "segments", "deleted passages", *heads]
    per = [[label, layouts[label]["segments"], layouts[label]["deleted"],
            *(" / ".join(f"{v:.2f}" for v in cells[k]["rounds"]) for k in keys)]
           for label, cells in results.items()]  # fmt: skip
    note = "ratio to one segment, p50 / p95 (median of the per-question ratios)"
    note2 = "median of the per-question ratios in each round (newly opened searchers)"
    return f"p50 / p95 ms\n\n{table(hdr, rows)}\n\n{note}\n\n{table(hdr, ratios)}\n\n{note2}\n\n{table(hdr, per)}"


def stage_table(results: dict[str, dict[str, Any]]) -> str:
    rows = []
    for label, cells in results.items():
        for key, c in cells.items():
            st = c["stages"]
            rest = c["mean"] - sum(st.values())
            rows.append([label, key.replace("|", " · "), c["hits"], c["mean"], *(st.get(s, 0.0) for s in STAGES), rest])
    return table(["layout", "mode · filter", "hits", "mean ms", *STAGES, "outside stages"], rows)


def merge_tables(dm: dict[str, Any]) -> str:
    keys = [f"{m}|{f}" for m, f in CELLS]
    rows = []
    for who in WHO:
        for phase in PHASES:
            cells = dm[f"{who}|{phase}"]
            rows.append([who, phase, min(c["n"] for c in cells.values()),
                         *(f"{cells[k]['p50']:.1f} / {cells[k]['p95']:.1f}" for k in keys)])  # fmt: skip
    for who in WHO:
        b = dm[f"{who}|before"]
        for phase in ("during", "after"):
            cells = dm[f"{who}|{phase}"]
            rows.append([who, f"{phase} / before", "", *(ratios_text(cells[k], b[k]) for k in keys)])
    for phase in PHASES:
        rows.append([f"{WHO[0]} / {WHO[1]}", f"{phase}, paired median", "",
                     *(f"{dm['paired'][phase][k]:.2f}" for k in keys)])  # fmt: skip
    for who in WHO:
        rows.append([who, "max during", "", *(f"{dm[f'{who}|during'][k]['max']:.0f}" for k in keys)])
    out = [table(["searcher", "phase", "questions per cell", *(k.replace("|", " · ") for k in keys)], rows)]
    out.append(f"\nthe first {SWITCH} searches on the merged version, ms (the two slowest stages, ms), per merge run; "
               "the searcher moves to the new version by itself and loads what it added on first use:\n")  # fmt: skip
    out.append(table(["run", *(f"#{i + 1}" for i in range(SWITCH))], [
        [i + 1, *(f"{ms:.0f} {cell.replace('|', ' · ')} ("
                  + ", ".join(f"{k} {v:.0f}" for k, v in sorted(st.items(), key=lambda kv: -kv[1])[:2]) + ")"
                  for cell, ms, st in first)]
        for i, first in enumerate(dm["switch"])
    ]))  # fmt: skip
    out.append("\nthe merges (`python -m indexer merge --all`, a subprocess):\n")
    out.append(table(["run", "wall s", "CPU s (user + sys)", "questions meanwhile", "new version used at s", "said"], [
        [i + 1, r["wall_s"], r["cpu_s"], r["searches"], r["switched_at_s"] or "–", r["said"][:80]]
        for i, r in enumerate(dm["runs"])
    ]))  # fmt: skip
    stages = []
    for who in WHO:
        for phase in PHASES:
            for k in keys:
                c = dm[f"{who}|{phase}"][k]
                per = [c["stages"].get(s, 0.0) for s in STAGES]
                stages.append([who, phase, k.replace("|", " · "), c["hits"], c["mean"], *per])
    out.append("\nmean ms per stage:\n")
    out.append(table(["searcher", "phase", "mode · filter", "hits", "mean ms", *STAGES], stages))
    return "\n".join(out)


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=50_000, help="passages of the archive (its final contents)")
    ap.add_argument("--queries", type=int, default=200, help="timed searches per mode × filter and layout")
    ap.add_argument("--updates", default="10,30", help="update segments of layout 2, comma-separated")
    ap.add_argument("--work", type=Path, default=None, help="folder for sources and indexes (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (a later run reuses its indexes)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--shape", type=Path, default=None, help=".npz of real e5 vectors' mean and root (synth_archive)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = ap.parse_args()
    updates = sorted({int(x) for x in args.updates.split(",") if x.strip()})
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-segments-"))
    work.mkdir(parents=True, exist_ok=True)
    load0 = load()
    print(f"# bench/segments_search.py — {args.passages:,} passages, {args.queries} queries per cell, "
          f"{os.cpu_count()} cores, load {load0} at start, indexer {indexer.__version__}, work {work}\n")  # fmt: skip
    try:
        meta = build_layouts(work, args.passages, updates, args.seed, args.shape)
        stream, pool = question_stream(args.seed)
        log(f"{pool:,} questions; merging copies of {meta['indexes'][f'base + {updates[-1]} updates']}")
        encoder = resolve_encoder(work / meta["indexes"]["one segment"])
        dm = during_merges(work / meta["indexes"][f"base + {updates[-1]} updates"], work, args.queries, stream,
                           encoder)  # fmt: skip
        paths = {label: work / p for label, p in meta["indexes"].items()}
        paths[f"base + {updates[-1]} updates, merged"] = dm.pop("merged")
        layouts = {label: describe(p) for label, p in paths.items()}
        load1 = load()
        results = interleaved(paths, args.queries, stream, encoder)
        load2 = load()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{meta['base_articles']:,} base articles + {updates[-1]} updates of {ADDED} added, {CHANGED} changed, "
          f"{DELETED} deleted articles (indexes {'reused' if meta['cached'] else 'built'} in this run); "
          f"{pool:,} questions (PIAF fr, XQuAD en/de/es/ru/zh) taken in turn; k=10, one hit per article, "
          "highlights on; the real default model (onnx-int8), one encoder shared by the searchers.\n")  # fmt: skip
    print(table(["layout", "segments", "passages per segment (deleted included)", "live passages",
                 "deleted passages", "deleted articles", "vector index", "build s (full + updates)"], [
        [label, d["segments"], sizes_text(d["sizes"]), d["live"], d["deleted"], d["deleted_articles"], d["faiss"],
         meta["build_s"].get(paths[label].name, float("nan")) if not meta["cached"] else "cached"]
        for label, d in layouts.items()
    ]))  # fmt: skip
    print(f"\n## Layouts compared, interleaved ({args.queries} questions per cell, each asked of every layout; "
          f"load {load1} before, {load2} after)\n")  # fmt: skip
    print(latency_tables(layouts, results))
    print("\nmean ms per stage (`SearchResult.timings`):\n")
    print(stage_table(results))
    lb, ld, la = (dm["loads"][k] for k in ("before", "during", "after"))
    print(f"\n## During a merge: {layouts[f'base + {updates[-1]} updates']['segments']} segments → 1 "
          f"(1-min load before {np.mean(lb):.1f}, at the end of each merge "
          f"{', '.join(f'{v:.1f}' for v in ld)}, after {np.mean(la):.1f})\n")  # fmt: skip
    print(merge_tables(dm))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "layouts": layouts, "results": results, "merge": dm,
                                         "load": [load0, load1, load2]}, indent=2, default=str))  # fmt: skip


def resolve_encoder(index: Path) -> Any:
    """The index's model as a ``Searcher`` loads it (checked against the manifest), to share between searchers."""
    s = Searcher(index)
    try:
        return s.encoder
    finally:
        s.close()


if __name__ == "__main__":
    main()
