"""lorag.generation.v1 servicer: proto <-> GenerationCore.

It imports :mod:`lorag.generation.openmp` before anything that loads torch, so that torch's
OpenMP starts with the settings for decoding.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator

from google.protobuf.timestamp_pb2 import Timestamp

from lorag.common import telemetry
from lorag.common.rpc import Call, ServicerBase, rpc
from lorag.common.tenancy import Role
from lorag.common.v1 import common_pb2
from lorag.generation import models, openmp  # noqa: F401 - openmp loads torch first (models does not)
from lorag.generation.backends import GenerationBackend, LocalBackend, TgiBackend
from lorag.generation.core import Chunk, GenerationCore, GenerationInput
from lorag.generation.settings import GenerationSettings
from lorag.generation.v1 import generation_pb2 as pb

log = logging.getLogger("lorag.generation")

_FINISH = {
    "stop": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "stop_sequence": pb.FINISH_REASON_STOP_SEQUENCE,
    "cancelled": pb.FINISH_REASON_CANCELLED,
}
_ROLE = {pb.CHAT_ROLE_SYSTEM: "system", pb.CHAT_ROLE_USER: "user", pb.CHAT_ROLE_ASSISTANT: "assistant"}


def build_backend(settings: GenerationSettings) -> GenerationBackend:
    if settings.backend == "tgi":
        return TgiBackend(settings.tgi_url, model=settings.default_model, timeout_s=settings.tgi_timeout_s)
    source = models.resolve(settings, settings.default_model)
    return LocalBackend(
        source,
        max_batch_size=settings.max_batch_size,
        torch_threads=settings.torch_threads,
        quantize_int8=settings.quantize_int8,
        bnb_quantization=settings.bnb_quantization,
    )


def build_adapter_cache(runtime, backend: GenerationBackend, settings: GenerationSettings):
    """The replica's AdapterCache on the platform's registry (same SQL registry and blob store)."""
    from lorag.adapters.cache import AdapterCache
    from lorag.adapters.clients import LocalRegistryClient
    from lorag.adapters.servicer import registry_for

    return AdapterCache(
        LocalRegistryClient(registry_for(runtime)),
        loader=lambda version_id, path: backend.load_adapter(version_id, str(path)),
        unloader=lambda version_id, _value: backend.unload_adapter(version_id),
        memory_budget_bytes=settings.adapter_cache_bytes,
        download_dir=settings.data_dir / "adapter-cache" / f"generation-{os.getpid()}",
        service="generation",
    )


def to_input(request, *, request_id: str) -> GenerationInput:
    s = request.sampling
    which = request.WhichOneof("input")
    chat = None
    if which == "chat":
        chat = [{"role": _ROLE.get(m.role, ""), "content": m.content} for m in request.chat.messages]
    return GenerationInput(
        prompt=request.prompt if which == "prompt" else None,
        chat=chat,
        adapter_ref=request.adapter.ref,
        model=request.model,
        temperature=s.temperature if s.HasField("temperature") else None,
        top_p=s.top_p if s.HasField("top_p") else None,
        top_k=s.top_k,
        max_new_tokens=s.max_new_tokens,
        stop=list(s.stop),
        seed=s.seed if s.HasField("seed") else None,
        repetition_penalty=s.repetition_penalty if s.HasField("repetition_penalty") else None,
        request_id=request_id or secrets.token_hex(8),
    )


def call_request_id(call: Call) -> str:
    return call.metadata("x-request-id") or call.trace_id


def summary_pb(chunk: Chunk) -> pb.GenerationSummary:
    s = chunk.summary
    return pb.GenerationSummary(
        finish_reason=_FINISH.get(s.finish_reason, pb.FINISH_REASON_UNSPECIFIED),
        usage=common_pb2.Usage(
            prompt_tokens=s.prompt_tokens,
            completion_tokens=s.completion_tokens,
            total_tokens=s.prompt_tokens + s.completion_tokens,
        ),
        model=s.model,
        adapter_version_id=s.adapter_version_id,
        timings=pb.GenerationTimings(
            time_to_first_token_ms=s.time_to_first_token_ms,
            total_ms=s.total_ms,
            tokens_per_second=s.tokens_per_second,
        ),
    )


class GenerationServicer(ServicerBase):
    """Text generation with the base model or a tenant's LoRA adapter."""

    SERVICES = (pb.DESCRIPTOR.services_by_name["GenerationService"],)

    def __init__(self, runtime=None, *, settings: GenerationSettings | None = None, backend=None) -> None:
        super().__init__(runtime)
        self.settings = settings or GenerationSettings()
        backend = backend or build_backend(self.settings)
        self.core = GenerationCore(
            self.settings, backend, adapters=build_adapter_cache(self.runtime, backend, self.settings)
        )

    @rpc(Role.USER)
    async def Generate(self, request: pb.GenerateRequest, call: Call):
        inp = to_input(request, request_id=call_request_id(call))
        text, ids, summary = await self.core.generate(call.tenant_id, inp)
        self._record_usage(call.tenant_id, summary)
        chunk = Chunk(text=text, token_ids=ids, summary=summary)
        return pb.GenerateResponse(
            text=text, token_ids=ids if request.include_token_ids else [], summary=summary_pb(chunk)
        )

    @rpc(Role.USER)
    async def GenerateStream(self, request: pb.GenerateStreamRequest, call: Call):
        async for msg in self.generate_stream_internal(call.tenant_id, request, call_request_id(call)):
            yield msg

    def _record_usage(self, tenant_id: str, summary) -> None:
        self.runtime.usage.tokens(
            tenant_id,
            "generation",
            input_tokens=summary.prompt_tokens,
            output_tokens=summary.completion_tokens,
        )

    @rpc(Role.USER)
    async def ListGenerationModels(self, request, call: Call):
        backend = self.core.backend
        return pb.ListGenerationModelsResponse(
            models=[
                pb.GenerationModel(
                    name=backend.model,
                    max_context_length=backend.max_context(),
                    weights_sha256=backend.weights_sha256(),
                    is_default=True,
                    backend=backend.name,
                )
            ]
        )

    @rpc(Role.USER)
    async def GetLoadedAdapters(self, request, call: Call):
        out = []
        for info in self.core.loaded_for(call.tenant_id):
            loaded, used = Timestamp(), Timestamp()
            loaded.FromNanoseconds(int(info.load_time * 1e9))
            used.FromNanoseconds(int(info.last_used * 1e9))
            out.append(
                pb.LoadedAdapter(adapter_version_id=info.version_id, load_time=loaded, last_used_time=used)
            )
        return pb.GetLoadedAdaptersResponse(
            replica_id=self.replica_id(), adapters=out, capacity=self.settings.max_loaded_adapters
        )

    def replica_id(self) -> str:
        return "in-process"

    # -- for other applications' DeploymentHandles (not RPCs: the proxy cannot reach them) -----
    @telemetry.internal
    async def generate_stream_internal(
        self, tenant_id: str, request: pb.GenerateStreamRequest, request_id: str = ""
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        """GenerateStream for the already authenticated ``tenant_id``."""
        inp = to_input(request, request_id=request_id)
        async for chunk in self.core.stream(tenant_id, inp):
            msg = pb.GenerateStreamResponse(text=chunk.text)
            if request.include_token_ids:
                msg.token_ids.extend(chunk.token_ids)
            if chunk.summary is not None:
                msg.summary.CopyFrom(summary_pb(chunk))
                self._record_usage(tenant_id, chunk.summary)
            yield msg

    @telemetry.internal
    async def resolve_adapter_internal(self, tenant_id: str, ref: str, request_id: str = "") -> str:
        """The adapter version ``ref`` means in ``tenant_id`` (NOT_FOUND / FAILED_PRECONDITION as
        for GenerateStream); callers use it to fail early and to route to replicas holding it."""
        return await self.core.resolve_adapter(tenant_id, ref, request_id)

    @telemetry.internal
    async def model_info_internal(self, model: str = "") -> dict:
        """Limits callers need to size prompts: served model, context, prompt and output limits."""
        self.core.check_model(model)
        backend = self.core.backend
        return {
            "model": backend.model,
            "max_context": backend.max_context(),
            "max_prompt_tokens": self.settings.max_prompt_tokens,
            "max_new_tokens": self.settings.max_new_tokens,
        }
