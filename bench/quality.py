"""Retrieval quality of BM25, dense and hybrid search on PIAF and XQuAD, in one run.

    python bench/quality.py [--work DIR] [--sets piaf,de,en,...] [--limit N]

Builds one index per corpus with the product's own ``build`` (default model and
settings) from ../shared/bench-data (read in place, never copied into the repo),
then asks every question in each mode and prints R@1, R@10 and MRR@10:

* PIAF: French questions; each Wikipedia article is one article of the corpus;
  a hit is the article of the question's paragraph. Also: how often the top
  passage contains the answer text.
* XQuAD monolingual (de, en, es, ru, zh): each paragraph is its own article.
* XQuAD cross-lingual: English questions over de/es/ru/zh paragraphs, and
  de/es questions over the English paragraphs (the gold paragraph is the one at
  the same position).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer import Searcher, SearchOptions, build
from indexer.evaluate import LabelledQuery, Metrics, evaluate

DATA = Path(os.environ.get("BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "bench-data"))
MODES = ("bm25", "dense", "hybrid")
MONO = ("de", "en", "es", "ru", "zh")
CROSS = (("en", "de"), ("en", "es"), ("en", "ru"), ("en", "zh"), ("de", "en"), ("es", "en"))


def squad(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def piaf_corpus(work: Path) -> tuple[Path, list[LabelledQuery]]:
    folder = work / "corpus-piaf"
    folder.mkdir(parents=True, exist_ok=True)
    rows, queries = [], []
    for i, art in enumerate(squad(DATA / "piaf" / "piaf-v1.0.json")):
        aid = f"piaf-{i:03d}"
        text = "\n\n".join(p["context"] for p in art["paragraphs"])
        rows.append({"id": aid, "title": art["title"], "text": text, "lang": "fr"})
        offset = 0
        for p in art["paragraphs"]:
            for q in p["qas"]:
                ans = q["answers"][0] if q.get("answers") else None
                queries.append(
                    LabelledQuery(q["question"], frozenset([aid]), ans and ans["text"],
                                  ans and offset + ans["answer_start"])
                )  # fmt: skip
            offset += len(p["context"]) + 2
    _write_jsonl(folder / "piaf.jsonl", rows)
    return folder, queries


def xquad_paragraphs(lang: str) -> tuple[list[dict], list[tuple[str, str, int]]]:
    rows, questions = [], []
    for art in squad(DATA / "xquad" / f"xquad.{lang}.json"):
        for p in art["paragraphs"]:
            pid = f"xq-{len(rows):03d}"
            rows.append({"id": pid, "title": art["title"], "text": p["context"], "lang": lang})
            questions += [(q["question"], pid, q["answers"][0]["answer_start"]) for q in p["qas"]]
    return rows, questions


def xquad_corpus(work: Path, lang: str) -> Path:
    folder = work / f"corpus-xquad-{lang}"
    folder.mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / f"xquad-{lang}.jsonl", xquad_paragraphs(lang)[0])
    return folder


def _built_in_steps(folder: Path, work: Path, updates: int) -> Path:
    """The corpus of ``folder`` indexed as a first part then ``updates`` updates, each a new segment.

    Each update also deletes, and then restores at the next one, one article in twenty of
    the part before, so deletion markers are in play; the last update restores none.
    """
    import shutil

    rows = [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
    src, index = work / "src", work / "index"
    if work.exists():
        shutil.rmtree(work)
    src.mkdir(parents=True)
    parts = [rows[i :: updates + 1] for i in range(updates + 1)]
    for step, part in enumerate(parts):
        _write_jsonl(src / f"part{step}.jsonl", part)
        if step:
            previous = parts[step - 1]
            kept = previous if step == updates else [r for j, r in enumerate(previous) if j % 20]
            _write_jsonl(src / f"part{step - 1}.jsonl", kept)
        if step >= 2:
            _write_jsonl(src / f"part{step - 2}.jsonl", parts[step - 2])
        build([src], index)
    segments = len(json.loads((index / "manifest.json").read_text())["segments"])
    print(f"  {folder.name} in {updates + 1} steps: {segments} segments", file=sys.stderr)
    return index


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "indexer-quality")
    ap.add_argument("--sets", default="piaf," + ",".join(MONO) + ",cross")
    ap.add_argument("--limit", type=int, default=0, help="at most this many questions per set (0: all)")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    ap.add_argument("--highlights", type=int, default=300, help="questions per set to check highlights on")
    ap.add_argument(
        "--updates",
        type=int,
        default=0,
        help="also build each corpus as a first quarter plus this many updates (one segment each, with "
        "deletions) and ask every question of both indexes: the ranking effect of segments",
    )
    args = ap.parse_args()
    wanted = set(args.sets.split(","))
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    tasks: list[tuple[str, str, list[LabelledQuery]]] = []  # (label, corpus key, queries)
    corpora: dict[str, Path] = {}
    if "piaf" in wanted:
        corpora["piaf"], piaf_q = piaf_corpus(work)
        tasks.append(("PIAF fr (article)", "piaf", piaf_q))
    cross = [c for c in CROSS if "cross" in wanted]
    needed_langs = [lang for lang in MONO if lang in wanted] + [d for _, d in cross]
    for lang in dict.fromkeys(needed_langs):
        corpora[lang] = xquad_corpus(work, lang)
    for lang in MONO:
        if lang in wanted:
            _, qs = xquad_paragraphs(lang)
            tasks.append((f"XQuAD {lang}", lang, [LabelledQuery(q, frozenset([g]), None, at) for q, g, at in qs]))
    for qlang, dlang in cross:
        _, qs = xquad_paragraphs(qlang)
        # parallel paragraphs: the answer offset is only known in the question's own language
        tasks.append((f"XQuAD {qlang}→{dlang}", dlang, [LabelledQuery(q, frozenset([g])) for q, g, _ in qs]))

    searchers = {}
    for key, folder in corpora.items():
        rep = build([folder], work / f"index-{key}")
        print(
            f"index {key}: {rep.articles} articles, {rep.passages} passages "
            f"({'rebuilt' if rep.published else 'up to date'})",
            file=sys.stderr,
        )
        searchers[key] = Searcher(work / f"index-{key}")
        if args.updates:
            searchers[f"{key}+updates"] = Searcher(_built_in_steps(folder, work / f"steps-{key}", args.updates))
    if args.updates:
        tasks += [(f"{label} [{args.updates} updates]", f"{key}+updates", qs) for label, key, qs in tasks]

    results: list[tuple[str, str, Metrics]] = []
    highlights: list[tuple[str, int, Metrics]] = []
    for label, key, queries in tasks:
        if args.limit:
            queries = queries[: args.limit]
        for mode in MODES:
            m = evaluate(searchers[key], queries, SearchOptions(k=10, mode=mode, highlight=False))
            results.append((label, mode, m))
            print(f"{label:22} {mode:7} R@1 {m.r1:.3f}  R@10 {m.r10:.3f}  MRR@10 {m.mrr10:.3f}", file=sys.stderr)
        sample = [q for q in queries if q.answer_at is not None][: args.highlights]
        if sample:
            h = evaluate(searchers[key], sample, SearchOptions(k=10, mode="hybrid"))
            highlights.append((label, len(sample), h))
            print(f"{label:22} highlight holds the answer: {h.highlight_accuracy:.3f}", file=sys.stderr)

    print("\n| set | questions | mode | R@1 | R@10 | MRR@10 | p50 ms |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for label, mode, m in results:
        extra = f" (answer in top passage: {m.answer_in_passage:.3f})" if m.answer_in_passage is not None else ""
        print(f"| {label} | {m.queries} | {mode}{extra} | {m.r1:.3f} | {m.r10:.3f} | {m.mrr10:.3f} | {m.p50_ms:.0f} |")
    mono = [label for label, _, _ in tasks if label.startswith("XQuAD") and "→" not in label]
    if mono:
        avg = {mode: sum(m.r1 for lab, md, m in results if md == mode and lab in mono) / len(mono) for mode in MODES}
        print(
            "\nXQuAD monolingual average R@1: "
            + ", ".join(f"{k} {v:.3f}" for k, v in avg.items())
            + f"; hybrid − dense = {100 * (avg['hybrid'] - avg['dense']):+.1f} points"
        )
    if highlights:
        print("\n| set | questions checked | highlight holds the answer (when the top hit is right) |\n|---|---:|---:|")
        for label, n, h in highlights:
            print(f"| {label} | {n} | {h.highlight_accuracy:.3f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([{"set": s, "mode": md, **m.to_json()} for s, md, m in results], indent=1))


if __name__ == "__main__":
    main()
