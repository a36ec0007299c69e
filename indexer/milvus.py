"""Milvus as the passages' vector store, kept in step with an index directory.

The index directory stays the catalog and the source of truth: builds are
incremental and atomic there as before (articles, passages, BM25 terms, sentence
vectors for highlights). A Milvus collection receives, per passage, the vector
and the metadata as scalar fields, so that a search's dense candidates — and its
BM25 candidates, through the engine's own BM25 function — come from Milvus with
the language, source and date filters evaluated inside the engine.

Choices:
- ``pid`` (INT64 primary key) is the passage's SQLite row id, exactly as the
  FAISS ids are, so a hit maps straight back to its passage in the index.
- Inner product on L2-normalised vectors (equals cosine on unit vectors); FLAT
  (exact, the default) or IVF_FLAT (``?index=ivf_flat&nlist=…&nprobe=…``).
- The BM25 function reads the passage's *analysed* terms (the same per-language
  stems the local BM25 index is built from) through a whitespace tokenizer, so
  both stores score the same terms with the same k1, b and idf.
- Syncs (milvus_sync.py) send only the difference and record the synced version,
  model fingerprint and dimension, which every search checks first.

URIs: ``milvus://host:19530/collection`` (``milvus+https://`` for TLS, credentials
as ``user:password@`` or ``$MILVUS_TOKEN``) for a standalone or distributed
server, ``milvus-lite:///abs/path/file.db/collection`` (or a relative
``milvus-lite://data/milvus.db``) for Milvus Lite. The collection defaults to
``passages``. Query options: ``db``, ``index``, ``nlist``, ``nprobe``, ``bm25``
(``off``: use the local BM25 index), ``timeout`` (seconds to connect).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelMismatchError, StoreError
from .index import Snapshot
from .manifest import Manifest
from .milvus_uri import DEFAULT_COLLECTION, SCHEMES, StoreURI, expression, parse_uri
from .postings import K1, B
from .query import Filters

__all__ = ["DEFAULT_COLLECTION", "SCHEMES", "MilvusStore", "StoreError", "StoreURI", "expression", "parse_uri"]

META_SUFFIX = "__indexer"
MAX_TOPK = 16384  # Milvus refuses larger limits
# VARCHAR limits in bytes; values are clipped so a long title never fails an insert
LIMITS = {
    "article_id": 1024,
    "title": 4096,
    "text": 65535,
    "terms": 65535,
    "lang": 32,
    "source": 1024,
    "date": 64,
    "day": 10,
    "url": 4096,
    "author": 1024,
    "row_hash": 32,
}

def _pymilvus() -> Any:
    """pymilvus, imported on first use: the Milvus extra is optional."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # milvus-lite 2.5 imports the deprecated pkg_resources
            import pymilvus
    except ImportError:
        raise StoreError(
            "Milvus support is not installed — install the Milvus extra: pip install '.[milvus]'"
        ) from None
    # errors are reported once, as StoreError; pymilvus would also log each one
    for name in ("pymilvus", "pymilvus.milvus_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return pymilvus


# One Milvus Lite server per file and process, shared by every store opened on it
# and stopped when the last one closes (a Searcher may outlive a build's sync).
_LITE: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


def _lite_acquire(path: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import milvus_lite  # noqa: F401
            from milvus_lite.server_manager import server_manager_instance as manager
    except ImportError:
        raise StoreError("Milvus Lite is not installed — install the Milvus extra: pip install '.[milvus]'") from None
    if not Path(path).parent.is_dir():
        raise StoreError(f"cannot open Milvus Lite file {path}: its folder does not exist")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)  # milvus_lite logs its failures on the root logger
    try:
        with _LITE_LOCK:
            if manager.start_and_get_uri(path) is None:
                raise StoreError(
                    f"cannot start Milvus Lite on {path}: another process has it open (Milvus Lite serves one "
                    "process at a time — stop that one, or run a Milvus server for shared use)"
                )
            _LITE[path] = _LITE.get(path, 0) + 1
    finally:
        root.setLevel(level)


def _lite_release(path: str) -> None:
    from milvus_lite.server_manager import server_manager_instance as manager

    with _LITE_LOCK:
        _LITE[path] = _LITE.get(path, 1) - 1
        if _LITE[path] <= 0:
            del _LITE[path]
            manager.release_server(path)


def shutdown_lite() -> None:
    """Stop every Milvus Lite server this process started, whoever still uses it (tests' teardown)."""
    with _LITE_LOCK:
        paths = list(_LITE)
        _LITE.clear()
    if paths:
        from milvus_lite.server_manager import server_manager_instance as manager

        for p in paths:
            manager.release_server(p)


class MilvusStore:
    """A connection to one collection: sync it from an index, search it."""

    def __init__(self, uri: StoreURI | str) -> None:
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.name = self.uri.collection
        self.meta_name = f"{self.name}{META_SUFFIX}"
        self.pm = _pymilvus()
        self._lite = self.uri.lite
        if self._lite:
            _lite_acquire(self.uri.address)
        try:
            self.client = self.pm.MilvusClient(
                uri=self.uri.address,
                token=self.uri.token,
                db_name=self.uri.db,
                timeout=self.uri.timeout,
                alias=f"indexer-{uuid.uuid4().hex}",  # a connection of its own: closing it closes no other
            )
        except Exception as exc:
            if self._lite:
                _lite_release(self.uri.address)
            raise StoreError(f"cannot reach Milvus at {self.uri.text} ({_reason(exc)}) — is it running?") from None
        self._meta: dict[str, Any] | None = None
        self._closed = False

    def close(self) -> None:
        """Close the connection (and stop the Milvus Lite server when no other store uses it)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.client.close()
        finally:
            if self._lite:
                _lite_release(self.uri.address)

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, any failure turned into a one-line ``StoreError`` naming the store."""
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"Milvus at {self.uri.text}: {what} failed ({_reason(exc)})") from None

    # ------------------------------------------------------------- metadata
    def meta(self, *, fresh: bool = False) -> dict[str, Any] | None:
        """The collection's record of what it holds, or None when indexer never wrote it."""
        if self._meta is None or fresh:
            if not self.call("listing collections", self.client.has_collection, self.meta_name):
                return None
            self._load(self.meta_name)
            rows = self.call(
                "reading metadata", self.client.query, self.meta_name, filter='key == "state"', output_fields=["value"]
            )
            self._meta = json.loads(rows[0]["value"]) if rows else None
        return self._meta

    def write_meta(self, doc: dict[str, Any]) -> None:
        """Replace the collection's record of what it holds."""
        row = {"key": "state", "value": json.dumps(doc), "v": [0.0, 0.0]}
        self.call("writing metadata", self.client.upsert, self.meta_name, [row])
        self._meta = doc

    def _load(self, name: str) -> None:
        state = self.call("loading", self.client.get_load_state, name)
        if "NotLoad" in str(state.get("state")):
            self.call(f"loading {name}", self.client.load_collection, name)

    @property
    def has_bm25(self) -> bool:
        """Whether searches take BM25 candidates from the engine (else from the local index)."""
        meta = self.meta()
        return bool(meta and meta.get("bm25")) and self.uri.bm25

    def count(self) -> int:
        """Passages in the collection."""
        rows = self.call("counting", self.client.query, self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def check(self, m: Manifest, index_path: Path) -> None:
        """Refuse to search a collection that holds another index's or another model's vectors."""
        fix = f'"indexer export --store {self.uri.text} --index {index_path}"'
        if not self.call("listing collections", self.client.has_collection, self.name):
            raise StoreError(f"no collection {self.name!r} at {self.uri.text} — create it with {fix}")
        meta = self.meta(fresh=True)
        if meta is None:
            raise StoreError(
                f"collection {self.name!r} at {self.uri.text} was not written by indexer — fill it with "
                f"{fix}, or name another collection"
            )
        model = meta.get("model", {})
        if model.get("fingerprint") != m.model.fingerprint or model.get("dimension") != m.model.dimension:
            raise ModelMismatchError(
                f"the Milvus collection {self.uri.text} holds vectors of {model.get('name')!r} "
                f"({model.get('fingerprint')}), but the index at {index_path} was built with {m.model.name!r} "
                f"({m.model.fingerprint}) — sync it with {fix}"
            )
        if meta.get("index", {}).get("created_at") != m.created_at:
            raise StoreError(
                f"the Milvus collection {self.uri.text} was synced from another index than the one at "
                f"{index_path} — sync it with {fix}"
            )
        self._load(self.name)

    # --------------------------------------------------------------- writing
    def create(self, dim: int) -> bool:
        """(Re)create the collection and its metadata collection, empty; returns whether it scores BM25."""
        pm = self.pm
        for name in (self.name, self.meta_name):
            if self.call("listing collections", self.client.has_collection, name):
                self.call("dropping the old collection", self.client.drop_collection, name)
        bm25 = False
        if self.uri.bm25:
            try:
                self._create_main(dim, bm25=True)
                bm25 = True
            except StoreError:
                pass  # a server without BM25 functions (before 2.5): the local BM25 index serves instead
        if not bm25:
            self._create_main(dim, bm25=False)
        meta = pm.MilvusClient.create_schema(
            auto_id=False, enable_dynamic_field=False, description="indexer: what the collection holds"
        )
        meta.add_field("key", pm.DataType.VARCHAR, is_primary=True, max_length=64)
        meta.add_field("value", pm.DataType.VARCHAR, max_length=65535)
        meta.add_field("v", pm.DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
        ip = self.client.prepare_index_params()
        ip.add_index("v", index_type="FLAT", metric_type="IP")
        self._create_collection("creating the metadata collection", self.meta_name, meta, ip)
        return bm25

    def _create_collection(self, what: str, name: str, schema: Any, index_params: Any) -> None:
        # Strong consistency: a search right after a sync sees every row it wrote and none it deleted
        self.call(
            what, self.client.create_collection, name, schema=schema, index_params=index_params,
            consistency_level="Strong",
        )  # fmt: skip

    def _create_main(self, dim: int, *, bm25: bool) -> None:
        pm = self.pm
        DT = pm.DataType
        s = pm.MilvusClient.create_schema(
            auto_id=False, enable_dynamic_field=False, description=f"indexer passages, {dim}-d normalised vectors"
        )
        s.add_field("pid", DT.INT64, is_primary=True)
        s.add_field("vector", DT.FLOAT_VECTOR, dim=dim)
        for name in ("article_id", "title", "text", "lang", "source", "date", "day", "url", "author", "row_hash"):
            s.add_field(name, DT.VARCHAR, max_length=LIMITS[name])
        for name in ("start", "end", "dup_group"):
            s.add_field(name, DT.INT64)
        ip = self.client.prepare_index_params()
        if self.uri.index == "ivf_flat":
            ip.add_index("vector", index_type="IVF_FLAT", metric_type="IP", params={"nlist": self.uri.nlist})
        else:
            ip.add_index("vector", index_type="FLAT", metric_type="IP")
        if bm25:
            s.add_field(
                "terms",
                DT.VARCHAR,
                max_length=LIMITS["terms"],
                enable_analyzer=True,
                analyzer_params={"tokenizer": "whitespace"},
            )
            s.add_field("sparse", DT.SPARSE_FLOAT_VECTOR)
            s.add_function(
                pm.Function(
                    name="terms_bm25",
                    function_type=pm.FunctionType.BM25,
                    input_field_names=["terms"],
                    output_field_names=["sparse"],
                )
            )
            ip.add_index(
                "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": K1, "bm25_b": B}
            )
        if self.call("listing collections", self.client.has_collection, self.name):
            self.call("dropping", self.client.drop_collection, self.name)
        self._create_collection("creating the collection", self.name, s, ip)

    def insert(self, rows: list[dict[str, Any]]) -> None:
        """Insert passage rows (see milvus_sync.py for their fields)."""
        self.call("inserting", self.client.insert, self.name, rows)

    def delete(self, pids: list[int]) -> None:
        """Delete passages by id."""
        for i in range(0, len(pids), 4096):
            self.call("deleting", self.client.delete, self.name, ids=pids[i : i + 4096])

    # ---------------------------------------------------------------- search
    def search(
        self, snap: Snapshot, qvec: np.ndarray, n: int, filters: Filters, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (scores, ids) by inner product; the filters run inside Milvus, so k come back when k match."""
        if n <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        params: dict[str, Any] = {"metric_type": "IP"}
        if (self.meta() or {}).get("vectors", {}).get("index") == "ivf_flat":
            params["params"] = {"nprobe": self.uri.nprobe}
        res = self.call(
            "search",
            self.client.search,
            self.name,
            data=[np.asarray(qvec, np.float32).tolist()],
            anns_field="vector",
            limit=min(n, MAX_TOPK),
            filter=expression(filters),
            search_params=params,
            output_fields=[],
        )
        # while a sync catches up with a newly published version, the collection may still
        # name passages that version dropped: they are left out, never looked up
        present = snap.columns.article_keys([h["id"] for h in res[0]])
        hits = [h for h in res[0] if h["id"] in present]
        return (
            np.fromiter((h["distance"] for h in hits), np.float32, count=len(hits)),
            np.fromiter((h["id"] for h in hits), np.int64, count=len(hits)),
        )

    def bm25_top(self, texts: list[str], n: int, filters: Filters) -> list[dict[int, float]]:
        """Per text (analysed terms joined by spaces), its ``n`` best passages by BM25 among the filtered."""
        if not texts or n <= 0:
            return [{} for _ in texts]
        res = self.call(
            "BM25 search",
            self.client.search,
            self.name,
            data=texts,
            anns_field="sparse",
            limit=min(n, MAX_TOPK),
            filter=expression(filters),
            search_params={"metric_type": "BM25"},
            output_fields=[],
        )
        # Milvus scores with Lucene's (k1 + 1) factor, bm25s without: same ranking, one scale
        return [{int(h["id"]): float(h["distance"]) / (K1 + 1) for h in hits} for hits in res]

    def bm25_scores(self, terms: list[str], pids: list[int]) -> list[dict[int, float]]:
        """Per analysed term, the BM25 score of each of ``pids`` that contains it."""
        out: list[dict[int, float]] = [{} for _ in terms]
        for i in range(0, len(pids), 4096):
            part = pids[i : i + 4096]
            if not terms:
                break
            res = self.call(
                "BM25 search",
                self.client.search,
                self.name,
                data=terms,
                anns_field="sparse",
                limit=len(part),
                filter=f"pid in [{','.join(map(str, part))}]",
                search_params={"metric_type": "BM25"},
                output_fields=[],
            )
            for acc, hits in zip(out, res):
                acc.update((int(h["id"]), float(h["distance"]) / (K1 + 1)) for h in hits)
        return out

    def row_hashes(self) -> dict[int, str]:
        """Passage id → row hash of everything in the collection."""
        it = self.call(
            "reading ids", self.client.query_iterator, self.name, batch_size=4096, filter="", output_fields=["row_hash"]
        )
        out: dict[int, str] = {}
        try:
            while batch := self.call("reading ids", it.next):
                out.update((int(r["pid"]), r["row_hash"]) for r in batch)
        finally:
            it.close()
        return out


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(msg).split())[:200]
