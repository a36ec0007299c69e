"""What saved searches cost a build: percolating a small update, against the alternatives, at two archive sizes.

    python bench/alerts_cost.py [--passages 20000] [--scale 10] [--searches 20] [--repeat 5]
                                [--work DIR] [--keep] [--seed N] [--shape FILE.npz]

For each of two archives — about ``--passages`` passages and ``--scale`` times as many —
``bench/synth_archive.py``'s generator writes JSONL sources (news-shaped text in six
languages, sources, dates, syndicated copies; ``bench/updates.py``'s ``Archive``) and
``indexer.build`` builds them, as ``indexer build`` does, with ``SynthEncoder`` for the model
(e5-shaped vectors in microseconds: what is measured is the index, not the model; the
default model is recorded in the manifest, so the scores are calibrated as for it).
``--searches`` saved searches are added through ``indexer.alerts.add`` (queries: titles of
random articles of the archive, so they have real neighbours; hybrid, the default).
Then, ``--repeat`` times, the same change: a new JSONL file of 10 articles, and
``indexer.build`` on the index. Measured, in the same run:

* **percolation**: ``BuildReport.alerts.seconds``, the time the build spends running every
  saved search against its new passages (opening the new segment, carrying the statistics,
  ranking, writing the matches);
* **(a) as full searches**: the same saved searches run by a warm ``Searcher`` (its version
  moved to the new one and searched once before timing, query vectors cached: the cheapest
  way to run them as ordinary searches) — the ratio is what percolating saves;
* **(b) the archive ``--scale`` times larger**, the same change: percolation should cost the
  same (the ratio of the two sizes, near 1), full searches should not;
* the **share of the build**: percolation / the build's wall time (the model's time is near
  zero here; with the real model the 10 articles' ~40 passages add ~1 s of embedding, so the
  share is smaller still).

The first build after the searches are saved computes the collection statistics once
(what every later build carries forward); it is reported apart, not in the medians.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth_updates import ADDED, Synthetic, WorkFolder  # noqa: E402

import indexer  # noqa: E402
from indexer import alerts  # noqa: E402
from indexer.build import BuildSettings  # noqa: E402
from indexer.percolate import options  # noqa: E402
from indexer.search import Searcher  # noqa: E402


def log(msg: str) -> None:
    print(f"[alerts {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Size:
    """One archive's measurements."""

    passages: int = 0
    full_build: float = 0.0
    first: float = 0.0  # the first percolation: statistics computed once
    percolate: list[float] = field(default_factory=list)
    searches: list[float] = field(default_factory=list)  # the same saved searches as full searches
    builds: list[float] = field(default_factory=list)
    new_passages: list[int] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    ranked: list[int] = field(default_factory=list)  # searches some new passage could reach (the rest: screened)

    def median(self, name: str) -> float:
        return statistics.median(getattr(self, name))


def run_size(n: int, work: Path, args: argparse.Namespace) -> Size:
    out = Size()
    t0 = time.perf_counter()
    reserve = ADDED * (args.repeat + 1)
    synthetic = Synthetic.generate(n, work / "sources", seed=args.seed, reserve=reserve, shape=args.shape)
    archive, encoder = synthetic.archive, synthetic.encoder
    index = work / "index"
    log(f"~{n:,} passages: sources written in {time.perf_counter() - t0:.0f} s; building")
    out.full_build, rep = synthetic.build(index, BuildSettings(full=True))
    out.passages = rep.passages
    log(f"  full build: {rep.passages:,} passages in {out.full_build:.0f} s; saving {args.searches} searches")
    rng = random.Random(args.seed)
    queries = [archive.articles.record(i)["title"] for i in rng.sample(range(archive.n_base), args.searches)]
    for i, q in enumerate(queries):
        alerts.add(index, f"s{i:03d}", q, encoder=encoder)
    saved = [s.search for s in alerts.saved(index)]
    searcher = Searcher(index, encoder=encoder)
    try:
        for r in range(args.repeat + 1):
            synthetic.edit("add", f"{r:02d}")
            wall, rep = synthetic.build(index, BuildSettings())
            a = rep.alerts
            assert a is not None and not a.error, rep.warnings
            if r == 0:
                out.first = a.seconds
                log(f"  first update: percolation {a.seconds * 1000:.0f} ms (computes the statistics once)")
                continue
            out.percolate.append(a.seconds)
            out.builds.append(wall)
            out.new_passages.append(a.passages)
            out.matches.append(a.matches)
            out.ranked.append(a.ranked)
            searcher.refresh()  # the alternative at its best: on the new version, warm, vectors cached
            for s in saved:
                searcher.search(s.query, options(s))
            t = time.perf_counter()
            for s in saved:
                searcher.search(s.query, options(s))
            out.searches.append(time.perf_counter() - t)
            full = out.searches[-1] * 1000
            log(f"  update {r}: build {wall:.2f} s, percolation {a.seconds * 1000:.1f} ms ({a.passages} new passages, "
                f"{a.ranked} searches ranked, {a.matches} matches), full searches {full:.0f} ms")  # fmt: skip
    finally:
        searcher.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=20_000, help="passages of the smaller archive")
    ap.add_argument("--scale", type=int, default=10, help="the larger archive is this many times larger")
    ap.add_argument("--searches", type=int, default=20, help="saved searches")
    ap.add_argument("--repeat", type=int, default=5, help="updates of 10 articles measured per size")
    ap.add_argument("--work", type=Path, default=None, help="where the archives and indexes go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the sources and the indexes")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--shape", type=Path, default=None, help=".npz of real e5 vectors' mean and root (synth_archive)")
    args = ap.parse_args()
    sizes = [args.passages, args.passages * args.scale]
    print(f"# bench/alerts_cost.py — {args.searches} saved searches, updates of {ADDED} articles, {args.repeat} "
          f"runs per size, {os.cpu_count()} cores, indexer {indexer.__version__}")  # fmt: skip
    found: list[Size] = []
    with WorkFolder.of(args.work, "bench-alerts-", keep=args.keep) as folder:
        for n in sizes:
            found.append(run_size(n, folder.fresh(f"alerts-{n}"), args))
    print()
    print("| archive | full build | new passages | searches ranked | percolation (all searches) | per search | "
          "as full searches | full / percolation | share of the build | first update |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    k = args.searches
    for s in found:
        p, f = s.median("percolate"), s.median("searches")
        share = statistics.median(x / b for x, b in zip(s.percolate, s.builds))
        cells = [
            f"{s.passages:,} passages", f"{s.full_build:.0f} s", f"{statistics.median(s.new_passages):.0f}",
            f"{statistics.median(s.ranked):.0f} of {k}", f"{p * 1000:.1f} ms", f"{p / k * 1000:.2f} ms",
            f"{f * 1000:.0f} ms", f"{f / p:.1f}×", f"{share:.1%}", f"{s.first * 1000:.0f} ms",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    small, large = found
    print(f"\n{args.scale}× the archive, the same change: percolation × "
          f"{large.median('percolate') / small.median('percolate'):.2f}, full searches × "
          f"{large.median('searches') / small.median('searches'):.2f} (medians of {args.repeat} updates; "
          f"load average {os.getloadavg()[0]:.1f} at the end)")  # fmt: skip


if __name__ == "__main__":
    main()
