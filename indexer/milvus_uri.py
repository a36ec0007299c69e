"""``--store`` URIs for Milvus, and search filters as Milvus expressions; no connection, no pymilvus."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import StoreError
from .query import Filters

SCHEMES = ("milvus", "milvus+http", "milvus+https", "milvus-lite")
DEFAULT_COLLECTION = "passages"
META_SUFFIX = "__indexer"
MAX_TOPK = 16384  # Milvus refuses larger limits
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
_LITE_FILE = re.compile(r"[A-Za-z0-9.\-_]{1,36}")  # what Milvus Lite accepts as a file name
_INDEXES = ("flat", "ivf_flat")


@dataclass(frozen=True)
class StoreURI:
    """A parsed ``--store`` value."""

    text: str  # as displayed: without credentials
    lite: bool
    address: str  # http(s)://host:port, or the absolute path of a Milvus Lite file
    collection: str = DEFAULT_COLLECTION
    db: str = ""
    token: str = ""
    index: str = "flat"
    nlist: int = 1024
    nprobe: int = 16
    bm25: bool = True
    timeout: float = 10.0

    def __repr__(self) -> str:
        """Never shows credentials."""
        return f"StoreURI({self.text!r})"


def parse_uri(uri: str) -> StoreURI:
    """Check a ``--store`` URI without connecting; raises ``StoreError`` naming what is wrong."""
    usage = "use milvus://HOST:PORT/COLLECTION or milvus-lite:///path/to/file.db/COLLECTION"
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise StoreError(f"unsupported store {_redact(uri)!r}: {usage}")
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    opts = dict(parse_qsl(query, keep_blank_values=True))
    if scheme == "milvus-lite":
        path, collection = rest, DEFAULT_COLLECTION
        if not path.endswith(".db"):
            path, _, collection = path.rpartition("/")
        if not path.endswith(".db"):
            raise StoreError(f"bad store {uri!r}: a Milvus Lite file name ends with .db ({usage})")
        file = Path(unquote(path)).expanduser().absolute()
        if not _LITE_FILE.fullmatch(file.name):
            raise StoreError(f"bad store {uri!r}: Milvus Lite wants a file name of at most 36 letters, digits, . - _")
        base: dict[str, Any] = dict(text=uri, lite=True, address=str(file), collection=collection)
    else:
        parts = urlsplit(f"http://{rest}")
        try:
            port = parts.port or 19530
        except ValueError:
            raise StoreError(f"bad store {_redact(uri)!r}: the port must be a number ({usage})") from None
        if not parts.hostname:
            raise StoreError(f"bad store {_redact(uri)!r}: no host ({usage})")
        collection = parts.path.strip("/") or DEFAULT_COLLECTION
        token = os.environ.get("MILVUS_TOKEN", "")
        if parts.username:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        proto = "https" if scheme == "milvus+https" else "http"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        text = f"{scheme}://{host}:{port}/{collection}" + (f"?{query}" if query else "")
        base = dict(text=text, lite=False, address=f"{proto}://{host}:{port}", collection=collection, token=token)
    if not _NAME.fullmatch(base["collection"]):
        raise StoreError(
            f"bad store {base['text']!r}: the collection name {base['collection']!r} takes letters, digits "
            "and _ only, starting with a letter"
        )
    try:
        nlist, nprobe = int(opts.pop("nlist", 1024)), int(opts.pop("nprobe", 16))
        timeout = float(opts.pop("timeout", 10))
    except ValueError:
        raise StoreError(f"bad store {base['text']!r}: nlist and nprobe take integers, timeout seconds") from None
    index = opts.pop("index", "flat").lower()
    db = opts.pop("db", "")
    bm25 = opts.pop("bm25", "on").lower() not in ("off", "0", "false", "no")
    if opts:
        raise StoreError(f"bad store {base['text']!r}: unknown option {next(iter(opts))!r}")
    if index not in _INDEXES:
        raise StoreError(f"bad store {base['text']!r}: index is one of {', '.join(_INDEXES)}")
    if not (1 <= nlist <= 65536 and 1 <= nprobe <= nlist and timeout > 0):
        raise StoreError(f"bad store {base['text']!r}: need 1 <= nprobe <= nlist <= 65536 and a positive timeout")
    return StoreURI(**base, db=db, index=index, nlist=nlist, nprobe=nprobe, bm25=bm25, timeout=timeout)


def _redact(uri: str) -> str:
    """The URI without its credentials."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def _literal(value: str) -> str:
    """A Milvus expression string literal (JSON's escaping is what its parser reads)."""
    return json.dumps(value, ensure_ascii=False)


def expression(filters: Filters) -> str:
    """``Filters`` as a Milvus boolean expression, with the same meaning as ``Columns.articles_matching``."""
    parts = []
    if filters.langs:
        parts.append(f"lang in [{', '.join(map(_literal, filters.langs))}]")
    if filters.sources:
        parts.append(f"source in [{', '.join(map(_literal, filters.sources))}]")
    if filters.date_from:
        parts.append(f"date >= {_literal(filters.date_from)}")  # "" (no date) sorts first: excluded
    if filters.date_to:
        # ``day`` is the date's first 10 characters, as the columns compare days; no date is no match
        parts.append(f'day != "" and day <= {_literal(filters.date_to)}')
    return " and ".join(parts)
