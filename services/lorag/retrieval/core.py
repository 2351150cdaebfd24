"""Retrieval logic on plain Python types: the Milvus chunk store, search, documents, stats.

No grpc and no ray here. :class:`MilvusStore` talks to Milvus through pymilvus (synchronous; the
async :class:`RetrievalCore` runs every call in a thread). The same code serves Milvus Lite (a
``.db`` path), the managed ``milvus-lite server`` and any Milvus standalone/cluster URI.

Tenancy: every expression sent to Milvus is built by :func:`lorag.retrieval.filters.tenant_expr`,
which puts ``tenant_id == "<tenant>"`` first; ``tenant_id`` is the collection's partition key, so
Milvus also prunes to the tenant's partition. Rows carry the tenant, and chunk ids hash it in.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lorag.common import errors
from lorag.common.errors import FailedPrecondition, InvalidArgument, NotFound
from lorag.common.metrics import RETRIEVAL_STORE_FAILURES
from lorag.common.paging import decode_token, encode_token, page_size
from lorag.common.tenancy import validate_tenant_id
from lorag.retrieval.embedders import Embedder
from lorag.retrieval.filters import Condition, compile_filter, quote_string, tenant_expr
from lorag.retrieval.settings import RetrievalSettings

log = logging.getLogger("lorag.retrieval")

SCHEMA_VERSION = 1
PROP_SCHEMA_VERSION = "lorag.schema_version"
PROP_MODEL = "lorag.embedding_model"
PROP_DIMENSION = "lorag.dimension"

MODES = ("dense", "sparse", "hybrid")
FUSIONS = ("rrf", "weighted")
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
MAX_DOC_ID_CHARS = 256
DOC_ID_MAX_BYTES = 1024
TITLE_MAX_BYTES = 4096
TEXT_MAX_BYTES = 65535
_QUERY_LIMIT = 16384  # Milvus' largest query/search window
_RELIST_S = 2.0  # how often an unknown model triggers a new look at the collections

# (name, type name, params) of the chunk collection; checked when an existing collection opens.
_OUTPUT_FIELDS = [
    "chunk_id",
    "doc_id",
    "chunk_index",
    "text",
    "title",
    "metadata",
    "span_start",
    "span_end",
]
_DOC_FIELDS = [
    "doc_id",
    "title",
    "doc_metadata",
    "doc_chunk_count",
    "content_sha256",
    "created_at",
    "updated_at",
]


# -- plain data types ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CollectionInfo:
    name: str
    model: str
    dimension: int
    schema_version: int


@dataclass(frozen=True)
class StoredChunk:
    """A chunk ready to store (text validated, vector of the collection's dimension)."""

    text: str
    vector: np.ndarray
    metadata: dict[str, Any]
    span: tuple[int, int] | None = None


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    chunk_index: int
    text: str
    score: float
    metadata: dict[str, Any]
    title: str
    span: tuple[int, int] | None


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    vector: Sequence[float] | None = None
    mode: str | None = None  # None: hybrid with text, dense with only a vector
    fusion: str | None = None  # None: rrf
    rrf_k: int = 0
    dense_weight: float | None = None
    sparse_weight: float | None = None
    top_k: int | None = None  # None: the default
    conditions: Sequence[Condition] = ()
    model: str = ""


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    mode: str
    model: str
    took_ms: float


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    metadata: dict[str, Any]
    chunk_count: int
    content_sha256: str
    model: str
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True)
class CollectionStats:
    collection: str
    model: str
    dimension: int
    schema_version: int
    document_count: int
    chunk_count: int


@dataclass(frozen=True)
class DocumentPage:
    documents: list[DocumentInfo]
    next_token: str


@dataclass(frozen=True)
class DocumentWrite:
    """One document's new content for :meth:`MilvusStore.write_documents`."""

    doc_id: str
    title: str
    doc_metadata: dict[str, Any]
    content_sha256: str
    chunks: list[StoredChunk]


@dataclass
class WriteOutcome:
    chunk_ids: list[str]
    replaced: int = 0


# -- helpers -------------------------------------------------------------------------------------
def chunk_id(tenant_id: str, doc_id: str, index: int) -> str:
    """Deterministic chunk id: the same (tenant, document, position) always maps to one row."""
    raw = f"{tenant_id}\x00{doc_id}\x00{index}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def collection_name(prefix: str, model: str, dimension: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:160] or "model"
    return f"{prefix}_{slug}_{dimension}"


def validate_doc_id(doc_id: str, *, field: str = "doc_id") -> str:
    if not isinstance(doc_id, str) or not doc_id:
        raise InvalidArgument("is required", field=field)
    if len(doc_id) > MAX_DOC_ID_CHARS or len(doc_id.encode()) > DOC_ID_MAX_BYTES:
        raise InvalidArgument(f"at most {MAX_DOC_ID_CHARS} characters", field=field)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in doc_id):
        raise InvalidArgument("control characters are not allowed", field=field)
    return doc_id


def validate_model_name(model: str, *, field: str = "embedding_model") -> str:
    if not MODEL_RE.fullmatch(model):
        raise InvalidArgument("must be 1-128 characters of letters, digits and . _ : / @ + -", field=field)
    return model


def check_vector(values: Sequence[float] | np.ndarray, dimension: int, *, field: str) -> np.ndarray:
    vec = np.asarray(values, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dimension:
        raise InvalidArgument(f"has {vec.shape[0]} dimensions; the collection needs {dimension}", field=field)
    if not np.all(np.isfinite(vec)):
        raise InvalidArgument("must contain finite numbers only", field=field)
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        raise InvalidArgument("must not be the zero vector", field=field)
    return vec / norm  # inner product on unit vectors is the cosine


def _doc_expr(tenant_id: str, doc_id: str) -> str:
    return tenant_expr(tenant_id, f"doc_id == {quote_string(doc_id)}")


def _scoped(expr: str) -> str:
    """Defence in depth: every expression sent to Milvus must start with the tenant condition."""
    if not expr.startswith('tenant_id == "'):
        raise RuntimeError("refusing a Milvus expression without the tenant condition")
    return expr


def _now_ms() -> int:
    return int(time.time() * 1000)


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _span(start: Any, end: Any) -> tuple[int, int] | None:
    a, b = _as_int(start, -1), _as_int(end, -1)
    return (a, b) if a >= 0 and b >= a else None


def _first(rows: Any) -> dict | None:
    rows = list(rows or [])
    return rows[0] if rows else None


# -- pymilvus clients: one per process and URI ---------------------------------------------------
_CLIENTS: dict[tuple[str, str, str], list] = {}
_CLIENTS_LOCK = threading.Lock()


#: Milvus Lite's gRPC server does not permit keepalive pings on an idle connection: after two of
#: pymilvus' (every 10 s, also without calls) it sends GOAWAY "too_many_pings" and the next call
#: fails. Its connections are local, so they go without keepalive pings.
_LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


def _acquire_client(uri: str, token: str, db_name: str, *, lite: bool = False):
    from pymilvus import MilvusClient

    key = (uri, token, db_name)
    with _CLIENTS_LOCK:
        entry = _CLIENTS.get(key)
        if entry is None:
            kwargs: dict[str, Any] = {"uri": uri}
            if lite:
                kwargs["grpc_options"] = dict(_LITE_GRPC_OPTIONS)
            if token:
                kwargs["token"] = token
            if db_name:
                kwargs["db_name"] = db_name
            try:
                client = MilvusClient(**kwargs)
            except Exception as exc:  # noqa: BLE001 - any connection failure: dependency down
                log.error("cannot connect to Milvus at %s", _safe_uri(uri), exc_info=exc)
                if uri.endswith(".db"):
                    raise FailedPrecondition(
                        f"cannot open the Milvus Lite data at {uri}; Milvus Lite allows one process: for "
                        "several replicas set LORAG_RETRIEVAL_LITE_MODE=server or LORAG_RETRIEVAL_MILVUS_URI"
                    ) from exc
                RETRIEVAL_STORE_FAILURES.labels("connect").inc()
                raise errors.Unavailable("the vector store is unavailable") from exc
            entry = _CLIENTS[key] = [client, 0]
        entry[1] += 1
        return entry[0]


def _release_client(uri: str, token: str, db_name: str) -> None:
    key = (uri, token, db_name)
    with _CLIENTS_LOCK:
        entry = _CLIENTS.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _CLIENTS[key]
    try:
        entry[0].close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        log.debug("closing the Milvus client failed", exc_info=True)
    if uri.endswith(".db"):
        from milvus_lite import server_manager_instance

        server_manager_instance.release_server(uri)  # frees the file lock for the next opener


def _safe_uri(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", uri)


# -- the store -----------------------------------------------------------------------------------
class MilvusStore:
    """Chunk collections in one Milvus (synchronous; thread-safe)."""

    def __init__(
        self,
        *,
        uri: str,
        settings: RetrievalSettings,
        token: str = "",
        db_name: str = "",
        lite: bool | None = None,
        on_unavailable: Callable[[], Any] | None = None,
    ) -> None:
        self.uri = uri
        #: called (in the failing call's thread) after a Milvus call failed, e.g. to restart a
        #: managed `milvus-lite server` that died; its errors are logged, never raised
        self.on_unavailable = on_unavailable
        #: Milvus Lite (embedded or `milvus-lite server`), which needs explicit flushes; None: ask it
        self.lite = True if uri.endswith(".db") else lite
        self.settings = settings
        self._token = token
        self._db_name = db_name
        self._client = None
        self._lock = threading.RLock()
        self._by_model: dict[str, CollectionInfo] = {}
        self._loaded: set[str] = set()
        self._listed_at = -math.inf

    # connection
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                if self.uri.endswith(".db"):
                    from pathlib import Path

                    Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
                client = _acquire_client(self.uri, self._token, self._db_name, lite=bool(self.lite))
                if self.lite is None:
                    try:
                        self.lite = "lite" in str(client.get_server_version()).lower()
                    except Exception:  # noqa: BLE001 - an old or restricted server: assume a real Milvus
                        self.lite = False
                self._client = client
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client = None
                _release_client(self.uri, self._token, self._db_name)
            self._by_model.clear()
            self._loaded.clear()
            self._listed_at = -math.inf

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.LoragError:
            raise
        except Exception as exc:  # noqa: BLE001 - the vector store failed; no details to clients
            log.error("Milvus %s failed", what, exc_info=exc)
            RETRIEVAL_STORE_FAILURES.labels(what.split(" ", 1)[0]).inc()
            # A restarted Milvus (or one that lost its query nodes) holds the collections released:
            # load them again on the next call instead of failing until this process restarts.
            self._loaded.clear()
            if self.on_unavailable is not None:
                try:
                    self.on_unavailable()
                except Exception:  # noqa: BLE001 - recovery is best effort; the call fails anyway
                    log.warning("recovering the vector store failed", exc_info=True)
            raise errors.Unavailable(f"the vector store failed during {what}") from exc

    # collections
    def _describe(self, name: str) -> CollectionInfo:
        desc = self._call("describe", self.client.describe_collection, name)
        props = desc.get("properties") or {}
        if PROP_SCHEMA_VERSION not in props or PROP_MODEL not in props:
            raise FailedPrecondition(
                f"collection {name!r} exists but was not created by lorag (no schema version); "
                "drop it or set LORAG_RETRIEVAL_COLLECTION_PREFIX to another prefix"
            )
        version = _as_int(props.get(PROP_SCHEMA_VERSION), -1)
        info = CollectionInfo(name, str(props[PROP_MODEL]), _as_int(props.get(PROP_DIMENSION), -1), version)
        if version != SCHEMA_VERSION:
            raise FailedPrecondition(
                f"collection {name!r} has schema version {version}; this server needs version "
                f"{SCHEMA_VERSION}. Re-index into a new collection prefix (LORAG_RETRIEVAL_COLLECTION_PREFIX)"
            )
        problems = _schema_problems(desc, info.dimension)
        if problems:
            raise FailedPrecondition(
                f"collection {name!r} does not match schema version {SCHEMA_VERSION}: {'; '.join(problems)}"
            )
        return info

    def list_collections(self) -> list[CollectionInfo]:
        """Every lorag collection (refreshes the model cache). Foreign collections are skipped."""
        names = self._call("list collections", self.client.list_collections)
        prefix = self.settings.collection_prefix + "_"
        out = []
        for name in sorted(n for n in names if n.startswith(prefix)):
            try:
                info = self._describe(name)
            except FailedPrecondition as exc:
                log.warning("skipping collection: %s", exc)
                continue
            out.append(info)
        with self._lock:
            for info in out:
                self._by_model.setdefault(info.model, info)
            self._listed_at = time.monotonic()
        return out

    def find_collection(self, model: str) -> CollectionInfo | None:
        with self._lock:
            info = self._by_model.get(model)
            stale = time.monotonic() - self._listed_at > _RELIST_S
        if info is None and stale:  # another process may have created it since
            self.list_collections()
            with self._lock:
                info = self._by_model.get(model)
        return info

    def ensure_collection(self, model: str, dimension: int) -> CollectionInfo:
        """The collection of ``model``, created on first use; an incompatible one fails."""
        with self._lock:
            info = self._by_model.get(model)
            if info is None:
                name = collection_name(self.settings.collection_prefix, model, dimension)
                if self._call("has collection", self.client.has_collection, name):
                    info = self._describe(name)
                else:
                    try:
                        self._create(name, model, dimension)
                    except errors.Unavailable:
                        # another process may have created it at the same moment
                        if not self._call("has collection", self.client.has_collection, name):
                            raise
                    info = self._describe(name)
                if info.model != model:
                    raise FailedPrecondition(
                        f"collection {name!r} belongs to embedding model {info.model!r}, not {model!r}"
                    )
                self._by_model[model] = info
            if info.dimension != dimension:
                raise FailedPrecondition(
                    f"collection {info.name!r} of model {model!r} has dimension {info.dimension}, "
                    f"the model now has {dimension}"
                )
            self._load(info.name)
            return info

    def _create(self, name: str, model: str, dimension: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        s = self.settings
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, max_length=64, is_primary=True)
        schema.add_field("tenant_id", DataType.VARCHAR, max_length=64, is_partition_key=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_MAX_BYTES)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("title", DataType.VARCHAR, max_length=TITLE_MAX_BYTES)
        schema.add_field(
            "text",
            DataType.VARCHAR,
            max_length=TEXT_MAX_BYTES,
            enable_analyzer=True,
            analyzer_params={"type": "standard"},
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("doc_metadata", DataType.JSON)
        schema.add_field("doc_chunk_count", DataType.INT64)
        schema.add_field("content_sha256", DataType.VARCHAR, max_length=128)
        schema.add_field("span_start", DataType.INT64)
        schema.add_field("span_end", DataType.INT64)
        schema.add_field("created_at", DataType.INT64)
        schema.add_field("updated_at", DataType.INT64)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        if s.index_type == "HNSW":
            params = {"M": s.hnsw_m, "efConstruction": s.hnsw_ef_construction}
        elif s.index_type == "IVF_FLAT":
            params = {"nlist": 1024}
        else:
            params = {}
        index.add_index("dense", index_type=s.index_type, metric_type="IP", params=params)
        index.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": s.bm25_k1, "bm25_b": s.bm25_b},
        )
        log.info("creating collection %s for model %s (dim %d)", name, model, dimension)
        self._call(
            "create collection",
            self.client.create_collection,
            name,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
            num_partitions=s.num_partitions,
            properties={
                PROP_SCHEMA_VERSION: str(SCHEMA_VERSION),
                PROP_MODEL: model,
                PROP_DIMENSION: str(dimension),
            },
        )

    def _load(self, name: str) -> None:
        if name in self._loaded:
            return
        self._call("load collection", self.client.load_collection, name)
        self._loaded.add(name)

    # counting and reading
    def count(self, name: str, expr: str) -> int:
        rows = self._call(
            "count",
            self.client.query,
            name,
            filter=_scoped(expr),
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
        row = _first(rows)
        return int(row["count(*)"]) if row else 0

    def _query(self, name: str, expr: str, fields: list[str], limit: int) -> list[dict]:
        return list(
            self._call(
                "query",
                self.client.query,
                name,
                filter=_scoped(expr),
                output_fields=fields,
                limit=limit,
                consistency_level="Strong",
            )
        )

    # writes
    def write_document(
        self,
        tenant_id: str,
        info: CollectionInfo,
        *,
        doc_id: str,
        title: str,
        doc_metadata: dict[str, Any],
        content_sha256: str,
        chunks: Sequence[StoredChunk],
    ) -> WriteOutcome:
        """Replace one document's chunks (see :meth:`write_documents`); raises on failure."""
        doc = DocumentWrite(doc_id, title, doc_metadata, content_sha256, list(chunks))
        result = self.write_documents(tenant_id, info, [doc])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def write_documents(
        self, tenant_id: str, info: CollectionInfo, docs: Sequence[DocumentWrite]
    ) -> list[WriteOutcome | errors.LoragError]:
        """Replace each document's chunks: one upsert of the new rows, then removal of the surplus.

        Chunk ids are deterministic (tenant, doc, position), so the upsert overwrites positions
        that exist and the delete removes positions past the new end. The documents of one call
        share one lookup and one upsert; if that upsert fails, each document is retried on its
        own so that one bad document cannot fail the others. A document whose write failed keeps
        its earlier chunks. Returns an outcome or an error per document, in order.
        """
        self._load(info.name)
        now = _now_ms()
        existing: dict[str, tuple[int, int]] = {}  # doc_id -> (chunk count, created_at)
        ids_expr = ", ".join(quote_string(d.doc_id) for d in docs)
        base = tenant_expr(tenant_id, f"doc_id in [{ids_expr}]")
        rows = self._query(info.name, base, ["doc_id", "chunk_index", "created_at"], _QUERY_LIMIT)
        if len(rows) >= _QUERY_LIMIT:  # very long documents: first chunks only, count per document
            rows = self._query(info.name, f"{base} and chunk_index == 0", ["doc_id", "created_at"], len(docs))
            rows = [{**r, "_count": self.count(info.name, _doc_expr(tenant_id, r["doc_id"]))} for r in rows]
        for r in rows:
            n, created = existing.get(r["doc_id"], (0, now))
            if r.get("chunk_index", 0) == 0:
                created = _as_int(r.get("created_at"), now)
            existing[r["doc_id"]] = (r.get("_count", n + 1), created)
        rows_by_doc = [
            self._rows(tenant_id, d, created=existing.get(d.doc_id, (0, now))[1], now=now) for d in docs
        ]
        results: list[WriteOutcome | errors.LoragError] = []
        try:
            self._call("upsert", self.client.upsert, info.name, [r for rows in rows_by_doc for r in rows])
            written = [True] * len(docs)
        except errors.LoragError:
            written = []
            for rows in rows_by_doc:
                try:
                    self._call("upsert", self.client.upsert, info.name, rows)
                    written.append(True)
                except errors.LoragError as exc:
                    written.append(exc)
        for d, rows, ok in zip(docs, rows_by_doc, written, strict=True):
            if ok is not True:
                results.append(ok)
                continue
            before = existing.get(d.doc_id, (0, now))[0]
            try:
                if before > len(rows):
                    expr = f"{_doc_expr(tenant_id, d.doc_id)} and chunk_index >= {len(rows)}"
                    self._call("delete", self.client.delete, info.name, filter=_scoped(expr))
            except errors.LoragError as exc:
                results.append(exc)
                continue
            results.append(WriteOutcome([r["chunk_id"] for r in rows], before))
        return results

    @staticmethod
    def _rows(tenant_id: str, d: DocumentWrite, *, created: int, now: int) -> list[dict]:
        rows = []
        for i, c in enumerate(d.chunks):
            span = c.span or (-1, -1)
            rows.append(
                {
                    "chunk_id": chunk_id(tenant_id, d.doc_id, i),
                    "tenant_id": tenant_id,
                    "doc_id": d.doc_id,
                    "chunk_index": i,
                    "title": d.title,
                    "text": c.text,
                    "dense": np.asarray(c.vector, dtype=np.float32).tolist(),
                    "metadata": c.metadata,
                    "doc_metadata": d.doc_metadata,
                    "doc_chunk_count": len(d.chunks),
                    "content_sha256": d.content_sha256,
                    "span_start": int(span[0]),
                    "span_end": int(span[1]),
                    "created_at": created,
                    "updated_at": now,
                }
            )
        return rows

    def delete_documents(
        self, tenant_id: str, info: CollectionInfo, doc_ids: Sequence[str]
    ) -> tuple[set[str], int]:
        """Delete the tenant's chunks of ``doc_ids``; (ids that existed, chunks removed)."""
        self._load(info.name)
        found: set[str] = set()
        removed = 0
        for start in range(0, len(doc_ids), 100):
            batch = list(doc_ids[start : start + 100])
            ids = ", ".join(quote_string(d) for d in batch)
            expr = tenant_expr(tenant_id, f"doc_id in [{ids}]")
            rows = self._query(info.name, expr, ["doc_id"], _QUERY_LIMIT)
            if not rows:
                continue
            if len(rows) < _QUERY_LIMIT:
                n = len(rows)
            else:  # very long documents: count, and find the ids by their first chunks
                n = self.count(info.name, expr)
                rows = self._query(info.name, f"{expr} and chunk_index == 0", ["doc_id"], len(batch))
            found.update(r["doc_id"] for r in rows)
            self._call("delete", self.client.delete, info.name, filter=_scoped(expr))
            removed += n
        return found, removed

    # search
    def search(
        self,
        tenant_id: str,
        info: CollectionInfo,
        *,
        mode: str,
        vector: np.ndarray | None,
        text: str,
        top_k: int,
        user_expr: str,
        fusion: str,
        rrf_k: int,
        weights: tuple[float, float],
    ) -> list[Hit]:
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        self._load(info.name)
        expr = _scoped(tenant_expr(tenant_id, user_expr))
        s = self.settings
        dense_param = {"metric_type": "IP", "params": {"ef": max(s.hnsw_ef_search, top_k)}}
        sparse_param = {"metric_type": "BM25", "params": {}}
        if mode == "dense":
            res = self._call(
                "search",
                self.client.search,
                info.name,
                data=[vector.tolist()],
                anns_field="dense",
                filter=expr,
                limit=top_k,
                output_fields=_OUTPUT_FIELDS,
                search_params=dense_param,
                consistency_level="Strong",
            )
        elif mode == "sparse":
            res = self._call(
                "search",
                self.client.search,
                info.name,
                data=[text],
                anns_field="sparse",
                filter=expr,
                limit=top_k,
                output_fields=_OUTPUT_FIELDS,
                search_params=sparse_param,
                consistency_level="Strong",
            )
        else:
            n = min(max(top_k, s.hybrid_candidates), _QUERY_LIMIT)
            reqs = [
                AnnSearchRequest(
                    data=[vector.tolist()], anns_field="dense", param=dense_param, limit=n, expr=expr
                ),
                AnnSearchRequest(data=[text], anns_field="sparse", param=sparse_param, limit=n, expr=expr),
            ]
            ranker = RRFRanker(rrf_k) if fusion == "rrf" else WeightedRanker(*weights, norm_score=True)
            res = self._call(
                "hybrid search",
                self.client.hybrid_search,
                info.name,
                reqs=reqs,
                ranker=ranker,
                limit=top_k,
                output_fields=_OUTPUT_FIELDS,
                consistency_level="Strong",
            )
        hits = []
        for h in list(res[0]) if res else []:
            e = h.get("entity") or {}
            score = float(h.get("distance", 0.0))
            if mode == "sparse":
                score = abs(score)  # BM25 >= 0; Milvus Lite reports it negated as a distance
            hits.append(
                Hit(
                    chunk_id=str(e.get("chunk_id") or h.get("id") or h.get("chunk_id")),
                    doc_id=str(e.get("doc_id", "")),
                    chunk_index=_as_int(e.get("chunk_index")),
                    text=str(e.get("text", "")),
                    score=score,
                    metadata=dict(e.get("metadata") or {}),
                    title=str(e.get("title", "")),
                    span=_span(e.get("span_start"), e.get("span_end")),
                )
            )
        return hits

    # documents
    def get_document(self, tenant_id: str, info: CollectionInfo, doc_id: str) -> DocumentInfo | None:
        self._load(info.name)
        doc_expr = tenant_expr(tenant_id, f"doc_id == {quote_string(doc_id)}")
        row = _first(self._query(info.name, f"{doc_expr} and chunk_index == 0", _DOC_FIELDS, 1))
        if row is None:
            return None
        return _document(row, info, chunk_count=self.count(info.name, doc_expr))

    def list_documents(
        self, tenant_id: str, info: CollectionInfo, *, user_expr: str, after: str, limit: int
    ) -> tuple[list[DocumentInfo], bool]:
        """The first ``limit`` documents after ``after`` by doc_id; and whether more follow."""
        self._load(info.name)
        cond = "chunk_index == 0"
        if after:
            cond += f" and doc_id > {quote_string(after)}"
        if user_expr:
            cond += f" and ({user_expr})"
        expr = tenant_expr(tenant_id, cond)
        total = self.count(info.name, expr)
        if total <= _QUERY_LIMIT:
            rows = self._query(info.name, expr, _DOC_FIELDS, _QUERY_LIMIT) if total else []
            best = heapq.nsmallest(limit + 1, rows, key=lambda r: r["doc_id"])
        else:  # scan in batches, keeping only the smallest ids
            it = self._call(
                "query",
                self.client.query_iterator,
                info.name,
                batch_size=1000,
                filter=_scoped(expr),
                output_fields=_DOC_FIELDS,
            )
            best = []
            try:
                while True:
                    batch = self._call("query", it.next)
                    if not batch:
                        break
                    best = heapq.nsmallest(limit + 1, [*best, *batch], key=lambda r: r["doc_id"])
            finally:
                it.close()
        docs = [_document(r, info, chunk_count=_as_int(r.get("doc_chunk_count"))) for r in best[:limit]]
        return docs, len(best) > limit

    def stats(self, tenant_id: str, info: CollectionInfo) -> CollectionStats:
        self._load(info.name)
        chunks = self.count(info.name, tenant_expr(tenant_id))
        docs = self.count(info.name, tenant_expr(tenant_id, "chunk_index == 0")) if chunks else 0
        return CollectionStats(info.name, info.model, info.dimension, info.schema_version, docs, chunks)

    def settle(self, info: CollectionInfo) -> None:
        """After a batch of writes: on Milvus Lite, seal the new rows so searches use the index.

        Milvus Lite searches rows it has not flushed by brute force in Python, so a large unflushed
        batch makes every search slow; flushing a small batch costs milliseconds. A Milvus server
        flushes on its own (frequent manual flushes would only make small segments).
        """
        if self.lite:
            try:
                self.client.flush(info.name)
            except Exception:  # noqa: BLE001 - the data is written; only search speed is at stake
                log.warning("flushing %s failed", info.name, exc_info=True)

    def insert_rows(self, info: CollectionInfo, rows: list[dict]) -> None:
        """Raw insert of prepared rows (benchmarks, bulk loads)."""
        self._load(info.name)
        self._call("insert", self.client.insert, info.name, rows)


def _document(row: dict, info: CollectionInfo, *, chunk_count: int) -> DocumentInfo:
    return DocumentInfo(
        doc_id=str(row["doc_id"]),
        title=str(row.get("title") or ""),
        metadata=dict(row.get("doc_metadata") or {}),
        chunk_count=chunk_count,
        content_sha256=str(row.get("content_sha256") or ""),
        model=info.model,
        created_at_ms=_as_int(row.get("created_at")),
        updated_at_ms=_as_int(row.get("updated_at")),
    )


_EXPECTED_TYPES = {
    "chunk_id": "VARCHAR",
    "tenant_id": "VARCHAR",
    "doc_id": "VARCHAR",
    "chunk_index": "INT64",
    "title": "VARCHAR",
    "text": "VARCHAR",
    "sparse": "SPARSE_FLOAT_VECTOR",
    "dense": "FLOAT_VECTOR",
    "metadata": "JSON",
    "doc_metadata": "JSON",
    "doc_chunk_count": "INT64",
    "content_sha256": "VARCHAR",
    "span_start": "INT64",
    "span_end": "INT64",
    "created_at": "INT64",
    "updated_at": "INT64",
}


def _schema_problems(desc: dict, dimension: int) -> list[str]:
    fields = {f["name"]: f for f in desc.get("fields", [])}
    problems = []
    for name, type_name in _EXPECTED_TYPES.items():
        f = fields.get(name)
        if f is None:
            problems.append(f"field {name} is missing")
            continue
        actual = getattr(f.get("type"), "name", str(f.get("type")))
        if actual != type_name:
            problems.append(f"field {name} is {actual}, expected {type_name}")
    dense = fields.get("dense")
    if dense is not None and _as_int((dense.get("params") or {}).get("dim"), -1) != dimension:
        problems.append(f"dense has dimension {(dense.get('params') or {}).get('dim')}, expected {dimension}")
    tenant = fields.get("tenant_id")
    if tenant is not None and not tenant.get("is_partition_key"):
        problems.append("tenant_id is not the partition key")
    if fields.get("chunk_id", {}).get("is_primary") is not True and "chunk_id" in fields:
        problems.append("chunk_id is not the primary key")
    bm25 = [
        fn
        for fn in desc.get("functions", [])
        if list(fn.get("input_field_names", [])) == ["text"]
        and list(fn.get("output_field_names", [])) == ["sparse"]
    ]
    if not bm25:
        problems.append("the BM25 function text -> sparse is missing")
    return problems


# -- the async facade ----------------------------------------------------------------------------
class RetrievalCore:
    """Validated, tenant-scoped operations; Milvus calls run in threads."""

    def __init__(self, settings: RetrievalSettings, *, store: MilvusStore, embedder: Embedder | None) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._dims: dict[str, int] = dict(settings.model_dimensions)

    # models
    async def default_model(self) -> str:
        if self.settings.default_embedding_model:
            return self.settings.default_embedding_model
        if self.embedder is None:
            raise FailedPrecondition(
                "no default embedding model: name one in the request or set "
                "LORAG_RETRIEVAL_DEFAULT_EMBEDDING_MODEL"
            )
        return await self.embedder.default_model()

    async def resolve_model(self, model: str, *, field: str = "embedding_model") -> tuple[str, int]:
        """(model name, dimension); NOT_FOUND for a model neither stored, configured nor served."""
        model = model or await self.default_model()
        validate_model_name(model, field=field)
        if model in self._dims:
            return model, self._dims[model]
        info = await asyncio.to_thread(self.store.find_collection, model)
        if info is not None:
            dim = info.dimension
        elif self.embedder is not None:
            dim = await self.embedder.dimension(model)
        else:
            raise NotFound(f"unknown embedding model {model!r}")
        self._dims[model] = int(dim)
        return model, int(dim)

    async def embed(self, texts: list[str], *, model: str, input_type: str) -> np.ndarray:
        if self.embedder is None:
            raise FailedPrecondition("text embedding is not available in this deployment; send vectors")
        vectors = await self.embedder.embed(texts, model=model, input_type=input_type)
        return np.asarray(vectors, dtype=np.float32)

    # search
    async def search(self, tenant_id: str, q: SearchQuery) -> SearchResult:
        started = time.perf_counter()
        validate_tenant_id(tenant_id)
        s = self.settings
        text = q.text or ""
        if len(text) > s.max_query_chars:
            raise InvalidArgument(
                f"at most {s.max_query_chars} characters (got {len(text)})", field="query_text"
            )
        if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
            raise InvalidArgument("control characters are not allowed", field="query_text")
        has_text = bool(text.strip())
        has_vector = q.vector is not None and len(q.vector) > 0
        mode = q.mode or ("hybrid" if has_text else "dense")
        if mode not in MODES:
            raise InvalidArgument(f"unknown mode {mode!r}", field="mode")
        if mode in ("sparse", "hybrid") and not has_text:
            raise InvalidArgument(f"is required for {mode} search", field="query_text")
        if mode == "dense" and not (has_text or has_vector):
            raise InvalidArgument("a query vector or query text is required", field="query_vector")
        top_k = s.default_top_k if q.top_k is None else q.top_k
        if not 1 <= top_k <= s.max_top_k:
            raise InvalidArgument(f"must be between 1 and {s.max_top_k} (got {q.top_k})", field="top_k")
        fusion = q.fusion or "rrf"
        if fusion not in FUSIONS:
            raise InvalidArgument(f"unknown fusion {fusion!r}", field="fusion")
        rrf_k = q.rrf_k or 60
        if not 1 <= rrf_k <= 1000:
            raise InvalidArgument(f"must be between 1 and 1000 (got {q.rrf_k})", field="rrf_k")
        weights = _weights(q.dense_weight, q.sparse_weight)
        user_expr = compile_filter(
            list(q.conditions), json_column="metadata", allowed_keys=s.filter_metadata_keys or None
        )
        model, dim = await self.resolve_model(q.model)
        vector = None
        if mode in ("dense", "hybrid"):
            if has_vector:
                vector = check_vector(q.vector, dim, field="query_vector")
            else:
                vector = check_vector(
                    (await self.embed([text], model=model, input_type="query"))[0], dim, field="query_vector"
                )
        info = await asyncio.to_thread(self.store.find_collection, model)
        if info is None:
            hits: list[Hit] = []
        else:
            if info.dimension != dim:
                raise FailedPrecondition(
                    f"collection {info.name!r} has dimension {info.dimension}, not {dim}"
                )
            hits = await asyncio.to_thread(
                self.store.search,
                tenant_id,
                info,
                mode=mode,
                vector=vector,
                text=text,
                top_k=top_k,
                user_expr=user_expr,
                fusion=fusion,
                rrf_k=rrf_k,
                weights=weights,
            )
        return SearchResult(hits, mode, model, (time.perf_counter() - started) * 1000.0)

    # documents
    async def delete_documents(
        self, tenant_id: str, doc_ids: Sequence[str], *, model: str = ""
    ) -> tuple[int, int]:
        validate_tenant_id(tenant_id)
        if not 1 <= len(doc_ids) <= 1000:
            raise InvalidArgument(f"1-1000 ids (got {len(doc_ids)})", field="doc_ids")
        for i, d in enumerate(doc_ids):
            validate_doc_id(d, field=f"doc_ids[{i}]")
        ids = list(dict.fromkeys(doc_ids))
        if model:
            model, _ = await self.resolve_model(model)
            info = await asyncio.to_thread(self.store.find_collection, model)
            infos = [info] if info else []
        else:
            infos = await asyncio.to_thread(self.store.list_collections)
        found: set[str] = set()
        chunks = 0
        for info in infos:
            docs, n = await asyncio.to_thread(self.store.delete_documents, tenant_id, info, ids)
            found |= docs
            chunks += n
            if n:
                await asyncio.to_thread(self.store.settle, info)
        return len(found), chunks

    async def get_document(self, tenant_id: str, doc_id: str, *, model: str = "") -> DocumentInfo:
        validate_tenant_id(tenant_id)
        validate_doc_id(doc_id)
        model, _ = await self.resolve_model(model)
        info = await asyncio.to_thread(self.store.find_collection, model)
        doc = await asyncio.to_thread(self.store.get_document, tenant_id, info, doc_id) if info else None
        if doc is None:
            raise NotFound(f"document {doc_id!r} not found")
        return doc

    async def list_documents(
        self,
        tenant_id: str,
        *,
        conditions: Sequence[Condition] = (),
        model: str = "",
        size: int = 0,
        token: str = "",
    ) -> DocumentPage:
        validate_tenant_id(tenant_id)
        limit = page_size(size)
        after = decode_token(token)
        user_expr = compile_filter(
            list(conditions),
            json_column="doc_metadata",
            allowed_keys=self.settings.filter_metadata_keys or None,
        )
        model, _ = await self.resolve_model(model)
        info = await asyncio.to_thread(self.store.find_collection, model)
        if info is None:
            return DocumentPage([], "")
        docs, more = await asyncio.to_thread(
            self.store.list_documents, tenant_id, info, user_expr=user_expr, after=after, limit=limit
        )
        return DocumentPage(docs, encode_token(docs[-1].doc_id) if more and docs else "")

    async def stats(self, tenant_id: str, *, model: str = "") -> list[CollectionStats]:
        validate_tenant_id(tenant_id)
        if model:
            model, _ = await self.resolve_model(model)
            info = await asyncio.to_thread(self.store.find_collection, model)
            infos = [info] if info else []
        else:
            infos = await asyncio.to_thread(self.store.list_collections)
        return [await asyncio.to_thread(self.store.stats, tenant_id, info) for info in infos]


def _weights(dense: float | None, sparse: float | None) -> tuple[float, float]:
    for name, w in (("dense_weight", dense), ("sparse_weight", sparse)):
        if w is not None and (not math.isfinite(w) or not 0.0 <= w <= 1.0):
            raise InvalidArgument(f"must be in [0, 1] (got {w})", field=name)
    if dense is None and sparse is None:
        return 0.5, 0.5
    if dense is None:
        dense = 1.0 - sparse
    if sparse is None:
        sparse = 1.0 - dense
    if dense == 0.0 and sparse == 0.0:
        raise InvalidArgument("dense_weight and sparse_weight cannot both be 0", field="dense_weight")
    return float(dense), float(sparse)
