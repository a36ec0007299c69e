"""Multilingual semantic search over collections of articles.

>>> from indexer import build, Searcher
>>> build(["seeds", "data/articles"], "data/index")
>>> Searcher("data/index").search("coopération dans l'Arctique").hits[0].title
"""

__version__ = "0.1.0"

from .build import BuildReport, BuildSettings, build
from .chunking import ChunkSettings
from .corpus import ReadSettings, read_sources
from .errors import IndexerError
from .query import Filters
from .records import Article, Chunk, Hit
from .search import Searcher, SearchOptions, SearchResult

__all__ = [
    "Article",
    "BuildReport",
    "BuildSettings",
    "Chunk",
    "ChunkSettings",
    "Filters",
    "Hit",
    "IndexerError",
    "ReadSettings",
    "SearchOptions",
    "SearchResult",
    "Searcher",
    "__version__",
    "build",
    "read_sources",
]
