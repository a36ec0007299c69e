"""Ideas for the top-1 ranking, measured on every shared set against the fusion as it was, in one run.

    python bench/ranking_ideas.py [--work DIR] [--sets piaf,de,...,grouped]

Each question's evidence is read once from indexes built by the product's own ``build``
(default model and settings, the corpora of ``bench/quality.py``) and cached in --work, so
that every idea re-ranks the same candidates cheaply: the 100 best passages by cosine and
the 100 best by BM25, exactly as ``Searcher`` takes them (its ranking is reproduced here
and checked against ``Searcher.search``). Articles are ranked by their best passage.

Sets: the README's 12 (PIAF, where an article has 5.5 passages on average; XQuAD
monolingual and cross-lingual, where each paragraph is an article of 1–2 passages) and,
to see articles of several passages as news archives hold them, **grouped** XQuAD: each
Wikipedia article's paragraphs cut into articles of three consecutive paragraphs (96
articles of ~3.9 passages per language, two to three articles per title), a question's
gold being the article holding its paragraph.

Ideas: the whole article as one BM25 document, the title alone as a BM25 field, the
first passage (lead) as a field of both sides, the article vector (mean of its passages,
``article_vectors``), an article's second-best passage, dense pseudo-relevance feedback
(Rocchio on the query vector), z-scores instead of min-max, the fusion weight, and each
passage's best sentence (``best_sentence``, what the engine now does).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import CROSS, DATA, MONO, _write_jsonl, piaf_corpus, squad, xquad_corpus, xquad_paragraphs

from indexer import Searcher, SearchOptions, best_sentence, build, fusion
from indexer.analysis import analyze
from indexer.postings import Collection, SegmentPostings, write
from indexer.query import clean_query, lexical_query

N = 100  # candidates per side, as search.CANDIDATES
GROUP = 3  # paragraphs per article in the grouped corpora
README_SETS = 12


@dataclass
class Corpus:
    """One index's passages, exhaustively: the corpora are small."""

    art: np.ndarray  # per passage (in id order): its article's position
    aids: list[str]
    vectors: np.ndarray  # passage vectors
    articles: np.ndarray  # article vectors: normalised mean of the passages'
    lead: np.ndarray  # per article: its first passage's position


@dataclass
class Question:
    gold: str
    q: np.ndarray
    bm25: np.ndarray  # per passage
    whole: np.ndarray  # per article: BM25 of the whole article as one document
    title: np.ndarray  # per article: BM25 of its title
    weight: np.ndarray  # per passage: language weight × coverage, as fusion weighs BM25
    sentence: np.ndarray  # per passage: the best sentence's cosine (the passage's own where none is stored)


def grouped_corpus(work: Path, lang: str) -> tuple[Path, dict[str, str]]:
    """XQuAD paragraphs in articles of GROUP consecutive paragraphs; per paragraph id, its article."""
    folder = work / f"corpus-grouped-{lang}"
    folder.mkdir(parents=True, exist_ok=True)
    rows, owner, n = [], {}, 0
    for a, art in enumerate(squad(DATA / "xquad" / f"xquad.{lang}.json")):
        paras = art["paragraphs"]
        for g in range(0, len(paras), GROUP):
            aid = f"xg-{a:02d}-{g // GROUP}"
            text = "\n\n".join(p["context"] for p in paras[g : g + GROUP])
            rows.append({"id": aid, "title": art["title"], "text": text, "lang": lang})
            for _ in paras[g : g + GROUP]:
                owner[f"xq-{n:03d}"] = aid
                n += 1
    _write_jsonl(folder / f"grouped-{lang}.jsonl", rows)
    return folder, owner


def tasks(work: Path, wanted: set[str]) -> list[tuple[str, str, Path, list[tuple[str, str]]]]:
    """(label, index key, corpus folder, [(question, gold article)]) — the README's sets first."""
    out = []
    if "piaf" in wanted:
        folder, qs = piaf_corpus(work)
        out.append(("PIAF fr (article)", "piaf", folder, [(q.query, next(iter(q.relevant))) for q in qs]))
    for lang in MONO:
        if lang in wanted:
            out.append(
                (f"XQuAD {lang}", lang, xquad_corpus(work, lang), [(q, g) for q, g, _ in xquad_paragraphs(lang)[1]])
            )
    for ql, dl in CROSS if "cross" in wanted else ():
        out.append((f"XQuAD {ql}→{dl}", dl, xquad_corpus(work, dl), [(q, g) for q, g, _ in xquad_paragraphs(ql)[1]]))
    if "grouped" in wanted:
        for ql, dl in [(lang, lang) for lang in MONO] + [("en", "de"), ("de", "en"), ("en", "zh")]:
            folder, owner = grouped_corpus(work, dl)
            label = f"grouped {dl}" if ql == dl else f"grouped {ql}→{dl}"
            out.append((label, f"g-{dl}", folder, [(q, owner[g]) for q, g, _ in xquad_paragraphs(ql)[1]]))
    return out


def _bm25_of(docs: list[list[str]], folder: Path) -> Collection:
    write(((i, " ".join(t)) for i, t in enumerate(docs)), folder)
    return Collection([SegmentPostings(folder)], [None])


def collect(s: Searcher, work: Path, key: str, qs: list[tuple[str, str]]) -> tuple[Corpus, list[Question]]:
    snap = s.snapshot()
    pids = np.asarray(snap.lexical.pids)
    rows = snap.store.passages(pids.tolist())
    aids = list(dict.fromkeys(rows[int(p)].article_id for p in pids))
    pos = {a: i for i, a in enumerate(aids)}
    art = np.array([pos[rows[int(p)].article_id] for p in pids])
    dim = snap.manifest.model.dimension
    vecs = snap.store.vectors(pids.tolist(), dim).astype(np.float32)
    means = np.zeros((len(aids), dim), np.float32)
    np.add.at(means, art, vecs)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    lead = np.array([int(np.flatnonzero(art == i)[0]) for i in range(len(aids))])
    arts = [snap.store.article(a) for a in aids]
    whole = _bm25_of([analyze(f"{a.title}\n{a.text}", a.lang) for a in arts if a], work / f"whole-{key}")
    title = _bm25_of([analyze(a.title, a.lang) for a in arts if a], work / f"title-{key}")
    langs = [rows[int(p)].lang for p in pids]
    out = []
    for text, gold in qs:
        text = clean_query(text)[0]
        q = s.query_vector(text)
        lq = lexical_query(text, snap)
        known = sum(1 for g in lq.groups if snap.lexical.known(list(g)))
        cov = fusion.coverage(known, len(lq.groups))
        w = np.array([cov * fusion.language_weight(lq.probs, lang, lq.scripts) for lang in langs])
        cos = vecs @ q
        sent = best_sentence.cosines(snap.store, q, pids.tolist(), dim)
        best = np.array([sent.get(int(p), c) for p, c in zip(pids, cos)])
        out.append(Question(gold, q, snap.lexical.grouped_scores(lq.groups), whole.grouped_scores(lq.groups),
                            title.grouped_scores(lq.groups), w, best))  # fmt: skip
    return Corpus(art, aids, vecs, means, lead), out


# ------------------------------------------------------------------ ranking
def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-9)


def top(x: np.ndarray, n: int, positive: bool = False) -> np.ndarray:
    idx = np.flatnonzero(x > 0) if positive else np.arange(len(x))
    return idx[np.argpartition(-x[idx], n - 1)[:n]] if len(idx) > n else idx


def ranker(
    c: Corpus, q: Question, *, mode: str = "hybrid", dw: float = fusion.DENSE_WEIGHT, sentence: float = 0.0,
    whole: float = 0.0, title: float = 0.0, lead_bm25: float = 0.0, article_vec: float = 0.0, lead_vec: float = 0.0,
    second: float = 0.0, prf: tuple[int, float] | None = None, norm: Callable[[np.ndarray], np.ndarray] = minmax,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Candidate passages and their scores, by one variant of the fusion."""
    cos = c.vectors @ q.q
    if prf is not None:  # Rocchio: the query moved toward its k best passages by the fusion as it was
        k, beta = prf
        cand, s = ranker(c, q)
        moved = q.q + beta * c.vectors[cand[np.argsort(-s)[:k]]].mean(axis=0)
        cos = c.vectors @ (moved / np.linalg.norm(moved))
    dc, bc = top(cos, N), top(q.bm25, N, positive=True)
    if mode == "bm25":
        return bc, q.bm25[bc]
    u = dc if mode == "dense" else np.union1d(dc, bc)
    a = c.art[u]
    similar = (1 - sentence) * cos[u] + sentence * q.sentence[u]
    if mode == "dense":
        return u, similar
    d = norm(similar)
    if article_vec or lead_vec:
        d = (1 - article_vec - lead_vec) * d + article_vec * norm(c.articles[a] @ q.q) + lead_vec * norm(cos[c.lead[a]])
    b = norm(q.bm25[u].astype(np.float64))
    if whole or title or lead_bm25:
        b = (1 - whole - title - lead_bm25) * b + whole * norm(q.whole[a]) + title * norm(q.title[a])
        b = b + lead_bm25 * norm(q.bm25[c.lead[a]].astype(np.float64))
    w = q.weight[u]
    s = dw * d + (1 - dw) * (w * b + (1 - w) * d)
    if second:  # an article's best passage also gets `second` × the article's next-best candidate
        order = np.argsort(-s)
        firsts: dict[int, int] = {}
        nexts: dict[int, float] = {}
        for j in order:
            art = int(a[j])
            if art not in firsts:
                firsts[art] = int(j)
            elif art not in nexts:
                nexts[art] = float(s[j])
        s = s.copy()
        for art, j in firsts.items():
            s[j] += second * nexts.get(art, 0.0)
    return u, s


def articles(c: Corpus, cand: np.ndarray, score: np.ndarray) -> list[str]:
    seen: dict[int, None] = {}
    for j in np.lexsort((cand, -score)):
        seen.setdefault(int(c.art[cand[j]]), None)
        if len(seen) == 10:
            break
    return [c.aids[a] for a in seen]


def metrics(c: Corpus, qs: list[Question], rank: Callable[..., tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    r1 = r10 = mrr = 0.0
    for q in qs:
        got = articles(c, *rank(c, q))
        r1 += got[:1] == [q.gold]
        if q.gold in got:
            r10 += 1
            mrr += 1 / (got.index(q.gold) + 1)
    return np.array([r1, r10, mrr]) / len(qs)


IDEAS: dict[str, dict] = {
    "whole article as a BM25 document, 0.3 of the lexical side": {"whole": 0.3},
    "title as a BM25 field, 0.1": {"title": 0.1},
    "lead passage's BM25, 0.1": {"lead_bm25": 0.1},
    "article vector (mean of passages), 0.1 of the dense side": {"article_vec": 0.1},
    "lead passage's vector, 0.2 of the dense side": {"lead_vec": 0.2},
    "+ 0.1 × the article's second-best passage": {"second": 0.1},
    "dense PRF (Rocchio, 3 passages, β 0.3)": {"prf": (3, 0.3)},
    "z-scores instead of min-max, dense weight 0.5": {"norm": zscore, "dw": 0.5},
    "dense weight 0.55": {"dw": 0.55},
    "best sentence, 0.6 of the dense side (shipped)": {"sentence": fusion.SENTENCE_WEIGHT},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "indexer-ranking-ideas")
    ap.add_argument("--sets", default="piaf," + ",".join(MONO) + ",cross,grouped")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data: dict[str, tuple[Corpus, list[Question]]] = {}
    searchers: dict[str, Searcher] = {}
    for label, key, folder, qs in tasks(args.work, set(args.sets.split(","))):
        cache = args.work / f"evidence-{label.replace(' ', '_').replace('→', '-')}.pkl"
        if cache.exists():
            data[label] = pickle.loads(cache.read_bytes())
            continue
        if key not in searchers:
            build([folder], args.work / f"index-{key}")
            searchers[key] = Searcher(args.work / f"index-{key}")
        data[label] = collect(searchers[key], args.work, key, qs)
        cache.write_bytes(pickle.dumps(data[label]))
        # the reproduction is the engine's: its hybrid ranking of the first questions, checked here
        c, got = data[label]
        for (text, _), q in list(zip(qs, got))[:20]:
            mine = articles(c, *ranker(c, q, sentence=fusion.SENTENCE_WEIGHT))
            hits = searchers[key].search(text, SearchOptions(k=10, highlight=False)).hits
            assert mine[:1] == [h.article_id for h in hits][:1], f"{label}: reproduction differs on {text!r}"
        print(f"{label}: {len(got)} questions", file=sys.stderr)
    labels = list(data)
    readme, grouped = labels[:README_SETS], [s for s in labels if s.startswith("grouped")]
    res = {name: {s: metrics(*data[s], partial(ranker, mode=m)) for s in labels}
           for name, m in (("BM25", "bm25"), ("dense", "dense"), ("hybrid", "hybrid"))}  # fmt: skip
    res["dense, best sentence 0.6"] = {
        s: metrics(*data[s], partial(ranker, mode="dense", sentence=0.6)) for s in labels
    }
    base = res["hybrid"]
    for name, kw in IDEAS.items():
        res[name] = {s: metrics(*data[s], partial(ranker, **kw)) for s in labels}
    print("| ranking | R@1, README sets | Δ | R@1, grouped sets | Δ | worst set Δ (R@1, R@10, MRR) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        avg, gavg = np.mean([r[s][0] for s in readme]), np.mean([r[s][0] for s in grouped] or [np.nan])
        bavg, gbavg = np.mean([base[s][0] for s in readme]), np.mean([base[s][0] for s in grouped] or [np.nan])
        worst = min(float((r[s] - base[s]).min()) for s in readme)
        print(f"| {name} | {avg:.4f} | {100 * (avg - bavg):+.2f} | {gavg:.4f} | {100 * (gavg - gbavg):+.2f} "
              f"| {100 * worst:+.1f} |")  # fmt: skip
    shipped = res["best sentence, 0.6 of the dense side (shipped)"]
    print("\n| set | BM25 | dense before → after | hybrid before → after (R@1 / R@10 / MRR@10) |\n|---|---|---|---|")
    for s in labels:
        dense = f"{res['dense'][s][0]:.3f} → {res['dense, best sentence 0.6'][s][0]:.3f}"
        hybrid = " / ".join(f"{x:.3f}" for x in base[s]) + " → " + " / ".join(f"{x:.3f}" for x in shipped[s])
        print(f"| {s} | {res['BM25'][s][0]:.3f} | {dense} | {hybrid} |")


if __name__ == "__main__":
    main()
