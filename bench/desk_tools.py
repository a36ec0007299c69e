"""The desk tools as the page uses them, on an archive-shaped index: what each adds to a search.

    python bench/desk_tools.py [--passages 100000] [--work DIR] [--shape FILE.npz] [--queries 40]
                               [--index DIR]   # an archive synth_archive.py built before, e.g. of 1M passages

The archive is ``bench/synth_archive.py``'s (dates 2018–2025, ~300 sources with a Zipf share,
six languages, near-duplicate groups, e5-shaped vectors; cached under --work), searched
with the real default model for queries, after ``Searcher.warm_up()``; queries are
``bench/search_path.py``'s phrases cut from stored passages, every one new to the searcher.
Everything is timed in one process, in the order the page runs it:

1. **Facet counts** — per question, ``search()`` (embeds the new question) then
   ``match_counts()`` (same question, depth 500), for filter sets that need one ranking
   (none), two (a language; a ~1 % source) and three (language + source + dates). Printed:
   p50/p95 of the search alone and of search + counts, and the ratio of their medians.
2. **Recency** — ``search()`` with ``recency=30`` against the same question without it
   (alternating which runs first).
3. **Similar coverage** — ``Searcher.similar()``: the first call of a fresh searcher (reads
   every segment's article vectors, takes the centroids), the calls after it, and a new
   version's first call when its segments are already read (a reopened version:
   centroids and norms only); against the page's alternative of searching with the
   article's title as the question.
4. **Export** — the page's download: ``search(export_options(...))`` (1,000 results) and
   ``export.to_csv`` / ``to_jsonl`` of it, against the page's 10-result search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_path  # noqa: E402
import synth_archive  # noqa: E402

from indexer import Filters, Searcher, SearchOptions  # noqa: E402
from indexer import export as exporting  # noqa: E402
from indexer.index import IndexDir  # noqa: E402
from indexer.similar import SimilarCache  # noqa: E402

log, pct, table = search_path.log, search_path.pct, search_path.table


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


def ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(a) / statistics.median(b)


# ------------------------------------------------------------------ facets
def facet_cases(searcher: Searcher) -> dict[str, Filters]:
    filters, _ = search_path.pick_filters(searcher)
    lang, source = filters["language"], filters["source ~1 %"]
    three = Filters(langs=lang.langs, sources=(*source.sources, *searcher.info().facets.sources[:40]),
                    date_from=search_path.DATE_FROM, date_to=search_path.DATE_TO)  # fmt: skip
    return {"none (1 ranking)": Filters(), "language (2)": lang, "source ~1 % (2)": source,
            "language + 41 sources + dates (3)": three}  # fmt: skip


def bench_facets(searcher: Searcher, queries: list[str], n: int, depth: int) -> list[list[Any]]:
    rows = []
    it = iter(queries)
    for name, f in facet_cases(searcher).items():
        opts = SearchOptions(filters=f)
        alone, both, counted = [], [], []
        for _ in range(n):
            q = next(it)
            t_search, _ = timed(lambda q=q, o=opts: searcher.search(q, o))
            t_counts, c = timed(lambda q=q, o=opts: searcher.match_counts(q, o, depth=depth))
            alone.append(t_search)
            both.append(t_search + t_counts)
            counted.append(sum(x.count for x in c.langs))
        rows.append([name, pct(alone, 50), pct(alone, 95), pct(both, 50), pct(both, 95), ratio(both, alone),
                     statistics.median(counted)])  # fmt: skip
        log(f"facets {name}: ×{ratio(both, alone):.2f}")
    return rows


# ----------------------------------------------------------------- recency
def bench_recency(searcher: Searcher, queries: list[str], n: int) -> list[Any]:
    off, on = [], []
    for i, q in enumerate(queries[:n]):
        searcher.query_vector(q)  # both runs then skip the model: what differs is the ranking
        first, second = (SearchOptions(), SearchOptions(recency=30.0))[:: 1 if i % 2 else -1]
        ta, _ = timed(lambda q=q, o=first: searcher.search(q, o))
        tb, _ = timed(lambda q=q, o=second: searcher.search(q, o))
        (off, on)[first.recency is not None].append(ta)
        (off, on)[second.recency is not None].append(tb)
    return ["recency 30d vs off (question embedded)", pct(off, 50), pct(on, 50), ratio(on, off)]


# ----------------------------------------------------------------- similar
def bench_similar(index: Path, n: int) -> dict[str, Any]:
    s = Searcher(index)
    s.warm_up()
    snap = s.snapshot()
    con = snap.store.stores()[0].con
    picked = [r[0] for r in con.execute("SELECT id FROM articles ORDER BY random() LIMIT ?", (n + 1,))]
    titles = {aid: snap.store.article(aid).title for aid in picked}  # type: ignore[union-attr]
    rss0 = search_path.status_mb()
    first, _ = timed(lambda: s.similar(picked[0], k=10))
    rss1 = search_path.status_mb()
    later, by_title = [], []
    for aid in picked[1:]:
        later.append(timed(lambda aid=aid: s.similar(aid, k=10))[0])
        by_title.append(timed(lambda aid=aid: s.search(titles[aid] or aid, SearchOptions(k=10)))[0])
    cache = SimilarCache()
    cache.prepare(snap)
    reopened = IndexDir(index).open(reuse=snap)  # the same segments, a new version object
    switch, _ = timed(lambda: cache.prepare(reopened))
    return {"first": first, "later": later, "by_title": by_title, "switch": switch, "rss": rss1 - rss0,
            "articles": snap.info().counts["articles"], "passages": snap.ntotal}  # fmt: skip


# ------------------------------------------------------------------ export
def bench_export(searcher: Searcher, queries: list[str], n: int) -> list[list[Any]]:
    page, big, csv_ms, jsonl_ms, sizes = [], [], [], [], []
    for q in queries[:n]:
        page.append(timed(lambda q=q: searcher.search(q, SearchOptions()))[0])
        t, res = timed(lambda q=q: searcher.search(q, exporting.export_options(SearchOptions())))
        big.append(t)
        t, text = timed(lambda res=res: exporting.to_csv([res]))
        csv_ms.append(t)
        sizes.append(len(text.encode()))
        jsonl_ms.append(timed(lambda res=res: exporting.to_jsonl([res]))[0])
    total = [a + b for a, b in zip(big, csv_ms)]
    return [["page search, 10 results", pct(page, 50), pct(page, 95), 1.0, "–"],
            ["export search, 1,000 results", pct(big, 50), pct(big, 95), ratio(big, page), "–"],
            ["to_csv of 1,000 rows", pct(csv_ms, 50), pct(csv_ms, 95), ratio(csv_ms, page),
             f"{statistics.median(sizes) / 1024:.0f} KB"],
            ["to_jsonl of 1,000 rows", pct(jsonl_ms, 50), pct(jsonl_ms, 95), ratio(jsonl_ms, page), "–"],
            ["download CSV (search + to_csv)", pct(total, 50), pct(total, 95), ratio(total, page), "–"]]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=100_000, help="passages of the synthetic archive")
    ap.add_argument("--work", type=Path, default=None, help="where the archive is kept (default: temp)")
    ap.add_argument("--shape", type=Path, default=None, help=".npz of real e5 vectors' shape (synth_archive.py)")
    ap.add_argument("--queries", type=int, default=40, help="timed questions per row")
    ap.add_argument("--depth", type=int, default=500, help="facet depth")
    ap.add_argument("--index", type=Path, default=None, help="use this synth_archive.py archive as it is")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="desk-tools-"))
    if args.index is not None:
        index, cached = args.index, True
        meta = json.loads((index / "synth.json").read_text())
    else:
        index = work / f"synth-{args.passages}"
        log(f"archive of {args.passages:,} passages at {index} (built unless cached)")
        meta, cached = synth_archive.cached_or_build(index, args.passages, args.shape, work=work)
    print(f"# bench/desk_tools.py — {os.cpu_count()} cores, load {search_path.load_avg()}, "
          f"commit {search_path.git_head()}")  # fmt: skip
    print(f"Archive: {meta['articles']:,} articles, {meta['passages']:,} passages ({'cached' if cached else 'built'}; "
          f"vectors: {meta.get('vector_shape', '?')})\n")  # fmt: skip
    searcher = Searcher(index, warm_new_versions=True)
    searcher.warm_up()
    queries = search_path.phrase_queries(searcher, 12 * args.queries + 50, seed=7)
    for q in queries[-20:]:  # a few untimed questions: caches and thread pools as in use
        searcher.search(q)
        searcher.match_counts(q)

    rows = bench_facets(searcher, queries, args.queries, args.depth)
    print(f"## Facet counts (depth {args.depth}): search alone vs search + match_counts, ms\n")
    print(table(["filters", "search p50", "p95", "search + counts p50", "p95", "× search (medians)",
                 "articles counted (median)"], rows))  # fmt: skip
    rec = bench_recency(searcher, queries[4 * args.queries :], args.queries)
    print("\n## Recency, ms\n")
    print(table(["", "off p50", "on p50", "× off"], [rec]))
    ex = bench_export(searcher, queries[5 * args.queries :], max(5, args.queries // 4))
    print("\n## Export (the page's download), ms\n")
    print(table(["step", "p50", "p95", "× page search", "size"], ex))
    searcher.close()
    sim = bench_similar(index, args.queries)
    print(f"\n## Similar coverage ({sim['articles']:,} articles, {sim['passages']:,} passages), ms\n")
    print(table(["call", "p50", "p95", "× later calls"], [
        ["first call of a fresh searcher (reads every segment's vectors)", sim["first"], sim["first"],
         sim["first"] / statistics.median(sim["later"])],
        ["a new version's first call, segments already read", sim["switch"], sim["switch"],
         sim["switch"] / statistics.median(sim["later"])],
        ["later calls", pct(sim["later"], 50), pct(sim["later"], 95), 1.0],
        ["alternative: search with the article's title", pct(sim["by_title"], 50), pct(sim["by_title"], 95),
         ratio(sim["by_title"], sim["later"])],
    ]))  # fmt: skip
    print(f"\nMemory kept for similar: +{sim['rss']} MB resident after the first call")
    where = f"--index {args.index}" if args.index else f"--passages {args.passages}"
    print(f"\nCommand: python bench/desk_tools.py {where} --queries {args.queries}"
          + (f" --shape {args.shape}" if args.shape else ""))  # fmt: skip


if __name__ == "__main__":
    np.random.seed(0)
    main()
