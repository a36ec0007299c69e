"""Stories on the shared data: pair precision and recall of "same story", from scratch and incrementally.

    python bench/stories.py [--work DIR] [--grid] [--scale N,N,...]

Builds one index with the product's own ``build`` (default model and settings) from
../shared/bench-data (read in place, never copied into the repo): every XQuAD paragraph
in each of its five languages (de, en, es, ru, zh) and every PIAF paragraph (fr) is an
article, without a title (XQuAD's titles are the English Wikipedia titles in every
language, which would give translations away). The gold stories: each XQuAD paragraph's
five translations form one story; every PIAF paragraph is a story of its own, so PIAF
only adds negatives — French paragraphs on the same topic as each other (191 articles,
761 paragraphs), and on topics that XQuAD covers too. Stories are then made with
``indexer.stories`` over the version's own databases (``IndexArchive``), on five sets of
articles:

* de+en, en+zh, es+ru: two languages of XQuAD;
* xq5: all five XQuAD languages;
* xq5+fr: the five plus the PIAF paragraphs.

each **undated** (the articles carry no date: only the content decides) and **dated**
with made-up dates: every Wikipedia article's paragraphs fall within 4 days of one
another (a burst of coverage on one topic, so same-topic paragraphs are always inside
each other's 7-day window) and each translation within 2 days of its paragraph. A
predicted pair is two articles of one predicted story; pair precision is the share of
predicted pairs that are gold pairs, recall the share of gold pairs predicted.

``--steps`` (default 3) also builds the stories of xq5+fr incrementally — a quarter of
the articles, then updates that add the next quarter and delete one article in twenty
of the live ones (restored by the next update) — and compares the result with a
from-scratch clustering. ``--grid`` sweeps the thresholds and ranks them by the mean
F1 over all ten runs (how the defaults were chosen). ``--scale N,N,…`` only times (nothing is
built) clustering from scratch and an update adding the 10 newest or deleting 1 article, on
synthetic archives of N articles that grow in time (as many articles a week at every size):
the update should cost the same at every size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer import build
from indexer.index import IndexDir
from indexer.stories import (
    DEFAULT_STORIES,
    Archive,
    Calibration,
    Facts,
    IndexArchive,
    MemoryArchive,
    StoryIndex,
    StorySettings,
    cluster,
    update,
)

DATA = Path(os.environ.get("BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "bench-data"))
XQUAD = ("de", "en", "es", "ru", "zh")
SETS = {
    "de+en": ("de", "en"),
    "en+zh": ("en", "zh"),
    "es+ru": ("es", "ru"),
    "xq5": XQUAD,
    "xq5+fr": (*XQUAD, "fr"),
}


def squad(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["data"]


def corpus(work: Path) -> Path:
    """The JSONL corpus: XQuAD paragraphs in five languages, PIAF paragraphs; gold labels as extra fields."""
    folder = work / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for lang in XQUAD:
        i = 0
        for art in squad(DATA / "xquad" / f"xquad.{lang}.json"):
            for p in art["paragraphs"]:
                rows.append({"id": f"xq-{lang}-{i:03d}", "text": p["context"].lstrip("\ufeff"), "lang": lang,
                             "story": f"xq-{i:03d}", "topic": f"xq-{art['title']}"})  # fmt: skip
                i += 1
    for a, art in enumerate(squad(DATA / "piaf" / "piaf-v1.0.json")):
        for j, p in enumerate(art["paragraphs"]):
            rows.append({"id": f"fr-{a:03d}-{j:02d}", "text": p["context"], "lang": "fr",
                         "story": f"fr-{a:03d}-{j:02d}", "topic": f"fr-{a:03d}"})  # fmt: skip
    content = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path = folder / "stories.jsonl"
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")
    return folder


class View:
    """An archive restricted to some live articles, with dates of its own (``days`` None: as stored)."""

    def __init__(self, base: Archive, live: np.ndarray, days: Mapping[int, int] | None = None) -> None:
        self.base, self.live, self.days = base, np.sort(live), days

    def _dated(self, f: Facts) -> Facts:
        if self.days is None:
            return f
        return Facts(f.rows, np.array([self.days[r] for r in f.rows.tolist()], np.int64), f.langs, f.vectors)

    def catalog(self) -> Facts:
        f = self.base.catalog()
        return self._dated(f.take(np.isin(f.rows, self.live)))

    def facts(self, rows: Sequence[int]) -> Facts:
        return self._dated(self.base.facts(rows))

    def texts(self, rows: Sequence[int]) -> dict[int, str]:
        return self.base.texts(rows)

    def groups(self) -> Mapping[int, int]:
        return {r: g for r, g in self.base.groups().items() if r in set(self.live.tolist())}


def gold_labels(index: Path) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    """Article row → gold story, topic and language, read from the version's own databases."""
    snap = IndexDir(index).open()
    story, topic, lang = {}, {}, {}
    for seg in snap.segments:
        for row, meta, lg in seg.store.con.execute("SELECT rowid, meta, lang FROM articles"):
            m = json.loads(meta)
            story[row], topic[row], lang[row] = m["story"], m["topic"], lg
    snap.close()
    return story, topic, lang


def synthetic_days(topic: Mapping[int, str], story: Mapping[int, str], seed: int = 7) -> dict[int, int]:
    """Each topic published within 4 days from a day of 2020–2023, each translation within 2 days of its paragraph."""
    rng = np.random.default_rng(seed)
    base = {t: 737425 + int(rng.integers(0, 4 * 365)) for t in sorted(set(topic.values()))}
    para = {s: int(rng.integers(0, 3)) for s in sorted(set(story.values()))}
    return {r: base[topic[r]] + para[story[r]] + int(rng.integers(0, 3)) for r in sorted(topic)}


def pair_counts(labels: Sequence[object]) -> int:
    return sum(c * (c - 1) // 2 for c in Counter(labels).values())


def score(stories: StoryIndex, rows: Sequence[int], gold: Mapping[int, str]) -> tuple[float, float, int, int]:
    """Pair precision, recall, predicted pairs, gold pairs."""
    pred = [stories.story_of(r) for r in rows]
    both = pair_counts(list(zip(pred, [gold[r] for r in rows])))
    p, g = pair_counts(pred), pair_counts([gold[r] for r in rows])
    return both / max(p, 1), both / max(g, 1), p, g


def agreement(a: StoryIndex, b: StoryIndex, rows: Sequence[int]) -> tuple[int, int, int]:
    """Pairs together in both, in ``a`` only, in ``b`` only."""
    la, lb = [a.story_of(r) for r in rows], [b.story_of(r) for r in rows]
    both = pair_counts(list(zip(la, lb)))
    return both, pair_counts(la) - both, pair_counts(lb) - both


def memory_copy(archive: IndexArchive) -> MemoryArchive:
    """The same articles held in memory (for the threshold sweep, which clusters hundreds of times)."""
    cat = archive.catalog()
    return MemoryArchive(archive.facts(cat.rows.tolist()), archive.texts(cat.rows.tolist()), cat.rows,
                         dict(archive.groups()))  # fmt: skip


def runs(base: Archive, lang: Mapping[int, str], days: Mapping[int, int]) -> list[tuple[str, str, View]]:
    out = []
    for name, langs in SETS.items():
        rows = np.array(sorted(r for r, lg in lang.items() if lg in langs), np.int64)
        out += [(name, "undated", View(base, rows)), (name, "dated", View(base, rows, days))]
    return out


def table(base: Archive, lang: Mapping[int, str], days: Mapping[int, int], gold: Mapping[int, str],
          settings: StorySettings) -> list[tuple[str, str, float, float, int, int, float]]:  # fmt: skip
    results = []
    for name, variant, view in runs(base, lang, days):
        t0 = time.perf_counter()
        stories = cluster(view, settings)
        took = time.perf_counter() - t0
        p, r, npred, ngold = score(stories, view.live.tolist(), gold)
        results.append((name, variant, p, r, npred, ngold, took))
    return results


def same_language_errors(stories: StoryIndex, rows: Sequence[int], gold: Mapping[int, str],
                         lang: Mapping[int, str]) -> int:  # fmt: skip
    """Predicted pairs of one language that are not gold pairs (XQuAD has no same-language positive)."""
    pred = [(stories.story_of(r), lang[r]) for r in rows]
    return pair_counts(pred) - pair_counts([(s, lg, gold[r]) for (s, lg), r in zip(pred, rows)])


def incremental(base: Archive, rows: np.ndarray, days: Mapping[int, int] | None, gold: Mapping[int, str],
                steps: int, settings: StorySettings) -> None:  # fmt: skip
    rng = np.random.default_rng(11)
    order = rng.permutation(rows)
    parts = np.array_split(order, steps + 1)
    live = np.sort(parts[0])
    t0 = time.perf_counter()
    stories = cluster(View(base, live, days), settings)
    log = [f"first quarter ({len(live)} articles) from scratch: {time.perf_counter() - t0:.2f} s"]
    held: np.ndarray = np.zeros(0, np.int64)
    for step in range(1, steps + 1):
        add = np.union1d(parts[step], held)
        held = rng.choice(live, size=len(live) // 20, replace=False) if step < steps else np.zeros(0, np.int64)
        live = np.setdiff1d(np.union1d(live, add), held)
        t0 = time.perf_counter()
        before = stories.calibration
        stories = update(stories, View(base, live, days), added=add, removed=held, settings=settings)
        moved = [lg for lg, c in zip(stories.calibration.langs, stories.calibration.centroids)
                 if lg in before.langs and not np.array_equal(c, before.centroids[before.langs.index(lg)])]  # fmt: skip
        log.append(f"update {step}: +{len(add)} −{len(held)} → {len(live)} live, "
                   f"{time.perf_counter() - t0:.2f} s, centroids re-taken: {', '.join(moved) or 'none'}")  # fmt: skip
    view = View(base, live, days)
    t0 = time.perf_counter()
    fresh = cluster(view, settings)
    scratch_s = time.perf_counter() - t0
    same = cluster(view, settings, calibration=stories.calibration)
    exact = dict(same.story) == dict(stories.story) and dict(same.central) == dict(stories.central)
    both, only_inc, only_fresh = agreement(stories, fresh, live.tolist())
    pi, ri, *_ = score(stories, live.tolist(), gold)
    pf, rf, *_ = score(fresh, live.tolist(), gold)
    print("\n".join(f"  {line}" for line in log))
    print(f"  from scratch on the final {len(live)} articles: {scratch_s:.2f} s")
    print(f"  incremental == from scratch with the same centroids: {exact}")
    print(
        f"  incremental vs from scratch (its own centroids): {both} pairs in both, {only_inc} only incremental, "
        f"{only_fresh} only from scratch ({both / max(both + only_inc + only_fresh, 1):.4f} agreement)"
    )
    print(f"  pair precision / recall: incremental {pi:.3f} / {ri:.3f}, from scratch {pf:.3f} / {rf:.3f}")


def evidence(base: MemoryArchive, gold: Mapping[int, str], topic: Mapping[int, str]) -> None:
    """Cosine percentiles of translations and of negatives, raw and centred per language (why centring)."""
    f = base.all
    assert f.vectors is not None
    none = Facts(f.rows[:0], f.days[:0], f.langs[:0], f.vectors[:0])
    calibration, _ = Calibration().advance(f, none, DEFAULT_STORIES)
    g = np.array([gold[r] for r in f.rows.tolist()])
    t = np.array([topic[r] for r in f.rows.tolist()])
    iu = np.triu_indices(len(f.rows), 1)
    pos = g[iu[0]] == g[iu[1]]
    kin = (t[iu[0]] == t[iu[1]]) & ~pos
    one = f.langs[iu[0]] == f.langs[iu[1]]
    groups = {"translations": pos, "same topic, one language": kin & one, "same topic, two languages": kin & ~one,
              "other topics": ~kin & ~pos}  # fmt: skip
    print("\n| cosine of article vectors | pairs | raw: 1 % / 50 % / 99.9 % / max | centred per language |")
    print("|---|---:|---|---|")
    cos = {}
    for name, vecs in (("raw", f.vectors), ("centred", calibration.centre(f.langs, f.vectors))):
        cos[name] = np.einsum("ij,ij->i", vecs[iu[0]], vecs[iu[1]])
    for label, mask in groups.items():
        cells = [" / ".join(f"{v:.3f}" for v in (*np.percentile(c[mask], [1, 50, 99.9]), c[mask].max())) for c in
                 cos.values()]  # fmt: skip
        print(f"| {label} | {int(mask.sum())} | {cells[0]} | {cells[1]} |")
    for name, c in cos.items():
        best = 0.0
        for th in np.arange(0.0, 1.0, 0.005):
            kept = c >= th
            if kept.sum() and (kept & pos).sum() / kept.sum() >= 0.95:
                best = max(best, (kept & pos).sum() / pos.sum())
        print(f"{name}: best recall of translation pairs by one cosine threshold at pair precision 0.95: {best:.3f}")


def grid(base: MemoryArchive, lang: Mapping[int, str], days: Mapping[int, int], gold: Mapping[int, str]) -> None:
    floors = (0.35, 0.375, 0.40, 0.425, 0.45, 0.50)
    combos = itertools.product(floors, (0.02, 0.05, 0.08), (0.0, 0.05, 0.10), (0.75, 0.80, 0.85))
    ranked = []
    for sim, margin, weight, same in combos:
        s = replace(DEFAULT_STORIES, min_similarity=sim, best_margin=margin, number_weight=weight,
                    same_language_similarity=same)  # fmt: skip
        res = table(base, lang, days, gold, s)
        f1 = np.mean([2 * p * r / max(p + r, 1e-9) for *_, p, r, _, _, _ in res])
        ranked.append((f1, np.mean([x[2] for x in res]), np.mean([x[3] for x in res]), min(x[2] for x in res), s))
        print(f"  min_similarity {sim:.3f} best_margin {margin:.2f} number_weight {weight:.2f} "
              f"same_language {same:.2f}: mean F1 {ranked[-1][0]:.4f}", file=sys.stderr)  # fmt: skip
    ranked.sort(key=lambda x: -x[0])
    print("\n| min_similarity | best_margin | number_weight | same_language | mean P | mean R | min P | mean F1 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f1, p, r, pmin, s in ranked[:12]:
        mark = " (default)" if s == DEFAULT_STORIES else ""
        print(f"| {s.min_similarity:.3f} | {s.best_margin:.2f} | {s.number_weight:.2f} | "
              f"{s.same_language_similarity:.2f}{mark} | {p:.3f} | {r:.3f} | {pmin:.3f} | {f1:.4f} |")  # fmt: skip
    where = next(i for i, x in enumerate(ranked) if x[4] == DEFAULT_STORIES)
    print(f"\ndefaults rank {where + 1} of {len(ranked)}")


class _Catalogued(MemoryArchive):
    """A memory archive whose catalog is given, as a build gives it (from the live version's stories)."""

    def __init__(self, base: MemoryArchive, catalog: Facts) -> None:
        super().__init__(base.all, base.text, base.live, base.dup_groups)
        self._catalog = catalog

    def catalog(self) -> Facts:
        return self._catalog


def scale(sizes: Sequence[int], dim: int = 384, seed: int = 3, per_day: int = 8) -> None:
    """From scratch, and an update of 10 added or 1 deleted article, on synthetic archives of ``sizes`` articles.

    The archive spans one day per ``per_day`` articles (a larger archive is a longer one, with as many
    articles a week); stories of 1–3 articles in 1–3 languages, e5-like vectors (a shared direction, a
    language's, then topic, story and noise). An update's time should not grow with the archive.
    """
    print("\n| articles | stories of 2+ | from scratch s | add the 10 newest ms | delete 1 ms |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        rng = np.random.default_rng(seed)

        def units(k: int, rng: np.random.Generator = rng) -> np.ndarray:
            v = rng.normal(size=(k, dim)).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        langs = np.array(["de", "en", "es", "fr", "ru", "zh"])
        common, accent = units(1)[0], units(len(langs))
        story = np.repeat(np.arange(n), rng.integers(1, 4, size=n))[:n]
        topics = units(max(n // 50, 1))
        lang = rng.integers(0, len(langs), size=n)
        vecs = 3.0 * common + 1.5 * accent[lang] + topics[rng.integers(0, len(topics), size=n)[story]]
        vecs += units(n)[story] + 0.3 * units(n)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        day0 = 730_000 + np.sort(rng.integers(0, max(n // per_day, 1), size=n))
        days = (day0[story] + rng.integers(0, 3, size=n)).astype(np.int64)
        rows = np.arange(1, n + 1, dtype=np.int64)
        facts, texts = Facts(rows, days, langs[lang], vecs), {int(r): "" for r in rows}
        t0 = time.perf_counter()
        before = cluster(MemoryArchive(facts, texts, rows[:-10]))
        scratch_s = time.perf_counter() - t0
        gone = rows[n // 2 : n // 2 + 1]
        added = _Catalogued(MemoryArchive(facts, texts, rows), facts.without_vectors())
        left = np.setdiff1d(rows[:-10], gone)
        deleted = _Catalogued(MemoryArchive(facts, texts, left), facts.without_vectors().take(left - 1))
        add_ms, del_ms = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            update(before, added, added=rows[-10:], removed=[])
            add_ms.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            update(before, deleted, added=[], removed=gone)
            del_ms.append(1000 * (time.perf_counter() - t0))
        print(f"| {n:,} | {before.count:,} | {scratch_s:.1f} | {np.median(add_ms):.1f} | {np.median(del_ms):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "indexer-stories")
    ap.add_argument("--steps", type=int, default=3, help="incremental updates after the first quarter (0: none)")
    ap.add_argument("--grid", action="store_true", help="sweep the thresholds (mean F1 over all runs)")
    ap.add_argument("--scale", default="", help="only time synthetic archives of these sizes, e.g. 20000,80000,320000")
    args = ap.parse_args()
    if args.scale:
        scale([int(x.replace("_", "")) for x in args.scale.split(",") if x.strip()])
        return
    work: Path = args.work
    t0 = time.perf_counter()
    rep = build([corpus(work)], work / "index")
    print(
        f"index: {rep.articles} articles, {rep.passages} passages ({time.perf_counter() - t0:.0f} s)", file=sys.stderr
    )
    gold, topic, lang = gold_labels(work / "index")
    days = synthetic_days(topic, gold)
    snap = IndexDir(work / "index").open()
    archive = IndexArchive.of_snapshot(snap)

    results = table(archive, lang, days, gold, DEFAULT_STORIES)
    print(f"\n{DEFAULT_STORIES}\n")
    print("| set | articles | dates | gold pairs | predicted pairs | pair precision | pair recall | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for (name, variant, p, r, npred, ngold, took), (_, _, view) in zip(results, runs(archive, lang, days)):
        print(f"| {name} | {len(view.live)} | {variant} | {ngold} | {npred} | {p:.3f} | {r:.3f} | {took:.2f} |")
    print(f"| **mean** | | | | | **{np.mean([x[2] for x in results]):.3f}** | "
          f"**{np.mean([x[3] for x in results]):.3f}** | |")  # fmt: skip
    everything = runs(archive, lang, days)[-2][2]
    errors = same_language_errors(cluster(everything), everything.live.tolist(), gold, lang)
    print(f"\nsame-language pairs predicted on xq5+fr (undated), none of them gold: {errors}")

    evidence(memory_copy(archive), gold, topic)
    if args.steps:
        rows = np.array(sorted(lang), np.int64)
        for variant, d in (("undated", None), ("dated", days)):
            print(f"\nincremental, xq5+fr {variant}:")
            incremental(archive, rows, d, gold, args.steps, DEFAULT_STORIES)
    if args.grid:
        grid(memory_copy(archive), lang, days, gold)
    snap.close()
    print(f"\n{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
