"""lorag.reranking.v1 servicer: proto <-> RerankingCore, with dynamic batching of requests.

As in the embedding service, inference runs in one worker thread per replica; concurrent
requests are merged by a :class:`~lorag.embedding.batching.MicroBatcher` in the in-process host
and by ``@serve.batch`` in the Ray Serve deployment (``lorag.reranking.deployment``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lorag.common import telemetry
from lorag.common.errors import FailedPrecondition
from lorag.common.metrics import RERANKING_PAIRS, adapter_label, tenant_label
from lorag.common.rpc import Call, ServicerBase, rpc
from lorag.common.tenancy import Role
from lorag.common.usage import current_tenant
from lorag.common.v1 import common_pb2
from lorag.embedding.batching import BatchedInference
from lorag.reranking.core import BI_ENCODER_COSINE, CROSS_ENCODER, RerankingCore, RerankJob, RerankResult
from lorag.reranking.settings import RerankingSettings
from lorag.reranking.v1 import reranking_pb2 as pb

_METHODS = {
    CROSS_ENCODER: pb.SCORING_METHOD_CROSS_ENCODER,
    BI_ENCODER_COSINE: pb.SCORING_METHOD_BI_ENCODER_COSINE,
}


def build_adapter_cache(runtime, core: RerankingCore, settings: RerankingSettings, model: str):
    """An AdapterCache on the platform's registry whose adapters load into reranker ``model``."""
    from lorag.adapters.cache import AdapterCache
    from lorag.adapters.clients import LocalRegistryClient
    from lorag.adapters.servicer import registry_for

    return AdapterCache(
        LocalRegistryClient(registry_for(runtime)),
        loader=lambda version_id, path: core.load_adapter_version(model, version_id, path),
        unloader=lambda version_id, _value: core.unload_adapter_version(model, version_id),
        memory_budget_bytes=settings.adapter_cache_bytes,
        download_dir=runtime.settings.data_dir / "adapter-cache" / f"reranking-{model}-{os.getpid()}",
        service="reranking",
    )


class RerankingServicer(BatchedInference, ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["RerankingService"],)

    def __init__(self, runtime=None, settings: RerankingSettings | None = None) -> None:
        super().__init__(runtime)
        self.settings = settings or RerankingSettings()
        self.core = RerankingCore(self.settings, data_dir=self.runtime.settings.data_dir)
        self._init_batching(
            self.core.rerank_many,
            max_batch_size=self.settings.batch_max_size,
            wait_s=self.settings.batch_wait_s,
            thread_name="lorag-rerank",
        )
        self._adapter_caches: dict = {}  # reranker model -> AdapterCache, made on first use

    def adapter_cache(self, model: str):
        cache = self._adapter_caches.get(model)
        if cache is None:
            cache = build_adapter_cache(self.runtime, self.core, self.settings, model)
            self._adapter_caches[model] = cache
        return cache

    @asynccontextmanager
    async def _adapter(self, tenant_id: str, ref: str, model: str, request_id: str) -> AsyncIterator[str]:
        """Hold the reranking adapter ``ref`` means for this request, loaded into ``model``."""
        cache = self.adapter_cache(model)
        await cache.start()  # idempotent: follows registry revisions from the first use
        resolution = await cache.resolve(tenant_id, ref, request_id=request_id)
        if resolution.kind != "reranking":
            raise FailedPrecondition(
                f"adapter {ref!r} is a {resolution.kind} adapter, not a reranking adapter"
            )
        base = self.core.adapter_base_model(model)
        if resolution.base_model != base:
            raise FailedPrecondition(
                f"adapter {ref!r} was trained for base model {resolution.base_model!r}; reranker "
                f"{model!r} serves adapters of {base!r}"
            )
        async with cache.acquire(tenant_id, resolution.version_id):
            yield resolution.version_id

    async def _rerank(self, job: RerankJob) -> RerankResult:
        with telemetry.span("rerank", passages=len(job.passages)):
            if len(job.passages) >= self.settings.inference_batch_size:  # fills forward passes on its own
                (result,) = await self._run_batch([job])
            else:
                result = await self._enqueue(job)
            if isinstance(result, BaseException):
                raise result
        tenant = current_tenant()
        RERANKING_PAIRS.labels(tenant_label(tenant), adapter_label(result.adapter_version_id)).inc(
            len(job.passages)
        )
        self.runtime.usage.tokens(tenant, "reranking", input_tokens=result.tokens)
        return result

    # -- RPCs ------------------------------------------------------------------------------
    @rpc(Role.USER)
    async def Rerank(self, request: pb.RerankRequest, call: Call) -> pb.RerankResponse:
        return await self.rerank_internal(
            call.tenant_id, request, call.metadata("x-request-id") or call.trace_id
        )

    # -- for other applications' DeploymentHandles (not an RPC: the proxy cannot reach it) ----
    @telemetry.internal
    async def rerank_internal(
        self, tenant_id: str, request: pb.RerankRequest, request_id: str = ""
    ) -> pb.RerankResponse:
        """Rerank for the already authenticated ``tenant_id``; ``request_id`` routes bare adapter
        names between production and canary deterministically."""
        job = self.core.prepare(
            request.query,
            [p.text for p in request.passages],
            ids=[p.id for p in request.passages],
            top_n=request.top_n,
            model=request.model or None,
        )
        if request.adapter.ref:
            async with self._adapter(tenant_id, request.adapter.ref, job.model, request_id) as version_id:
                result = await self._rerank(dataclasses.replace(job, adapter=version_id))
        else:
            result = await self._rerank(job)
        return pb.RerankResponse(
            results=[pb.RerankResult(index=h.index, id=h.id, score=h.score) for h in result.hits],
            model=result.model,
            adapter_version_id=result.adapter_version_id,
            usage=common_pb2.Usage(prompt_tokens=result.tokens, total_tokens=result.tokens),
            scoring_method=_METHODS[result.method],
        )

    @rpc(Role.USER)
    async def ListRerankerModels(
        self, request: pb.ListRerankerModelsRequest, call: Call
    ) -> pb.ListRerankerModelsResponse:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(self._executor, self.core.list_models)
        return pb.ListRerankerModelsResponse(
            models=[
                pb.RerankerModel(
                    name=i.name,
                    max_seq_length=i.max_seq_length,
                    weights_sha256=i.weights_sha256,
                    is_default=i.is_default,
                    scoring_method=_METHODS[i.method],
                    note=i.note,
                    metrics=i.metrics,
                    version=i.version,
                    quantized=i.quantized,
                )
                for i in infos
            ]
        )
