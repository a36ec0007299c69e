"""The HTTP API as a client waits for it: `serve()` in its own process, questions over real HTTP.

    python bench/api_latency.py INDEX      # e.g. an index of the sample corpus: indexer build seeds data/articles

Prints round-trip p50/p95 for new questions (one client, then 8 at once), the same question again and
/health, beside the search's own time (`took_ms`) measured inside the same requests: the difference is what
HTTP, JSON and waiting for a core add.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Who offered Washington cooperation on rare earths?", "coopération dans l'Arctique", "Hochwasser und Brücke",
    "offshore wind in Norway", "réforme de l'école primaire", "football cup surprise", "Peskov", "energy prices",
    "Arctic shipping routes", "Schulreform Grundschule", "climate summit", "rare earth recycling",
]  # fmt: skip
SERVE = (
    "import sys; from pathlib import Path; from indexer.api import ServeSettings, serve; "
    "serve(ServeSettings(index_dir=Path(sys.argv[1]), port=0, log_level='warning'), "
    "on_ready=lambda url: print('ready', url, flush=True))"
)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main(index: str) -> None:
    out = Path(tempfile.mkdtemp()) / "server.out"
    t0 = time.perf_counter()
    with open(out, "wb") as o:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, index], stdout=o, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        while not (m := re.search(r"ready (\S+)", out.read_text())):
            if proc.poll() is not None:
                sys.exit(out.read_text())
            time.sleep(0.05)
        ready_s, url = time.perf_counter() - t0, m[1]

        def ask(q: str) -> tuple[float, float]:
            t = time.perf_counter()
            with urllib.request.urlopen(url + "/search?" + urllib.parse.urlencode({"q": q, "k": 10})) as r:
                took = json.loads(r.read())["took_ms"]
            return (time.perf_counter() - t) * 1000, took

        first = ask("first question after the start")
        new = [ask(f"{q} {i}") for i in range(4) for q in QUESTIONS]  # new questions: each one embedded
        same = [ask(QUESTIONS[0]) for _ in range(48)]  # its query vector cached
        health = []
        for _ in range(48):
            t = time.perf_counter()
            urllib.request.urlopen(url + "/health").read()
            health.append((time.perf_counter() - t) * 1000)
        crowd: list[tuple[float, float]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            for i in range(25):
                r = ask(f"{QUESTIONS[(n + i) % len(QUESTIONS)]} c{n} {i}")
                with lock:
                    crowd.append(r)

        t = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        print(f"ready after {ready_s:.1f} s (model and index loaded, warmed up); first question {first[0]:.1f} ms")
        print(f"{'':34} {'n':>4} {'round trip p50 / p95 ms':>24} {'search p50 / p95 ms':>20} {'added p50 ms':>13}")
        for name, xs in [("new question, one client", new), ("same question again", same),
                         ("8 clients at once, new questions", crowd)]:  # fmt: skip
            rt, s = [a for a, _ in xs], [b for _, b in xs]
            added = pct([a - b for a, b in xs], 50)
            print(f"{name:34} {len(xs):4} {pct(rt, 50):11.1f} / {pct(rt, 95):6.1f}"
                  f" {pct(s, 50):11.1f} / {pct(s, 95):6.1f} {added:13.1f}")  # fmt: skip
        print(f"{'/health':34} {len(health):4} {pct(health, 50):11.1f} / {pct(health, 95):6.1f}")
        print(f"8 clients: {len(crowd) / wall:.1f} requests/s")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main(sys.argv[1])
