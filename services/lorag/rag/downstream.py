"""How the orchestrator reaches the services it composes: one protocol, two implementations.

The RAG core only sees :class:`Downstream`. In the in-process host it is :class:`LocalDownstream`,
which calls the sibling servicers' ``*_internal`` methods in the same process; inside Ray Serve it
is :class:`ServeDownstream`, which calls the same methods through DeploymentHandles (no extra
gRPC hop, and the proxy cannot reach them). Either way the already authenticated tenant is passed
explicitly — the downstream service never reads it from a request body.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from lorag.common import errors, telemetry
from lorag.common.remote import domain_error
from lorag.generation.v1 import generation_pb2 as gen_pb
from lorag.reranking.v1 import reranking_pb2 as rr_pb
from lorag.retrieval.v1 import retrieval_pb2 as ret_pb

log = logging.getLogger("lorag.rag")


@dataclass(frozen=True)
class GenerationInfo:
    model: str
    max_context: int
    max_prompt_tokens: int
    max_new_tokens: int


class Downstream(Protocol):
    """The calls the orchestrator makes; every one names the tenant it acts for."""

    async def embed(self, texts: list[str], *, model: str = "") -> dict: ...

    async def search(self, tenant_id: str, request: ret_pb.SearchRequest) -> ret_pb.SearchResponse: ...

    async def rerank(
        self, tenant_id: str, request: rr_pb.RerankRequest, *, request_id: str = ""
    ) -> rr_pb.RerankResponse: ...

    def generate_stream(
        self,
        tenant_id: str,
        request: gen_pb.GenerateStreamRequest,
        *,
        request_id: str,
        adapter_version: str = "",
    ) -> AsyncIterator[gen_pb.GenerateStreamResponse]:
        """``adapter_version`` (from :meth:`resolve_adapter`) routes to replicas holding it."""
        ...

    async def resolve_adapter(self, tenant_id: str, ref: str, *, request_id: str) -> str: ...

    async def generation_info(self, model: str = "") -> GenerationInfo: ...

    def upsert_stream(
        self, tenant_id: str, request: ret_pb.UpsertRequest
    ) -> AsyncIterator[ret_pb.UpsertResponse]: ...

    async def get_document(
        self, tenant_id: str, request: ret_pb.GetDocumentRequest
    ) -> ret_pb.GetDocumentResponse: ...

    async def delete_documents(
        self, tenant_id: str, request: ret_pb.DeleteDocumentsRequest
    ) -> ret_pb.DeleteDocumentsResponse: ...

    def has_reranker(self) -> bool: ...

    def count_tokens(self, text: str) -> int: ...


class TokenCounter:
    """Tokens of the generation model, from its tokenizer when the files are local, else estimated.

    Only the tokenizer is loaded (no weights). Under the TGI backend, or for a model this process
    cannot read, the count is estimated at 4 characters per token, rounded up.
    """

    def __init__(self, model: str = "") -> None:
        self._tokenizer = None
        try:
            from transformers import AutoTokenizer

            from lorag.generation import models
            from lorag.generation.settings import GenerationSettings

            settings = GenerationSettings()
            if settings.backend == "local":
                source = models.resolve(settings, model or settings.default_model)
                self._tokenizer = AutoTokenizer.from_pretrained(source.path)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to the estimate
            log.info("generation tokenizer not available here (%s); estimating tokens", exc)

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self._tokenizer is None:
            return math.ceil(len(text) / 4)
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])


class LocalDownstream:
    """Sibling servicers of the in-process host (``{"embedding": servicer, ...}``)."""

    def __init__(self, servicers: dict[str, Any], *, token_counter: TokenCounter | None = None) -> None:
        self.servicers = servicers
        self._count = token_counter

    def _get(self, app: str) -> Any:
        servicer = self.servicers.get(app)
        if servicer is None:
            raise errors.Unavailable(f"the {app} service is not deployed in this process")
        return servicer

    async def embed(self, texts: list[str], *, model: str = "") -> dict:
        return await self._get("embedding").embed_internal(texts, model or None, "query", True, True)

    async def search(self, tenant_id, request):
        return await self._get("retrieval").search_internal(tenant_id, request)

    async def rerank(self, tenant_id, request, *, request_id=""):
        return await self._get("reranking").rerank_internal(tenant_id, request, request_id)

    async def generate_stream(self, tenant_id, request, *, request_id, adapter_version=""):
        async for msg in self._get("generation").generate_stream_internal(tenant_id, request, request_id):
            yield msg

    async def resolve_adapter(self, tenant_id, ref, *, request_id):
        return await self._get("generation").resolve_adapter_internal(tenant_id, ref, request_id)

    async def generation_info(self, model: str = "") -> GenerationInfo:
        return GenerationInfo(**await self._get("generation").model_info_internal(model))

    async def upsert_stream(self, tenant_id, request):
        async for msg in self._get("retrieval").upsert_stream_internal(tenant_id, request):
            yield msg

    async def get_document(self, tenant_id, request):
        return await self._get("retrieval").get_document_internal(tenant_id, request)

    async def delete_documents(self, tenant_id, request):
        return await self._get("retrieval").delete_documents_internal(tenant_id, request)

    def has_reranker(self) -> bool:
        return "reranking" in self.servicers

    def count_tokens(self, text: str) -> int:
        if self._count is None:
            self._count = TokenCounter()
        return self._count(text)


class ServeDownstream:
    """The other Ray Serve applications, through DeploymentHandles (Ray imported lazily)."""

    def __init__(self, settings, *, token_counter: TokenCounter | None = None) -> None:
        self.apps = {
            "embedding": settings.embedding_app,
            "retrieval": settings.retrieval_app,
            "reranking": settings.reranking_app,
            "generation": settings.generation_app,
        }
        self._handles: dict[str, Any] = {}
        self._count = token_counter

    def _handle(self, service: str, *, stream: bool = False, model_id: str = ""):
        if service not in self._handles:
            from ray import serve

            self._handles[service] = serve.get_app_handle(self.apps[service])
        handle = self._handles[service]
        if stream or model_id:
            # multiplexed_model_id routes to replicas that already hold that adapter version
            handle = handle.options(stream=stream, multiplexed_model_id=model_id)
        return handle

    async def _call(self, service: str, method: str, *args) -> Any:
        try:
            return await getattr(self._handle(service), method).remote(
                *args, trace_context=telemetry.inject()
            )
        except Exception as exc:  # noqa: BLE001 - domain errors pass through, the rest is UNAVAILABLE
            raise domain_error(exc, service=service) from None

    async def _stream(self, service: str, method: str, *args, model_id: str = "") -> AsyncIterator[Any]:
        try:
            handle = self._handle(service, stream=True, model_id=model_id)
            async for msg in getattr(handle, method).remote(*args, trace_context=telemetry.inject()):
                yield msg
        except Exception as exc:  # noqa: BLE001 - domain errors pass through, the rest is UNAVAILABLE
            raise domain_error(exc, service=service) from None

    async def embed(self, texts: list[str], *, model: str = "") -> dict:
        return await self._call("embedding", "embed_internal", texts, model or None, "query", True, True)

    async def search(self, tenant_id, request):
        return await self._call("retrieval", "search_internal", tenant_id, request)

    async def rerank(self, tenant_id, request, *, request_id=""):
        return await self._call("reranking", "rerank_internal", tenant_id, request, request_id)

    def generate_stream(self, tenant_id, request, *, request_id, adapter_version=""):
        return self._stream(
            "generation", "generate_stream_internal", tenant_id, request, request_id, model_id=adapter_version
        )

    async def resolve_adapter(self, tenant_id, ref, *, request_id):
        return await self._call("generation", "resolve_adapter_internal", tenant_id, ref, request_id)

    async def generation_info(self, model: str = "") -> GenerationInfo:
        return GenerationInfo(**await self._call("generation", "model_info_internal", model))

    def upsert_stream(self, tenant_id, request):
        return self._stream("retrieval", "upsert_stream_internal", tenant_id, request)

    async def get_document(self, tenant_id, request):
        return await self._call("retrieval", "get_document_internal", tenant_id, request)

    async def delete_documents(self, tenant_id, request):
        return await self._call("retrieval", "delete_documents_internal", tenant_id, request)

    def has_reranker(self) -> bool:
        return True  # the reranking application is part of every deployment

    def count_tokens(self, text: str) -> int:
        if self._count is None:
            self._count = TokenCounter()
        return self._count(text)
