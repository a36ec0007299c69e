"""What an update costs against the archive's size: ``indexer.build`` on one index, step by step.

    python bench/updates.py [--passages 100000[,1000000]] [--repeat 3] [--profile]
                            [--work DIR] [--keep] [--seed N] [--shape FILE.npz]

For each size, a synthetic archive of about ``--passages`` passages is written as JSONL
files of 10,000 articles (``bench/synth_archive.py``'s generator: sources, dates,
languages, syndicated copies, news-shaped text), under ``--work``, beside the index.
Then every step is a real ``indexer.build.build(sources, index, BuildSettings(...),
encoder=SynthEncoder, model=resolve())`` call on that same index, as ``indexer build``
runs it (``SynthEncoder`` gives e5-shaped vectors in microseconds, so the model's time
is not what is measured; it is subtracted anyway, with ``report.embed_seconds``):

1. full build (``--full``) of a fresh index;
2. no-change build;
3. add 10 articles (a new JSONL file; ids never used, the newest dates of the plan);
4. change one article (its JSONL file rewritten with that record's text edited);
5. delete one article (its JSONL file rewritten without it);
   3–5 are repeated ``--repeat`` times, medians reported;
6. a second no-change build;
7. a forced full re-read (``BuildSettings(check=True)``), when ``BuildSettings`` has a
   ``check`` field; skipped with a note otherwise.

Printed per size: a markdown table of the steps (wall seconds, the report's counts and
seconds, seconds excluding embedding, bytes written by this process — ``wchar`` and
``write_bytes`` of /proc/self/io, plus reaped children's block writes — the index
folder's size on disk before and after, hard links counted once, and the machine's
1-minute load average after the step: other processes slow a step down); every numeric field
of the ``BuildReport`` (nested dicts and dataclasses flattened, so fields added later
show up); the ratios no-change / full and update / full, each update's seconds
excluding embedding against the 3 s target (PASS/MISS; the targets are set for
1,000,000 passages on 2 cores), bytes written / index size and the write
amplification (bytes written / the index's bytes per article × articles touched).
With several sizes, a summary with how each cost grows with the archive (exponent
of the size: 0 = independent of it, 1 = proportional). ``--profile`` runs each update
step once more under cProfile and prints the 15 ``indexer`` functions with the most
cumulative time, summed over the calling thread and every Python thread the build starts
(a reading thread, say; native threads such as ONNX Runtime's count where they are called).

"Publishes in ≤ 3 s" is judged on the time until the new version is live: the report's
``publish_seconds`` less ``embed_seconds`` when the report has that field (work done
after publishing, such as merges, is then shown apart), else wall less embedding.

Everything under ``--work`` that this bench made is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import json
import math
import numbers
import os
import pstats
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth_archive as sa  # noqa: E402
from synth_updates import ADDED, UPDATE_KINDS, Synthetic, WorkFolder  # noqa: E402

import indexer  # noqa: E402
from indexer.build import BuildSettings  # noqa: E402

TARGET_UPDATE_S = 3.0  # add 10 / change 1 / delete 1, excluding embedding, at TARGET_SIZE on 2 cores
TARGET_NO_CHANGE = 0.05  # of a full build's time
TARGET_SIZE = 1_000_000
SETTING_FIELDS = {f.name for f in dataclasses.fields(BuildSettings)}
MB = 1e6


def log(msg: str) -> None:
    print(f"[updates {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def settings(**wanted: Any) -> BuildSettings:
    """``BuildSettings`` with those of ``wanted`` that this version of the library has."""
    return BuildSettings(**{k: v for k, v in wanted.items() if k in SETTING_FIELDS})


# ------------------------------------------------------------ measuring
@dataclass(frozen=True)
class IOCount:
    """Bytes this process has written: through write calls, and to the storage layer."""

    wchar: int
    write_bytes: int

    @classmethod
    def now(cls) -> IOCount:
        vals: dict[str, int] = {}
        try:
            with open("/proc/self/io") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    vals[key] = int(value)
        except OSError:  # not Linux, or /proc hidden: the columns say -1
            return cls(-1, -1)
        # a worker process of the build counts once reaped (ru_oublock: 512-byte blocks); its wchar cannot be seen
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock * 512
        return cls(vals.get("wchar", -1), vals.get("write_bytes", -1) + children)

    def __sub__(self, other: IOCount) -> IOCount:
        return IOCount(self.wchar - other.wchar, self.write_bytes - other.write_bytes)


def disk_usage(folder: Path) -> int:
    """Bytes ``folder`` takes on disk, as ``du`` counts them (hard-linked files once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def report_numbers(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, int | float]:
    """Every numeric attribute of a report: fields, instance attributes, properties; nested ones flattened."""
    items: dict[str, Any] = {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items.update((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        items.update((str(k), v) for k, v in obj.items())
    elif hasattr(obj, "__dict__"):
        items.update((k, v) for k, v in vars(obj).items() if not k.startswith("_") and k not in items)
        for name, attr in vars(type(obj)).items():
            if isinstance(attr, property) and not name.startswith("_"):
                try:
                    items[name] = getattr(obj, name)
                except Exception:  # a property that needs more than the report has
                    continue
    out: dict[str, int | float] = {}
    for name, value in items.items():
        key = prefix + name
        if isinstance(value, numbers.Integral):
            out[key] = int(value)
        elif isinstance(value, numbers.Real):
            out[key] = float(value)
        elif isinstance(value, list | tuple):
            out[f"{key} (count)"] = float(len(value))
        elif depth < 2 and (isinstance(value, dict) or hasattr(value, "__dict__")):
            out.update(report_numbers(value, key + ".", depth + 1))
    return out


@dataclass
class Step:
    """One build and what it cost."""

    label: str
    kind: str  # full, no-change, add, change, delete, check
    wall: float
    report: Any
    written: IOCount
    size_before: int
    size_after: int
    profile: pstats.Stats | None = None
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # other work on the machine during the step

    threads: int = 0  # threads the profile covered besides the caller's

    @property
    def embed(self) -> float:
        return float(getattr(self.report, "embed_seconds", 0.0) or 0.0)

    @property
    def publish(self) -> float:
        """Seconds until the new version was live (the report's, if it says), else the wall time."""
        value = getattr(self.report, "publish_seconds", None)
        return float(value) if isinstance(value, int | float) and value > 0 else self.wall

    @property
    def publish_excl_embed(self) -> float:
        return self.publish - self.embed

    @property
    def excl_embed(self) -> float:
        """What the user waits for beyond the model: wall time less the model's."""
        return self.wall - self.embed

    @property
    def touched(self) -> int:
        r = self.report
        return int(getattr(r, "added", 0) + getattr(r, "updated", 0) + getattr(r, "removed", 0))


class ThreadedProfile:
    """cProfile of the calling thread and of every Python thread started while it is on."""

    def __init__(self) -> None:
        self.main = cProfile.Profile()
        self.others: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start(self, *_: Any) -> None:
        # threading calls this hook first thing in each new thread: give the thread its own profiler
        sys.setprofile(None)
        prof = cProfile.Profile()
        with self._lock:
            self.others.append(prof)
        prof.enable()

    def __enter__(self) -> ThreadedProfile:
        threading.setprofile(self._start)
        self.main.enable()
        return self

    def __exit__(self, *_: Any) -> None:
        self.main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]

    def stats(self) -> pstats.Stats:
        st = pstats.Stats(self.main)
        for prof in self.others:
            try:
                st.add(prof)
            except (TypeError, ValueError):  # a thread that recorded nothing
                continue
        return st


# -------------------------------------------------------------- the run
class Bench:
    """The steps of one archive size, all on one index."""

    def __init__(self, synthetic: Synthetic, index: Path) -> None:
        self.synthetic, self.index = synthetic, index
        self.steps: list[Step] = []
        self.profiled: list[Step] = []

    def step(self, label: str, kind: str, how: BuildSettings, *, profile: bool = False) -> Step:
        size = disk_usage(self.index) if self.index.exists() else 0
        progress = self._progress() if kind == "full" else None
        prof = ThreadedProfile() if profile else contextlib.nullcontext()
        io0 = IOCount.now()
        with prof:
            wall, rep = self.synthetic.build(self.index, how, progress=progress)
        written = IOCount.now() - io0
        s = Step(label, kind, wall, rep, written, size, disk_usage(self.index))
        if isinstance(prof, ThreadedProfile):
            s.profile, s.threads = prof.stats(), len(prof.others)
        log(f"{label}: {wall:.2f} s, {written.write_bytes / MB:.1f} MB written, load {s.load:.1f}")
        (self.profiled if profile else self.steps).append(s)
        return s

    @staticmethod
    def _progress() -> Callable[[Any], None]:
        marks: set[int] = set()

        def progress(p: Any) -> None:
            tenth = int(10 * p.files_done / max(1, p.files_total))
            if tenth not in marks:
                marks.add(tenth)
                log(f"  {p.files_done}/{p.files_total} files, {p.passages_embedded:,} passages, {p.elapsed:.0f} s")

        return progress

    def update(self, kind: str, run: str, *, profile: bool = False) -> Step:
        what = self.synthetic.edit(kind, run)
        label = {"add": f"3 add {ADDED}", "change": "4 change 1", "delete": "5 delete 1"}[kind] + f" ({what})"
        return self.step(label if not profile else f"{label} [cProfile]", kind, settings(), profile=profile)

    def run(self, repeat: int, profile: bool) -> None:
        self.step("1 full build", "full", settings(full=True))
        self.step("2 no change", "no-change", settings())
        for r in range(repeat):
            for kind in UPDATE_KINDS:
                self.update(kind, f"{r + 1:02d}")
        self.step("6 no change again", "no-change", settings())
        if "check" in SETTING_FIELDS:
            self.step("7 --check (re-read everything)", "check", settings(check=True))
        if profile:
            self.step("2 no change [cProfile]", "no-change", settings(), profile=True)
            for kind in UPDATE_KINDS:
                self.update(kind, "profile", profile=True)


# ------------------------------------------------------------ printing
def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            if v != v:
                return "–"
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def steps_table(steps: list[Step]) -> str:
    rows = []
    for s in steps:
        r = s.report
        rows.append([
            s.label, s.wall, float(getattr(r, "seconds", math.nan)), s.embed, s.excl_embed, s.publish_excl_embed,
            getattr(r, "added", "?"), getattr(r, "updated", "?"), getattr(r, "removed", "?"),
            getattr(r, "unchanged", "?"), getattr(r, "embedded", "?"), bool(getattr(r, "published", False)),
            getattr(r, "version", "?"), s.written.wchar / MB, s.written.write_bytes / MB,
            s.size_before / MB, s.size_after / MB, s.load,
        ])  # fmt: skip
    return table(["step", "wall s", "report s", "embed s", "wall excl. embed s", "to publish excl. embed s",
                  "added", "updated", "removed",
                  "unchanged", "embedded", "published", "version", "wchar MB", "write_bytes MB",
                  "index before MB", "index after MB", "load"], rows)  # fmt: skip


def fields_table(steps: list[Step]) -> str:
    per = [report_numbers(s.report) for s in steps]
    keys = list(dict.fromkeys(k for d in per for k in d))
    # one row per field, one column per step: new fields add rows, not an unreadable width
    short = [s.label.split(" (")[0].split(" [")[0] for s in steps]
    return table(["report field", *short], [[k, *(d.get(k, math.nan) for d in per)] for k in keys])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summarise(steps: list[Step]) -> dict[str, Any]:
    full = next(s for s in steps if s.kind == "full")
    size = full.size_after
    arts = max(1, int(getattr(full.report, "articles", 0)))
    out: dict[str, Any] = {"full": full, "passages": int(getattr(full.report, "passages", 0)), "articles": arts}
    rows = []
    for kind in ("no-change", *UPDATE_KINDS, "check"):
        group = [s for s in steps if s.kind == kind]
        if not group:
            continue
        m = {
            "wall": median([s.wall for s in group]),
            "excl": median([s.excl_embed for s in group]),
            "publish": median([s.publish_excl_embed for s in group]),
            "embed": median([s.embed for s in group]),
            "write_bytes": median([s.written.write_bytes for s in group]),
            "wchar": median([s.written.wchar for s in group]),
            "touched": median([s.touched for s in group]),
        }
        out[kind] = m
        share = size / arts * m["touched"]  # the index's bytes for the articles this step touched
        if kind == "no-change":
            target = f"≤ {TARGET_NO_CHANGE:.0%} of full: {verdict(m['wall'] <= TARGET_NO_CHANGE * full.wall)}"
        elif kind in UPDATE_KINDS:
            target = f"live in ≤ {TARGET_UPDATE_S:.0f} s excl. embed: {verdict(m['publish'] <= TARGET_UPDATE_S)}"
        else:
            target = ""
        rows.append([
            kind, len(group), m["wall"], m["wall"] / full.wall, m["excl"], m["publish"], m["write_bytes"] / MB,
            m["write_bytes"] / size, m["write_bytes"] / share if m["touched"] else math.nan, target,
        ])  # fmt: skip
    out["table"] = table(["step", "runs", "median wall s", "/ full build", "wall excl. embed s",
                          "to publish excl. embed s", "write_bytes MB",
                          "written / index size", "write amplification", "target"], rows)  # fmt: skip
    return out


def profile_table(stats: pstats.Stats, n: int = 15) -> str:
    pkg = os.path.realpath(Path(indexer.__file__).parent) + os.sep
    rows = []
    for (file, line, func), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        real = os.path.realpath(file)
        if real.startswith(pkg):
            rows.append((cum, own, calls, f"indexer/{os.path.relpath(real, pkg)}:{line}({func})"))
    rows.sort(reverse=True)
    return table(["cumulative s", "own s", "calls", "function"], [[c, o, k, f] for c, o, k, f in rows[:n]])


def print_size(n: int, bench: Bench, summary: dict[str, Any], seconds_generating: float) -> None:
    full = summary["full"]
    manifest = bench.index / "manifest.json"
    vectors = json.loads(manifest.read_text()).get("vectors", {}) if manifest.exists() else {}
    vectors = vectors if isinstance(vectors, dict) else {}  # only shown: a new manifest layout must not fail the bench
    print(f"\n## {summary['passages']:,} passages, {summary['articles']:,} articles "
          f"(asked: {n:,}; written as {bench.synthetic.archive.files} JSONL file(s) of up to {sa.SHARD:,} articles, "
          f"{disk_usage(bench.synthetic.archive.folder) / MB:,.0f} MB, in {seconds_generating:.0f} s)\n")  # fmt: skip
    print(f"index {bench.index}: {full.size_after / MB:,.1f} MB after the full build; vectors "
          f"{vectors.get('faiss', '?')} (recall@10 {vectors.get('recall_at_10', '?')}); {os.cpu_count()} cores; "
          f"BuildSettings fields: {', '.join(sorted(SETTING_FIELDS))}\n")  # fmt: skip
    print(steps_table(bench.steps))
    if "check" not in SETTING_FIELDS:
        print("\nstep 7 skipped: BuildSettings has no `check` field (this build re-reads every file every time).")
    print("\nEvery numeric field of the BuildReport, per step:\n")
    print(fields_table(bench.steps))
    print(f"\nMedians against the full build ({full.wall:.1f} s) of the same run; targets are set for "
          f"{TARGET_SIZE:,} passages on 2 cores. Write amplification = bytes written / (index bytes per "
          "article × articles added, changed or removed).\n")  # fmt: skip
    print(summary["table"])
    for s in bench.profiled:
        print(f"\n### cProfile: {s.label} — {s.wall:.2f} s wall, top 15 `indexer` functions by cumulative time "
              f"(the caller's thread + {s.threads} other(s), summed)\n")  # fmt: skip
        assert s.profile is not None
        print(profile_table(s.profile))


def exponent(small: float, large: float, n_small: int, n_large: int) -> float:
    if small <= 0 or large <= 0:
        return math.nan
    return math.log(large / small) / math.log(n_large / n_small)


def print_scaling(results: list[tuple[int, dict[str, Any]]]) -> None:
    s0, s1 = results[0][1], results[-1][1]
    p0, p1 = s0["passages"], s1["passages"]
    print(f"\n## How the costs grow with the archive: {p0:,} → {p1:,} passages (×{p1 / p0:.1f})\n")
    rows = []
    metrics = [("full build wall s", lambda s: s["full"].wall)]
    for kind in ("no-change", *UPDATE_KINDS):
        metrics.append((f"{kind} wall excl. embed s", lambda s, k=kind: s[k]["excl"]))
        if kind != "no-change":
            metrics.append((f"{kind} to publish excl. embed s", lambda s, k=kind: s[k]["publish"]))
        metrics.append((f"{kind} write_bytes MB", lambda s, k=kind: s[k]["write_bytes"] / MB))
    for name, get in metrics:
        a, b = get(s0), get(s1)
        rows.append([name, *(get(s) for _, s in results), exponent(a, b, p0, p1)])
    sizes = [f"{s['passages']:,}" for _, s in results]
    print(table(["cost", *sizes, "exponent of size"], rows))
    print("\nexponent 0: the cost does not depend on the archive; 1: proportional to it "
          f"(an update of {TARGET_UPDATE_S:.0f} s at {TARGET_SIZE:,} passages needs it near 0).")  # fmt: skip


# ------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", default="100000", help="archive size(s) in passages, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each update step (medians reported)")
    ap.add_argument("--profile", action="store_true", help="each update step once more under cProfile")
    ap.add_argument("--work", type=Path, default=None, help="folder for the sources and the index (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the sources and the index")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--shape", type=Path, default=None, help=".npz of real e5 vectors' mean and root (synth_archive)")
    args = ap.parse_args()
    sizes = [int(x.replace("_", "")) for x in args.passages.split(",") if x.strip()]
    with WorkFolder.of(args.work, "bench-updates-", keep=args.keep) as folder:
        print(f"# bench/updates.py — {', '.join(f'{n:,}' for n in sizes)} passages, {args.repeat} runs per update, "
              f"{os.cpu_count()} cores, indexer {indexer.__version__}, work {folder.base}")  # fmt: skip
        results = []
        for n in sizes:
            work = folder.fresh(f"updates-{n}")
            t0 = time.perf_counter()
            log(f"writing an archive of ~{n:,} passages to {work / 'sources'}")
            reserve = ADDED * (args.repeat + (1 if args.profile else 0))
            synthetic = Synthetic.generate(n, work / "sources", seed=args.seed, reserve=reserve, shape=args.shape)
            generated = time.perf_counter() - t0
            bench = Bench(synthetic, work / "index")
            bench.run(args.repeat, args.profile)
            summary = summarise(bench.steps)
            print_size(n, bench, summary, generated)
            sys.stdout.flush()
            results.append((n, summary))
            folder.done(work)
        if len(results) > 1:
            print_scaling(results)
        if args.keep:
            print(f"\nkept: {', '.join(str(w) for w in folder.made)}")


if __name__ == "__main__":
    main()
