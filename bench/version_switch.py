"""The searches right after a merge publishes: a searcher that warms the new version first, against one that does not.

    python bench/version_switch.py [--passages 50000] [--updates 30] [--runs 6] [--after 20]
                                   [--work DIR] [--keep] [--seed N] [--json FILE]

The promise checked: search latency does not jump when a build or a merge publishes.
A searcher made with ``Searcher(..., warm_new_versions=True)`` (the page's) keeps
answering from the version it has while the new one is opened, verified and loaded in
a background thread, and moves to it once warm; ``warm_new_versions=False`` (the
library's default, which reads its own writes) moves at the first search after the
publish and loads the new segments' columns, postings and vectors inside the searches
that need them.

The worst case is timed: ``indexer merge --all`` (a subprocess) turning ``1 + --updates``
segments into one, so every file the searcher reads is new. The archive is
``bench/segments_search.py``'s (its ``base + N updates`` layout, built once per
``--work`` folder and reused with ``--keep``). Each run merges a fresh hard-linked copy
while one searcher asks a question after another, as the page calls it
(``Searcher.search(q, SearchOptions(k=10, per_article=1, highlight=True, mode=…,
filters=…))``, the six mode × filter cells in turn, PIAF and XQuAD questions, the real
default model). The runs alternate the two kinds of searcher (W I I W W I …), so each
meets the same machine load. For every run: the median search during the merge before
it publishes, the slowest of the searches in the ``--after`` searches from the publish
on, and (warming searcher) how long after the publish it moved. Printed: per run, and
the medians over runs of each kind, with the ratio warm / immediate of the slowest
search after a publish.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import segments_search as ss
from synth_updates import WorkFolder

from indexer import Searcher
from indexer.index import IndexDir

KINDS = ("warm", "immediate")


def one_run(source: Path, copy: Path, warm: bool, after: int, stream: Any, order: Any, encoder: Any) -> dict[str, Any]:
    """Merge a copy of ``source`` while one searcher of the given kind asks questions; what it waited for."""
    ss.link_copy(source, copy)
    idx = IndexDir(copy)
    s = Searcher(copy, encoder=encoder, warm_new_versions=warm)
    s.warm_up()
    for _ in range(ss.WARM * len(ss.CELLS)):
        mode, fname = next(order)
        ss.timed(s, next(stream), mode, fname)
    stamp, old = idx.stamp(), ss.version_of(s)
    before: list[float] = []
    following: list[tuple[float, float, str, str]] = []  # (s since the publish, ms, cell, version used)
    published = switched = None
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "indexer", "merge", "--all", "--index", str(copy)],
                            cwd=ss.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    while True:
        if published is None and idx.stamp() != stamp:
            published = time.perf_counter()
        if published is None and proc.poll() is not None:
            if idx.stamp() == stamp:
                out = proc.communicate()[0].decode(errors="replace").strip()
                raise RuntimeError(f"indexer merge --all ended ({proc.returncode}) without publishing: {out}")
            published = time.perf_counter()  # published between two checks: the next search is the first after
        mode, fname = next(order)
        ms = ss.timed(s, next(stream), mode, fname)[0]
        version = ss.version_of(s)
        if published is None:
            before.append(ms)
            continue
        following.append((time.perf_counter() - published, ms, f"{mode}|{fname}", version))
        if version != old and switched is None:
            switched = time.perf_counter() - published
        if switched is not None and sum(v != old for *_, v in following) >= after:
            break
        if time.perf_counter() - published > 120:
            raise RuntimeError("the searcher did not move to the merged version within 120 s")
    out = proc.communicate()[0].decode(errors="replace").strip()
    if proc.returncode != 0:
        raise RuntimeError(f"indexer merge --all failed ({proc.returncode}): {out}")
    s.close()
    del s
    gc.collect()
    shutil.rmtree(copy, ignore_errors=True)
    window = [ms for _, ms, _, _ in following]  # from the publish to the ``after``-th search on the new version
    return {"kind": "warm" if warm else "immediate", "merge_s": time.perf_counter() - t0,
            "before_p50": float(np.median(before)) if before else float("nan"), "before_n": len(before),
            "after_max": max(window), "after_sum": sum(window), "after_n": len(window),
            "old_after_publish": sum(v == old for *_, v in following), "switched_s": switched,
            "slowest": sorted(following, key=lambda f: -f[1])[:3]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=50_000, help="passages of the archive")
    ap.add_argument("--updates", type=int, default=30, help="update segments merged into one with the base")
    ap.add_argument("--runs", type=int, default=6, help="merges, alternating the two kinds of searcher")
    ap.add_argument("--after", type=int, default=20, help="searches on the merged version looked at per run")
    ap.add_argument("--work", type=Path, default=None, help="folder for sources and indexes (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (a later run reuses its indexes)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = ap.parse_args()
    # the folder is the bench's: its indexes are cached there for a later run with --keep
    with WorkFolder.of(args.work, "bench-switch-", keep=args.keep, owned=True) as folder:
        work = folder.base
        print(f"# bench/version_switch.py — {args.passages:,} passages, 1 + {args.updates} segments merged, "
              f"{args.runs} runs, {os.cpu_count()} cores, load {ss.load()} at start, work {work}\n")  # fmt: skip
        meta = ss.build_layouts(work, args.passages, [args.updates], args.seed, None)
        source = work / meta["indexes"][f"base + {args.updates} updates"]
        stream, _ = ss.question_stream(args.seed)
        order = ss.cell_order(args.seed)
        encoder = ss.resolve_encoder(source)
        runs = []
        for r in range(args.runs):
            warm = (r + r // 2) % 2 == 0  # W I I W W I: each kind first as often, and beside the other
            got = one_run(source, work / f"switch-{r}", warm, args.after, stream, order, encoder)
            runs.append(got)
            ss.log(f"run {r + 1} ({got['kind']}): slowest after the publish {got['after_max']:.0f} ms, during "
                   f"the merge p50 {got['before_p50']:.0f} ms, moved after {got['switched_s']:.2f} s")  # fmt: skip
    print(ss.table(["run", "searcher", "merge s", "searches during", "p50 during, ms", "slowest after publish, ms",
                    "sum of those, ms", "old version after publish", "moved after, s",
                    "slowest (cell: ms)"],
                   [[i + 1, g["kind"], f"{g['merge_s']:.1f}", g["before_n"], f"{g['before_p50']:.0f}",
                     f"{g['after_max']:.0f}", f"{g['after_sum']:.0f}", g["old_after_publish"],
                     f"{g['switched_s']:.2f}", ", ".join(f"{c}: {ms:.0f}" for _, ms, c, _ in g["slowest"])]
                    for i, g in enumerate(runs)]))  # fmt: skip
    med = {k: {f: float(np.median([g[f] for g in runs if g["kind"] == k]))
               for f in ("before_p50", "after_max", "after_sum", "switched_s")} for k in KINDS}  # fmt: skip
    print("\nmedian over runs:\n")
    print(ss.table(["searcher", "p50 during the merge, ms", "slowest after publish, ms", "slowest / p50 during",
                    "moved after, s"],
                   [[k, f"{m['before_p50']:.0f}", f"{m['after_max']:.0f}", f"{m['after_max'] / m['before_p50']:.1f}",
                     f"{m['switched_s']:.2f}"] for k, m in med.items()]))  # fmt: skip
    ratio = med["warm"]["after_max"] / med["immediate"]["after_max"]
    print(f"\nslowest search after a publish, warm / immediate: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "runs": runs, "median": med}, indent=2, default=str))


if __name__ == "__main__":
    main()
