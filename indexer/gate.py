"""Publishing only what holds up: a new version answers labelled queries before the switch.

A gated build (``BuildSettings(gate=GateSettings(queries=...))``) finalizes its new
version as usual; then, before ``publish``, the labelled queries are asked of the
live version and of the candidate, each opened by a normal ``Searcher`` with its own
model, one after the other, with the options ``indexer eval`` uses (hybrid, top 10,
no highlights). The candidate is published only if it keeps at least ``min_recall``
× the live version's R@10 *and* ``min_recall`` × its MRR@10. Otherwise the live
version stays, the candidate is kept as a complete index directory under
``.work/rejected/<version>/``, and the refusal lists the queries that got worse.

The candidate is a private index directory (``.work/gate/<version>/``) whose manifest
names the new version, holding hard links to the segments it lists: segments are
immutable, so a link costs no copy, nothing can change under it, and a later build's
garbage collection, which unlinks a segment from ``segments/``, leaves it whole.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .embedding import Encoder
from .errors import IndexerError, ModelNotFoundError
from .evaluate import LabelledQuery, Metrics, QueryRun, first_relevant, load_queries, run_queries, summarize
from .faults import crash_point
from .index import IndexDir, Snapshot, data_files, digests
from .layout import MANIFEST, IndexLayout
from .manifest import Manifest, ModelInfo, write_atomic
from .models import ResolvedModel, resolve
from .search import Searcher, SearchOptions

#: what both versions are asked with: ``indexer eval``'s defaults, ranking alone
OPTIONS = SearchOptions(k=10, mode="hybrid", highlight=False)
SHOWN = 20  # queries listed by a refusal; the rest are counted
_EPS = 1e-9  # equal rankings give equal sums: only float noise is forgiven


class GateError(IndexerError):
    """The gate cannot judge as asked: a bad labelled file, or a live version it cannot search."""


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    """Publish a new version only if it answers the labelled queries about as well as the live one."""

    queries: Path  # JSON lines {"query": ..., "relevant": [article ids]}, as for ``indexer eval``
    # the candidate must keep at least min_recall × the live version's R@10 and × its MRR@10
    min_recall: float = 0.95
    keep: int = 3  # refused candidates kept under .work/rejected/ (older ones are deleted)

    def __post_init__(self) -> None:
        r = self.min_recall
        if isinstance(r, bool) or not isinstance(r, int | float) or not (0 < r <= 1):  # NaN fails too
            raise GateError(
                f"--min-recall must be above 0 and at most 1, not {r!r} (0.95: the new version must keep "
                "95 % of the live version's R@10 and MRR@10)"
            )
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 1:
            raise GateError(f"the gate must keep at least one refused candidate, not {self.keep!r}")


@dataclass(frozen=True)
class QueryChange:
    """How one labelled query fared: its first relevant article's rank, live and candidate."""

    query: str
    live_rank: int | None  # 1-based, within the top 10; None: not in the top 10
    candidate_rank: int | None
    live_found: int  # relevant articles in the top 10
    candidate_found: int

    @property
    def lost(self) -> tuple[float, int]:
        """Reciprocal rank and relevant articles lost (negative: gained); sorts worst first, descending."""
        return (_rr(self.live_rank) - _rr(self.candidate_rank), self.live_found - self.candidate_found)

    @property
    def worse(self) -> bool:
        """Whether either measure the gate judges (MRR@10, R@10) fell for this query."""
        rr, found = self.lost
        return rr > _EPS or found > 0

    @property
    def better(self) -> bool:
        """Whether the candidate ranks it better and loses nothing."""
        rr, found = self.lost
        return not self.worse and (rr < -_EPS or found < 0)


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict, with both versions' metrics and every query's change."""

    applied: bool  # False: there was no live version to compare with
    passed: bool
    min_recall: float
    queries_file: Path
    queries: int
    candidate_version: str
    live_version: str | None = None
    live: Metrics | None = None
    candidate: Metrics | None = None
    changes: list[QueryChange] = field(default_factory=list)  # in the file's order
    unknown: int = 0  # queries none of whose articles either version holds (a typo, or stale labels)
    candidate_path: Path | None = None  # where a refused candidate is kept
    reason: str = ""  # why the gate was not applied
    seconds: float = 0.0

    @property
    def worse(self) -> list[QueryChange]:
        """The queries that got worse, worst first."""
        return sorted((c for c in self.changes if c.worse), key=lambda c: (-c.lost[0], -c.lost[1], c.query))

    @property
    def better(self) -> list[QueryChange]:
        """The queries that got better."""
        return [c for c in self.changes if c.better]

    def required(self) -> tuple[float, float]:
        """The R@10 and MRR@10 the candidate had to reach."""
        assert self.live is not None
        return self.min_recall * self.live.r10, self.min_recall * self.live.mrr10


class GateRefusedError(IndexerError):
    """The candidate answered the labelled queries worse than allowed; the live version stays."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        super().__init__(_refusal(report))


@dataclass(frozen=True)
class GatePlan:
    """What a gated build settled before any work: the queries, and the version they are compared with."""

    settings: GateSettings
    queries: list[LabelledQuery]
    live_version: str | None = None  # None: nothing to compare with
    live_model: ModelInfo | None = None
    reason: str = ""  # why the gate will not be applied


# ------------------------------------------------------------ before the build
def load(settings: GateSettings) -> list[LabelledQuery]:
    """The labelled queries; a missing, unreadable or empty file fails here, before any work."""
    try:
        return load_queries(Path(settings.queries))
    except IndexerError as exc:
        raise GateError(f"--gate: {exc}") from None


def plan(
    idx: IndexDir,
    settings: GateSettings,
    queries: list[LabelledQuery],
    *,
    live: Snapshot | None,
    model: ResolvedModel,
    live_encoder: Encoder | None = None,
) -> GatePlan:
    """Check, before any embedding, that the live version can be searched and knows the labelled articles.

    ``live`` is the build's own snapshot of the live version when it has one (else it
    is opened here); ``model`` is the candidate's. No live version at all (a first
    build, ``--full`` into an empty folder) means nothing to compare with.
    """
    layout = idx.layout
    if not (layout.manifest.exists() or layout.has_published()):
        return GatePlan(settings, queries, reason="no live version to compare with")
    opened = None
    try:
        snap = live if live is not None else (opened := idx.open())
    except IndexerError as exc:
        raise _unsearchable(exc) from None
    try:
        ids = sorted({a for q in queries for a in q.relevant})
        if not snap.store.known_by_id(ids):
            raise GateError(
                f"--gate {settings.queries}: none of its {len(queries)} queries names an article of the live "
                f'version (first id: {ids[0]!r}) — label them with the article ids that "indexer search --json" '
                "prints"
            )
        info = snap.manifest.model
        if live_encoder is None and (info.name, info.fingerprint) != (model.name, model.fingerprint):
            _check_model(info)
        return GatePlan(settings, queries, snap.manifest.version, info)
    finally:
        if opened is not None:
            opened.close()


def _check_model(info: ModelInfo) -> None:
    """The live version's model must be here to search it (as a Searcher resolves it: offline)."""
    try:
        found = resolve(info.name)
    except ModelNotFoundError:
        raise GateError(
            f"--gate: the live version was built with {info.name!r}, which is not on this machine, so it "
            "cannot be searched for the comparison — put that model back, or build without --gate"
        ) from None
    if found.fingerprint != info.fingerprint:
        raise GateError(
            f"--gate: the live version was built with {info.name!r} ({info.fingerprint}), but that name now "
            "resolves to other weights, so it cannot be searched for the comparison — build without --gate"
        )


def _unsearchable(exc: BaseException) -> GateError:
    return GateError(
        f"--gate: the live version cannot be searched ({exc}), so there is nothing to compare the new "
        'version with — build without --gate to replace it (e.g. "indexer build --full")'
    )


def clean(idx: IndexDir) -> None:
    """Drop a candidate that a killed gated build left staged (under the build lock)."""
    shutil.rmtree(idx.layout.gate_staging, ignore_errors=True)


# ---------------------------------------------------------- after finalize
def judge(
    idx: IndexDir,
    gate: GatePlan,
    folder: Path,
    manifest: Manifest,
    *,
    encoder: Encoder,
    live_encoder: Encoder | None = None,
) -> GateReport:
    """Compare the finalized version (``folder``, ``manifest``) with the live one; raise if it is refused.

    Returns the report when the candidate may be published (or when there is no live
    version); raises ``GateRefusedError`` once the candidate is kept for inspection.
    The live version is not touched either way.
    """
    t0 = time.perf_counter()
    s = gate.settings
    base = GateReport(
        applied=False, passed=True, min_recall=s.min_recall, queries_file=Path(s.queries),
        queries=len(gate.queries), candidate_version=manifest.version, reason=gate.reason,
    )  # fmt: skip
    if gate.live_version is None:
        return base
    # linking a segment file into the candidate, and unlinking it again, moves its ctime, not its
    # bytes: what the build had verified stays verified, or its next open would read it all again
    trust = idx.trust
    files = [(idx.layout.segment(seg.name) / rel, d) for seg in manifest.segments for rel, d in seg.files.items()]
    verified = [(p, d) for p, d in files if trust is not None and trust.holds(p, d)]
    staged = stage(idx, folder, manifest)
    try:
        crash_point("gate")
        if live_encoder is None and gate.live_model is not None and _same_model(gate.live_model, manifest.model):
            live_encoder = encoder = _SharedQueries(encoder)  # one model in memory, each query embedded once
        try:
            live_runs, live_known = _ask(idx.path, live_encoder, gate.queries)
        except IndexerError as exc:  # a file the build trusted fails a searcher's full check, a model that fails
            raise _unsearchable(exc) from None
        crash_point("gate")
        cand_runs, cand_known = _ask(staged, encoder, gate.queries)
        crash_point("gate")
        report = _compare(replace(base, applied=True, live_version=gate.live_version), gate.queries,
                          live_runs, cand_runs, live_known | cand_known)  # fmt: skip
        report = replace(report, seconds=time.perf_counter() - t0)
        if report.passed:
            return report
        raise GateRefusedError(replace(report, candidate_path=keep_rejected(idx, staged, s.keep)))
    finally:
        clean(idx)  # a passed candidate (links only), or the empty staging folder of a refused one
        for p, d in verified:
            assert trust is not None
            trust.note(p, d)


class _SharedQueries(Encoder):
    """The build's encoder, remembering query vectors: with one model, both versions get the same ones.

    The searchers embed one query at a time, as ``indexer eval`` does, so the vectors are
    those it would use; embedding them once halves what a gate costs.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.vectors: dict[str, np.ndarray] = {}

    @property
    def dimension(self) -> int:
        """The model's."""
        return self.encoder.dimension

    @property
    def max_seq_length(self) -> int:
        """The model's."""
        return self.encoder.max_seq_length

    def token_spans(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """The model's."""
        return self.encoder.token_spans(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """The model's."""
        return self.encoder.embed_passages(texts)

    def load(self) -> None:
        """The model's."""
        self.encoder.load()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """The model's, computed once per text."""
        todo = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if todo:
            self.vectors.update(zip(todo, self.encoder.embed_queries(todo)))
        return np.stack([self.vectors[t] for t in texts])


def _same_model(a: ModelInfo, b: ModelInfo) -> bool:
    return (a.name, a.fingerprint, a.backend) == (b.name, b.fingerprint, b.backend)


def _ask(path: Path, encoder: Encoder | None, queries: list[LabelledQuery]) -> tuple[list[QueryRun], set[str]]:
    """Each query's ranking in the index at ``path``, and which labelled articles it holds.

    The searcher is closed before the other version is opened: two searchers of a large
    index at once would hold both versions' vectors and postings in memory.
    """
    searcher = Searcher(path, encoder=encoder)
    try:
        snap = searcher.snapshot()
        try:
            runs = run_queries(searcher, queries, OPTIONS)
            known = set(snap.store.known_by_id(sorted({a for q in queries for a in q.relevant})))
        finally:
            snap.close()
        return runs, known
    finally:
        searcher.close()


def _compare(
    base: GateReport, queries: list[LabelledQuery], live: list[QueryRun], cand: list[QueryRun], known: set[str]
) -> GateReport:
    lm, cm = summarize(queries, live), summarize(queries, cand)
    changes = [
        QueryChange(
            q.query,
            first_relevant(a.ranked, q.relevant),
            first_relevant(b.ranked, q.relevant),
            sum(1 for x in a.ranked[:10] if x in q.relevant),
            sum(1 for x in b.ranked[:10] if x in q.relevant),
        )
        for q, a, b in zip(queries, live, cand)
    ]
    r = base.min_recall
    passed = cm.r10 >= r * lm.r10 - _EPS and cm.mrr10 >= r * lm.mrr10 - _EPS
    unknown = sum(1 for q in queries if not q.relevant & known)
    return replace(base, passed=passed, live=lm, candidate=cm, changes=changes, unknown=unknown)


# ------------------------------------------------------------ the candidate
def stage(idx: IndexDir, folder: Path, manifest: Manifest) -> Path:
    """A complete index directory for the finalized version, under ``.work/gate/``, without copying data.

    ``folder`` is the version's folder (its deletions and groups, no manifest yet);
    its segments are all complete in ``segments/``.
    """
    clean(idx)
    cand = idx.layout.gate_staging / manifest.version
    layout = IndexLayout(cand)
    for seg in manifest.segments:
        src = idx.layout.segment(seg.name)
        for rel in seg.files:
            _link(src / rel, layout.segment(seg.name) / rel)
    version = layout.version(manifest.version)
    version.mkdir(parents=True)
    for p in data_files(folder):
        _link(p, version / p.relative_to(folder))
    m = replace(manifest, files=digests(version))
    (version / MANIFEST).write_text(m.to_json(), encoding="utf-8")
    write_atomic(layout.manifest, m.to_json())
    return cand


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links: a copy is as good, only slower
        shutil.copy2(src, dst)


def keep_rejected(idx: IndexDir, staged: Path, keep: int) -> Path:
    """Move a refused candidate to ``.work/rejected/<version>/``; only the last ``keep`` stay."""
    root = idx.layout.gate_rejected
    root.mkdir(parents=True, exist_ok=True)
    final = root / staged.name
    if final.exists():  # the same version name refused twice within one second: the newer wins
        shutil.rmtree(final)
    os.replace(staged, final)
    kept = rejected(idx)
    for p in kept[: max(0, len(kept) - keep)]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def rejected(idx: IndexDir) -> list[Path]:
    """The refused candidates kept, oldest first.

    Version names sort in time (number, then UTC timestamp), and a refusal never takes a
    number below an earlier one's: the live version's number only grows.
    """
    root = idx.layout.gate_rejected
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name) if root.is_dir() else []


# -------------------------------------------------------------- formatting
def summary(report: GateReport) -> str:
    """One line: the verdict and both versions' metrics (what a build prints when it published)."""
    if not report.applied:
        return f"gate not applied: {report.reason}; published without comparison"
    assert report.live is not None and report.candidate is not None
    lm, cm = report.live, report.candidate
    need_r, need_m = report.required()
    verdict = "passed" if report.passed else "refused"
    return (
        f"gate {verdict} on {report.queries} labelled queries (hybrid): R@10 {lm.r10:.3f} → {cm.r10:.3f} "
        f"(needs {need_r:.3f}), MRR@10 {lm.mrr10:.3f} → {cm.mrr10:.3f} (needs {need_m:.3f}); "
        f"{len(report.worse)} worse, {len(report.better)} better"
    )


def report_lines(report: GateReport, shown: int = SHOWN) -> list[str]:
    """What the CLI prints about a gate: the summary, and for a refusal where the candidate is and what got worse."""
    lines = [summary(report)]
    if report.unknown:
        lines.append(
            f"  {_count(report.unknown, 'labelled query names', 'labelled queries name')} no article of either "
            "version — check their ids "
            '(the article ids "indexer search --json" prints)'
        )
    if report.passed:
        return lines
    path = report.candidate_path
    lines.append(f"  version {report.live_version} stays live; the refused version {report.candidate_version} "
                 f"is kept at {path}")  # fmt: skip
    lines.append(f'  inspect it: indexer search "QUERY" --index {path}  ·  indexer eval {report.queries_file} '
                 f"--index {path}")  # fmt: skip
    worse = report.worse
    if worse:
        lines.append(
            f"  {_count(len(worse), 'query', 'queries')} got worse (rank of the first relevant article, live → new):"
        )
        for c in worse[:shown]:
            found = f"  (relevant in top 10: {c.live_found} → {c.candidate_found})" if c.live_found > 1 else ""
            lines.append(f"    {_rank(c.live_rank):>14} → {_rank(c.candidate_rank):<14} {_quote(c.query)}{found}")
        if len(worse) > shown:
            lines.append(f"    … and {len(worse) - shown} more")
    lines.append("  to publish the change anyway, build again without --gate")
    return lines


def _refusal(report: GateReport) -> str:
    """The refusal on one line (the CLI's ``error:`` line when it prints nothing else)."""
    lm, cm = report.live, report.candidate
    assert lm is not None and cm is not None
    need_r, need_m = report.required()
    return (
        f"the gate refused version {report.candidate_version}: R@10 {lm.r10:.3f} → {cm.r10:.3f} (needs "
        f"{need_r:.3f}), MRR@10 {lm.mrr10:.3f} → {cm.mrr10:.3f} (needs {need_m:.3f}), {len(report.worse)} of "
        f"{report.queries} queries worse — version {report.live_version} stays live, the new one is kept at "
        f"{report.candidate_path}; build without --gate to publish it anyway"
    )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _rank(rank: int | None) -> str:
    return "not in top 10" if rank is None else str(rank)


def _rr(rank: int | None) -> float:
    return 0.0 if rank is None else 1.0 / rank


def _quote(query: str, width: int = 90) -> str:
    text = " ".join(query.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")
