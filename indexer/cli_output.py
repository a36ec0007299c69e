"""What the CLI prints for people: build reports, progress, hits, index facts."""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .build import BuildProgress, BuildReport
    from .facet_counts import MatchCounts
    from .merge import MergeReport
    from .milvus_sync import SyncReport
    from .records import Explanation
    from .search import IndexInfo, SearchResult
    from .similar import SimilarResult
    from .story_index import Story


def print_sync(r: SyncReport) -> None:
    """A store sync's outcome."""
    if r.up_to_date:
        click.echo(f"Store {r.store} is up to date (version {r.version}, {r.passages} passages)")
        return
    how = f"created ({r.recreated})" if r.recreated else "updated"
    lexical = "its own BM25" if r.bm25 else "BM25 from the index"
    click.echo(f"Store {r.store} {how} — version {r.version}")
    counts = f"{r.inserted} inserted, {r.deleted} deleted; now {r.passages} passages"
    click.echo(f"  {counts} ({lexical}), {r.seconds:.1f} s")


class ProgressBar:
    """A tqdm bar over files, with the embedding rate."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, p: BuildProgress) -> None:
        """Show a build's progress."""
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=p.files_total, unit="file", file=sys.stderr, dynamic_ncols=True, disable=None, leave=False
            )
        self.bar.n = p.files_done
        rate = p.passages_embedded / p.elapsed if p.elapsed > 0 else 0.0
        self.bar.set_postfix_str(f"{p.passages_embedded} passages embedded, {rate:.1f} passages/s", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


SKIPS_SHOWN = 1000  # skipped files listed one by one in a build report; the rest are counted


def print_report(r: BuildReport, target: Path) -> None:
    """A build's outcome."""
    if not r.published:
        click.echo(f"Index {target} is up to date (version {r.version}): no article added, changed or removed")
    else:
        kind = f"full build ({r.reason})" if r.full else "incremental update"
        click.echo(f"Index {target} — version {r.version}, {kind}")
    click.echo(
        f"  articles: {r.added} added, {r.updated} updated, {r.removed} removed, "
        f"{r.unchanged} unchanged, {len(r.skipped)} skipped"
    )
    stories = f", {r.stories} {'story' if r.stories == 1 else 'stories'} of two or more articles" if r.published else ""
    click.echo(f"  now {r.articles} articles, {r.passages} passages{stories}")
    click.echo(
        f"  embedded {r.embedded} passages ({r.tokens:,} tokens, {r.tokens_per_second:,.0f} tokens/s), "
        f"reused {r.reused}; {r.seconds:.1f} s"
    )
    if r.merge is not None and r.merge.merges:
        click.echo(f"  then {r.merge.merges} merge(s) of {r.merge.passages} passages, {r.merge.seconds:.1f} s "
                   f"({r.merge.segments} segment(s) now)")  # fmt: skip
    if r.alerts is not None and not r.alerts.error:
        a = r.alerts
        click.echo(f"  saved searches: {a.matches} new match(es) for {a.searches} search(es) in {a.passages} new "
                   f"passage(s), {a.seconds:.2f} s — indexer alerts new")  # fmt: skip
    for w in r.warnings:
        click.echo(f"Warning: {w}")
    if r.skipped:
        click.echo("Skipped:")
        for s in r.skipped[:SKIPS_SHOWN]:
            click.echo(f"  {s.path}: {s.reason}")
        rest = r.skipped[SKIPS_SHOWN:]
        if rest:  # a million bad files are not a million lines: the rest counted by reason
            reasons = Counter(s.reason.split(" (", 1)[0] for s in rest).most_common(5)
            listed = ", ".join(f"{n:,} × {why}" for why, n in reasons)
            click.echo(f"  … and {len(rest):,} more ({listed}{', …' if len(reasons) == 5 else ''})")
    if r.store is not None:
        print_sync(r.store)


def print_merge(r: MergeReport, target: Path) -> None:
    """``indexer merge``'s outcome."""
    if not r.merges:
        click.echo(f"Index {target}: nothing to merge ({r.segments} segment(s))")
        return
    click.echo(f"Index {target}: {r.merges} merge(s), {r.passages} passages rewritten in {r.seconds:.1f} s")
    for run in r.runs:
        click.echo(f"  {run}")
    click.echo(f"  now {r.segments} segment(s)")


def print_hits(result: SearchResult, *, explain: bool = False) -> None:
    """Hits as readable text, with their best sentences; ``explain``: why each is where it is."""
    if result.stories is not None:
        print_stories(result, explain=explain)
        return
    click.echo(f"Query: {result.query}  ({len(result.hits)} results, {result.mode}, {result.took_ms:.0f} ms)")
    _notes(result)
    for h in result.hits:
        facts = " · ".join(x for x in (h.source, h.date, h.lang) if x)
        click.echo(f"\n{h.rank:>3}. {h.title or h.article_id}  [{h.score:.3f}]" + (f"  {facts}" if facts else ""))
        click.echo(f"     {h.article_id} (characters {h.start}–{h.end})" + (f"  {h.url}" if h.url else ""))
        # the sentence(s) that answer, rather than the passage's opening
        best = " … ".join(h.text[s - h.start : e - h.start] for s, e in h.highlights)
        snippet = best or h.text
        snippet = " ".join(snippet.split())
        snippet = snippet if len(snippet) <= 400 else snippet[:400].rsplit(" ", 1)[0] + " …"
        click.echo(textwrap.indent(textwrap.fill(snippet, width=96), "     "))
        if h.duplicates:
            click.echo(f"     also in: {', '.join(h.duplicates)}")
        if explain and h.explanation is not None:
            for line in explanation_text(h.explanation):
                click.echo(textwrap.indent(textwrap.fill(line, width=96, subsequent_indent="  "), "     "))
    click.echo("")


def _notes(result: SearchResult) -> None:
    """What to know about a result before its hits."""
    if result.truncated:
        click.echo("  (the query was shortened to its first 2,000 characters)")
    if not result.hits:
        click.echo("  no results")
    elif result.no_close_match:
        click.echo("  No close match in this collection; the nearest passages are below.")
    if result.hits and not result.calibrated:
        click.echo("  (scores are not calibrated for this index's model: they order the results only)")


def print_stories(result: SearchResult, *, explain: bool = False) -> None:
    """A search by story: each story's best passage, then its articles in date order."""
    stories = result.stories or []
    count = f"{len(stories)} {'story' if len(stories) == 1 else 'stories'}"
    click.echo(f"Query: {result.query}  ({count}, {result.mode}, {result.took_ms:.0f} ms)")
    _notes(result)
    for found in stories:
        h, story = found.hit, found.story
        span = " – ".join(dict.fromkeys(d for d in (story.first_date, story.last_date) if d))
        facts = " · ".join(x for x in (f"story {story.id}", story.coverage, span) if x)
        click.echo(f"\n{h.rank:>3}. {story.title or h.title or h.article_id}  [{h.score:.3f}]  {facts}")
        click.echo(f"     best passage: {h.title or h.article_id} — {h.article_id} (characters {h.start}–{h.end})")
        best = " … ".join(h.text[s - h.start : e - h.start] for s, e in h.highlights)
        snippet = " ".join((best or h.text).split())
        snippet = snippet if len(snippet) <= 300 else snippet[:300].rsplit(" ", 1)[0] + " …"
        click.echo(textwrap.indent(textwrap.fill(snippet, width=96), "     "))
        if explain and h.explanation is not None:
            for line in explanation_text(h.explanation):
                click.echo(textwrap.indent(textwrap.fill(line, width=96, subsequent_indent="  "), "     "))
        if len(story.members) > 1:
            click.echo(f"     {len(story.members)} articles:")
            for line in story_member_lines(story):
                click.echo(f"       {line}")
    click.echo("")


def story_member_lines(story: Story) -> list[str]:
    """One line per member of a story, in date order: date, source, language, title, id, url."""
    lines = []
    for m in story.members:
        facts = " · ".join(x for x in (m.source, m.lang) if x)
        url = f"  {m.url}" if m.url else ""
        lines.append(f"{m.date[:10] if m.date else 'undated':10}  {facts:<22} {m.title or m.id}  ({m.id}){url}")
    return lines


def print_story(story: Story) -> None:
    """``indexer story``'s text: the story's facts, then its articles in date order."""
    span = " – ".join(dict.fromkeys(d for d in (story.first_date, story.last_date) if d)) or "undated"
    click.echo(f"Story {story.id}: {story.title or story.representative}")
    click.echo("  " + ", ".join(x for x in (f"{len(story.members)} article(s)", story.coverage, span) if x))
    click.echo(f"  sources:   {', '.join(story.sources) or '-'}")
    click.echo(f"  languages: {', '.join(story.langs) or '-'}")
    for line in story_member_lines(story):
        click.echo(f"  {line}")


def explanation_text(why: Explanation) -> list[str]:
    """``--explain``'s lines for one hit: each side's evidence and rank, the matched terms, the scores."""
    e = why.evidence
    lines = []
    if e.dense is not None:
        sentence = f", best sentence {e.sentence:.4f}" if e.sentence is not None else ""
        lines.append(f"dense {e.dense:.4f}{sentence} (rank {why.dense_rank})")
    if e.bm25 is not None:
        rank = f"rank {why.bm25_rank}" if why.bm25_rank else "no query term"
        terms = ", ".join(f"{t.term} ← {t.word} ({t.analysis}) {t.bm25:.3f}" for t in why.terms)
        lines.append(f"bm25 {e.bm25:.3f} ({rank})" + (f": {terms}" if terms else ""))
        weight = f"language weight {e.lang_weight:.2f}, " if e.lang_weight is not None else ""
        lines.append(f"{weight}coverage {e.coverage or 0:.2f}, query words in the passage {e.matched or 0:.2f}")
    lines.append(f"fused {e.fused:.4f} → calibrated {why.calibrated:.3f} ({why.calibration})")
    return ["why: " + lines[0], *("     " + line for line in lines[1:])]


def print_info(path: Path, info: IndexInfo) -> None:
    """``indexer info``'s text: the manifest, counts and facets."""
    m, counts, facets = info.manifest, info.counts, info.facets
    click.echo(f"Index:      {path}")
    click.echo(f"Version:    {m.version} (format v{m.format_version}, indexer {m.package_version})")
    click.echo(f"Built at:   {m.built_at} (created {m.created_at})")
    click.echo(f"Model:      {m.model.name} [{m.model.backend}], {m.model.dimension} dimensions, {m.model.fingerprint}")
    click.echo(f"Chunker:    {m.chunker.to_dict()}")
    from .calibration import for_model

    scores = for_model(m.model.name, m.model.fingerprint)
    if scores.fitted:
        click.echo(f"Scores:     calibrated, {scores.label} on {scores.fitted_on}")
    else:
        click.echo(f"Scores:     {scores.label}: they order the results but are not chances of an answer")
    v = m.vectors
    tuned = [f"{k} {value}" for k, value in (("nprobe", v.nprobe), ("efSearch", v.efSearch)) if value is not None]
    tuned += [f"best {v.rerank} re-scored exactly"] if v.rerank else []
    tuned += [f"recall@10 {v.recall_at_10}"] if v.recall_at_10 < 1.0 else []
    how = "automatic" if v.auto else "forced with --faiss"
    click.echo(f"Vectors:    {v.faiss}, {how} ({'; '.join([str(v.count) + ' vectors', *tuned])})")
    if v.warning:
        click.echo(f"Warning:    {v.warning}")
    if m.segments:
        sizes = ", ".join(f"{s.name} {s.passages} ({s.vectors.faiss})" for s in m.segments[:6])
        more = f", … {len(m.segments) - 6} more" if len(m.segments) > 6 else ""
        click.echo(f"Segments:   {len(m.segments)}: {sizes}{more}")
    click.echo(f"Articles:   {counts['articles']}")
    click.echo(f"Passages:   {counts['passages']}")
    click.echo(f"Languages:  {', '.join(facets.langs) or '-'}")
    click.echo(f"Sources:    {', '.join(facets.sources) or '-'}")
    if facets.dates:
        click.echo(f"Dates:      {' to '.join(facets.dates)}")


_LABEL = {"day": 10, "week": 10, "month": 7, "year": 4}  # characters of the ISO start date a bar is named by


def print_counts(counts: MatchCounts) -> None:
    """``--facets``: matching articles per language, source and period, as lines and a text histogram."""
    click.echo(f"Matching articles among the top {counts.depth} passages (each facet ignores its own filter):")
    for name, values in (("languages", counts.langs), ("sources", counts.sources)):
        shown = ", ".join(f"{c.value} {c.count}" for c in values[:20])
        more = f", … {len(values) - 20} more" if len(values) > 20 else ""
        click.echo(f"  {name}: {shown or '-'}{more}")
    hist = counts.dates
    if hist.unit is not None:
        click.echo(f"  per {hist.unit}" + (" (from Monday)" if hist.unit == "week" else "") + ":")
        top = max(b.count for b in hist.buckets) or 1
        for b in hist.buckets:
            bar = "█" * max(1 if b.count else 0, round(24 * b.count / top))
            click.echo(f"    {b.start[: _LABEL[hist.unit]]:<10} {bar} {b.count}")
    click.echo(f"  undated: {counts.undated}")
    click.echo("")


def print_similar(result: SimilarResult) -> None:
    """``indexer similar``'s text: the neighbours, with their facts and similarity."""
    lang = f", {result.lang}" if result.lang else ""
    click.echo(f"Similar to: {result.title or result.article_id}  ({result.article_id}{lang}; "
               f"{len(result.hits)} results, {result.took_ms:.0f} ms)")  # fmt: skip
    if result.excluded:
        click.echo(f"  its near-duplicates, left out: {', '.join(result.excluded)}")
    if not result.hits:
        click.echo("  no other article")
    for h in result.hits:
        facts = " · ".join(x for x in (h.source, h.date, h.lang) if x)
        click.echo(f"\n{h.rank:>3}. {h.title or h.article_id}  [{h.similarity:.3f}]" + (f"  {facts}" if facts else ""))
        click.echo(f"     {h.article_id}" + (f"  {h.url}" if h.url else ""))
        if h.duplicates:
            click.echo(f"     also in: {', '.join(h.duplicates)}")
    click.echo("")
