"""Time from a file landing in a watched folder to it being found by a search, with the default model.

python watch_latency.py [--runs 7]: copies seeds/ + data/articles/ to a temporary folder, builds it with
the default model (multilingual-e5-small, onnx-int8), starts `indexer watch` on it (default --interval 1),
then drops one new article at a time and polls two searchers in this process until the new article is
the top hit: a plain Searcher (the CLI's and the Python API's) and Searcher(warm_new_versions=True) (the
page's). Prints each run and the medians; the watcher's own "live … after the last change" is read from its log.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent if (Path(__file__).parent.name == "bench") else Path.cwd()
sys.path.insert(0, str(ROOT))

from indexer import Searcher, SearchOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--burst", type=int, default=0, help="then write this many small files at once")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="watch-latency-"))
    src, index, log = tmp / "src", tmp / "index", tmp / "watch.log"
    shutil.copytree(ROOT / "seeds", src / "seeds")
    shutil.copytree(ROOT / "data" / "articles", src / "articles")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "indexer", "build", src, "--index", index, "-q"], check=True, cwd=ROOT)
    print(f"initial build: {time.perf_counter() - t:.1f} s")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "indexer", "watch", src, "--index", index],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        while "up to date" not in log.read_text():
            time.sleep(0.1)
        time.sleep(8)  # the watcher loads the model after its catch-up
        plain, warm = Searcher(index), Searcher(index, warm_new_versions=True)
        for s in (plain, warm):
            s.search("warm-up question")
        rows = []
        for i in range(args.runs):
            aid = f"articles/zorblat-{i}.txt"
            query = f"Quenvik{i} zorblat lanterns"
            text = (f"Zorblat festival number {i}\nThe town of Quenvik{i} held its zorblat festival, where "
                    f"glassblowers from Norway and Peru shaped {100 + i} lanterns for the harbour.\n")
            (src / aid).write_text(text, encoding="utf-8")
            landed = time.perf_counter()
            found: dict[str, float] = {}
            while len(found) < 2:
                for name, s in (("api", plain), ("page", warm)):
                    if name not in found:
                        hits = s.search(query, SearchOptions(k=1, highlight=False)).hits
                        if hits and hits[0].article_id == aid:
                            found[name] = time.perf_counter() - landed
                time.sleep(0.02)
            lives = re.findall(r"live ([\d.]+) s after the last change", log.read_text())
            rows.append((found["api"], found["page"], float(lives[-1])))
            print(f"run {i}: searchable after {found['api']:.2f} s (Searcher), {found['page']:.2f} s "
                  f"(page's warming Searcher); watcher: live {lives[-1]} s after the last change")
            time.sleep(1.5)
        print(f"median: {statistics.median(r[0] for r in rows):.2f} s (Searcher), "
              f"{statistics.median(r[1] for r in rows):.2f} s (page), "
              f"watcher live {statistics.median(r[2] for r in rows):.2f} s")
        if args.burst:
            def published() -> list[str]:
                return [ln for ln in log.read_text().splitlines() if " published " in ln]

            before = len(published())
            t = time.perf_counter()
            for i in range(args.burst):
                (src / "burst" / f"{i // 100:03d}").mkdir(parents=True, exist_ok=True)
                (src / "burst" / f"{i // 100:03d}" / f"b{i:05d}.txt").write_text(
                    f"Harbour note {i}\nShip number {i} docked at quay {i % 40} before the storm.\n", encoding="utf-8")
            written = time.perf_counter() - t
            last = f"burst/{(args.burst - 1) // 100:03d}/b{args.burst - 1:05d}.txt"
            while not plain.article(last):
                time.sleep(0.1)
            took = time.perf_counter() - t
            while len(published()) == before:
                time.sleep(0.1)
            time.sleep(2)
            lines = published()[before:]
            print(f"burst of {args.burst} files written in {written:.1f} s, all searchable after {took:.1f} s, "
                  f"{len(lines)} build(s):")
            for ln in lines:
                print("  ", ln)
    finally:
        proc.send_signal(signal.SIGTERM)
        print("watcher exit code", proc.wait(60))
        print(log.read_text().splitlines()[-1])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
