"""Latency of the search page, measured over real HTTP against ``streamlit run app.py``.

Starts the page on the sample corpus (seeds/ + data/articles/, built into a temporary
index unless --index is given), drives headless Chromium with Playwright and reports:

* cold start: process start → server answering → first answer rendered (the model
  loads during the first page view);
* per query, for distinct questions in several languages, asked once each:
  - server time: the search's own time, as the page shows it (``SearchResult.took_ms``);
  - type → results: Enter pressed → Streamlit's script run finished in the browser;
* the same questions asked again (query vectors and sentence vectors cached);
* "More results" (second page of the same question: no embedding).

Run:  python bench/app_latency.py [--index DIR] [--mode hybrid|dense|bm25] [--json] [--baseline COMMIT]

``--baseline main`` also measures ``app.py`` as it was at that commit (with this checkout's
library), in the same run, and prints the ratio of the two pages' type → results medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import build, page  # noqa: E402
from indexer.paths import default_sources  # noqa: E402

TARGET_MS = 200.0  # warm query, server time, sample corpus
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUERIES = [
    "What did the Kremlin spokesman say about economic cooperation?",
    "Zusammenarbeit zwischen den USA und Russland in der Arktis",
    "¿Qué dijo el portavoz del Kremlin sobre los proyectos económicos?",
    "vendemmia nelle Langhe",
    "drought in the Panama Canal",
    "storks fitted with GPS trackers",
    "grève des boulangers",
    "Vulkanausbruch auf Island",
    "lithium mining in South America",
    "Wasserstoff-Kernnetz",
    "offshore wind in Norway",
    "rapid chess tournament",
    "space probe Venus flyby",
    "Suez Canal traffic and the Red Sea",
    "réouverture de la médiathèque",
    "vélo en ville à Strasbourg",
    "prix de l'énergie et GNL",
    "bollette del gas in inverno",
    "exposition de céramique japonaise",
    "deep sea mining off Norway",
    "Schulreform in der Grundschule",
    "ruta de la seda polar",
    "Greenland rare earth mining",
    "la banquise arctique et la recherche polaire",
]
FIRST = "coopération dans l'Arctique"  # asked on the cold page
WATCH = """() => {
  window.__runs = [];
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => window.__runs.push([app.getAttribute('data-test-script-state'), performance.now()]))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
SERVER_MS = re.compile(r"(?:results?|No results) · ([\d.,]+) ms")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def wait_idle(pg: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    quiet = None
    while time.monotonic() < deadline:
        state = pg.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        if state == "notRunning" and not pg.locator("[data-stale='true']").count():
            quiet = quiet or time.monotonic()
            if time.monotonic() - quiet > 0.5:
                return
        else:
            quiet = None
        time.sleep(0.02)
    raise TimeoutError("the page kept running")


def server_ms(pg: Any) -> float:
    for text in pg.locator("[data-testid='stCaptionContainer']").all_inner_texts():
        m = SERVER_MS.search(text)
        if m:
            return float(m.group(1).replace(",", ""))
    raise AssertionError("no result count on the page")


def timed(pg: Any, action: Any, wait_ms: float = 60_000) -> tuple[float, float]:
    """(type → results ms, server ms) of one interaction that runs a search."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    pg.evaluate("window.__runs = []")
    t0 = pg.evaluate("performance.now()")
    action()
    try:
        pg.wait_for_function("window.__runs.some(r => r[0] === 'running')", timeout=wait_ms)
    except PlaywrightTimeout as exc:
        raise TimeoutError(str(exc)) from exc
    wait_idle(pg)
    runs = pg.evaluate("window.__runs")
    done = [t for state, t in runs if state == "notRunning"][-1]
    return done - t0, server_ms(pg)


LOST = []  # questions whose Enter started no run (seen once on a loaded machine); asked again, counted


def ask(pg: Any, question: str) -> tuple[float, float]:
    box = pg.locator("input[aria-label='Question']")
    for attempt in range(2):
        box.fill(question)
        try:
            return timed(pg, lambda: box.press("Enter"), wait_ms=20_000 if attempt == 0 else 60_000)
        except TimeoutError:
            if attempt:
                raise
            LOST.append(question)
    raise AssertionError("unreachable")


def summarise(name: str, values: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "max": max(values),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, help="index to serve (default: seeds/ + data/articles/ built in a temp dir)")
    ap.add_argument("--mode", default=None, help="search mode (default: the page's default)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument(
        "--baseline", metavar="COMMIT", help="also measure app.py as it was at COMMIT (e.g. main), same run"
    )
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    tmp = tempfile.TemporaryDirectory(prefix="app-latency-")
    index = args.index
    if index is None:
        index = Path(tmp.name) / "index"
        t = time.perf_counter()
        report = build(default_sources(), index)
        took = time.perf_counter() - t
        print(f"built {index}: {report.articles} articles, {report.passages} passages in {took:.1f} s")
    extra = f"&mode={quote(page.mode_label(args.mode))}" if args.mode else ""
    apps = [("this page", "app.py")]
    if args.baseline:
        base = ROOT / "_baseline_app.py"  # beside app.py, so it imports this checkout's indexer
        base.write_text(subprocess.run(["git", "show", f"{args.baseline}:app.py"], cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout, encoding="utf-8")  # fmt: skip
        apps.append((f"{args.baseline}'s page", base.name))
    measured = {}
    try:
        # one after the other on the same index and machine; the ratio is of this run's medians
        for name, app in apps:
            measured[name] = measure(app, index, extra, tmp.name)
    finally:
        if args.baseline:
            (ROOT / "_baseline_app.py").unlink(missing_ok=True)
    for name, found in measured.items():
        print_figures(name, found, args)
    if args.baseline:
        names = list(measured)
        mine, theirs = (summarise("", [c for c, _ in measured[n]["fresh"]])["p50"] for n in names)
        print(f"\ntype → results, new question, p50: {mine:.0f} ms ({names[0]}) / {theirs:.0f} ms ({names[1]}) "
              f"= {mine / theirs:.2f}×")  # fmt: skip
    if LOST:
        print(f"{len(LOST)} question(s) started no run on their first Enter and were asked again: {LOST}")
    tmp.cleanup()
    return 0


def measure(app: str, index: Path, extra: str, tmpdir: str) -> dict[str, Any]:
    """Start ``streamlit run APP`` on the index, ask every question twice, page six of them."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INDEXER_INDEX": str(index)}
    cmd = [sys.executable, "-m", "streamlit", "run", app, "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    log = open(Path(tmpdir) / f"server-{app}.log", "wb")  # noqa: SIM115 — closed in finally
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"streamlit exited: {(Path(tmpdir) / f'server-{app}.log').read_text()}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.05)
            ready = time.perf_counter() - t0
            pg.goto(f"{url}/?q={quote(FIRST)}{extra}")
            pg.wait_for_selector(".hit", timeout=180_000)
            wait_idle(pg)
            first = time.perf_counter() - t0
            first_server = server_ms(pg)
            facts = pg.locator(".facts").inner_text().split("\n")
            pg.evaluate(WATCH)

            fresh = [ask(pg, q) for q in QUERIES]
            again = [ask(pg, q) for q in QUERIES]
            more = []
            for q in QUERIES[:6]:
                pg.goto(f"{url}/?q={quote(q)}&k=5{extra}")
                pg.wait_for_selector(".hit", timeout=60_000)
                wait_idle(pg)
                pg.evaluate(WATCH)
                button = pg.get_by_role("button", name="More results")
                if button.count():
                    more.append(timed(pg, button.click))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            browser.close()

    return {"ready": ready, "first": first, "first_server": first_server, "facts": facts, "fresh": fresh,
            "again": again, "more": more}  # fmt: skip


def print_figures(name: str, m: dict[str, Any], args: argparse.Namespace) -> None:
    """The table of one page's figures."""
    fresh, again, more, facts = m["fresh"], m["again"], m["more"], m["facts"]
    ready, first, first_server = m["ready"], m["first"], m["first_server"]
    rows = [
        summarise("server time, new question", [s for _, s in fresh]),
        summarise("type → results, new question", [c for c, _ in fresh]),
        summarise("server time, repeated question", [s for _, s in again]),
        summarise("type → results, repeated question", [c for c, _ in again]),
    ]
    if more:
        rows += [
            summarise("server time, More results", [s for _, s in more]),
            summarise("click → results, More results", [c for c, _ in more]),
        ]
    info = dict(zip(facts[0::2], facts[1::2]))
    print(
        f"\nSearch page latency, {name} — {info.get('Articles')} articles, {info.get('Passages')} passages, "
        f"{info.get('Model')}, {os.cpu_count()} CPUs, mode {args.mode or 'default'}"
    )
    print(f"cold start: server up {ready:.1f} s, first answer rendered {first:.1f} s (search {first_server:.0f} ms)")
    print(f"\n{'':36} {'n':>3} {'p50':>9} {'p95':>9} {'max':>9}")
    for r in rows:
        print(f"{r['name']:36} {r['n']:>3} {r['p50']:>6.0f} ms {r['p95']:>6.0f} ms {r['max']:>6.0f} ms")
    warm = rows[0]["p50"]
    verdict = "meets" if warm < TARGET_MS else "MISSES"
    print(f"\nwarm new question, server time p50 {warm:.0f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    if args.json:
        print(json.dumps({"cold_start_s": first, "server_ready_s": ready, "rows": rows, "facts": info}))


if __name__ == "__main__":
    sys.exit(main())
