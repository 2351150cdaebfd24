"""lorag.retrieval.v1 servicer: proto <-> RetrievalCore / IngestPipeline. No business logic here.

Besides the RPCs (tenant from the caller's key), the servicer offers ``*_internal`` methods for
other deployments (the RAG orchestrator) that take the tenant of an already authenticated
principal explicitly. Their names are not RPC names, so the gRPC proxy cannot reach them; tenant
scoping happens in the core exactly as for RPCs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from lorag.common import metrics, telemetry
from lorag.common.convert import json_value
from lorag.common.errors import InvalidArgument
from lorag.common.rpc import Call, ServicerBase, rpc
from lorag.common.tenancy import Role
from lorag.common.v1 import common_pb2
from lorag.retrieval.core import DocumentInfo, Hit, MilvusStore, RetrievalCore, SearchQuery
from lorag.retrieval.embedders import Embedder, default_embedder
from lorag.retrieval.filters import Condition
from lorag.retrieval.ingest import ChunkingSpec, ChunkSpec, DocumentSpec, IngestPipeline
from lorag.retrieval.lite_server import SharedLiteServer
from lorag.retrieval.settings import RetrievalSettings
from lorag.retrieval.v1 import retrieval_pb2 as pb

log = logging.getLogger("lorag.retrieval")

_MODES = {pb.SEARCH_MODE_DENSE: "dense", pb.SEARCH_MODE_SPARSE: "sparse", pb.SEARCH_MODE_HYBRID: "hybrid"}
_MODES_PB = {v: k for k, v in _MODES.items()}
_FUSIONS = {pb.FUSION_METHOD_RRF: "rrf", pb.FUSION_METHOD_WEIGHTED: "weighted"}
_OPS = {
    common_pb2.FILTER_OP_EQ: "eq",
    common_pb2.FILTER_OP_NE: "ne",
    common_pb2.FILTER_OP_GT: "gt",
    common_pb2.FILTER_OP_GTE: "gte",
    common_pb2.FILTER_OP_LT: "lt",
    common_pb2.FILTER_OP_LTE: "lte",
    common_pb2.FILTER_OP_IN: "in",
    common_pb2.FILTER_OP_NOT_IN: "not_in",
    common_pb2.FILTER_OP_CONTAINS: "contains",
    common_pb2.FILTER_OP_EXISTS: "exists",
    common_pb2.FILTER_OP_RANGE: "range",
}
_AUTO: Any = object()


# -- proto -> plain ------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """JSON from protobuf has only floats: give whole numbers back their int type."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def struct_to_dict(s: struct_pb2.Struct, *, field: str = "metadata") -> dict[str, Any]:
    return _plain(json_value(s, field=field)) if s.fields else {}


def dict_to_struct(d: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    if d:
        s.update(d)
    return s


def value_to_py(v: struct_pb2.Value, *, field: str = "values") -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        return v.number_value
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind in ("list_value", "struct_value"):
        return _plain(json_value(v, field=field))
    return None


def conditions(f: common_pb2.Filter, *, path: str = "filter") -> list[Condition]:
    out = []
    for i, c in enumerate(f.conditions):
        op = _OPS.get(c.op)
        if op is None:
            raise InvalidArgument("must name an operator", field=f"{path}.conditions[{i}].op")
        values = tuple(value_to_py(v, field=f"{path}.conditions[{i}].values") for v in c.values)
        out.append(Condition(c.field, op, values))
    return out


def document_spec(d: pb.DocumentInput, *, field: str = "documents[0]") -> DocumentSpec:
    kind = d.WhichOneof("content")
    chunks = None
    if kind == "chunks":
        chunks = [
            ChunkSpec(
                text=c.text,
                vector=list(c.dense) or None,
                span=(c.span.start, c.span.end) if c.HasField("span") else None,
                metadata=struct_to_dict(c.metadata, field=f"{field}.chunks[{j}].metadata"),
            )
            for j, c in enumerate(d.chunks.chunks)
        ]
    return DocumentSpec(
        doc_id=d.doc_id,
        title=d.title,
        metadata=struct_to_dict(d.metadata, field=f"{field}.metadata"),
        content_sha256=d.content_sha256,
        chunks=chunks,
        text=d.text if kind == "text" else None,
        data=d.data if kind == "data" else None,
        mime_type=d.mime_type,
    )


def search_query(r: pb.SearchRequest) -> SearchQuery:
    if r.mode not in _MODES and r.mode != pb.SEARCH_MODE_UNSPECIFIED:
        raise InvalidArgument(f"unknown mode {r.mode}", field="mode")
    if r.fusion not in _FUSIONS and r.fusion != pb.FUSION_METHOD_UNSPECIFIED:
        raise InvalidArgument(f"unknown fusion {r.fusion}", field="fusion")
    return SearchQuery(
        text=r.query_text,
        vector=list(r.query_vector) or None,
        mode=_MODES.get(r.mode),
        fusion=_FUSIONS.get(r.fusion),
        rrf_k=r.rrf_k,
        dense_weight=r.dense_weight if r.HasField("dense_weight") else None,
        sparse_weight=r.sparse_weight if r.HasField("sparse_weight") else None,
        top_k=r.top_k if r.HasField("top_k") else None,
        conditions=conditions(r.filter),
        model=r.embedding_model,
    )


# -- plain -> proto ------------------------------------------------------------------------------
def _ts(ms: int) -> Timestamp | None:
    if ms <= 0:
        return None
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def hit_pb(h: Hit) -> pb.SearchHit:
    return pb.SearchHit(
        chunk=common_pb2.ChunkRef(doc_id=h.doc_id, chunk_id=h.chunk_id, chunk_index=h.chunk_index),
        text=h.text,
        score=h.score,
        metadata=dict_to_struct(h.metadata),
        title=h.title,
        span=pb.CharSpan(start=h.span[0], end=h.span[1]) if h.span else None,
    )


def document_pb(d: DocumentInfo) -> pb.Document:
    return pb.Document(
        doc_id=d.doc_id,
        title=d.title,
        metadata=dict_to_struct(d.metadata),
        chunk_count=d.chunk_count,
        content_sha256=d.content_sha256,
        embedding_model=d.model,
        create_time=_ts(d.created_at_ms),
        update_time=_ts(d.updated_at_ms),
    )


class RetrievalServicer(ServicerBase):
    """Tenant-isolated dense / BM25 / hybrid search over Milvus, and the ingest pipeline."""

    SERVICES = (pb.DESCRIPTOR.services_by_name["RetrievalService"],)

    def __init__(
        self,
        runtime=None,
        *,
        settings: RetrievalSettings | None = None,
        embedder: Embedder | None = _AUTO,
        store: MilvusStore | None = None,
    ) -> None:
        super().__init__(runtime)
        settings = settings or RetrievalSettings()
        if settings.data_dir is None:
            settings = settings.model_copy(update={"data_dir": self.runtime.settings.data_dir})
        self.settings = settings
        self._embedder = (
            default_embedder(settings.embedder, app_name=settings.embedding_app)
            if embedder is _AUTO
            else embedder
        )
        self._store = store
        self._owns_store = store is None
        self._lite: SharedLiteServer | None = None
        self._core: RetrievalCore | None = None
        self._ingest: IngestPipeline | None = None
        self._init_lock = asyncio.Lock()

    # -- lazy start-up (the first call opens Milvus, so an idle replica costs nothing) ----------
    def _open_store(self) -> MilvusStore:
        s = self.settings
        token = s.milvus_token.get_secret_value() if s.milvus_token else ""
        uri = s.milvus_uri
        lite = None
        revive = None
        if not uri:
            if s.lite_mode == "server":
                self._lite = SharedLiteServer(s.lite_path(), port=s.lite_server_port)
                uri, lite, revive = self._lite.acquire(), True, self._lite.revive
            else:
                uri = str(s.lite_path())
        return MilvusStore(
            uri=uri, settings=s, token=token, db_name=s.milvus_db_name, lite=lite, on_unavailable=revive
        )

    async def core(self) -> RetrievalCore:
        if self._core is None:
            async with self._init_lock:
                if self._core is None:
                    if self._store is None:
                        self._store = await asyncio.to_thread(self._open_store)
                    core = RetrievalCore(self.settings, store=self._store, embedder=self._embedder)
                    self._ingest = IngestPipeline(core)
                    self._core = core
        return self._core

    async def ingest(self) -> IngestPipeline:
        await self.core()
        assert self._ingest is not None
        return self._ingest

    def close(self) -> None:
        """Release Milvus (and the shared server, if this process used one)."""
        if self._store is not None and self._owns_store:
            self._store.close()
            self._store = None
        self._core = None
        if self._lite is not None:
            self._lite.release()
            self._lite = None

    def __del__(self) -> None:  # Ray Serve calls it when a replica shuts down
        with contextlib.suppress(Exception):
            self.close()

    # -- RPCs --------------------------------------------------------------------------------
    @rpc(Role.USER)
    async def Upsert(self, request: pb.UpsertRequest, call: Call):
        async for out in self.upsert_stream_internal(call.tenant_id, request):
            yield out

    @rpc(Role.USER)
    async def DeleteDocuments(self, request: pb.DeleteDocumentsRequest, call: Call):
        return await self.delete_documents_internal(call.tenant_id, request)

    @rpc(Role.USER)
    async def Search(self, request: pb.SearchRequest, call: Call):
        return await self.search_internal(call.tenant_id, request)

    @rpc(Role.USER)
    async def GetDocument(self, request: pb.GetDocumentRequest, call: Call):
        return await self.get_document_internal(call.tenant_id, request)

    @rpc(Role.USER)
    async def ListDocuments(self, request: pb.ListDocumentsRequest, call: Call):
        return await self.list_documents_internal(call.tenant_id, request)

    @rpc(Role.USER)
    async def Stats(self, request: pb.StatsRequest, call: Call):
        return await self.stats_internal(call.tenant_id, request)

    # -- internal API (DeploymentHandle callers pass the authenticated tenant) -----------------
    @telemetry.internal
    async def upsert_stream_internal(
        self, tenant_id: str, request: pb.UpsertRequest
    ) -> AsyncIterator[pb.UpsertResponse]:
        started = time.perf_counter()
        async for out in self._upsert_stream(tenant_id, request):
            r = out.result
            indexed = r.status == pb.DOCUMENT_STATUS_INDEXED
            metrics.RETRIEVAL_INGESTED_DOCUMENTS.labels("indexed" if indexed else "failed").inc()
            if indexed:
                metrics.RETRIEVAL_INGESTED_CHUNKS.labels(metrics.tenant_label(tenant_id)).inc(r.chunk_count)
            yield out
        metrics.RETRIEVAL_INGEST_LATENCY.observe(time.perf_counter() - started)
        await self._record_stored(tenant_id)

    async def _record_stored(self, tenant_id: str) -> None:
        """Refresh the tenant's stored-chunks gauge (one count query)."""
        core = await self.core()
        stats = await core.stats(tenant_id)
        metrics.RETRIEVAL_CHUNKS_STORED.labels(metrics.tenant_label(tenant_id)).set(
            sum(st.chunk_count for st in stats)
        )

    async def _upsert_stream(
        self, tenant_id: str, request: pb.UpsertRequest
    ) -> AsyncIterator[pb.UpsertResponse]:
        pipeline = await self.ingest()
        chunking = None
        if request.HasField("chunking"):
            c = request.chunking
            chunking = ChunkingSpec(
                c.chunk_tokens, c.overlap_tokens if c.HasField("overlap_tokens") else None
            )
        docs = [document_spec(d, field=f"documents[{i}]") for i, d in enumerate(request.documents)]
        async for outcome, progress in pipeline.run(
            tenant_id, docs, model=request.embedding_model, chunking=chunking
        ):
            yield pb.UpsertResponse(
                result=pb.DocumentResult(
                    doc_id=outcome.doc_id,
                    status=pb.DOCUMENT_STATUS_INDEXED if outcome.ok else pb.DOCUMENT_STATUS_FAILED,
                    chunk_count=outcome.chunk_count,
                    replaced_chunk_count=outcome.replaced_chunk_count,
                    chunk_ids=list(outcome.chunk_ids),
                    error=outcome.error,
                ),
                progress=pb.UpsertProgress(
                    documents_total=progress.total,
                    documents_done=progress.done,
                    documents_failed=progress.failed,
                    chunks_written=progress.chunks_written,
                ),
            )

    @telemetry.internal
    async def upsert_internal(self, tenant_id: str, request: pb.UpsertRequest) -> list[pb.UpsertResponse]:
        return [m async for m in self.upsert_stream_internal(tenant_id, request)]

    @telemetry.internal
    async def delete_documents_internal(
        self, tenant_id: str, request: pb.DeleteDocumentsRequest
    ) -> pb.DeleteDocumentsResponse:
        core = await self.core()
        docs, chunks = await core.delete_documents(
            tenant_id, list(request.doc_ids), model=request.embedding_model
        )
        await self._record_stored(tenant_id)
        return pb.DeleteDocumentsResponse(deleted_document_count=docs, deleted_chunk_count=chunks)

    @telemetry.internal
    async def search_internal(self, tenant_id: str, request: pb.SearchRequest) -> pb.SearchResponse:
        core = await self.core()
        started = time.perf_counter()
        with telemetry.span("search", top_k=request.top_k) as span:
            result = await core.search(tenant_id, search_query(request))
            span.set_attribute("lorag.mode", result.mode)
            span.set_attribute("lorag.hits", len(result.hits))
        metrics.RETRIEVAL_SEARCH_LATENCY.labels(result.mode).observe(time.perf_counter() - started)
        metrics.RETRIEVAL_RESULTS.labels(result.mode).observe(len(result.hits))
        return pb.SearchResponse(
            hits=[hit_pb(h) for h in result.hits],
            mode=_MODES_PB[result.mode],
            took_ms=result.took_ms,
            embedding_model=result.model,
        )

    @telemetry.internal
    async def get_document_internal(
        self, tenant_id: str, request: pb.GetDocumentRequest
    ) -> pb.GetDocumentResponse:
        core = await self.core()
        doc = await core.get_document(tenant_id, request.doc_id, model=request.embedding_model)
        return pb.GetDocumentResponse(document=document_pb(doc))

    @telemetry.internal
    async def list_documents_internal(
        self, tenant_id: str, request: pb.ListDocumentsRequest
    ) -> pb.ListDocumentsResponse:
        core = await self.core()
        page = await core.list_documents(
            tenant_id,
            conditions=conditions(request.filter),
            model=request.embedding_model,
            size=request.page.page_size,
            token=request.page.page_token,
        )
        return pb.ListDocumentsResponse(
            documents=[document_pb(d) for d in page.documents],
            page=common_pb2.PageResponse(next_page_token=page.next_token),
        )

    @telemetry.internal
    async def stats_internal(self, tenant_id: str, request: pb.StatsRequest) -> pb.StatsResponse:
        core = await self.core()
        stats = await core.stats(tenant_id, model=request.embedding_model)
        if not request.embedding_model:
            metrics.RETRIEVAL_CHUNKS_STORED.labels(metrics.tenant_label(tenant_id)).set(
                sum(st.chunk_count for st in stats)
            )
        return pb.StatsResponse(
            collections=[
                pb.CollectionStats(
                    collection=s.collection,
                    embedding_model=s.model,
                    dimension=s.dimension,
                    schema_version=s.schema_version,
                    document_count=s.document_count,
                    chunk_count=s.chunk_count,
                )
                for s in stats
            ],
            document_count=sum(s.document_count for s in stats),
            chunk_count=sum(s.chunk_count for s in stats),
        )
