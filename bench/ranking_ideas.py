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
import itertools
import math
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
from indexer.highlight import unpack_sentences
from indexer.postings import K1, B, Collection, SegmentPostings, write
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
    extra: Extra | None = None  # lexical proximity and BM25 at other k1/b (``extras``), cached apart


@dataclass
class Extra:
    """A question's lexical evidence beyond the engine's, per passage (0 where not a candidate)."""

    share: np.ndarray  # the best sentence's share of the passage's matched query weight (idf)
    scov: np.ndarray  # the best sentence's share of the whole query's weight
    mindist: np.ndarray  # fewest terms between two different matched query words (inf: under two matched)
    window: np.ndarray  # terms of the shortest span holding every matched query word (inf: under two)
    bm25: dict[tuple[float, float], np.ndarray]  # BM25 at other (k1, b)


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


#: BM25 parameters swept (the engine's are postings.K1, postings.B)
BM25_GRID = [(k1, b) for k1 in (0.9, 1.2, 1.5, 2.0) for b in (0.5, 0.75, 0.9) if (k1, b) != (K1, B)]


def _layout(text: str, lang: str | None, spans: np.ndarray | None) -> tuple[dict[str, int], dict[str, list[int]]]:
    """A passage's terms: per term, a bitmask of the sentences holding it, and its positions in the passage."""
    masks: dict[str, int] = {}
    where: dict[str, list[int]] = {}
    at = 0
    for i, (s, e) in enumerate(spans.tolist() if spans is not None and len(spans) else [(0, len(text))]):
        for t in analyze(text[s:e], lang):
            masks[t] = masks.get(t, 0) | (1 << i)
            where.setdefault(t, []).append(at)
            at += 1
    return masks, where


def _spans(hits: list[tuple[int, int]], need: int) -> tuple[float, float]:
    """Fewest positions between two different words, and the shortest span holding all ``need`` words."""
    hits.sort()
    least = float(min((b[0] - a[0] for a, b in itertools.pairwise(hits) if a[1] != b[1]), default=np.inf))
    window, count, lo = np.inf, {}, 0
    for pos, g in hits:
        count[g] = count.get(g, 0) + 1
        while len(count) == need:
            window = min(window, pos - hits[lo][0] + 1)
            h = hits[lo][1]
            count[h] -= 1
            if not count[h]:
                del count[h]
            lo += 1
    return least, float(window)


def extras(s: Searcher, c: Corpus, qs: list[tuple[str, str]], got: list[Question]) -> list[Extra]:
    """Each question's ``Extra``: from the index's passages and sentence spans, no model call."""
    snap = s.snapshot()
    lex = snap.lexical
    pids = np.asarray(lex.pids)
    rows = snap.store.passages(pids.tolist())
    blobs = snap.store.sentence_blobs(pids.tolist())
    dim = snap.manifest.model.dimension
    layout = [_layout(rows[int(p)].text, rows[int(p)].lang,
                      unpack_sentences(blobs[int(p)], dim)[0] if int(p) in blobs else None) for p in pids]  # fmt: skip
    alive = [None if part.to_alive is None else part.to_alive >= 0 for part in lex._parts]
    grid = {kb: Collection([part.segment for part in lex._parts], alive, k1=kb[0], b=kb[1]) for kb in BM25_GRID}
    n = len(pids)
    idf_of: dict[str, float] = {}
    out = []
    for (text, _), q in zip(qs, got):
        lq = lexical_query(clean_query(text)[0], snap)
        bm25 = {kb: col.grouped_scores(lq.groups) for kb, col in grid.items()}
        cand = set(top(c.vectors @ q.q, N).tolist())
        for scores in [q.bm25, *bm25.values()]:
            cand.update(top(scores, N, positive=True).tolist())
        groups: list[tuple[list[str], float]] = []
        seen: set[frozenset[str]] = set()
        for g in lq.groups:
            for t in g:
                if t not in idf_of:
                    found = lex.postings(t)
                    df = 0 if found is None else len(found[0])
                    idf_of[t] = math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else 0.0
            idf = max((w * idf_of[t] for t, w in g.items() if w > 0), default=0.0)
            if idf > 0 and frozenset(g) not in seen:  # a word asked twice is one word here
                seen.add(frozenset(g))
                groups.append(([t for t, w in g.items() if w > 0], idf))
        total = sum(idf for _, idf in groups) or 1.0
        share, scov = np.zeros(n, np.float32), np.zeros(n, np.float32)
        mindist, window = np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32)
        for j in cand:
            masks, where = layout[j]
            matched = []
            for gi, (terms, idf) in enumerate(groups):
                m = 0
                for t in terms:
                    m |= masks.get(t, 0)
                if m:
                    matched.append((gi, m, idf))
            if not matched:
                continue
            weight = sum(idf for _, _, idf in matched)
            spread = max(m for _, m, _ in matched).bit_length()
            best = max(sum(idf for _, m, idf in matched if m >> i & 1) for i in range(spread))
            share[j], scov[j] = best / weight, best / total
            if len(matched) > 1:
                hits = [(pos, gi) for gi, _, _ in matched for t in groups[gi][0] for pos in where.get(t, ())]
                mindist[j], window[j] = _spans(hits, len(matched))
        out.append(Extra(share, scov, mindist, window, bm25))
    return out


# ------------------------------------------------------------------ ranking
def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-9)


def top(x: np.ndarray, n: int, positive: bool = False) -> np.ndarray:
    idx = np.flatnonzero(x > 0) if positive else np.arange(len(x))
    return idx[np.argpartition(-x[idx], n - 1)[:n]] if len(idx) > n else idx


ALPHA = 0.3  # Tao & Zhai's proximity transform log(α + e^−δ)


def proximity(x: Extra, feature: str) -> np.ndarray:
    """Per passage, a proximity feature in [0, 1] (1: the query's matched words together)."""
    if feature in ("share", "scov"):
        return getattr(x, feature).astype(np.float64)
    if feature == "mindist":  # adjacent words: 1; a passage with one matched word: 0
        delta = np.maximum(x.mindist.astype(np.float64) - 1, 0)
        return (np.log(ALPHA + np.exp(-delta)) - math.log(ALPHA)) / (math.log(1 + ALPHA) - math.log(ALPHA))
    assert feature == "window"
    return np.minimum(1.0, 2 / x.window.astype(np.float64))


def _article_best(a: np.ndarray, score: np.ndarray) -> np.ndarray:
    best = np.full(int(a.max()) + 1, -np.inf)
    np.maximum.at(best, a, score)
    return best


def _gap(a: np.ndarray, score: np.ndarray) -> float:
    """How far the best article stands ahead of the next one, on this score."""
    best = _article_best(a, score)
    two = np.sort(best[np.isfinite(best)])[::-1][:2]
    return float(two[0] - two[1]) if len(two) == 2 else 0.0


def _ztop(x: np.ndarray) -> float:
    """How far a side's best candidate stands out of its candidates, in standard deviations."""
    return 0.0 if len(x) < 2 else float((x.max() - x.mean()) / max(float(x.std()), 1e-9))


def adapted(
    how: tuple[str, float], dw: float, a: np.ndarray, d: np.ndarray, b: np.ndarray, similar: np.ndarray,
    dc: np.ndarray, bc: np.ndarray, u: np.ndarray, bm25: np.ndarray, w: np.ndarray,
) -> float:  # fmt: skip
    """The dense weight for this query: moved toward the side that is surer of its top.

    gap: by each side's lead of its best article over the next (normalised scores);
    ztop: by each side's best candidate's z-score among its own 100, to the power ``γ``;
    agree: by how high the other side ranks each side's best article (reciprocal rank).
    """
    kind, gamma = how
    if not len(bc) or not w.any():  # no lexical side to weigh against
        return dw
    if kind == "gap":
        return float(np.clip(dw + gamma * (_gap(a, d) - _gap(a, b)), 0.0, 1.0))
    if kind == "ztop":
        zd = _ztop(similar[np.searchsorted(u, dc)]) ** gamma
        zb = _ztop(bm25[bc].astype(np.float64)) ** gamma
        return dw * zd / (dw * zd + (1 - dw) * zb) if zd + zb > 0 else dw
    assert kind == "agree"
    bd, bb = _article_best(a, d), _article_best(a, b)
    td, tb = int(np.argmax(bd)), int(np.argmax(bb))
    sd = 1 / (1 + int((bb > bb[td]).sum()))  # dense's best article, as BM25 ranks it
    sb = 1 / (1 + int((bd > bd[tb]).sum()))
    return float(np.clip(dw + gamma * (sd - sb), 0.0, 1.0))


def ranker(
    c: Corpus, q: Question, *, mode: str = "hybrid", dw: float = fusion.DENSE_WEIGHT, sentence: float = 0.0,
    whole: float = 0.0, title: float = 0.0, lead_bm25: float = 0.0, article_vec: float = 0.0, lead_vec: float = 0.0,
    second: float = 0.0, prf: tuple[int, float] | None = None, norm: Callable[[np.ndarray], np.ndarray] = minmax,
    bm25_at: tuple[float, float] | None = None, prox: tuple[str, float] | None = None,
    adaptive: tuple[str, float] | None = None, prox_blend: tuple[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Candidate passages and their scores, by one variant of the fusion."""
    cos = c.vectors @ q.q
    if prf is not None:  # Rocchio: the query moved toward its k best passages by the fusion as it was
        k, beta = prf
        cand, s = ranker(c, q)
        moved = q.q + beta * c.vectors[cand[np.argsort(-s)[:k]]].mean(axis=0)
        cos = c.vectors @ (moved / np.linalg.norm(moved))
    bm25 = q.bm25
    if bm25_at is not None or prox is not None or prox_blend is not None:
        assert q.extra is not None
        bm25 = q.extra.bm25[bm25_at] if bm25_at is not None else bm25
    dc, bc = top(cos, N), top(bm25, N, positive=True)
    if mode == "bm25":
        return bc, bm25[bc]
    u = dc if mode == "dense" else np.union1d(dc, bc)
    a = c.art[u]
    similar = (1 - sentence) * cos[u] + sentence * q.sentence[u]
    if mode == "dense":
        return u, similar
    d = norm(similar)
    if article_vec or lead_vec:
        d = (1 - article_vec - lead_vec) * d + article_vec * norm(c.articles[a] @ q.q) + lead_vec * norm(cos[c.lead[a]])
    raw = bm25[u].astype(np.float64)
    if prox is not None:  # a passage's BM25 raised by up to `strength` × how close its matched words are
        feature, strength = prox
        raw = raw * (1 + strength * proximity(q.extra, feature)[u])  # type: ignore[arg-type]
    b = norm(raw)
    if prox_blend is not None:  # the lexical side's share given to a proximity feature, already in [0, 1]
        feature, share = prox_blend
        b = (1 - share) * b + share * proximity(q.extra, feature)[u]  # type: ignore[arg-type]
    if whole or title or lead_bm25:
        b = (1 - whole - title - lead_bm25) * b + whole * norm(q.whole[a]) + title * norm(q.title[a])
        b = b + lead_bm25 * norm(q.bm25[c.lead[a]].astype(np.float64))
    w = q.weight[u]
    if adaptive is not None:
        dw = adapted(adaptive, dw, a, d, b, similar, dc, bc, u, bm25, w)
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


SHIPPED = {"sentence": fusion.SENTENCE_WEIGHT}

#: measured before, against the fusion without the best sentence (README), and not kept
EARLIER: dict[str, dict] = {
    "whole article as a BM25 document, 0.3 of the lexical side": {"whole": 0.3},
    "title as a BM25 field, 0.1": {"title": 0.1},
    "lead passage's BM25, 0.1": {"lead_bm25": 0.1},
    "article vector (mean of passages), 0.1 of the dense side": {"article_vec": 0.1},
    "lead passage's vector, 0.2 of the dense side": {"lead_vec": 0.2},
    "+ 0.1 × the article's second-best passage": {"second": 0.1},
    "dense PRF (Rocchio, 3 passages, β 0.3)": {"prf": (3, 0.3)},
    "the fusion before the best sentence": {},
}

PROXIMITY = {
    "share": "best sentence's share of the passage's matched query words",
    "scov": "best sentence's share of the query's words",
    "mindist": "closest two matched words (Tao & Zhai)",
    "window": "shortest span of the matched words",
}
ADAPTIVE = {
    "gap": "each side's lead of its best article",
    "ztop": "each side's best z-score among its candidates, power",
    "agree": "how high the other side ranks each side's best article",
}

#: on top of the shipped ranking
IDEAS: dict[str, dict] = {
    **{f"BM25 × (1 + {x} × {label})": {"prox": (f, x)}
       for f, label in PROXIMITY.items() for x in (0.1, 0.25, 0.5)},
    **{f"lexical side: {1 - x:g} × BM25 + {x} × {PROXIMITY['scov']}": {"prox_blend": ("scov", x)}
       for x in (0.1, 0.2, 0.3)},
    **{f"z-scores instead of min-max, dense weight {dw}": {"norm": zscore, "dw": dw} for dw in (0.4, 0.5, 0.6)},
    **{f"BM25 k1 {k1}, b {b}": {"bm25_at": (k1, b)} for k1, b in BM25_GRID},
    **{f"query-adaptive dense weight: {label} {x}": {"adaptive": (k, x)}
       for k, label in ADAPTIVE.items() for x in ((0.5, 1.0, 2.0) if k == "ztop" else (0.1, 0.25, 0.5))},
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "indexer-ranking-ideas")
    ap.add_argument("--sets", default="piaf," + ",".join(MONO) + ",cross,grouped")
    ap.add_argument("--earlier", action="store_true", help="also the ideas measured before (README)")
    ap.add_argument("--only", default="", help="only the ideas whose name holds this")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data: dict[str, tuple[Corpus, list[Question]]] = {}
    searchers: dict[str, Searcher] = {}

    def searcher(key: str, folder: Path) -> Searcher:
        if key not in searchers:
            if not (args.work / f"index-{key}").exists():
                build([folder], args.work / f"index-{key}")
            searchers[key] = Searcher(args.work / f"index-{key}")
        return searchers[key]

    for label, key, folder, qs in tasks(args.work, set(args.sets.split(","))):
        name = label.replace(" ", "_").replace("→", "-")
        cache, more = args.work / f"evidence-{name}.pkl", args.work / f"extras-{name}.pkl"
        if cache.exists():
            data[label] = pickle.loads(cache.read_bytes())
        else:
            data[label] = collect(searcher(key, folder), args.work, key, qs)
            cache.write_bytes(pickle.dumps(data[label]))
            # the reproduction is the engine's: its hybrid ranking of the first questions, checked here
            c, got = data[label]
            for (text, _), q in list(zip(qs, got))[:20]:
                mine = articles(c, *ranker(c, q, **SHIPPED))
                hits = searcher(key, folder).search(text, SearchOptions(k=10, highlight=False)).hits
                assert mine[:1] == [h.article_id for h in hits][:1], f"{label}: reproduction differs on {text!r}"
        c, got = data[label]
        if more.exists():
            extra = pickle.loads(more.read_bytes())
        else:
            extra = extras(searcher(key, folder), c, qs, got)
            more.write_bytes(pickle.dumps(extra))
        for q, x in zip(got, extra):
            q.extra = x
        print(f"{label}: {len(got)} questions", file=sys.stderr)
    labels = list(data)
    readme, grouped = labels[:README_SETS], [s for s in labels if s.startswith("grouped")]

    def run(**kw: object) -> dict[str, np.ndarray]:
        return {s: metrics(*data[s], partial(ranker, **kw)) for s in labels}

    sides = {"BM25": run(mode="bm25"), "dense": run(mode="dense", **SHIPPED)}
    better = {s: max(sides["BM25"][s][0], sides["dense"][s][0]) for s in labels}
    res = {"**shipped**: best sentence 0.6, min-max, dense weight 0.6": run(**SHIPPED)}
    base = next(iter(res.values()))
    ideas = {**(EARLIER if args.earlier else {}), **IDEAS}
    for name, kw in ideas.items():
        if args.only in name:
            res[name] = run(**{**SHIPPED, **kw}) if name != "the fusion before the best sentence" else run()
    print("| ranking (hybrid, on the shipped one) | R@1, the 12 | Δ | MRR@10, the 12 | Δ | R@1, grouped | Δ "
          "| worst Δ of the 12 (R@1, R@10, MRR) | worst Δ grouped | least R@1 − better side |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        avg, bavg = (np.mean([x[s] for s in readme], axis=0) for x in (r, base))
        gavg, gbavg = (np.mean([x[s][0] for s in grouped] or [np.nan]) for x in (r, base))
        worst = min(float((r[s] - base[s]).min()) for s in readme)
        gworst = min((float((r[s] - base[s]).min()) for s in grouped), default=np.nan)
        margin = min(float(r[s][0] - better[s]) for s in labels)
        print(f"| {name} | {avg[0]:.4f} | {100 * (avg[0] - bavg[0]):+.2f} | {avg[2]:.4f} | "
              f"{100 * (avg[2] - bavg[2]):+.2f} | {gavg:.4f} | {100 * (gavg - gbavg):+.2f} | {100 * worst:+.1f} "
              f"| {100 * gworst:+.1f} | {100 * margin:+.1f} |")  # fmt: skip
    print("\n| set | BM25 R@1 | dense R@1 | shipped hybrid R@1 / R@10 / MRR@10 |\n|---|---|---|---|")
    for s in labels:
        row = " / ".join(f"{x:.3f}" for x in base[s])
        print(f"| {s} | {sides['BM25'][s][0]:.3f} | {sides['dense'][s][0]:.3f} | {row} |")


if __name__ == "__main__":
    main()
