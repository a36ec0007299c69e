"""The synthetic archive the update benches build and edit, and the folder they work in.

``Synthetic.generate`` writes ``bench/synth_archive.py``'s archive as JSONL files (keeping
``reserve`` articles back for the "add" steps), with ``SynthEncoder`` for the model (e5-shaped
vectors in microseconds: what the benches measure is the index) and the default model's
name for the manifest (so scores are calibrated as for it). ``Synthetic.build`` is one
``indexer.build.build`` call on an index, as ``indexer build`` runs it; ``Synthetic.edit``
adds 10 articles, changes one or deletes one. Used by bench/updates.py, bench/alerts_cost.py
and bench/story_builds.py; ``WorkFolder`` by those and bench/version_switch.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth_archive as sa  # noqa: E402
from scale import Mixture  # noqa: E402

from indexer.build import BuildProgress, BuildReport, BuildSettings, build  # noqa: E402
from indexer.models import ResolvedModel, resolve  # noqa: E402

ADDED = 10  # articles per "add" step
UPDATE_KINDS = ("add", "change", "delete")


@dataclass
class WorkFolder:
    """Where a bench writes: ``--work``, else a temporary folder; unless ``keep``, what it made there goes."""

    base: Path
    keep: bool
    owned: bool  # the whole folder is the bench's (a temporary one, or one it keeps its cache in)
    made: list[Path] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def of(cls, work: Path | None, prefix: str, *, keep: bool, owned: bool = False) -> Iterator[WorkFolder]:
        """The folder, made if need be; ``owned``: ``work`` is removed whole too (unless ``keep``)."""
        folder = cls(work or Path(tempfile.mkdtemp(prefix=prefix)), keep, owned or work is None)
        folder.base.mkdir(parents=True, exist_ok=True)
        try:
            yield folder
        finally:
            folder.close()

    def fresh(self, name: str) -> Path:
        """A folder of its own for one part of the run (an archive size), emptied of what an earlier run left."""
        path = self.base / name
        shutil.rmtree(path, ignore_errors=True)
        self.made.append(path)
        return path

    def done(self, path: Path) -> None:
        """A part finished: its folder goes now unless ``keep`` (so the next size has the disk)."""
        if not self.keep:
            shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        if self.keep:
            return
        for path in self.made:
            shutil.rmtree(path, ignore_errors=True)
        if self.owned:
            shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Archive:
    """A synthetic archive as JSONL files, and the edits the steps make to it."""

    articles: sa.Articles
    folder: Path
    n_base: int  # articles written at first; those after it are kept for the "add" steps
    story_of: dict[str, int]
    picks: list[int] = field(default_factory=list)  # articles to change or delete, never the same twice
    next_new: int = 0
    files: int = 0  # JSONL files written at first

    @classmethod
    def generate(
        cls, n_passages: int, folder: Path, *, seed: int, reserve: int, shape: Path | None
    ) -> tuple[Archive, Mixture]:
        vocab = sa.load_vocabularies()
        per_article = sa._calibrate(vocab, seed)
        plan = sa.make_plan(n_passages + round(reserve * per_article), per_article, seed, vocab)
        arts = sa.Articles(plan, vocab)
        n_total = len(plan.source)
        archive = cls(arts, folder, n_total - reserve, {}, next_new=n_total - reserve)
        folder.mkdir(parents=True, exist_ok=True)
        # shard by shard, as synth_archive's Articles.write does, but only the first n_base articles
        for s in range(0, archive.n_base, sa.SHARD):
            lines = [archive._line(i) for i in range(s, min(archive.n_base, s + sa.SHARD))]
            archive.shard(s).write_text("\n".join(lines) + "\n", encoding="utf-8")
            archive.files += 1
        archive.picks = random.Random(seed).sample(range(archive.n_base), min(archive.n_base, 2 * reserve))
        return archive, Mixture(n_passages, sa.load_shape(shape)[0], seed=1)

    def shard(self, i: int) -> Path:
        return self.folder / f"articles-{i // sa.SHARD:04d}.jsonl"

    def _line(self, i: int) -> str:
        rec = self.articles.record(i)
        self.story_of.setdefault(rec["title"], int(self.articles.plan.story[i]))
        return json.dumps(rec, ensure_ascii=False)

    @staticmethod
    def _id(i: int) -> str:
        return f"syn-{i:07d}"

    def add(self, name: str) -> str:
        """A new JSONL file of ``ADDED`` articles never seen before."""
        first, self.next_new = self.next_new, self.next_new + ADDED
        lines = [self._line(i) for i in range(first, self.next_new)]
        (self.folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return f"{self._id(first)}…{self._id(self.next_new - 1)}"

    def _rewrite(self, i: int, edit: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Rewrite article ``i``'s file with ``edit`` applied to its record (None drops it), as an editor saves."""
        path, key = self.shard(i), f'"id": "{self._id(i)}"'
        out, found = [], False
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not found and key in line:
                    found = True
                    rec = edit(json.loads(line))
                    if rec is None:
                        continue
                    line = json.dumps(rec, ensure_ascii=False) + "\n"
                out.append(line)
        if not found:
            raise RuntimeError(f"{self._id(i)} not in {path}")
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(out), encoding="utf-8")
        os.replace(tmp, path)

    def change(self, note: str) -> str:
        """One article's text edited: a sentence added to its middle paragraph (title kept)."""
        i = self.picks.pop()

        def edit(rec: dict[str, Any]) -> dict[str, Any]:
            paras = rec["text"].split("\n\n")
            k = len(paras) // 2
            paras[k] = f"{paras[k]} ({note})"
            return {**rec, "text": "\n\n".join(paras)}

        self._rewrite(i, edit)
        return self._id(i)

    def delete(self) -> str:
        i = self.picks.pop()
        self._rewrite(i, lambda _: None)
        return self._id(i)


@dataclass
class Synthetic:
    """An archive with the encoder and model its builds use."""

    archive: Archive
    encoder: sa.SynthEncoder
    model: ResolvedModel

    @classmethod
    def generate(cls, n_passages: int, folder: Path, *, seed: int, reserve: int, shape: Path | None) -> Synthetic:
        """About ``n_passages`` passages written under ``folder``, ``reserve`` articles kept for "add" steps."""
        archive, mixture = Archive.generate(n_passages, folder, seed=seed, reserve=reserve, shape=shape)
        encoder = sa.SynthEncoder(mixture)
        encoder.story_of = archive.story_of  # one dict: titles added later are found too
        return cls(archive, encoder, resolve())

    def build(
        self, index: Path, settings: BuildSettings, *, progress: Callable[[BuildProgress], None] | None = None
    ) -> tuple[float, BuildReport]:
        """Build ``index`` from the archive's files; the wall seconds it took and its report."""
        t0 = time.perf_counter()
        rep = build([self.archive.folder], index, settings, encoder=self.encoder, model=self.model, progress=progress)
        return time.perf_counter() - t0, rep

    def edit(self, kind: str, run: str) -> str:
        """One of ``UPDATE_KINDS`` applied to the files (``run`` names it); what was added, changed or deleted."""
        if kind == "add":
            return self.archive.add(f"added-{run}")
        if kind == "change":
            return self.archive.change(f"correction {run}")
        if kind == "delete":
            return self.archive.delete()
        raise ValueError(f"unknown edit {kind!r}: one of {', '.join(UPDATE_KINDS)}")
