"""Similar coverage on the shared data: are an article's translations its nearest articles?

    python bench/similar_quality.py [--work DIR]

The corpus is bench/stories.py's, read in place from ../shared/bench-data: every XQuAD
paragraph in de, en, es, ru and zh, and every PIAF paragraph (fr), each an article without
a title, built with the product's own ``build`` (default model and settings). Each XQuAD
paragraph has four translations among the others; PIAF adds 761 French paragraphs on
topics of their own (and some of XQuAD's). For every XQuAD paragraph, ``Searcher.similar``
(article vectors centred per language) is compared, in the same run, with the alternative
without centring (plain cosine of the same article vectors, the same exclusions):

* translations in the top 4 (of 4): the share found;
* rank 1 is a translation;
* neighbours in another language among the top 10.

Rows: candidates from the five XQuAD languages only, and with the PIAF paragraphs as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import stories as stories_bench  # noqa: E402

from indexer import BuildSettings, Filters, Searcher, build  # noqa: E402
from indexer.article_vectors import read_version  # noqa: E402

XQUAD = stories_bench.XQUAD


def evaluate(s: Searcher, langs: tuple[str, ...] | None) -> dict[str, dict[str, float]]:
    snap = s.snapshot()
    av = read_version(snap.store, snap.manifest.model.dimension)
    facts = snap.store.article_ids(av.rows.tolist())
    ids = [facts[int(r)][1] for r in av.rows]
    lang_of = {i: i.split("-")[1] if i.startswith("xq-") else "fr" for i in ids}
    keep = np.array([langs is None or lang_of[i] in langs for i in ids])
    queries = [i for i in ids if i.startswith("xq-")]
    f = Filters(langs=langs) if langs else None
    out: dict[str, dict[str, list[float]]] = {"centred (Searcher.similar)": {}, "uncentred cosine": {}}
    took = []
    for q in queries:
        story = q[-3:]
        t = time.perf_counter()
        centred = [h.article_id for h in s.similar(q, k=10, filters=f).hits]
        took.append((time.perf_counter() - t) * 1000)
        me = ids.index(q)
        sims = np.where(keep, av.vectors @ av.vectors[me], -np.inf)
        sims[me] = -np.inf
        plain = [ids[j] for j in np.argsort(-sims, kind="stable")[:10]]
        for name, found in (("centred (Searcher.similar)", centred), ("uncentred cosine", plain)):
            m = out[name]
            gold = [x for x in found[:4] if x.startswith("xq-") and x.endswith(story)]
            m.setdefault("translations in top 4", []).append(len(gold) / 4)
            m.setdefault("rank 1 is a translation", []).append(
                float(found[0].endswith(story) and found[0][:3] == "xq-")
            )
            m.setdefault("other language in top 10", []).append(
                sum(lang_of[x] != lang_of[q] for x in found) / max(1, len(found))
            )
    result = {name: {k: float(np.mean(v)) for k, v in m.items()} for name, m in out.items()}
    result["centred (Searcher.similar)"]["ms per call (p50)"] = statistics.median(took)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="where the corpus and index are kept (default: temp)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="similar-quality-"))
    folder = stories_bench.corpus(work)
    t = time.perf_counter()
    rep = build([folder], work / "index", BuildSettings())
    print(f"# bench/similar_quality.py — index {work / 'index'}: {rep.articles:,} articles "
          f"({'built' if rep.published else 'up to date'} in {time.perf_counter() - t:.0f} s)\n")  # fmt: skip
    s = Searcher(work / "index")
    for label, langs in (("XQuAD de/en/es/ru/zh only", XQUAD), ("with the 761 PIAF paragraphs (fr)", None)):
        res = evaluate(s, langs)
        metrics = list(res["uncentred cosine"])
        print(f"## {label}: {len(XQUAD) * 240:,} articles asked about (each XQuAD paragraph)\n")
        print("| | " + " | ".join(metrics) + " | ms per call (p50) |")
        print("|---|" + "---|" * (len(metrics) + 1))
        for name, m in res.items():
            cells = [f"{m[k]:.3f}" for k in metrics] + [f"{m.get('ms per call (p50)', float('nan')):.1f}"]
            print(f"| {name} | " + " | ".join(cells).replace("nan", "–") + " |")
        print()
    print(f"Command: python bench/similar_quality.py --work {work}")


if __name__ == "__main__":
    main()
