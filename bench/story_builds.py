"""What stories add to a build: build time with and without them in the same run, full and incremental.

    python bench/story_builds.py [--passages 25000,100000] [--repeat 5] [--full-repeat 2] [--per-year 12500]
                                 [--work DIR] [--keep] [--seed N]

For each size, a synthetic archive is written as bench/updates.py writes it (synth_archive's
generator: sources, dates, six languages, syndicated copies, same-event coverage; e5-shaped
vectors from ``SynthEncoder``, whose time is not what is measured). The archive spans one year
per ``--per-year`` passages (at least one; 0: synth_archive's own 2018–2025 for every size), so
a larger archive is a longer one, as archives grow, with as many articles in each week: a story
step that follows the change then costs the same at every size. Two indexes are built from
those same files with real ``indexer.build.build`` calls, step by step:

* **with stories**: the build as ``indexer build`` runs it;
* **without**: the same build with its story step replaced by nothing (as builds were before
  stories: no story files, and a no-change build publishes nothing).

Steps: ``--full-repeat`` full builds, then ``--repeat`` rounds of "add 10 articles", "change 1" and "delete 1"
(each edit applied to the sources once, then both indexes built; which index goes first
alternates, so page-cache and load effects fall on both alike). Printed per step kind: the
median wall time of each index, their ratio, the story step's own time
(``BuildReport.story_seconds``), its share of the build with stories, and the machine's 1-minute
load average (on a shared machine both wall times are noisy, by more than the story step takes;
the story step's own time, measured inside the build, is the part of the difference stories cause
— plus flushing and checksumming one small file). With several sizes,
how the story step of an update grows with the archive (the exponent of the size: 0 means it
depends on the change only, 1 that it is proportional to the archive). Finally, the stories the
updates left are checked against a clustering of the final archive from scratch.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth_archive as sa  # noqa: E402
from synth_updates import ADDED, UPDATE_KINDS, Synthetic, WorkFolder  # noqa: E402

import indexer  # noqa: E402
from indexer import story_versions  # noqa: E402
from indexer.build import BuildReport, BuildSettings  # noqa: E402
from indexer.index import IndexDir  # noqa: E402
from indexer.stories import IndexArchive, cluster  # noqa: E402


def log(msg: str) -> None:
    print(f"[story_builds {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def without_stories() -> Iterator[None]:
    """Builds as they were before stories: the story step does nothing, no version lacks them."""
    make, missing = story_versions.make, story_versions.missing
    story_versions.make = lambda *a, **k: story_versions.StoriesMade(0, 0.0, False)  # type: ignore[assignment]
    story_versions.missing = lambda live: False  # type: ignore[assignment]
    try:
        yield
    finally:
        story_versions.make, story_versions.missing = make, missing  # type: ignore[assignment]


@dataclass
class Pair:
    """One step built into both indexes."""

    kind: str
    with_s: float
    without_s: float
    report: BuildReport
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # other work on the machine meanwhile


@dataclass
class Size:
    """The steps of one archive size."""

    passages: int
    years: str = ""
    articles: int = 0
    steps: list[Pair] = field(default_factory=list)

    def of(self, kind: str) -> list[Pair]:
        return [p for p in self.steps if p.kind == kind]


class Run:
    """Both indexes of one archive, built step by step from the same sources."""

    def __init__(self, synthetic: Synthetic, work: Path) -> None:
        self.synthetic = synthetic
        self.with_dir, self.without_dir = work / "with-stories", work / "without-stories"
        self.turn = 0

    def step(self, kind: str, settings: BuildSettings) -> Pair:
        order = ["with", "without"] if self.turn % 2 == 0 else ["without", "with"]
        self.turn += 1
        took: dict[str, float] = {}
        report = None
        for which in order:
            if which == "with":
                took[which], report = self.synthetic.build(self.with_dir, settings)
            else:
                with without_stories():
                    took[which], _ = self.synthetic.build(self.without_dir, settings)
        assert report is not None
        log(f"{kind}: {took['with']:.2f} s with stories ({report.story_seconds:.3f} s of them), "
            f"{took['without']:.2f} s without; {report.stories} stories")  # fmt: skip
        return Pair(kind, took["with"], took["without"], report)


def check(index: Path) -> str:
    """Whether the built stories are those of a clustering from scratch (with their centroids)."""
    snap = IndexDir(index).open()
    try:
        stories = snap.stories
        assert stories is not None
        fresh = cluster(IndexArchive.of_snapshot(snap), calibration=stories.calibration)
        same = dict(stories.story) == dict(fresh.story) and dict(stories.central) == dict(fresh.central)
        return f"{stories.count} stories of two or more; incremental == from scratch: {same}"
    finally:
        snap.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_size(size: Size) -> None:
    print(f"\n## {size.passages:,} passages requested, {size.articles:,} articles, {size.years}\n")
    print("| step | with stories s | without s | ratio | story step s | share of the build | load |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("full", *UPDATE_KINDS):
        pairs = size.of(kind)
        if not pairs:
            continue
        w, wo = median([p.with_s for p in pairs]), median([p.without_s for p in pairs])
        st = median([p.report.story_seconds for p in pairs])
        label = "full build" if kind == "full" else f"{kind} {ADDED if kind == 'add' else 1}"
        load = median([p.load for p in pairs])
        print(f"| {label} ({len(pairs)}×) | {w:.2f} | {wo:.2f} | {w / wo:.3f} | {st:.3f} | {st / w:.1%} | {load:.1f} |")


def exponent(a: float, b: float, n0: int, n1: int) -> str:
    return f"{math.log(b / a) / math.log(n1 / n0):+.2f}" if a > 0 and b > 0 and n1 != n0 else "-"


def print_scaling(sizes: list[Size]) -> None:
    first, last = sizes[0], sizes[-1]
    print("\n## How the story step grows with the archive\n")
    print(f"| story step s | {' | '.join(f'{s.articles:,} articles' for s in sizes)} | exponent of size |")
    print(f"|---|{'---:|' * len(sizes)}---:|")
    for kind in ("full", *UPDATE_KINDS):
        vals = [median([p.report.story_seconds for p in s.of(kind)]) for s in sizes]
        cells = " | ".join(f"{v:.3f}" for v in vals)
        print(f"| {kind} | {cells} | {exponent(vals[0], vals[-1], first.articles, last.articles)} |")
    print("\nexponent 0: the story step costs what changed; 1: proportional to the archive.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", default="25000,100000", help="archive size(s) in passages, comma-separated")
    ap.add_argument("--per-year", type=int, default=12_500, help="passages per year of the archive (0: 2018–2025)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of add / change / delete (medians reported)")
    ap.add_argument("--full-repeat", type=int, default=2, help="full builds of each index (medians reported)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the sources and indexes (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the sources and indexes")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    counts = [int(x.replace("_", "")) for x in args.passages.split(",") if x.strip()]
    print(f"# bench/story_builds.py — {', '.join(f'{n:,}' for n in counts)} passages, {args.repeat} rounds, "
          f"{os.cpu_count()} cores, indexer {indexer.__version__}")  # fmt: skip
    sizes: list[Size] = []
    with WorkFolder.of(args.work, "bench-story-builds-", keep=args.keep) as folder:
        for n in counts:
            work = folder.fresh(f"stories-{n}")
            if args.per_year:
                sa.FIRST_YEAR = sa.LAST_YEAR + 1 - max(1, round(n / args.per_year))
            log(f"writing an archive of ~{n:,} passages, {sa.FIRST_YEAR}–{sa.LAST_YEAR}, to {work / 'sources'}")
            synthetic = Synthetic.generate(n, work / "sources", seed=args.seed, reserve=ADDED * args.repeat, shape=None)
            run, size = Run(synthetic, work), Size(n, f"{sa.FIRST_YEAR}–{sa.LAST_YEAR}")
            for _ in range(args.full_repeat):  # the first build of a size finds its sources cold: both orders
                size.steps.append(run.step("full", BuildSettings(full=True)))
            size.articles = size.steps[0].report.articles
            for r in range(args.repeat):
                for kind in UPDATE_KINDS:
                    synthetic.edit(kind, f"{r + 1:02d}")
                    size.steps.append(run.step(kind, BuildSettings()))
            print_size(size)
            print(f"\nwith stories: {check(run.with_dir)}")
            sys.stdout.flush()
            sizes.append(size)
            folder.done(work)
        if len(sizes) > 1:
            print_scaling(sizes)


if __name__ == "__main__":
    main()
