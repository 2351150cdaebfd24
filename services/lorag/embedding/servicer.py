"""lorag.embedding.v1 servicer: proto <-> EmbeddingCore, with dynamic batching of requests.

Inference runs in one worker thread per replica (torch already uses every core it is given), so
the event loop keeps answering health checks and queueing requests while a batch runs. In the
in-process host a :class:`MicroBatcher` merges concurrent requests; the Ray Serve deployment
(``lorag.embedding.deployment``) replaces ``_enqueue`` with ``@serve.batch``.
"""

from __future__ import annotations

import asyncio

from lorag.common import telemetry
from lorag.common.errors import InvalidArgument
from lorag.common.metrics import EMBEDDING_BATCH_SIZE, EMBEDDING_TEXTS, EMBEDDING_TOKENS, tenant_label
from lorag.common.rpc import Call, ServicerBase, rpc
from lorag.common.tenancy import Role
from lorag.common.usage import current_tenant
from lorag.common.v1 import common_pb2
from lorag.embedding.batching import BatchedInference
from lorag.embedding.core import EmbeddingCore, EmbedJob, EmbedResult
from lorag.embedding.settings import EmbeddingSettings
from lorag.embedding.v1 import embedding_pb2 as pb

_INPUT_TYPES = {pb.INPUT_TYPE_QUERY: "query", pb.INPUT_TYPE_PASSAGE: "passage"}


class EmbeddingServicer(BatchedInference, ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["EmbeddingService"],)

    def __init__(self, runtime=None, settings: EmbeddingSettings | None = None) -> None:
        super().__init__(runtime)
        self.settings = settings or EmbeddingSettings()
        self.core = EmbeddingCore(self.settings)
        self._init_batching(
            self._embed_many,
            max_batch_size=self.settings.batch_max_size,
            wait_s=self.settings.batch_wait_s,
            thread_name="lorag-embed",
        )

    def _embed_many(self, jobs: list[EmbedJob]) -> list:
        sizes: dict[str, int] = {}
        for job in jobs:
            sizes[job.model] = sizes.get(job.model, 0) + len(job.texts)
        for model, size in sizes.items():
            EMBEDDING_BATCH_SIZE.labels(model).observe(size)
        return self.core.embed_many(jobs)

    async def _embed(self, job: EmbedJob) -> EmbedResult:
        with telemetry.span("embed", model=job.model, texts=len(job.texts), input_type=job.input_type):
            if len(job.texts) >= self.settings.batch_max_size:  # already a full batch on its own
                (result,) = await self._run_batch([job])
            else:
                result = await self._enqueue(job)
            if isinstance(result, BaseException):
                raise result
        tenant = current_tenant()
        tokens = sum(result.token_counts)
        EMBEDDING_TEXTS.labels(tenant_label(tenant), result.model).inc(len(job.texts))
        EMBEDDING_TOKENS.labels(tenant_label(tenant), result.model).inc(tokens)
        self.runtime.usage.tokens(tenant, "embedding", input_tokens=tokens)
        return result

    # -- RPCs ------------------------------------------------------------------------------
    @rpc(Role.USER)
    async def Embed(self, request: pb.EmbedRequest, call: Call) -> pb.EmbedResponse:
        if request.input_type not in _INPUT_TYPES:
            raise InvalidArgument("must be INPUT_TYPE_QUERY or INPUT_TYPE_PASSAGE", field="input_type")
        job = self.core.prepare(
            list(request.texts),
            model=request.model or None,
            input_type=_INPUT_TYPES[request.input_type],
            normalize=request.normalize if request.HasField("normalize") else True,
            truncate=request.truncate if request.HasField("truncate") else True,
        )
        result = await self._embed(job)
        tokens = sum(result.token_counts)
        return pb.EmbedResponse(
            embeddings=[
                pb.Embedding(values=vec.tolist(), token_count=count, truncated=cut)
                for vec, count, cut in zip(result.vectors, result.token_counts, result.truncated, strict=True)
            ],
            model=result.model,
            dimension=result.dimension,
            usage=common_pb2.Usage(prompt_tokens=tokens, total_tokens=tokens),
        )

    @rpc(Role.USER)
    async def ListModels(self, request: pb.ListModelsRequest, call: Call) -> pb.ListModelsResponse:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(self._executor, self.core.list_models)
        return pb.ListModelsResponse(
            models=[
                pb.EmbeddingModel(
                    name=i.name,
                    dimension=i.dimension,
                    max_seq_length=i.max_seq_length,
                    weights_sha256=i.weights_sha256,
                    is_default=i.is_default,
                    quantized=i.quantized,
                    query_prefix=i.query_prefix,
                    passage_prefix=i.passage_prefix,
                )
                for i in infos
            ]
        )

    # -- for other applications' DeploymentHandles (not an RPC: the proxy cannot reach it) ----
    @telemetry.internal
    async def embed_internal(
        self,
        texts: list[str],
        model: str | None = None,
        input_type: str = "passage",
        normalize: bool = True,
        truncate: bool = True,
    ) -> dict:
        job = self.core.prepare(
            list(texts), model=model or None, input_type=input_type, normalize=normalize, truncate=truncate
        )
        result = await self._embed(job)
        return {
            "vectors": result.vectors.tolist(),
            "token_counts": result.token_counts,
            "truncated": result.truncated,
            "model": result.model,
            "dimension": result.dimension,
        }
