"""Options the CLI's command groups share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def index_option(f: Any) -> Any:
    """The --index DIR option of every command that reads or writes an index."""
    return click.option(
        "--index",
        "index_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Index directory (default: data/index, or $INDEXER_INDEX).",
    )(f)


def index_dir(value: Path | None) -> Path:
    """The index directory given, else the default one (data/index or $INDEXER_INDEX)."""
    from .paths import default_index_dir

    return value or default_index_dir()
