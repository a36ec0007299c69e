"""Scaling on one machine: index type by size, memory, latency, recall, and the build rate.

    python bench/scale.py [--sizes 100000,1000000] [--articles 20000] [--queries 1000]
                          [--parts real,vectors,e2e,sweep,build] [--indexes auto,sq8,hnsw,pq48]
                          [--work DIR] [--json FILE]

All figures come from the same run and are printed as one markdown table per part:

1. real — XQuAD + PIAF paragraphs and questions (../shared/bench-data), embedded
   with the default model: does the build's held-out check (stored vectors as
   queries) predict the recall of real questions? And the synthetic data next to
   the real vectors it imitates (first, because it borrows their shape).
2. vectors — at each size: plain ``IndexFlatIP`` (exact, the reference), the
   automatic type (``IVF{nlist},PQ192x4fs``, its best 512 candidates re-scored with
   the float32 vectors read from SQLite) and alternatives (``IVF{nlist},SQ8``,
   ``HNSW32,SQ8``, ``IVF{nlist},PQ48``; ``--indexes`` picks), built by
   ``indexer.vectors.build`` exactly as a build does (k-means on a sample,
   nprobe/efSearch tuned on held-out stored vectors). The vectors also go into a
   SQLite table laid out as an index's own. Each index is saved, then loaded by a
   fresh process that answers the queries one at a time through the search's own
   ``FaissDense`` (re-scoring included): build seconds, bytes per vector (file size / n), resident memory, p50/p95
   latency (unfiltered, and with a filter keeping 10 % of the ids), recall@10
   against the exact results (an update no longer edits an index: it adds a segment,
   see bench/updates.py). Uniform random unit vectors are run at the smallest size
   as the hard case.
3. e2e — at the largest size, one fresh process holding the default model
   (onnx-int8) and an index: query embedding + search, p50/p95 and resident memory
   against the targets (≤ 1 GB, p50 ≤ 30 ms, p95 ≤ 60 ms).
4. sweep — exact-scan latency by size: where exact search stops fitting the budget.
5. build — ``--articles`` generated articles (five languages, ~60–130 tokens)
   built with the default model by ``indexer.build`` in a fresh process: articles/s,
   tokens/s, peak resident memory and its course, the embedded count.

Synthetic data, and why not uniform random vectors: e5 passage vectors share a
strong common direction (the mean vector's norm is 0.86; random pairs sit at
cosine 0.74), their variance is concentrated in few directions, and they have
close neighbours (cosine ~0.9). Uniform vectors in 384 dimensions are all nearly
orthogonal, so every IVF list is as near as any other — a worst case no text
collection shows (it is still run, as the hard case). The synthetic vectors take
the mean and covariance of the real passages embedded in part 1, shared out over
a hierarchy — topics of 500 vectors, subtopics of 50, stories of 5, own noise —
whose shares were chosen so that, at the real collection's size, random-pair,
nearest and 10th-nearest cosines and the nprobe IVF needs all match the real
vectors (part 1 prints the comparison). Stories stay at 5 vectors however large
the collection, where real collections grow denser (adjacent passages, syndicated
copies), so at 1M this data asks IVF to probe half of its lists: read its
latencies as an upper bound for text.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer import vectors  # noqa: E402

DIM = 384
DATA = Path(os.environ.get("BENCH_DATA", ROOT.parent / "shared" / "bench-data"))
TARGET_RSS_MB, TARGET_P50_MS, TARGET_P95_MS, TARGET_RECALL = 1024, 30.0, 60.0, 0.95
FILTER_SHARE = 0.10


# ------------------------------------------------------------------ helpers
def status(key: str) -> int:
    """A /proc/self/status figure in MB (VmRSS: resident now, VmHWM: peak resident)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return 0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def child(mode: str, **args: Any) -> dict[str, Any]:
    """Run one measurement in a fresh process (so indexes share no memory); its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps({"mode": mode, **args})]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class Mixture:
    """e5-like synthetic vectors (see the module doc): the mean and covariance of real e5 passages,
    shared by topics, subtopics and stories so that neighbourhoods exist."""

    # shares of the covariance: topic, subtopic, story, own noise. Chosen so that 1,961 vectors
    # match 1,961 real passages in random-pair, nearest and 10th-nearest cosine and in the nprobe
    # an IVF128 index needs for recall@10 ≥ 0.97 (part "real" prints the comparison)
    SHARES = (0.1, 0.1, 0.4, 0.4)
    STORY, FANOUT = 5, 10  # vectors per story; stories per subtopic and subtopics per topic

    def __init__(self, n: int, shape: tuple[np.ndarray, np.ndarray], seed: int = 0, *, uniform: bool = False):
        rng = np.random.default_rng(seed)
        self.mean, self.root = shape
        self.uniform = uniform
        self.stories = max(1, n // self.STORY)
        self.levels = [
            rng.standard_normal((max(1, self.stories // self.FANOUT**k), DIM)).astype(np.float32) for k in (2, 1, 0)
        ]

    def sample(self, m: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((m, DIM), np.float32)
        for i in range(0, m, 100_000):
            k = min(100_000, m - i)
            z = rng.standard_normal((k, DIM)).astype(np.float32)
            if self.uniform:
                out[i : i + k] = unit(z)
                continue
            story = rng.integers(0, self.stories, k)
            z *= np.sqrt(self.SHARES[3])
            for share, dirs, div in zip(self.SHARES, self.levels, (self.FANOUT**2, self.FANOUT, 1)):
                z += np.sqrt(share) * dirs[np.minimum(story // div, len(dirs) - 1)]
            out[i : i + k] = unit(self.mean + z @ self.root.T)
        return out


def e5_shape(p: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and a square root of the covariance of real passage vectors ``p``; without them, a
    stand-in with the same mean norm (0.86) and random-pair cosine (0.74), but isotropic."""
    if p is None:
        rng = np.random.default_rng(0)
        return 0.862 * unit(rng.standard_normal(DIM)), np.sqrt(0.257 / DIM) * np.eye(DIM, dtype=np.float32)
    mean = p.mean(0)
    lam, vecs = np.linalg.eigh(np.cov((p - mean).T))
    return mean.astype(np.float32), (vecs * np.sqrt(np.clip(lam, 0, None))).astype(np.float32)


def stats(x: np.ndarray, sample: int = 2000, seed: int = 0) -> dict[str, float]:
    """Cosine statistics: random pairs, nearest and 10th nearest neighbour (medians)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), min(sample, len(x)), replace=False)
    s = x[idx] @ x.T
    s[np.arange(len(idx)), idx] = -1  # not itself
    top = np.sort(np.partition(s, -10, axis=1)[:, -10:], axis=1)
    pairs = (x[rng.integers(0, len(x), 5000)] * x[rng.integers(0, len(x), 5000)]).sum(1)
    return {
        "random_pair": float(pairs.mean()),
        "nn1": float(np.median(top[:, -1])),
        "nn10": float(np.median(top[:, 0])),
        "mean_norm": float(np.linalg.norm(x.mean(0))),
    }


def batches_of(x: np.ndarray, step: int = 65536) -> vectors.Batches:
    return lambda: (
        (np.arange(i, min(i + step, len(x)), dtype=np.int64), x[i : i + step]) for i in range(0, len(x), step)
    )


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth)]))


def table(headers: list[str], rows: list[list[Any]]) -> str:
    fmt = [
        [f"{v:,.0f}" if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) >= 100 else v for v in r]
        for r in rows
    ]
    fmt = [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r] for r in fmt]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in fmt])


def load_avg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


# ------------------------------------------------------- part 1: vectors
def write_db(path: Path, x: np.ndarray) -> None:
    """The vectors as an index version's SQLite keeps them (passage id = row number), for re-scoring."""
    import sqlite3

    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("CREATE TABLE vectors (passage INTEGER PRIMARY KEY, vector BLOB NOT NULL)")
    for i in range(0, len(x), 50_000):
        part = np.ascontiguousarray(x[i : i + 50_000], dtype=np.float32)
        con.executemany("INSERT INTO vectors VALUES (?, ?)", ((i + j, v.tobytes()) for j, v in enumerate(part)))
        con.commit()
    con.close()


def part_vectors(
    sizes: list[int], n_queries: int, work: Path, shape: tuple[np.ndarray, np.ndarray], which: set[str]
) -> dict[str, Any]:
    import faiss

    rows, out = [], []
    cases = [(n, False) for n in sizes] + [(min(sizes), True)]
    for n, uniform in cases:
        label = f"{n:,}" + (" uniform" if uniform else "")
        print(f"\n[vectors] {label}: generating", file=sys.stderr, flush=True)
        mix = Mixture(n, shape, seed=1, uniform=uniform)
        rng = np.random.default_rng(2)
        x = mix.sample(n, rng)
        q = mix.sample(n_queries, np.random.default_rng(3))  # new draws: never in the index
        qfile = work / f"q-{n}-{uniform}.npy"
        np.save(qfile, q)
        allowed = np.sort(np.random.default_rng(4).choice(n, int(n * FILTER_SHARE), replace=False)).astype(np.int64)
        np.save(work / "allowed.npy", allowed)
        if not uniform and n == max(sizes):
            np.save(work / "largest.npy", x)  # for the sweep
        # the reference: plain IndexFlatIP
        t = time.perf_counter()
        flat = faiss.IndexFlatIP(DIM)
        flat.add(x)
        flat_s = time.perf_counter() - t
        truth = flat.search(q, 10)[1]
        keep = np.zeros(n, bool)
        keep[allowed] = True
        sub = faiss.IndexFlatIP(DIM)
        sub.add(x[keep])
        ftruth = allowed[sub.search(q[:200], 10)[1]]
        del sub
        tag = f"{n}-uniform" if uniform else str(n)
        path = work / f"flat-{tag}.faiss"
        faiss.write_index(flat, str(path))
        del flat
        nl = vectors.nlist_for(n)
        auto = vectors.auto_factory(n, dim=DIM)
        factories: list[tuple[str, str | None]] = [("IndexFlatIP (exact reference)", None)]
        factories += [(auto + " (auto), re-scored", auto)] if "auto" in which else []
        factories += [(f"IVF{nl},SQ8", f"IVF{nl},SQ8")] if "sq8" in which else []
        if not uniform:
            factories += [("HNSW32,SQ8", "IDMap2,HNSW32,SQ8")] if "hnsw" in which else []
            factories += [(f"IVF{nl},PQ48, re-scored", f"IVF{nl},PQ48")] if "pq48" in which else []
        db = work / f"vectors-{tag}.sqlite"
        if any(vectors.rerank_depth(f) for _, f in factories if f):
            print(f"[vectors] {label}: writing the SQLite vectors", file=sys.stderr, flush=True)
            write_db(db, x)
        base: dict[str, Any] = {}
        for name, factory in factories:
            print(f"[vectors] {label}: {name}  (load {load_avg()})", file=sys.stderr, flush=True)
            info: dict[str, Any] = {}
            if factory is None:
                seconds = flat_s
            else:
                t = time.perf_counter()
                index, built = vectors.build(batches_of(x), n, DIM, factory)
                info = built.to_dict()
                seconds = time.perf_counter() - t
                path = work / f"{factory.replace(',', '_')}-{tag}.faiss"
                vectors.save(index, path)
                path.with_suffix(".json").write_text(json.dumps(info))
                del index
            res = child(
                "search",
                index=str(path),
                queries=str(qfile),
                allowed=str(work / "allowed.npy"),
                rerank=int(info.get("rerank", 0)),
                db=str(db),
            )
            found = np.load(res["out"])
            rec = recall_at_10(found, truth)
            frec = recall_at_10(np.load(res["out_filtered"]), ftruth)
            m = {
                "size": n,
                "uniform": uniform,
                "index": name,
                "build_s": seconds,
                "bytes_per_vector": path.stat().st_size / n,
                "rss_mb": res["rss_mb"],
                "index_rss_mb": res["rss_mb"] - res["rss_before_mb"],
                "p50_ms": res["p50_ms"],
                "p95_ms": res["p95_ms"],
                "filtered_p50_ms": res["filtered_p50_ms"],
                "recall_at_10": rec,
                "filtered_recall_at_10": frec,
                "setting": ", ".join(f"{k} {info[k]}" for k in ("nprobe", "efSearch", "rerank") if k in info)
                or "exact",
                "build_recall": info.get("recall_at_10", 1.0),
            }
            if factory is None:
                base = m
            out.append(m)
            rows.append([
                label, name, m["setting"], f"{m['build_s']:.1f}", m["bytes_per_vector"], m["rss_mb"], m["index_rss_mb"],
                f"{m['p50_ms']:.2f} / {m['p95_ms']:.2f}", f"{m['filtered_p50_ms']:.2f}",
                f"{rec:.3f} ({m['build_recall']:.3f})", f"{frec:.3f}",
                f"{m['index_rss_mb'] / max(1, base['index_rss_mb']):.2f}× / {m['p50_ms'] / base['p50_ms']:.2f}×",
            ])  # fmt: skip
        del x
    headers = [
        "vectors", "index", "search setting", "build s", "bytes/vector", "RSS MB", "index RSS MB",
        "p50 / p95 ms", "p50 ms, 10 % filter", "recall@10 (build's estimate)", "recall@10, filter",
        "vs Flat: memory / p50",
    ]  # fmt: skip
    print(f"\n### Vector indexes (fresh process each; one query at a time) (load {load_avg()})\n")
    print(table(headers, rows))
    return {"rows": out}


# ---------------------------------------------------------- part 2: sweep
SWEEP = (25_000, 50_000, 100_000, 150_000, 200_000, 400_000, 1_000_000)


def part_sweep(work: Path, embed_p50: float | None) -> dict[str, Any]:
    data = work / "largest.npy"
    n_max = len(np.load(data, mmap_mode="r"))
    sizes = [s for s in SWEEP if s <= n_max]
    res = child("sweep", data=str(data), sizes=sizes)
    rows = [
        [f"{r['n']:,}", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}"]
        + ([f"{r['p50_ms'] + embed_p50:.1f}"] if embed_p50 is not None else [])
        for r in res["rows"]
    ]
    print(f"\n### Exact search (IDMap2,Flat) by size, one query at a time (load {load_avg()})\n")
    headers = ["vectors", "search p50 ms", "search p95 ms"] + (["+ query embedding p50 ms"] if embed_p50 else [])
    print(table(headers, rows))
    return res


# ------------------------------------------------------------ part 3: e2e
def questions(limit: int) -> list[str]:
    """Real questions in six languages (XQuAD de/en/es/ru/zh, PIAF fr), interleaved."""
    per: list[list[str]] = []
    for f in [*sorted((DATA / "xquad").glob("xquad.*.json")), DATA / "piaf" / "piaf-v1.0.json"]:
        if f.exists():
            d = json.loads(f.read_text(encoding="utf-8"))
            per.append([q["question"] for a in d["data"] for p in a["paragraphs"] for q in p["qas"]])
    if not per:
        return [f"{w} question number {i}" for i, w in enumerate(["energy", "Wahl", "volcán", "réforme"] * 100)][:limit]
    out = [qs[i] for i in range(max(len(qs) for qs in per)) for qs in per if i < len(qs)]
    return out[:limit]


def part_e2e(sizes: list[int], work: Path) -> dict[str, Any]:
    n = max(sizes)
    auto = vectors.auto_factory(n, dim=DIM)
    sq8 = f"IVF{vectors.nlist_for(n)},SQ8"
    rows, out = [], []
    for name, path in (
        (auto + " (auto), re-scored", work / f"{auto.replace(',', '_')}-{n}.faiss"),
        (sq8, work / f"{sq8.replace(',', '_')}-{n}.faiss"),
        ("IndexFlatIP", work / f"flat-{n}.faiss"),
    ):
        if not path.exists():
            continue
        info = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
        print(f"[e2e] {name} (load {load_avg()})", file=sys.stderr, flush=True)
        res = child(
            "e2e",
            index=str(path),
            queries=questions(400),
            rerank=int(info.get("rerank", 0)),
            db=str(work / f"vectors-{n}.sqlite"),
        )
        res["index"] = name
        out.append(res)
        ok = (
            "✅"
            if res["rss_mb"] <= TARGET_RSS_MB and res["p50_ms"] <= TARGET_P50_MS and res["p95_ms"] <= TARGET_P95_MS
            else "❌"
        )
        rows.append([
            f"{n:,}", name, f"{res['embed_p50_ms']:.1f}", f"{res['search_p50_ms']:.1f}",
            f"{res['p50_ms']:.1f} / {res['p95_ms']:.1f}", res["rss_mb"], res["peak_rss_mb"], res["model_rss_mb"], ok,
        ])  # fmt: skip
    print(f"\n### End to end: query embedding (multilingual-e5-small, onnx-int8) + vector search (load {load_avg()})\n")
    print(
        table(
            ["vectors", "index", "embed p50 ms", "search p50 ms", "total p50 / p95 ms", "RSS MB", "peak RSS MB",
             "of which model MB", "≤ 1 GB, ≤ 30 / 60 ms"],
            rows,
        )
    )  # fmt: skip
    return {"rows": out}


# ----------------------------------------------------------- part 4: real
def part_real() -> tuple[dict[str, Any], np.ndarray | None]:
    """Real paragraphs and questions: the held-out estimate checked, and the synthetic data calibrated."""
    from indexer.embedding import Embedder
    from indexer.models import resolve

    paras: list[str] = []
    for f in [*sorted((DATA / "xquad").glob("xquad.*.json")), DATA / "piaf" / "piaf-v1.0.json"]:
        if f.exists():
            d = json.loads(f.read_text(encoding="utf-8"))
            paras += [a["title"] + "\n" + p["context"] for a in d["data"] for p in a["paragraphs"]]
    if not paras:
        print("\n(real: no bench data found — synthetic data falls back to an isotropic stand-in)")
        return {}, None
    print(f"[real] embedding {len(paras)} paragraphs (load {load_avg()})", file=sys.stderr, flush=True)
    enc = Embedder(resolve(), backend="onnx-int8")
    p = enc.embed_passages(paras)
    q = enc.embed_queries(questions(2000))
    n = len(p)
    factory = vectors.auto_factory(n, policy=vectors.IndexPolicy(exact_limit=1))  # approximate at any size
    truth = np.argsort(-(q @ p.T), axis=1)[:, :10]
    qtop = np.sort(q @ p.T, axis=1)
    rng = np.random.default_rng(2)
    cases = [
        ("e5 passages (real)", p),
        ("synthetic mixture", Mixture(n, e5_shape(p), seed=1).sample(n, rng)),
        ("uniform random", unit(rng.standard_normal((n, DIM)).astype(np.float32))),
    ]
    rows, out = [], {}
    for name, x in cases:
        index, built = vectors.build(batches_of(x, 500), n, DIM, factory)
        info = built.to_dict()
        st = stats(x)
        out[name] = {**st, **info}
        rows.append([name, *(f"{st[k]:.3f}" for k in ("random_pair", "nn1", "nn10", "mean_norm")), info.get("nprobe")])
        if name.endswith("(real)"):
            real_recall = recall_at_10(index.search(q, 10)[1], truth)
            out["real_questions_recall_at_10"] = real_recall
            estimate = [f"{n:,} paragraphs, {len(q):,} questions", factory, info.get("nprobe"),
                        f"{info['recall_at_10']:.3f}", f"{real_recall:.3f}"]  # fmt: skip
    rows.insert(1, ["e5 questions → passages (real)", f"{float((q @ p.T).mean()):.3f}",
                    f"{float(np.median(qtop[:, -1])):.3f}", f"{float(np.median(qtop[:, -10])):.3f}",
                    f"{float(np.linalg.norm(q.mean(0))):.3f}", "–"])  # fmt: skip
    print(f"\n### Real passages (XQuAD + PIAF, e5): held-out estimate vs real questions (load {load_avg()})\n")
    print(
        table(
            ["collection", "index", "tuned nprobe", "held-out recall@10 (build)", "real questions recall@10"],
            [estimate],
        )
    )
    print(f"\n### What the synthetic data imitates ({n:,} vectors each; cosine medians) (load {load_avg()})\n")
    print(
        table(["vectors", "random pair", "nearest", "10th nearest", "norm of the mean", f"nprobe of {factory}"], rows)
    )
    return out, p


# ---------------------------------------------------------- part 5: build
WORDS = {
    "en": "the government city council energy prices winter heating market company workers union strike school "
    "teachers children river flood rain summer drought farmers harvest football club season coach goal "
    "election vote party minister parliament budget tax hospital doctors patients research university "
    "students climate ice arctic ship port trade export metal mining bank interest rate inflation museum "
    "exhibition artist festival music film railway station train bus traffic bridge police court judge "
    "report said new old large small first last local national public private plan law",
    "fr": "le gouvernement la ville conseil énergie prix hiver chauffage marché entreprise salariés syndicat "
    "grève école enseignants enfants rivière crue pluie été sécheresse agriculteurs récolte football club "
    "saison entraîneur but élection vote parti ministre assemblée budget impôt hôpital médecins patients "
    "recherche université étudiants climat glace arctique navire port commerce exportation métal mine banque "
    "taux inflation musée exposition artiste festival musique film gare train bus circulation pont police "
    "tribunal juge rapport a déclaré nouveau ancien grand petit premier dernier local national public plan loi",
    "de": "die Regierung Stadt Rat Energie Preise Winter Heizung Markt Unternehmen Beschäftigte Gewerkschaft "
    "Streik Schule Lehrer Kinder Fluss Hochwasser Regen Sommer Dürre Landwirte Ernte Fußball Verein Saison "
    "Trainer Tor Wahl Abstimmung Partei Minister Bundestag Haushalt Steuer Krankenhaus Ärzte Patienten "
    "Forschung Universität Studenten Klima Eis Arktis Schiff Hafen Handel Export Metall Bergbau Bank Zins "
    "Inflation Museum Ausstellung Künstler Festival Musik Film Bahnhof Zug Bus Verkehr Brücke Polizei Gericht "
    "Richter Bericht sagte neu alt groß klein erste letzte lokal national öffentlich Plan Gesetz",
    "es": "el gobierno la ciudad consejo energía precios invierno calefacción mercado empresa trabajadores "
    "sindicato huelga escuela profesores niños río inundación lluvia verano sequía agricultores cosecha fútbol "
    "club temporada entrenador gol elección voto partido ministro congreso presupuesto impuesto hospital "
    "médicos pacientes investigación universidad estudiantes clima hielo ártico barco puerto comercio "
    "exportación metal minería banco tipo inflación museo exposición artista festival música película estación "
    "tren autobús tráfico puente policía tribunal juez informe dijo nuevo viejo grande pequeño primero último "
    "local nacional público plan ley",
    "ru": "правительство город совет энергия цены зима отопление рынок компания работники профсоюз забастовка "
    "школа учителя дети река наводнение дождь лето засуха фермеры урожай футбол клуб сезон тренер гол выборы "
    "голосование партия министр парламент бюджет налог больница врачи пациенты исследование университет "
    "студенты климат лёд Арктика судно порт торговля экспорт металл добыча банк ставка инфляция музей выставка "
    "художник фестиваль музыка фильм вокзал поезд автобус движение мост полиция суд судья доклад заявил новый "
    "старый большой малый первый последний местный национальный общественный план закон",
}


def _article(rnd: random.Random, words: list[str]) -> tuple[str, str]:
    topic = rnd.sample(words, 12)  # each article leans on a dozen words: topical neighbours exist

    def pick() -> str:
        return rnd.choice(topic) if rnd.random() < 0.5 else rnd.choice(words)

    title = " ".join(pick() for _ in range(rnd.randint(3, 6))).capitalize()
    sentences = [
        " ".join(pick() for _ in range(rnd.randint(7, 13))).capitalize() + "." for _ in range(rnd.randint(4, 7))
    ]
    return title, " ".join(sentences)


def write_articles(folder: Path, count: int, seed: int = 7) -> None:
    """``count`` short articles (~80–150 model tokens) in five languages, one file each, seeded."""
    rnd = random.Random(seed)
    langs = list(WORDS)
    for i in range(count):
        lang = langs[i % len(langs)]
        title, body = _article(rnd, WORDS[lang].split())
        sub = folder / f"{i % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{lang}-{i:06d}.txt").write_text(f"{title} {i}\n\n{body}\n", encoding="utf-8")


def part_build(n_articles: int, work: Path) -> dict[str, Any]:
    src = work / "articles"
    if src.exists():
        shutil.rmtree(src)
    write_articles(src, n_articles)
    print(f"[build] {n_articles:,} articles written; building (load {load_avg()})", file=sys.stderr, flush=True)
    res = child("build", src=str(src), index=str(work / "build-index"))
    r = res["report"]
    rows = [[
        f"{r['articles']:,}", f"{r['passages']:,}", f"{r['embedded']:,}", f"{r['tokens']:,}",
        f"{r['seconds']:.0f}", f"{r['articles'] / r['seconds']:.1f}", f"{r['tokens'] / r['seconds']:,.0f}",
        f"{r['tokens'] / max(r['embed_seconds'], 1e-9):,.0f}", res["peak_rss_mb"],
        " → ".join(str(v) for v in res["rss_course_mb"]), res["vectors"].get("faiss"),
    ]]  # fmt: skip
    print(f"\n### Build rate: generated articles, default model (onnx-int8), `indexer.build` (load {load_avg()})\n")
    headers = [
        "articles", "passages", "embedded", "tokens", "seconds", "articles/s", "tokens/s (end to end)",
        "tokens/s (model)", "peak RSS MB", "RSS at 10 %→…→100 % of files, MB", "FAISS",
    ]  # fmt: skip
    print(table(headers, rows))
    return res


# ------------------------------------------------------------------ children
def dense_search(index: Any, a: dict[str, Any]) -> Any:
    """The search's own dense step (``FaissDense``): re-scoring from SQLite when the index has a depth."""
    from types import SimpleNamespace

    from indexer.backends import FaissDense
    from indexer.query import Filters
    from indexer.store import Store
    from indexer.vector_plan import VectorIndexInfo

    snap = SimpleNamespace(
        manifest=SimpleNamespace(vectors=VectorIndexInfo(rerank=a.get("rerank") or None)),
        vectors=index,
        store=Store(Path(a["db"])) if a.get("rerank") else None,
    )
    dense, none = FaissDense(), Filters()
    return lambda v, k, allowed=None: dense.search(snap, v, k, none, allowed)  # type: ignore[arg-type]


def child_search(a: dict[str, Any]) -> dict[str, Any]:
    before = status("VmRSS")
    index = vectors.load(Path(a["index"]))
    find = dense_search(index, a)
    q = np.load(a["queries"])
    allowed = np.load(a["allowed"])
    for v in q[:20]:
        find(v, 10)
    times, found = [], []
    for v in q:
        t = time.perf_counter()
        _, ids = find(v, 10)
        times.append((time.perf_counter() - t) * 1000)
        found.append(np.pad(ids, (0, 10 - len(ids)), constant_values=-1))
    ftimes, ffound = [], []
    for v in q[:200]:
        t = time.perf_counter()
        _, ids = find(v, 10, allowed)
        ftimes.append((time.perf_counter() - t) * 1000)
        ffound.append(np.pad(ids, (0, 10 - len(ids)), constant_values=-1))
    out, fout = a["index"] + ".ids.npy", a["index"] + ".fids.npy"
    np.save(out, np.stack(found))
    np.save(fout, np.stack(ffound))
    return {
        "rss_before_mb": before,
        "rss_mb": status("VmRSS"),
        "peak_rss_mb": status("VmHWM"),
        "p50_ms": pct(times, 50),
        "p95_ms": pct(times, 95),
        "filtered_p50_ms": pct(ftimes, 50),
        "out": out,
        "out_filtered": fout,
    }


def child_sweep(a: dict[str, Any]) -> dict[str, Any]:
    x = np.load(a["data"], mmap_mode="r")
    q = unit(np.asarray(x[:300]) + 0.05 * np.random.default_rng(5).standard_normal((300, DIM)).astype(np.float32))
    rows = []
    for n in a["sizes"]:
        index = vectors.new_index(DIM)
        vectors.add(index, np.arange(n, dtype=np.int64), np.asarray(x[:n]))
        for v in q[:10]:
            vectors.search(index, v, 10)
        times = []
        for v in q:
            t = time.perf_counter()
            vectors.search(index, v, 10)
            times.append((time.perf_counter() - t) * 1000)
        rows.append({"n": n, "p50_ms": pct(times, 50), "p95_ms": pct(times, 95)})
        del index
    return {"rows": rows}


def child_e2e(a: dict[str, Any]) -> dict[str, Any]:
    from indexer.embedding import Embedder
    from indexer.models import resolve

    enc = Embedder(resolve(), backend="onnx-int8")
    enc.embed_queries(["warm up"])
    model_rss = status("VmRSS")
    index = vectors.load(Path(a["index"]))
    find = dense_search(index, a)
    texts: list[str] = a["queries"]
    for t in texts[:10]:
        find(enc.embed_queries([t])[0], 10)
    total, embed, search = [], [], []
    for t in texts[10:]:
        t0 = time.perf_counter()
        v = enc.embed_queries([t])[0]
        t1 = time.perf_counter()
        find(v, 10)
        t2 = time.perf_counter()
        total.append((t2 - t0) * 1000)
        embed.append((t1 - t0) * 1000)
        search.append((t2 - t1) * 1000)
    return {
        "queries": len(total),
        "p50_ms": pct(total, 50),
        "p95_ms": pct(total, 95),
        "embed_p50_ms": pct(embed, 50),
        "search_p50_ms": pct(search, 50),
        "search_p95_ms": pct(search, 95),
        "rss_mb": status("VmRSS"),
        "peak_rss_mb": status("VmHWM"),
        "model_rss_mb": model_rss,
    }


def child_build(a: dict[str, Any]) -> dict[str, Any]:
    from indexer import build

    course: dict[int, int] = {}

    def progress(p: Any) -> None:
        tenth = int(10 * p.files_done / max(1, p.files_total))
        if tenth and tenth not in course:
            course[tenth] = status("VmRSS")

    rep = build([a["src"]], a["index"], progress=progress)
    manifest = json.loads((Path(a["index"]) / "manifest.json").read_text())
    keys = ("articles", "passages", "embedded", "tokens", "seconds", "embed_seconds", "reused")
    return {
        "report": {k: getattr(rep, k) for k in keys},
        "peak_rss_mb": status("VmHWM"),
        "rss_course_mb": [course[k] for k in sorted(course)],
        "vectors": manifest["vectors"],
    }


CHILDREN = {"search": child_search, "sweep": child_sweep, "e2e": child_e2e, "build": child_build}


# ---------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated collection sizes")
    ap.add_argument("--articles", type=int, default=20_000, help="generated articles for the build rate")
    ap.add_argument("--queries", type=int, default=1000, help="synthetic queries per size")
    ap.add_argument("--parts", default="real,vectors,e2e,sweep,build", help="which parts to run")
    ap.add_argument("--indexes", default="auto,sq8,hnsw,pq48", help="which index types beside IndexFlatIP")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        a = json.loads(args.child)
        print(json.dumps(CHILDREN[a["mode"]](a)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    parts = set(args.parts.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"# bench/scale.py — sizes {sizes}, {os.cpu_count()} cores, load {load_avg()}, work {work}\n")
    results: dict[str, Any] = {"sizes": sizes, "policy": vectors.IndexPolicy().to_dict()}
    real = None
    if "real" in parts:  # first: the synthetic data borrows the real vectors' shape
        results["real"], real = part_real()
    if "vectors" in parts:
        results["vectors"] = part_vectors(sizes, args.queries, work, e5_shape(real), set(args.indexes.split(",")))
    if "e2e" in parts:
        results["e2e"] = part_e2e(sizes, work)
    if "sweep" in parts and (work / "largest.npy").exists():
        embed = results.get("e2e", {}).get("rows", [{}])[0].get("embed_p50_ms") if "e2e" in results else None
        results["sweep"] = part_sweep(work, embed)
    if "build" in parts:
        results["build"] = part_build(args.articles, work)
    results["wall_seconds"] = time.perf_counter() - started
    print(f"\nWall time {results['wall_seconds'] / 60:.1f} min; load at the end {load_avg()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
