"""The index manifest: what was built, with what, and which data folder is live.

``manifest.json`` at the top of an index directory is the single switch point: a
build writes a complete new data folder under ``versions/``, then atomically
replaces the manifest to name it. Readers always go through the manifest.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .chunking import ChunkSettings
from .errors import IndexCorruptError, IndexNotFoundError, IndexVersionError
from .layout import IndexLayout
from .vector_plan import IndexPolicy, VectorIndexInfo

#: Bump when the layout of the index directory changes; add a migration or a refusal test.
#: v1: SQLite + FAISS. v2: + BM25 folder, near-duplicate signatures, sentence vectors.
#: v3: immutable segments (SQLite, FAISS, postings each) with per-version deletions and groups.
FORMAT_VERSION = 3


@dataclass(frozen=True)
class ModelInfo:
    """The model an index was built with, and its fingerprint."""
    name: str
    fingerprint: str
    dimension: int
    backend: str
    origin: str = ""
    max_seq_length: int = 512


@dataclass(frozen=True)
class LexicalInfo:
    """The manifest's ``lexical`` entry: the BM25 index and the analysis its terms came from."""

    kind: str = "bm25s"
    k1: float = 1.2
    b: float = 0.75
    documents: int = 0
    vocabulary: int = 0
    analyzer: int | None = None  # analysis.ANALYZER_VERSION when the terms were made

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON holds it."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> LexicalInfo:
        """Decode the entry (older indexes may lack it: the defaults)."""
        if not isinstance(data, dict):
            raise TypeError("lexical must be an object")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class SegmentInfo:
    """A segment's entry in the manifest: what it holds and the checksum of each of its files."""

    name: str
    articles: int  # rows written, deleted ones included (the version's deletions say which)
    passages: int
    rows: tuple[int, int]  # article row ids [lo, hi)
    ids: tuple[int, int]  # passage ids [lo, hi): its vectors' FAISS ids
    vectors: VectorIndexInfo = field(default_factory=VectorIndexInfo)
    files: dict[str, str] = field(default_factory=dict)  # name inside the folder → "sha256:<hex>"

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON holds it."""
        return {
            "name": self.name,
            "articles": self.articles,
            "passages": self.passages,
            "rows": list(self.rows),
            "ids": list(self.ids),
            "vectors": self.vectors.to_dict(),
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SegmentInfo:
        """Decode an entry; raises ``KeyError``/``TypeError``/``ValueError`` on a bad one."""
        if not isinstance(data, dict):
            raise TypeError("a segment must be an object")
        rows, ids = data["rows"], data["ids"]
        if not (isinstance(rows, list) and isinstance(ids, list) and len(rows) == 2 and len(ids) == 2):
            raise TypeError("a segment's ranges must be pairs")
        files = data.get("files", {})
        if not isinstance(files, dict):
            raise TypeError("a segment's files must be an object")
        name = data["name"]
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError("a segment has an invalid name")
        return cls(
            name=name,
            articles=int(data["articles"]),
            passages=int(data["passages"]),
            rows=(int(rows[0]), int(rows[1])),
            ids=(int(ids[0]), int(ids[1])),
            vectors=VectorIndexInfo.from_dict(data.get("vectors", {})),
            files={str(k): str(v) for k, v in files.items()},
        )


@dataclass(frozen=True)
class Manifest:
    """What a published version holds and how it was built."""

    format_version: int
    package_version: str
    version: str  # data folder under versions/
    created_at: str
    built_at: str
    model: ModelInfo
    chunker: ChunkSettings
    vectors: VectorIndexInfo
    counts: dict[str, int]
    sources: list[str] = field(default_factory=list)
    lexical: LexicalInfo = field(default_factory=LexicalInfo)
    # data file name → "sha256:<hex>", set when the version is published and checked
    # when it is opened: a truncated or garbled file is refused, never searched
    files: dict[str, str] = field(default_factory=dict)
    policy: IndexPolicy = field(default_factory=IndexPolicy)  # how the vector index was chosen and tuned
    segments: list[SegmentInfo] = field(default_factory=list)  # in id order

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON holds it."""
        return {
            "format_version": self.format_version,
            "package_version": self.package_version,
            "version": self.version,
            "created_at": self.created_at,
            "built_at": self.built_at,
            "model": asdict(self.model),
            "chunker": self.chunker.to_dict(),
            "vectors": self.vectors.to_dict(),
            "counts": dict(self.counts),
            "sources": list(self.sources),
            "lexical": self.lexical.to_dict(),
            "files": dict(self.files),
            "policy": self.policy.to_dict(),
            "segments": [seg.to_dict() for seg in self.segments],
        }

    def to_json(self) -> str:
        """The manifest file's text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Decode a manifest; raises ``KeyError``/``TypeError`` when it is incomplete or mistyped."""
        data = dict(data)
        model = data["model"]
        if not isinstance(model, dict):
            raise TypeError("model must be an object")
        model_fields = set(ModelInfo.__dataclass_fields__)
        data["model"] = ModelInfo(**{k: v for k, v in model.items() if k in model_fields})
        data["chunker"] = ChunkSettings.from_dict(data["chunker"])
        data["vectors"] = VectorIndexInfo.from_dict(data["vectors"])
        data["lexical"] = LexicalInfo.from_dict(data.get("lexical", {}))
        data["policy"] = IndexPolicy.from_dict(data.get("policy"))
        segs = data.get("segments", [])
        if not isinstance(segs, list):
            raise TypeError("segments must be a list")
        data["segments"] = [SegmentInfo.from_dict(s) for s in segs]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def load_json(path: Path) -> dict[str, Any]:
    """A manifest file's JSON object (a version folder's copy, read without the live checks)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError("a manifest must be an object")
    return data


def now() -> str:
    """The current UTC time, to the second, in ISO 8601."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def read(index_dir: Path) -> Manifest:
    """Read and check the manifest; every failure names its fix."""
    layout = IndexLayout(Path(index_dir))
    path = layout.manifest
    if not path.exists():
        if layout.has_published():
            raise IndexCorruptError(index_dir, "manifest.json is missing")
        raise IndexNotFoundError(index_dir)
    if not path.is_file():
        raise _not_a_file(index_dir, path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise IndexCorruptError(index_dir, "manifest.json is unreadable") from None
    if not isinstance(data, dict) or not isinstance(data.get("format_version"), int):
        raise IndexCorruptError(index_dir, "manifest.json has no format version")
    fv = data["format_version"]
    if isinstance(fv, bool):
        raise IndexCorruptError(index_dir, "manifest.json has no format version")
    if fv > FORMAT_VERSION:
        raise IndexVersionError(
            f"the index at {index_dir} has format v{fv}, newer than this indexer reads (v{FORMAT_VERSION}) — "
            'upgrade indexer, or rebuild with "indexer build --full"'
        )
    if fv < FORMAT_VERSION:
        raise IndexVersionError(
            f"the index at {index_dir} has the old format v{fv} (this indexer writes v{FORMAT_VERSION}) — "
            'rebuild it with "indexer build --full"'
        )
    try:
        manifest = Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError):
        raise IndexCorruptError(index_dir, "manifest.json is incomplete") from None
    problem = _type_problem(manifest)
    if problem:
        raise IndexCorruptError(index_dir, f"manifest.json {problem}")
    return manifest


def _type_problem(m: Manifest) -> str:
    """What is wrong with the shape of a parsed manifest, or "" (JSON can hold anything)."""
    v = m.version
    if not isinstance(v, str) or not v or "/" in v or "\\" in v or v.startswith(".") or "\x00" in v:
        return "names an invalid data folder"
    mi = m.model
    if not (isinstance(mi.name, str) and isinstance(mi.fingerprint, str) and isinstance(mi.backend, str)):
        return "has an invalid model entry"
    for n in (mi.dimension, mi.max_seq_length):
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            return "has an invalid model entry"
    for name in ("counts", "files"):
        if not isinstance(getattr(m, name), dict):
            return f"has an invalid {name!r} entry"
    if not isinstance(m.sources, list):
        return "has an invalid 'sources' entry"
    for rel, digest in [*m.files.items(), *(kv for seg in m.segments for kv in seg.files.items())]:
        if not (isinstance(rel, str) and isinstance(digest, str)) or not _relative_name(rel):
            return "has an invalid 'files' entry"
    return ""


def _relative_name(rel: str) -> bool:
    """A plain relative path inside a data folder: no absolute path, no "..", no NUL."""
    parts = rel.split("/")
    return bool(rel) and "\x00" not in rel and "\\" not in rel and not rel.startswith("/") and ".." not in parts


def fsync_dir(path: Path) -> None:
    """Flush a folder to disk, so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _not_a_file(index_dir: Path, path: Path) -> IndexCorruptError:
    kind = "a folder" if path.is_dir() else "not a regular file"
    return IndexCorruptError(
        index_dir, f"{path.name} is {kind}", fix=f'remove {path}, then run "indexer build --full"'
    )


def write_atomic(path: Path, content: str) -> None:
    """Replace ``path`` with ``content`` so readers see the old or the new file, never half."""
    if os.path.lexists(path) and not path.is_file():  # replacing a folder fails as if the disk were full
        raise _not_a_file(path.parent, path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # a full disk must not leave a stray temporary beside the manifest
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
