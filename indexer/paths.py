"""Where things live: the project's data folder and the model cache, each overridable."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The folder holding ``articles/`` and ``index/``: ``$INDEXER_DATA`` or ``./data``."""
    return Path(os.environ.get("INDEXER_DATA", "data"))


def default_index_dir() -> Path:
    """The index built and searched when no ``--index`` is given."""
    env = os.environ.get("INDEXER_INDEX")
    return Path(env) if env else data_dir() / "index"


def default_store() -> str | None:
    """The external vector store the page (and ``--store``) uses: ``$INDEXER_STORE``, else none."""
    return os.environ.get("INDEXER_STORE") or None


def default_sources() -> list[Path]:
    """The seed article and the sample corpus, as the README's quick start indexes them."""
    return [Path("seeds"), data_dir() / "articles"]


def cache_dir() -> Path:
    """Converted models and ONNX exports: ``$INDEXER_CACHE`` or ``~/.cache/indexer``."""
    env = os.environ.get("INDEXER_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "indexer"
