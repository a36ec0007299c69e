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
FORMAT_VERSION = 2


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
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


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
    except (KeyError, TypeError):
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
    for rel, digest in m.files.items():
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


def write_atomic(path: Path, content: str) -> None:
    """Replace ``path`` with ``content`` so readers see the old or the new file, never half."""
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
