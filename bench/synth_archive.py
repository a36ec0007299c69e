"""A synthetic news archive, built into a complete index version by the library's own ``indexer.build``.

    python bench/synth_archive.py --passages 1000000 --index /tmp/synth-archive
                                  [--shape FILE.npz | --real-index DIR] [--work DIR] [--seed N]

What it holds, and why it looks like an archive rather than random rows:

* **Articles** with titles, dates (2018–2025, more recent years busier, full timestamps),
  sources, authors, URLs and languages. About 300 sources with a Zipf-like share
  (exponent 0.9): the largest holds ~12 % of the passages, the 10th ~2 %, the 20th ~1 %;
  each source writes in one language, so languages follow the sources (about fr 30 %,
  en 24 %, de 17 %, es 12 %, ru 11 %, zh 6 % of the passages). Articles are added in
  date order, as an archive grows.
* **Text** shaped like news, in six languages: words drawn from the real word
  frequencies of the PIAF (fr) and XQuAD (en/de/es/ru/zh) paragraphs in
  ../shared/bench-data (read in place, never copied), mixed with the vocabulary of one
  Wikipedia article per topic, of its subtopic, and with the named entities of its
  story (pseudo-names from a pool drawn with a Zipf law, so popular names recur and
  the vocabulary keeps growing with the archive); numbers and years; sentences of
  8–32 words in paragraphs. Articles are ~380 words (log-normal), so ~4 passages of
  up to 200 tokens each.
* **Near-duplicates**: 1.5 % of the articles are syndicated by 1–4 other sources of
  their language within two days, with a few words changed and a credit line, so
  ~4 % of the articles fall into groups of 2–5 that MinHash finds.
* **Vectors** with the shape of real e5 passage vectors (mean and covariance taken
  from a real index's stored vectors), spread over the topic → subtopic → story
  hierarchy of ``bench/scale.py``'s ``Mixture`` (the same shares, calibrated there
  against real passages); every passage of an article takes its story's directions,
  so articles of one story, and syndicated copies, are neighbours. Sentence vectors
  (for highlights) are their passage's vector plus noise.

Building goes through ``indexer.build`` itself (read JSONL, chunk with the library's
chunker, analyse BM25 terms, MinHash, the SQLite store, near-duplicate groups, BM25
matrices, the automatic FAISS type with its tuning, checksums, the atomic publish),
with ``SynthEncoder`` in place of the model: 384 dimensions, a tokenizer that cuts
words into pieces of at most six characters (about e5's 1.3 tokens per word), and the
default model recorded in the manifest. A ``Searcher`` on the result therefore loads
the real default model (onnx-int8) for queries: its vectors do not match the
synthetic ones semantically, which does not matter for timing.

The one function that calls the library is ``build_index``; the rest is data generation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import Mixture, e5_shape, unit  # noqa: E402

DIM = 384
DATA = Path(os.environ.get("BENCH_DATA", ROOT.parent / "shared" / "bench-data"))
GENERATOR_VERSION = 1  # bump when the generated archive changes: cached indexes are then rebuilt
LANG_SHARES = {"fr": 0.30, "en": 0.25, "de": 0.15, "es": 0.12, "ru": 0.10, "zh": 0.08}
N_SOURCES = 300
SOURCE_EXPONENT = 0.9
FIRST_YEAR, LAST_YEAR = 2018, 2025
SYNDICATED = 0.015  # share of original articles copied by 1–4 other sources
MEAN_WORDS = 380  # ~4 passages of up to 200 tokens, one sentence of overlap
SHARD = 10_000  # articles per JSONL file
# word draws: the story's entities, the subtopic's words, the topic's article, everyday language
MIX = (0.10, 0.10, 0.25, 0.55)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
# what SynthEncoder counts as tokens: a CJK character, a piece of a word of at most six characters
# (e5's tokenizer gives ~1.3 tokens per French or English word), a punctuation mark
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[^\W_]{1,6}|[^\w\s]")


# ------------------------------------------------------------ vocabularies
@dataclass
class Vocabulary:
    """Words to draw from: everyday language (real frequencies) and one distribution per topic article."""

    words: np.ndarray  # object array of str
    cum: np.ndarray  # cumulative probabilities over ``words``
    topics: list[tuple[np.ndarray, np.ndarray]]  # per source article: (word ids, cumulative probabilities)
    joiner: str = " "
    end: str = "."


def _cumulative(counts: np.ndarray) -> np.ndarray:
    c = np.cumsum(counts, dtype=np.float64)
    return c / c[-1]


def _draw(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _tokens(text: str, lang: str) -> list[str]:
    if lang != "zh":
        return _WORD.findall(text)
    # Chinese is written without spaces: two-character pieces stand in for words
    return [run[i : i + 2] for run in _HAN.findall(text) for i in range(0, len(run) - 1, 2)]


def _documents(lang: str) -> list[str]:
    """The real articles of one language: PIAF for French, XQuAD for the others."""
    path = DATA / "piaf" / "piaf-v1.0.json" if lang == "fr" else DATA / "xquad" / f"xquad.{lang}.json"
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [" ".join(p["context"] for p in art["paragraphs"]) for art in data]


def load_vocabularies() -> dict[str, Vocabulary]:
    out = {}
    for lang in LANG_SHARES:
        docs = [_tokens(d, lang) for d in _documents(lang)]
        total = Counter(w for d in docs for w in d)
        words = [w for w, _ in total.most_common()]
        ids = {w: i for i, w in enumerate(words)}
        common = set(words[:300])  # function words belong to everyday language, not to a topic
        topics = []
        for d in docs:
            c = Counter(w for w in d if w not in common)
            if c:
                topics.append((np.array([ids[w] for w in c], np.int64), _cumulative(np.array(list(c.values()), float))))
        counts = np.array([total[w] for w in words], float)
        out[lang] = Vocabulary(
            np.array(words, dtype=object), _cumulative(counts), topics,
            joiner="" if lang == "zh" else " ", end="。" if lang == "zh" else ".",
        )  # fmt: skip
    return out


# ------------------------------------------------------------------ names
_ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
_ONSETS += ["br", "dr", "gr", "kr", "pl", "st", "tr", "ch", "sh"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ou", "ei", "ia"]
_CODAS = ["", "", "", "n", "r", "s", "l", "m", "k", "t"]
_CYRILLIC = str.maketrans("abcdefghijklmnoprstuvz", "абкдефгхийклмнопрстувз")


def pseudo_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` pronounceable capitalised names of two or three syllables (repeats are rare)."""
    on, vo, co = (rng.integers(0, len(x), (n, 3)) for x in (_ONSETS, _VOWELS, _CODAS))
    syl = rng.integers(2, 4, n)
    return [
        "".join(_ONSETS[on[i, k]] + _VOWELS[vo[i, k]] + _CODAS[co[i, k]] for k in range(syl[i])).capitalize()
        for i in range(n)
    ]


def localised(name: str, lang: str, han: np.ndarray) -> str:
    if lang == "ru":
        return name.lower().translate(_CYRILLIC).capitalize()
    if lang == "zh":  # two or three characters taken deterministically from the name
        h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        return "".join(han[(h >> (16 * k)) % len(han)] for k in range(2 + h % 2))
    return name


# ------------------------------------------------------------------- plan
_PAPERS = {
    "fr": ["Le Courrier de {}", "La Gazette de {}", "L'Écho de {}", "Le Journal de {}", "{} Matin", "La Voix de {}"],
    "en": ["The {} Times", "The {} Herald", "{} Daily News", "The {} Post", "{} Observer", "The {} Chronicle"],
    "de": ["{}er Zeitung", "{}er Kurier", "{}er Anzeiger", "{}er Rundschau", "{}er Tagblatt", "{}er Morgenpost"],
    "es": ["El Diario de {}", "La Voz de {}", "El Correo de {}", "Heraldo de {}", "{} Hoy", "La Crónica de {}"],
    "ru": ["{} Вести", "{}ская правда", "Новости {}", "{}ский вестник", "{} Сегодня", "{}ская газета"],
    "zh": ["{}日报", "{}晚报", "{}新闻", "{}时报", "{}商报", "{}周刊"],
}


@dataclass
class Plan:
    """Every article's metadata, in publication order; the text is generated from it on demand."""

    n_passages: int
    seed: int
    sources: list[tuple[str, str]]  # (name, language)
    source: np.ndarray  # per article: source index
    story: np.ndarray
    when: np.ndarray  # seconds since FIRST_YEAR-01-01
    words: np.ndarray  # target length in words
    copy_of: np.ndarray  # -1, or the article whose text this one syndicates
    names: list[str] = field(default_factory=list)
    han: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    @property
    def n_stories(self) -> int:
        return max(1, self.n_passages // Mixture.STORY)


def make_plan(n_passages: int, passages_per_article: float, seed: int, vocab: dict[str, Vocabulary]) -> Plan:
    rng = np.random.default_rng(seed)
    n_orig = max(1, round(n_passages / passages_per_article / (1 + SYNDICATED * 2.5)))
    # sources: Zipf-like shares; each gets the language whose share is furthest behind its target
    weight = 1.0 / np.arange(1, N_SOURCES + 1) ** SOURCE_EXPONENT
    weight /= weight.sum()
    got = dict.fromkeys(LANG_SHARES, 0.0)
    places = pseudo_words(N_SOURCES, rng)
    han = np.array(sorted({c for w in vocab["zh"].words[:3000] for c in w}), dtype=object)
    sources: list[tuple[str, str]] = []
    for i, w in enumerate(weight):
        lang = max(LANG_SHARES, key=lambda lg: LANG_SHARES[lg] - got[lg])
        got[lang] += w
        template = _PAPERS[lang][i % len(_PAPERS[lang])]
        sources.append((template.format(localised(places[i], lang, han)), lang))
    by_lang = {lg: np.array([i for i, (_, s) in enumerate(sources) if s == lg]) for lg in LANG_SHARES}
    src = rng.choice(N_SOURCES, n_orig, p=weight)
    span = (datetime(LAST_YEAR + 1, 1, 1) - datetime(FIRST_YEAR, 1, 1)).total_seconds()
    when = np.sqrt(rng.random(n_orig)) * span  # density grows linearly: recent years are busier
    story = rng.integers(0, max(1, n_passages // Mixture.STORY), n_orig)
    words = np.clip(rng.lognormal(math.log(MEAN_WORDS) - 0.18, 0.6, n_orig), 80, 3000).astype(np.int64)
    copy_of = np.full(n_orig, -1)
    # syndicated copies: same story and text, another source of the same language, within two days
    originals = np.flatnonzero(rng.random(n_orig) < SYNDICATED)
    extra = rng.integers(1, 5, len(originals))
    parents = np.repeat(originals, extra)
    peers = [by_lang[sources[src[p]][1]] for p in parents]
    c_src = np.array([int(rng.choice(p)) for p in peers], dtype=np.int64)
    c_when = when[parents] + rng.random(len(parents)) * 2 * 86400
    src, story = np.concatenate([src, c_src]), np.concatenate([story, story[parents]])
    when, words = np.concatenate([when, c_when]), np.concatenate([words, words[parents]])
    copy_of = np.concatenate([copy_of, parents])
    order = np.argsort(when, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    copy_of = np.where(copy_of[order] >= 0, position[np.maximum(copy_of[order], 0)], -1)
    names = pseudo_words(max(2000, n_passages // 4), rng)
    return Plan(n_passages, seed, sources, src[order], story[order], when[order], words[order], copy_of, names, han)


# --------------------------------------------------------------- articles
class Articles:
    """Generates article records from a plan (deterministic: the same plan gives the same text)."""

    def __init__(self, plan: Plan, vocab: dict[str, Vocabulary]) -> None:
        self.plan, self.vocab = plan, vocab
        ranks = np.arange(1, len(plan.names) + 1, dtype=float)
        self.name_cum = _cumulative(1.0 / ranks)  # popular names recur across stories
        self.start = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)

    def _story_words(self, story: int, lang: str) -> tuple[list[str], np.ndarray]:
        """The story's entities and its subtopic's words (ids in the language's vocabulary)."""
        v = self.vocab[lang]
        rng = np.random.default_rng([self.plan.seed, 1, story])
        picks = _draw(self.name_cum, rng.random(8))
        ents = [localised(self.plan.names[i], lang, self.plan.han) for i in picks]
        first = [localised(self.plan.names[i], lang, self.plan.han) for i in _draw(self.name_cum, rng.random(3))]
        ents += [f"{a}{v.joiner}{b}" for a, b in zip(first, ents[:3])]  # people: first and family name
        ids, cum = v.topics[(story // Mixture.FANOUT**2) % len(v.topics)]
        sub = np.random.default_rng([self.plan.seed, 2, story // Mixture.FANOUT])
        return ents, ids[_draw(cum, sub.random(30))]

    def record(self, i: int) -> dict[str, Any]:
        p = self.plan
        name, lang = p.sources[int(p.source[i])]
        orig = int(p.copy_of[i]) if p.copy_of[i] >= 0 else i
        # a syndicated copy: the original's text with a few words edited, and its source's credit
        edit = np.random.default_rng([p.seed, 3, i]) if orig != i else None
        title, text = self._text(orig, lang, edit)
        if edit is not None:
            text += f"\n\n({p.sources[int(p.source[orig])][0]})"
        when = self.start + timedelta(seconds=float(p.when[i]))
        host = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or f"source-{int(p.source[i])}"
        author = localised(p.names[int(i * 7919 % len(p.names))], lang, p.han)
        return {
            "id": f"syn-{i:07d}",
            "title": title,
            "text": text,
            "lang": lang,
            "date": when.replace(microsecond=0).isoformat(),
            "source": name,
            "author": author,
            "url": f"https://{host}.example/{when:%Y/%m/%d}/{i:07d}",
        }

    def _text(self, i: int, lang: str, edit: np.random.Generator | None = None) -> tuple[str, str]:
        p, v = self.plan, self.vocab[lang]
        story = int(p.story[i])
        ents, sub = self._story_words(story, lang)
        t_ids, t_cum = v.topics[(story // Mixture.FANOUT**2) % len(v.topics)]
        rng = np.random.default_rng([p.seed, 4, i])
        n = int(p.words[i] * (0.6 if lang == "zh" else 1))  # a Chinese "word" here is two tokens
        kind = np.searchsorted(np.cumsum(MIX), rng.random(n), side="right")
        ids = _draw(v.cum, rng.random(n))  # everyday language
        topic = kind == 2
        ids[topic] = t_ids[_draw(t_cum, rng.random(int(topic.sum())))]
        subtopic = kind == 1
        ids[subtopic] = sub[rng.integers(0, len(sub), int(subtopic.sum()))]
        words = v.words[ids].tolist()
        for j in np.flatnonzero(kind == 0):
            words[j] = ents[int(rng.integers(0, len(ents)))]
        for j in np.flatnonzero(rng.random(n) < 0.02):  # numbers: years, amounts, scores
            r = rng.random()
            words[j] = str(int(rng.integers(1990, 2026))) if r < 0.5 else str(int(rng.lognormal(3, 2)))
        if edit is not None:  # one word in 150 replaced: Jaccard of the 5-shingles stays ~0.95
            for j in edit.integers(0, n, max(1, n // 150)):
                words[j] = str(v.words[int(edit.integers(0, 500))])
        sentences, pos = [], 0
        while pos < n:
            k = int(rng.integers(8, 33))
            s = v.joiner.join(words[pos : pos + k])
            sentences.append(s[:1].upper() + s[1:] + v.end)
            pos += k
        paragraphs, pos = [], 0
        while pos < len(sentences):
            k = int(rng.integers(2, 6))
            paragraphs.append(v.joiner.join(sentences[pos : pos + k]))
            pos += k
        head = [ents[int(rng.integers(0, len(ents)))], *v.words[sub[rng.integers(0, len(sub), 4)]].tolist()]
        head += v.words[t_ids[_draw(t_cum, rng.random(3))]].tolist()
        order = rng.permutation(len(head))
        title = v.joiner.join(head[k] for k in order)
        return title[:1].upper() + title[1:], "\n\n".join(paragraphs)

    def write(self, folder: Path) -> dict[str, int]:
        """JSONL shards of ``SHARD`` articles; returns each title's story (for the encoder)."""
        folder.mkdir(parents=True, exist_ok=True)
        story_of: dict[str, int] = {}
        n = len(self.plan.source)
        for s in range(0, n, SHARD):
            lines = []
            for i in range(s, min(n, s + SHARD)):
                rec = self.record(i)
                story_of.setdefault(rec["title"], int(self.plan.story[i]))
                lines.append(json.dumps(rec, ensure_ascii=False))
            (folder / f"articles-{s // SHARD:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return story_of


# ---------------------------------------------------------------- encoder
class SynthEncoder:
    """Stands in for the model at build time: e5-shaped vectors from each passage's story.

    A passage's vector is its story's topic, subtopic and story directions plus its own
    noise (seeded by its text, so the same text always gets the same vector), mapped
    through the mean and covariance of real e5 passage vectors — ``Mixture`` in
    bench/scale.py, with a given story instead of a random one. Through ``indexer.build``
    the story is looked up by the article title the build puts in front of every passage.
    """

    dimension = DIM
    max_seq_length = 512  # multilingual-e5-small's window: the chunker keeps its 200-token passages

    def __init__(self, mixture: Mixture, story_of: dict[str, int] | None = None) -> None:
        self.mix, self.story_of = mixture, story_of or {}

    def load(self) -> None:
        return None

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in _TOKEN.finditer(t)] for t in texts]

    def _latent(self, texts: list[str], story: int | None) -> tuple[np.ndarray, list[np.random.Generator]]:
        m = self.mix
        z = np.empty((len(texts), DIM), np.float32)
        rngs = []
        for row, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
            s = story if story is not None else self.story_of.get(t.split("\n", 1)[0], seed % m.stories)
            rng = np.random.default_rng(seed)
            rngs.append(rng)
            z[row] = np.sqrt(m.SHARES[3]) * rng.standard_normal(DIM)
            for share, dirs, div in zip(m.SHARES, m.levels, (m.FANOUT**2, m.FANOUT, 1)):
                z[row] += np.sqrt(share) * dirs[min(s // div, len(dirs) - 1)]
        return z, rngs

    def _vectors(self, z: np.ndarray) -> np.ndarray:
        return unit(self.mix.mean + z @ self.mix.root.T)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._vectors(self._latent(texts, None)[0]) if texts else np.zeros((0, DIM), np.float32)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed_passages(texts)

    def embed_passages_with_sentences(
        self, texts: list[str], spans: list[list[tuple[int, int]]], story: int | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        z, rngs = self._latent(texts, story)
        vecs = self._vectors(z)
        # a sentence: its passage's vector plus a little noise (cosine ~0.9 to it, as late chunking gives)
        noise = [r.standard_normal((len(s), DIM)).astype(np.float32) for r, s in zip(rngs, spans)]
        sent = [unit(v + 0.025 * e) if len(e) else e for v, e in zip(vecs, noise)]
        return vecs, sent


# ------------------------------------------------------------------ shape
def shape_from_index(index_dir: Path, limit: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance root of a real index's stored passage vectors (read from its SQLite)."""
    import sqlite3

    manifest = json.loads((index_dir / "manifest.json").read_text())
    db = index_dir / "segments" / manifest["segments"][0]["name"] / "store.sqlite"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT vector FROM vectors ORDER BY passage LIMIT ?", (limit,)).fetchall()
    finally:
        con.close()
    return e5_shape(np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), -1))


def load_shape(path: Path | None) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    if path is not None and path.exists():
        f = np.load(path)
        return (f["mean"], f["root"]), f"e5 passages ({path})"
    return e5_shape(None), "isotropic stand-in (no real vectors given)"


def save_shape(shape: tuple[np.ndarray, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mean=shape[0], root=shape[1])


# ------------------------------------------------------------------ build
def _calibrate(vocab: dict[str, Vocabulary], seed: int) -> float:
    """Passages per article, measured with the library's chunker on a sample of generated articles."""
    from indexer.chunking import ChunkSettings, chunk_article
    from indexer.records import Article

    plan = make_plan(20_000, 4.0, seed + 1, vocab)
    articles = Articles(plan, vocab)
    enc = SynthEncoder(Mixture(1, e5_shape(None)))
    n, total = 600, 0
    for i in range(n):
        r = articles.record(i * (len(plan.source) // n))
        total += len(chunk_article(Article(r["id"], r["text"], r["title"], lang=r["lang"]), enc, ChunkSettings()))
    return total / n


def _log(msg: str) -> None:
    print(f"[synth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _build_with_build(index_dir: Path, plan: Plan, vocab: dict[str, Vocabulary], mixture: Mixture,
                      work: Path) -> dict[str, Any]:  # fmt: skip
    """The reference path: JSONL files read back by ``indexer.build`` itself (one process)."""
    from indexer import BuildSettings, build
    from indexer.models import resolve

    t0 = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="synth-articles-", dir=work))
    try:
        story_of = Articles(plan, vocab).write(folder)
        phases = {"write JSONL": time.perf_counter() - t0}
        _log(f"{len(plan.source):,} articles written in {phases['write JSONL']:.0f} s; building {index_dir}")
        marks: set[int] = set()

        def progress(p: Any) -> None:
            tenth = int(10 * p.files_done / max(1, p.files_total))
            if tenth not in marks:
                marks.add(tenth)
                _log(f"  {p.files_done}/{p.files_total} files, {p.passages_embedded:,} passages, {p.elapsed:.0f} s")

        t1 = time.perf_counter()
        report = build([folder], index_dir, BuildSettings(full=True), encoder=SynthEncoder(mixture, story_of),
                       model=resolve(), progress=progress)  # fmt: skip
        phases["indexer.build"] = time.perf_counter() - t1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"articles": report.articles, "passages": report.passages,
            "duplicate_clusters": report.duplicate_clusters, "phases": phases}  # fmt: skip


def _build_direct(index_dir: Path, plan: Plan, vocab: dict[str, Vocabulary], mixture: Mixture,
                  workers: int) -> dict[str, Any]:  # fmt: skip
    """The fast path: the steps of ``indexer.build`` (indexer/build.py) called one by one.

    ``workers`` forked processes generate the articles and do the per-article work a
    build does (chunking, passage texts, vectors and sentence vectors, BM25 terms,
    MinHash, hashes); this process writes them, in order, through ``indexer.writer.Writer``,
    then runs the build's finalize and publish steps: near-duplicate groups, the
    segment sealed by ``segment_write.seal`` (BM25 postings, the FAISS index chosen and
    tuned by size, checksums, fsync), the version's state, the manifest and the atomic switch.
    The articles are exactly those ``_build_with_build`` reads from JSONL.
    Every library call of this path is in this function: update it when internal
    names change (``--via build`` needs no update).
    """
    import multiprocessing as mp

    from indexer import __version__, dedup, postings, vectors
    from indexer.analysis import ANALYZER_VERSION, analyze
    from indexer.chunking import ChunkSettings, chunk_article
    from indexer.corpus import normalize_date
    from indexer.draft import publish, version_name
    from indexer.embedding import body_offset, passage_text
    from indexer.highlight import pack_sentences
    from indexer.index import IndexDir
    from indexer.manifest import FORMAT_VERSION, LexicalInfo, Manifest, ModelInfo, now
    from indexer.models import resolve
    from indexer.records import Article
    from indexer.segment_write import VectorChoice, seal
    from indexer.segments import segment_name
    from indexer.settings import DEFAULT_BACKEND
    from indexer.store import DB_FILE, article_hash, text_hash
    from indexer.vector_plan import DEFAULT_POLICY
    from indexer.version_state import VersionState
    from indexer.writer import Writer

    model = resolve()
    encoder = SynthEncoder(mixture)
    # what build() settles on for a 512-token model: the default 200 tokens, one sentence of overlap
    chunk = ChunkSettings()
    articles = Articles(plan, vocab)
    n, batch = len(plan.source), 32

    def prepare(i: int) -> tuple[Any, ...]:
        r = articles.record(i)
        art = Article(id=r["id"], text=r["text"], title=r["title"], url=r["url"], date=normalize_date(r["date"]),
                      source=r["source"], author=r["author"], lang=r["lang"],
                      path=f"articles-{i // SHARD:04d}.jsonl")  # fmt: skip
        chunks = chunk_article(art, encoder, chunk)
        texts = [passage_text(art.title, c.text) for c in chunks]
        spans = [[(a - c.start, b - c.start) for a, b in c.sentences] for c in chunks]
        shift = body_offset(art.title)
        shifted = [[(a + shift, b + shift) for a, b in sp] for sp in spans]
        vecs, sent = encoder.embed_passages_with_sentences(texts, shifted, int(plan.story[i]))
        blobs = [pack_sentences(sp, sv) if sp else None for sp, sv in zip(spans, sent)]
        terms = [analyze(t, art.lang) for t in texts]
        hashes = [text_hash(t) for t in texts]
        return art, article_hash(art), chunks, hashes, vecs, terms, dedup.signature(art.text), blobs

    def work(w: int, q: Any) -> None:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)  # tiny matrix products: BLAS threads would only fight the other workers
        except ImportError:
            pass
        for b in range(w, (n + batch - 1) // batch, workers):
            q.put([prepare(i) for i in range(b * batch, min(n, (b + 1) * batch))])
        q.put(None)

    t0 = time.perf_counter()
    ctx = mp.get_context("fork")  # the workers share the plan and vocabularies without pickling them
    queues = [ctx.Queue(maxsize=8) for _ in range(workers)]
    procs = [ctx.Process(target=work, args=(w, queues[w]), daemon=True) for w in range(workers)]
    for p in procs:
        p.start()
    idx = IndexDir(index_dir)
    idx.path.mkdir(parents=True, exist_ok=True)
    lock = idx.lock()
    partial = None
    phases: dict[str, float] = {}
    try:
        idx.versions.mkdir(parents=True, exist_ok=True)
        idx.layout.segments.mkdir(parents=True, exist_ok=True)
        idx.clean_partials()
        version = version_name(idx.versions)
        partial = idx.layout.partial(version)
        partial.mkdir()
        seg = segment_name(idx.layout.segments)
        idx.layout.segment_partial(seg).mkdir()
        writer = Writer(idx.layout.segment_partial(seg) / DB_FILE)
        done = b = 0
        mark = 0.1
        while done < plan.n_passages:
            items = queues[b % workers].get()
            b += 1
            if items is None:
                break
            for art, h, chunks, hashes, vecs, terms, sig, blobs in items:
                writer.add_article(art, h, chunks, hashes, vecs, terms, sig, blobs)
                done += len(chunks)
                if done >= plan.n_passages:
                    break
            if done >= mark * plan.n_passages:
                _log(f"  {done:,} passages, {time.perf_counter() - t0:.0f} s")
                mark += 0.1
        for p in procs:
            p.terminate()
            p.join()
        phases["articles → SQLite"] = time.perf_counter() - t0
        counts = writer.counts()

        def timed(name: str, fn: Any) -> Any:
            t = time.perf_counter()
            out = fn()
            phases[name] = time.perf_counter() - t
            _log(f"  {name}: {phases[name]:.0f} s")
            return out

        clusters = timed("dedup.regroup", lambda: dedup.regroup(writer))
        rows, ids = (writer.first_row, writer.next_row), (writer.first_id, writer.next_id)
        info = timed("seal (postings, vectors, checksums)", lambda: seal(
            idx, writer, seg, rows=rows, ids=ids, choice=VectorChoice(dim=DIM, policy=DEFAULT_POLICY)))  # fmt: skip
        VersionState(groups=writer.groups).save(partial)
        lex = LexicalInfo(kind="postings", k1=postings.K1, b=postings.B, documents=counts["passages"],
                          analyzer=ANALYZER_VERSION)  # fmt: skip
        vinfo = vectors.summary([info.vectors], counts["passages"], auto=True)
        stamp = now()
        m = Manifest(
            format_version=FORMAT_VERSION, package_version=__version__, version=version, created_at=stamp,
            built_at=stamp, model=ModelInfo(name=model.name, fingerprint=model.fingerprint, dimension=DIM,
                                            backend=DEFAULT_BACKEND, origin=model.origin,
                                            max_seq_length=encoder.max_seq_length),
            chunker=chunk, vectors=vinfo, counts=counts, sources=["bench/synth_archive.py"], lexical=lex,
            policy=DEFAULT_POLICY, segments=[info],
        )  # fmt: skip
        timed("publish (fsync, checksums, switch)", lambda: publish(idx, partial, m))
    except BaseException:
        for p in procs:
            p.terminate()
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        lock.release()
    return {"articles": counts["articles"], "passages": counts["passages"], "duplicate_clusters": clusters,
            "phases": phases}  # fmt: skip


def build_index(
    index_dir: Path,
    n_passages: int,
    shape: tuple[np.ndarray, np.ndarray],
    *,
    work: Path,
    seed: int = 11,
    via: str = "direct",
    workers: int | None = None,
) -> dict[str, Any]:
    """Generate an archive of ``n_passages`` passages (``via="build"``: about that many) into ``index_dir``."""
    t0 = time.perf_counter()
    vocab = load_vocabularies()
    ratio = _calibrate(vocab, seed)
    # a few more articles than needed: the direct path stops at exactly n_passages
    plan = make_plan(n_passages, ratio * 0.97, seed, vocab)
    mixture = Mixture(n_passages, shape, seed=1)
    _log(f"{len(plan.source):,} articles planned ({ratio:.2f} passages each), building {index_dir} via {via}")
    if via == "build":
        out = _build_with_build(index_dir, plan, vocab, mixture, work)
    else:
        out = _build_direct(index_dir, plan, vocab, mixture, workers or os.cpu_count() or 2)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    return {
        "generator": GENERATOR_VERSION,
        "passages_requested": n_passages,
        "seed": seed,
        "via": via,
        **out,
        "phases": {k: round(v, 1) for k, v in out["phases"].items()},
        "build_s": round(time.perf_counter() - t0, 1),
        "vectors": manifest.get("vectors", {}),
        "model": manifest.get("model", {}),
        "built_at": manifest.get("built_at"),
    }


def cached_or_build(
    index_dir: Path,
    n_passages: int,
    shape_file: Path | None,
    *,
    work: Path,
    seed: int = 11,
    via: str = "direct",
    workers: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """The archive's description, building it first unless ``index_dir`` already holds this one."""
    meta_file = index_dir / "synth.json"
    if meta_file.exists() and (index_dir / "manifest.json").exists():
        meta = json.loads(meta_file.read_text())
        if (meta.get("generator"), meta.get("passages_requested"), meta.get("seed")) == (
            GENERATOR_VERSION, n_passages, seed,
        ):  # fmt: skip
            return meta, True
    shape, shape_desc = load_shape(shape_file)
    if index_dir.exists():
        shutil.rmtree(index_dir)
    work.mkdir(parents=True, exist_ok=True)
    meta = build_index(index_dir, n_passages, shape, work=work, seed=seed, via=via, workers=workers)
    meta["vector_shape"] = shape_desc
    meta_file.write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return meta, False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=100_000, help="passages to generate")
    ap.add_argument("--index", type=Path, required=True, help="index folder to build (replaced unless cached)")
    ap.add_argument("--shape", type=Path, default=None, help=".npz with the mean and root of real e5 vectors")
    ap.add_argument("--real-index", type=Path, default=None, help="take the vector shape from this real index")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (JSONL files for --via build)")
    ap.add_argument(
        "--via",
        choices=("direct", "build"),
        default="direct",
        help="direct: the build's steps in parallel workers (fast); build: indexer.build on JSONL",
    )
    ap.add_argument("--workers", type=int, default=None, help="processes for --via direct (default: cores)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()  # fmt: skip
    shape_file = args.shape
    if args.real_index is not None:
        shape_file = Path(tempfile.mkdtemp()) / "shape.npz"
        save_shape(shape_from_index(args.real_index), shape_file)
    work = args.work or Path(tempfile.gettempdir())
    meta, cached = cached_or_build(args.index, args.passages, shape_file, work=work, seed=args.seed, via=args.via,
                                   workers=args.workers)  # fmt: skip
    print(json.dumps({**meta, "cached": cached}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
