"""Where everything lives in an index directory; the one place that knows its layout.

index/
manifest.json          the switch (replaced atomically by each build)
versions/<name>/       one folder per published version: its manifest copy, deletions and groups
versions/<name>.partial/  a version being written; never read, removed by the next build
segments/<name>/       immutable segments (SQLite, FAISS, postings), shared by the versions listing them
segments/<name>.partial/  a segment being written
.work/                 build lock, the resumable embedding cache, the source files' states
.work/gate/<version>/  a gated build's candidate while it is judged (gate.py)
.work/rejected/<version>/  the candidates the gate refused, the last few
alerts/alerts.sqlite   saved searches and their matches (alerts.py): kept across versions and rebuilds
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
VERSIONS = "versions"
SEGMENTS = "segments"
WORK = ".work"
PARTIAL = ".partial"
LOCK = "build.lock"
RESUME = "embeddings.sqlite"
FILECACHE = "files.cache"
VERIFIED = "verified.json"
ALERTS = "alerts"
ALERTS_DB = "alerts.sqlite"
GATE_STAGING = "gate"
GATE_REJECTED = "rejected"


@dataclass(frozen=True)
class IndexLayout:
    """The paths of one index directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        """The switch: names the live version."""
        return self.root / MANIFEST

    @property
    def versions(self) -> Path:
        """The folder of data folders."""
        return self.root / VERSIONS

    @property
    def segments(self) -> Path:
        """The folder of segments."""
        return self.root / SEGMENTS

    def segment(self, name: str) -> Path:
        """A written segment's folder."""
        return self.segments / name

    def segment_partial(self, name: str) -> Path:
        """Where a build writes the segment ``name`` before it is complete."""
        return self.segments / f"{name}{PARTIAL}"

    @property
    def work(self) -> Path:
        """Private build state: lock and resume cache."""
        return self.root / WORK

    @property
    def lock(self) -> Path:
        """The build lock's file."""
        return self.work / LOCK

    @property
    def filecache(self) -> Path:
        """Each source file's size, modification time and articles at the live version (filecache.py)."""
        return self.work / FILECACHE

    @property
    def verified(self) -> Path:
        """The checksums builds already verified, by file identity (index.VerifiedFiles)."""
        return self.work / VERIFIED

    @property
    def resume(self) -> Path:
        """The resumable embedding cache."""
        return self.work / RESUME

    @property
    def gate_staging(self) -> Path:
        """Where a gated build stages its candidate, an index directory per version (one build at a time: the lock)."""
        return self.work / GATE_STAGING

    @property
    def gate_rejected(self) -> Path:
        """Where the candidates the gate refused are kept, one folder per version."""
        return self.work / GATE_REJECTED

    @property
    def alerts(self) -> Path:
        """The saved searches' database: beside the versions, so no build, merge or clean-up removes it."""
        return self.root / ALERTS / ALERTS_DB

    def version(self, name: str) -> Path:
        """The data folder of a published version."""
        return self.versions / name

    def partial(self, name: str) -> Path:
        """Where a build writes the version ``name`` before publishing it."""
        return self.versions / f"{name}{PARTIAL}"

    def manifest_temporaries(self) -> list[Path]:
        """Temporaries a build killed while replacing the manifest left behind."""
        return list(self.root.glob(f".{MANIFEST}.*.tmp"))

    def has_published(self) -> bool:
        """Whether some complete (not ``.partial``) data folder exists."""
        return self.versions.is_dir() and any(not p.name.endswith(PARTIAL) for p in self.versions.iterdir())

    def looks_like_index(self) -> bool:
        """A folder holding an index (published or being built), so sources never include one."""
        return self.versions.is_dir() and (self.manifest.is_file() or self.work.is_dir())

    def foreign_entries(self) -> list[str]:
        """Names in the folder that no index puts there (refused as a build target when not empty)."""
        return [p.name for p in self.root.iterdir() if p.name not in (WORK, VERSIONS, SEGMENTS, ALERTS)]


def is_partial(folder: Path) -> bool:
    """Whether a data folder is an unpublished build's."""
    return folder.name.endswith(PARTIAL)
