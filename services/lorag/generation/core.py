"""Generation logic on plain Python types: validation, limits, adapter resolution, streaming.

No grpc, no ray. The servicer maps protos to :class:`GenerationInput` and :class:`Chunk` back.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from lorag.common import metrics, telemetry
from lorag.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    LoragError,
    NotFound,
    ResourceExhausted,
    Unimplemented,
)
from lorag.common.ratelimit import CONCURRENCY_RETRY_S
from lorag.generation.backends import BackendRequest, GenerationBackend
from lorag.generation.engine import BASE, SamplingParams
from lorag.generation.settings import GenerationSettings

MAX_STOP = 8
MAX_STOP_LEN = 64
MAX_CHAT_MESSAGES = 256
MAX_CHAT_CONTENT_CHARS = 131_072
ROLES = ("system", "user", "assistant")


class AdapterSource(Protocol):
    """Where adapters come from: resolve a reference in a tenant, hold the loaded version.

    :class:`lorag.adapters.cache.AdapterCache` implements it: resolutions follow registry
    revisions (hot swap), loads are shared and bounded by a memory budget, and a held version is
    never evicted, so a request finishes on the version it started with.
    """

    async def start(self) -> None: ...

    async def resolve(self, tenant_id: str, ref: str, *, request_id: str = ""): ...

    def acquire(self, tenant_id: str, version_id: str) -> AbstractAsyncContextManager: ...


@dataclass
class GenerationInput:
    prompt: str | None = None
    chat: list[dict[str, str]] | None = None
    adapter_ref: str = ""
    model: str = ""
    temperature: float | None = None
    top_p: float | None = None
    top_k: int = 0
    max_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    repetition_penalty: float | None = None
    request_id: str = ""


@dataclass
class Summary:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    adapter_version_id: str
    time_to_first_token_ms: float
    total_ms: float

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / (self.total_ms / 1000) if self.total_ms > 0 else 0.0


@dataclass
class Chunk:
    text: str
    token_ids: list[int]
    summary: Summary | None = None


class TenantLimiter:
    """At most ``limit`` in-flight requests per tenant; the next one is RESOURCE_EXHAUSTED with a
    retry hint (trailers ``retry-after-ms`` and gRPC's pushback), as the platform's own limits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight: dict[str, int] = {}

    def acquire(self, tenant_id: str) -> None:
        n = self.inflight.get(tenant_id, 0)
        if n >= self.limit:
            raise ResourceExhausted(
                f"tenant has {n} generation requests in flight; the limit is {self.limit} "
                "(LORAG_GENERATION_MAX_CONCURRENT_PER_TENANT); "
                f"retry in {round(CONCURRENCY_RETRY_S * 1000)} ms",
                retry_after_s=CONCURRENCY_RETRY_S,  # a slot frees when any request ends
            )
        self.inflight[tenant_id] = n + 1

    def release(self, tenant_id: str) -> None:
        n = self.inflight.get(tenant_id, 1) - 1
        if n <= 0:
            self.inflight.pop(tenant_id, None)
        else:
            self.inflight[tenant_id] = n


class GenerationCore:
    def __init__(
        self,
        settings: GenerationSettings,
        backend: GenerationBackend,
        *,
        adapters: AdapterSource | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.adapters = adapters
        self.limiter = TenantLimiter(settings.max_concurrent_per_tenant)
        self.adapter_tenants: dict[str, str] = {}  # version id -> tenant (for GetLoadedAdapters)
        #: Called with each adapter version a request uses; the Ray deployment registers it with
        #: @serve.multiplexed so requests for that version are routed to this replica.
        self.on_adapter: Callable[[str], Awaitable[None]] | None = None
        self.inflight = 0
        self._engine_seen = (0, 0)  # (decode steps, batch rows) already counted

    # -- validation ---------------------------------------------------------------------------
    def sampling(self, inp: GenerationInput) -> SamplingParams:
        s = self.settings
        temperature = 1.0 if inp.temperature is None else inp.temperature
        _range(temperature, 0.0, 2.0, "sampling.temperature")
        top_p = 1.0 if inp.top_p is None else inp.top_p
        if not (0.0 < top_p <= 1.0) or math.isnan(top_p):
            raise InvalidArgument(f"must be in (0, 1] (got {top_p})", field="sampling.top_p")
        _range(inp.top_k, 0, 1000, "sampling.top_k")
        _range(inp.max_new_tokens, 0, s.max_new_tokens, "sampling.max_new_tokens")
        penalty = 1.0 if inp.repetition_penalty is None else inp.repetition_penalty
        if not (0.0 < penalty <= 2.0) or math.isnan(penalty):
            raise InvalidArgument(f"must be in (0, 2] (got {penalty})", field="sampling.repetition_penalty")
        if len(inp.stop) > MAX_STOP:
            raise InvalidArgument(
                f"at most {MAX_STOP} stop sequences (got {len(inp.stop)})", field="sampling.stop"
            )
        for stop in inp.stop:
            if not 1 <= len(stop) <= MAX_STOP_LEN:
                raise InvalidArgument(
                    f"each stop sequence must be 1-{MAX_STOP_LEN} characters", field="sampling.stop"
                )
        return SamplingParams(
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(inp.top_k),
            max_new_tokens=int(inp.max_new_tokens or s.default_new_tokens),
            stop=tuple(inp.stop),
            seed=inp.seed,
            repetition_penalty=float(penalty),
        )

    def prompt(self, inp: GenerationInput) -> str:
        if inp.chat is not None:
            if not inp.chat:
                raise InvalidArgument("needs at least one message", field="chat.messages")
            if len(inp.chat) > MAX_CHAT_MESSAGES:
                raise InvalidArgument(
                    f"at most {MAX_CHAT_MESSAGES} messages (got {len(inp.chat)})", field="chat.messages"
                )
            for i, m in enumerate(inp.chat):
                if m.get("role") not in ROLES:
                    raise InvalidArgument(
                        "role must be SYSTEM, USER or ASSISTANT", field=f"chat.messages[{i}].role"
                    )
                if m["role"] == "system" and i > 0:
                    raise InvalidArgument(
                        "a system message may only be the first message", field=f"chat.messages[{i}].role"
                    )
                if not m.get("content"):
                    raise InvalidArgument("must not be empty", field=f"chat.messages[{i}].content")
                if len(m["content"]) > MAX_CHAT_CONTENT_CHARS:
                    raise InvalidArgument(
                        f"at most {MAX_CHAT_CONTENT_CHARS} characters", field=f"chat.messages[{i}].content"
                    )
            if inp.chat[-1]["role"] != "user":
                raise InvalidArgument(
                    "the last message must be a USER message",
                    field=f"chat.messages[{len(inp.chat) - 1}].role",
                )
            return self.backend.render_chat(inp.chat)
        if not inp.prompt or not inp.prompt.strip():
            raise InvalidArgument("must not be empty (send `prompt` or `chat`)", field="prompt")
        return inp.prompt

    def check_length(self, prompt: str, params: SamplingParams) -> int:
        tokens = self.backend.count_tokens(prompt)
        limit = self.settings.max_prompt_tokens
        if tokens > limit:
            raise InvalidArgument(
                f"prompt has {tokens} tokens; the limit is {limit} (LORAG_GENERATION_MAX_PROMPT_TOKENS)",
                field="prompt",
            )
        context = self.backend.max_context()
        if context and tokens + params.max_new_tokens > context:
            raise InvalidArgument(
                f"prompt ({tokens} tokens) + max_new_tokens ({params.max_new_tokens}) exceeds the "
                f"model's context of {context} tokens",
                field="sampling.max_new_tokens",
            )
        return tokens

    def check_model(self, name: str) -> None:
        if name and name != self.backend.model:
            raise NotFound(f"generation model {name!r} is not served here; served: {self.backend.model}")

    # -- adapters -----------------------------------------------------------------------------
    async def resolve_adapter(self, tenant_id: str, ref: str, request_id: str = "") -> str:
        """The version id ``ref`` means for this request, checked to fit this service's model."""
        if self.adapters is None:
            raise Unimplemented("adapter references need the adapter registry, which is not configured")
        await self.adapters.start()  # idempotent: follows registry revisions from the first use
        resolution = await self.adapters.resolve(tenant_id, ref, request_id=request_id)
        if resolution.kind != "generation":
            raise FailedPrecondition(
                f"adapter {ref!r} is a {resolution.kind} adapter, not a generation adapter"
            )
        if resolution.base_model != self.backend.model:
            raise FailedPrecondition(
                f"adapter {ref!r} was trained for base model {resolution.base_model!r}; "
                f"this service runs {self.backend.model!r}"
            )
        return resolution.version_id

    @asynccontextmanager
    async def adapter(self, tenant_id: str, ref: str, request_id: str) -> AsyncIterator[str]:
        """Hold the adapter ``ref`` means for this request; yields the engine's adapter name."""
        if not ref:
            yield BASE
            return
        version_id = await self.resolve_adapter(tenant_id, ref, request_id)
        async with self.adapters.acquire(tenant_id, version_id):
            self.adapter_tenants[version_id] = tenant_id
            if self.on_adapter is not None:
                await self.on_adapter(version_id)
            yield version_id

    def loaded_for(self, tenant_id: str):
        items = [
            a for a in self.backend.loaded_adapters() if self.adapter_tenants.get(a.version_id) == tenant_id
        ]
        return sorted(items, key=lambda a: a.last_used, reverse=True)

    # -- generation ---------------------------------------------------------------------------
    async def stream(self, tenant_id: str, inp: GenerationInput) -> AsyncIterator[Chunk]:
        self.check_model(inp.model)
        params = self.sampling(inp)
        prompt = self.prompt(inp)
        self.check_length(prompt, params)
        self.limiter.acquire(tenant_id)
        started = time.perf_counter()
        self.inflight += 1
        metrics.GENERATION_INFLIGHT.set(self.inflight)
        tenant, adapter_label, finish = metrics.tenant_label(tenant_id), metrics.BASE_ADAPTER, "cancelled"
        span = telemetry.start_span(
            "generate", adapter_ref=inp.adapter_ref, max_new_tokens=params.max_new_tokens
        )
        try:
            async with self.adapter(tenant_id, inp.adapter_ref, inp.request_id) as adapter:
                version = "" if adapter == BASE else adapter
                adapter_label = metrics.adapter_label(version)
                span.set_attribute("lorag.adapter_version_id", version)
                last = 0.0
                async for chunk in self._generate(prompt, adapter, params):
                    now = time.perf_counter()
                    if chunk.text:
                        if not last:
                            metrics.GENERATION_TTFT.labels(adapter_label).observe(now - started)
                        else:
                            metrics.GENERATION_INTER_TOKEN.observe(now - last)
                        last = now
                    if chunk.summary is not None:
                        finish = chunk.summary.finish_reason
                        metrics.GENERATION_PROMPT_TOKENS.labels(tenant, adapter_label).inc(
                            chunk.summary.prompt_tokens
                        )
                        metrics.GENERATION_GENERATED_TOKENS.labels(tenant, adapter_label).inc(
                            chunk.summary.completion_tokens
                        )
                        span.set_attribute("lorag.completion_tokens", chunk.summary.completion_tokens)
                    yield chunk
        except LoragError as exc:
            finish = "rejected"
            telemetry.fail(span, exc, expected=True)
            raise
        except Exception as exc:
            finish = "error"
            telemetry.fail(span, exc, expected=False)
            raise
        finally:
            self.limiter.release(tenant_id)
            self.inflight -= 1
            metrics.GENERATION_INFLIGHT.set(self.inflight)
            metrics.GENERATION_REQUESTS.labels(tenant, adapter_label, finish).inc()
            self._count_engine_steps()
            span.set_attribute("lorag.finish_reason", finish)
            span.end()

    def _count_engine_steps(self) -> None:
        """Add the local engine's new decode steps and batch rows to the occupancy counters."""
        engine = getattr(self.backend, "engine", None)
        if engine is None:
            return
        steps, rows = int(getattr(engine, "steps", 0)), int(getattr(engine, "batch_rows", 0))
        seen_steps, seen_rows = self._engine_seen
        if steps > seen_steps:
            metrics.GENERATION_DECODE_STEPS.inc(steps - seen_steps)
            metrics.GENERATION_BATCH_ROWS.inc(max(0, rows - seen_rows))
        self._engine_seen = (steps, rows)
        metrics.GENERATION_BATCH_CAPACITY.set(getattr(engine, "max_batch_size", 0))

    async def _generate(self, prompt: str, adapter: str, params: SamplingParams) -> AsyncIterator[Chunk]:
        started = time.perf_counter()
        first = 0.0
        request = BackendRequest(prompt=prompt, adapter=adapter, params=params)
        async for event in self.backend.stream(request):
            if event.finish_reason is not None:
                if event.finish_reason == "error":
                    raise RuntimeError(f"generation failed: {event.error}")
                total = (time.perf_counter() - started) * 1000
                yield Chunk(
                    text=event.text,
                    token_ids=event.token_ids,
                    summary=Summary(
                        finish_reason=event.finish_reason,
                        prompt_tokens=event.prompt_tokens,
                        completion_tokens=event.completion_tokens,
                        model=self.backend.model,
                        adapter_version_id="" if adapter == BASE else adapter,
                        time_to_first_token_ms=first or total,
                        total_ms=total,
                    ),
                )
                return
            if not first:
                first = (time.perf_counter() - started) * 1000
            yield Chunk(text=event.text, token_ids=event.token_ids)

    async def generate(self, tenant_id: str, inp: GenerationInput) -> tuple[str, list[int], Summary]:
        parts: list[str] = []
        ids: list[int] = []
        summary = None
        async for chunk in self.stream(tenant_id, inp):
            parts.append(chunk.text)
            ids.extend(chunk.token_ids)
            summary = chunk.summary or summary
        assert summary is not None
        return "".join(parts), ids, summary


def _range(value: float, low: float, high: float, name: str) -> None:
    if isinstance(value, float) and math.isnan(value) or not (low <= value <= high):
        raise InvalidArgument(f"must be between {low} and {high} (got {value})", field=name)
