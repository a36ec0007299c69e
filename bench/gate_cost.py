"""What a gate costs: the same change built with and without ``--gate``, default model.

    python bench/gate_cost.py [--queries N] [--repeat R] [--work DIR]

XQuAD en paragraphs as articles (read from ../shared/bench-data, never copied into
the repo): the live version holds the first 200; the changes are adding the next 40
(neutral) and rebuilding with 8-token passages. N questions of the live version's
paragraphs are the labelled set. Each timed build runs on a fresh copy of the live
index (no resume cache, no shared file cache); medians and minima of R runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import xquad_paragraphs

from indexer import BuildSettings, ChunkSettings, build
from indexer.gate import GateRefusedError, GateReport, GateSettings, report_lines


def main() -> None:
    """Time each change with and without the gate, and print the verdicts."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "indexer-gate-cost")
    args = ap.parse_args()
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows, questions = xquad_paragraphs("en")

    def corpus(n: int) -> Path:
        folder = work / f"src{n}"
        folder.mkdir()
        (folder / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:n]) + "\n", encoding="utf-8")
        return folder

    v1, v2 = corpus(200), corpus(240)
    labelled = work / "labelled.jsonl"
    qs = [{"query": q, "relevant": [pid]} for q, pid, _ in questions if int(pid[3:]) < 200][: args.queries]
    labelled.write_text("\n".join(json.dumps(q) for q in qs) + "\n", encoding="utf-8")
    base = work / "base"
    t0 = time.perf_counter()
    build([v1], base)
    print(f"live version: 200 articles, built in {time.perf_counter() - t0:.1f} s; {len(qs)} labelled queries")

    def timed(src: Path, settings: BuildSettings) -> tuple[float, GateReport | None]:
        idx = work / "copy"
        shutil.rmtree(idx, ignore_errors=True)
        shutil.copytree(base, idx)
        t0 = time.perf_counter()
        try:
            verdict = build([src], idx, settings).gate
        except GateRefusedError as exc:
            verdict = exc.report
        return time.perf_counter() - t0, verdict

    gate = GateSettings(queries=labelled)
    strict = GateSettings(queries=labelled, min_recall=0.99)
    tiny = ChunkSettings(max_tokens=8)
    cases = [
        ("add 40 articles, ungated", v2, BuildSettings()),
        ("add 40 articles, gated", v2, BuildSettings(gate=gate)),
        ("--max-tokens 8 rebuild, ungated", v1, BuildSettings(chunk=tiny)),
        ("--max-tokens 8 rebuild, gated", v1, BuildSettings(chunk=tiny, gate=gate)),
        ("--max-tokens 8, gated, R=0.99", v1, BuildSettings(chunk=tiny, gate=strict)),
    ]
    for name, src, settings in cases:
        times, gates, verdict = [], [], None
        for _ in range(args.repeat):
            t, verdict = timed(src, settings)
            times.append(t)
            if verdict is not None and verdict.applied:
                gates.append(verdict.seconds)
        line = f"{name:34} median {statistics.median(times):6.1f} s, min {min(times):6.1f} s"
        if gates:
            line += f"; the gate itself: median {statistics.median(gates):.1f} s, min {min(gates):.1f} s"
        print(line)
        if verdict is not None:
            for ln in report_lines(verdict, shown=5):
                print("    " + ln)


if __name__ == "__main__":
    main()
