"""Named exceptions. Each message says what went wrong and how to fix it."""

from __future__ import annotations


class IndexerError(Exception):
    """Base class: the CLI prints the message on one line and exits with code 2."""


class IndexNotFoundError(IndexerError):
    """No index at the path."""
    def __init__(self, path: object) -> None:
        super().__init__(f'no index at {path} — run "indexer build" to create it')


class IndexCorruptError(IndexerError):
    """The index exists but cannot be read as it was written."""
    def __init__(self, path: object, detail: str, *, fix: str = 'rebuild it with "indexer build --full"') -> None:
        super().__init__(f"the index at {path} is damaged ({detail}) — {fix}")


class IndexVersionError(IndexerError):
    """The index was written by a newer (or unknown) format version."""


class ModelMismatchError(IndexerError):
    """Query model differs from the model the index was built with."""


class ModelNotFoundError(IndexerError):
    """A model name or path could not be resolved offline."""


class SourceNotFoundError(IndexerError):
    """A source path that does not exist (or a link that leads nowhere)."""
    def __init__(self, path: object, why: str = "") -> None:
        super().__init__(f"source not found: {path}{f' ({why})' if why else ''} — pass an existing file or folder")


class IndexLockedError(IndexerError):
    """Another build holds the index's write lock."""


class BuildError(IndexerError):
    """A build could not complete; the previous index is untouched."""


class QueryError(IndexerError):
    """A query or one of its filters is invalid."""


class StoreError(IndexerError):
    """An external vector store (Milvus) cannot be used as asked; the message names the fix."""


class AlertError(IndexerError):
    """A saved search (``indexer alerts``) cannot be added, found or read as asked."""
