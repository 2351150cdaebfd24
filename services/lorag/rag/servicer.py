"""lorag.rag.v1 servicer: proto <-> RagCore.

The orchestrator owns no model. In the in-process host it calls its sibling servicers directly
(:meth:`attach_local_services`); under Ray Serve it calls the other applications through
DeploymentHandles (``lorag.rag.deployment``).
"""

from __future__ import annotations

from lorag.common.errors import InvalidArgument
from lorag.common.remote import inside_serve_replica
from lorag.common.rpc import Call, ServicerBase, aiter_limited, rpc
from lorag.common.tenancy import Role
from lorag.common.v1 import common_pb2
from lorag.rag.core import (
    AskInput,
    AskResult,
    DocInput,
    DocResult,
    IngestOptions,
    Passage,
    RagCore,
    Sampling,
    tally,
)
from lorag.rag.downstream import Downstream, LocalDownstream, ServeDownstream
from lorag.rag.settings import RagSettings
from lorag.rag.store import AnswerStore, FeedbackInput
from lorag.rag.v1 import rag_pb2 as pb

_ROUTING = {
    pb.RETRIEVAL_ROUTING_UNSPECIFIED: "",
    pb.RETRIEVAL_ROUTING_AUTO: "auto",
    pb.RETRIEVAL_ROUTING_ALWAYS: "always",
    pb.RETRIEVAL_ROUTING_NEVER: "never",
}
_STATUS = {
    "indexed": pb.INGEST_STATUS_INDEXED,
    "failed": pb.INGEST_STATUS_FAILED,
    "skipped": pb.INGEST_STATUS_SKIPPED,
}
_RATING = {pb.FEEDBACK_RATING_THUMBS_UP: "up", pb.FEEDBACK_RATING_THUMBS_DOWN: "down"}


def ask_input(request, call: Call) -> AskInput:
    """AskRequest and AskStreamRequest share their fields."""
    if request.routing not in _ROUTING:
        raise InvalidArgument(f"unknown routing {request.routing}", field="routing")
    r, g = request.retrieval, request.generation
    sampling = None
    if g.HasField("sampling"):
        s = g.sampling
        sampling = Sampling(
            temperature=s.temperature if s.HasField("temperature") else None,
            top_p=s.top_p if s.HasField("top_p") else None,
            top_k=s.top_k,
            max_new_tokens=s.max_new_tokens,
            stop=list(s.stop),
            seed=s.seed if s.HasField("seed") else None,
            repetition_penalty=s.repetition_penalty if s.HasField("repetition_penalty") else None,
        )
    return AskInput(
        question=request.question,
        adapter_ref=request.adapter.ref,
        reranker_ref=request.reranker_adapter.ref,
        filter=request.filter if request.HasField("filter") else None,
        mode=r.mode,
        fusion=r.fusion,
        top_k=r.top_k,
        rerank=r.rerank if r.HasField("rerank") else None,
        rerank_top_n=r.rerank_top_n,
        min_relevance=r.min_relevance if r.HasField("min_relevance") else None,
        model=g.model,
        sampling=sampling,
        template=request.template,
        history=[(t.question, t.answer) for t in request.history],
        query_rewrite=request.query_rewrite,
        multi_query=request.multi_query,
        routing=_ROUTING[request.routing],
        return_contexts=request.return_contexts,
        request_id=call.metadata("x-request-id") or call.trace_id,
        trace_id=call.trace_id,
    )


def citation_pb(p: Passage) -> pb.Citation:
    return pb.Citation(
        index=p.index,
        doc_id=p.doc_id,
        chunk_id=p.chunk_id,
        score=p.score,
        text=p.text,
        char_start=p.char_start,
        char_end=p.char_end,
        title=p.title,
    )


def ask_response(r: AskResult) -> pb.AskResponse:
    return pb.AskResponse(
        answer=r.answer,
        citations=[citation_pb(p) for p in r.citations],
        rejected=r.rejected,
        timings=[common_pb2.StageTiming(stage=name, duration_ms=ms) for name, ms in r.timings],
        usage=common_pb2.Usage(
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            total_tokens=r.prompt_tokens + r.completion_tokens,
        ),
        adapter_version_id=r.adapter_version_id,
        reranker_adapter_version_id=r.reranker_adapter_version_id,
        trace_id=r.trace_id,
        answer_id=r.answer_id,
        contexts=[citation_pb(p) for p in r.contexts],
        search_queries=r.search_queries,
        retrieval_performed=r.retrieval_performed,
    )


def doc_input(d: pb.Document) -> DocInput:
    which = d.WhichOneof("content")
    return DocInput(
        doc_id=d.doc_id,
        title=d.title,
        text=d.text if which == "text" else None,
        data=d.data if which == "data" else None,
        mime_type=d.mime_type,
        metadata=d.metadata if d.HasField("metadata") else None,
    )


def ingest_options(o: pb.IngestOptions) -> IngestOptions:
    return IngestOptions(
        embedding_model=o.embedding_model,
        force=o.force,
        chunk_tokens=o.chunk_tokens,
        overlap_tokens=o.overlap_tokens if o.HasField("overlap_tokens") else None,
    )


def result_pb(r: DocResult) -> pb.DocumentResult:
    return pb.DocumentResult(
        doc_id=r.doc_id, status=_STATUS[r.status], chunk_count=r.chunk_count, error=r.error
    )


def totals_pb(results: list[DocResult]) -> pb.IngestTotals:
    return pb.IngestTotals(**tally(results))


class RagServicer(ServicerBase):
    """Ingest, Ask (unary and streaming) and Feedback inside the caller's tenant."""

    SERVICES = (pb.DESCRIPTOR.services_by_name["RagService"],)

    def __init__(self, runtime=None, *, settings: RagSettings | None = None, downstream=None) -> None:
        super().__init__(runtime)
        self.settings = settings or RagSettings()
        self._downstream: Downstream | None = downstream
        self._core: RagCore | None = None
        self.store = AnswerStore(self.runtime.db, retention_days=self.settings.answer_retention_days)

    def attach_local_services(self, servicers: dict[str, object]) -> None:
        """In-process host: call the sibling servicers of this process."""
        if self._downstream is None:
            self._downstream = LocalDownstream(servicers)

    def make_downstream(self) -> Downstream:
        """Other Ray Serve applications inside a replica; otherwise nothing is reachable."""
        if inside_serve_replica():
            return ServeDownstream(self.settings)
        return LocalDownstream({})

    @property
    def core(self) -> RagCore:
        if self._core is None:
            if self._downstream is None:
                self._downstream = self.make_downstream()
            self._core = RagCore(self.settings, self._downstream, self.store)
        return self._core

    # -- Ingest ----------------------------------------------------------------------------------
    @rpc(Role.USER)
    async def Ingest(self, request, call: Call):
        results: list[DocResult] = []
        options = None
        first = True
        async for message in aiter_limited(request, max_messages=self.settings.max_ingest_documents):
            if first:
                options = ingest_options(message.options)
                first = False
            elif message.HasField("options"):
                raise InvalidArgument("send options in the first message only", field="options")
            (result,) = await self.core.ingest(call.tenant_id, [doc_input(message.document)], options)
            results.append(result)
            yield pb.IngestResponse(result=result_pb(result), totals=totals_pb(results))

    @rpc(Role.USER)
    async def IngestDocuments(self, request: pb.IngestDocumentsRequest, call: Call):
        if not 1 <= len(request.documents) <= 100:
            raise InvalidArgument(f"send 1-100 documents (got {len(request.documents)})", field="documents")
        results = await self.core.ingest(
            call.tenant_id, [doc_input(d) for d in request.documents], ingest_options(request.options)
        )
        return pb.IngestDocumentsResponse(results=[result_pb(r) for r in results], totals=totals_pb(results))

    @rpc(Role.USER)
    async def DeleteDocuments(self, request: pb.DeleteDocumentsRequest, call: Call):
        docs, chunks = await self.core.delete(call.tenant_id, list(request.doc_ids))
        return pb.DeleteDocumentsResponse(deleted_document_count=docs, deleted_chunk_count=chunks)

    # -- Ask -------------------------------------------------------------------------------------
    @rpc(Role.USER)
    async def Ask(self, request: pb.AskRequest, call: Call):
        return ask_response(await self.core.ask(call.tenant_id, ask_input(request, call)))

    @rpc(Role.USER)
    async def AskStream(self, request: pb.AskStreamRequest, call: Call):
        async for kind, value in self.core.ask_stream(call.tenant_id, ask_input(request, call)):
            if kind == "delta":
                yield pb.AskStreamResponse(answer_delta=value)
            else:
                yield pb.AskStreamResponse(result=ask_response(value))

    # -- Feedback --------------------------------------------------------------------------------
    @rpc(Role.USER)
    async def Feedback(self, request: pb.FeedbackRequest, call: Call):
        if request.rating not in (pb.FEEDBACK_RATING_UNSPECIFIED, *_RATING):
            raise InvalidArgument(f"unknown rating {request.rating}", field="rating")
        feedback_id = await self.core.feedback(
            call.tenant_id,
            FeedbackInput(
                answer_id=request.answer_id,
                rating=_RATING.get(request.rating, ""),
                score=request.score if request.HasField("score") else None,
                comment=request.comment,
                corrected_answer=request.corrected_answer,
                relevant_chunk_ids=list(request.relevant_chunk_ids),
                irrelevant_chunk_ids=list(request.irrelevant_chunk_ids),
            ),
            created_by=call.principal.key_id if call.principal else "",
        )
        return pb.FeedbackResponse(feedback_id=feedback_id)
