"""Generation over real gRPC (in-process host, the real default SmolLM2 model) and the TGI backend."""

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace

import grpc
import pytest

from lorag.generation.backends import TgiBackend
from lorag.generation.core import GenerationCore, GenerationInput
from lorag.generation.engine import BASE
from lorag.generation.v1 import generation_pb2 as pb
from tests.support.models import generation_settings
from tests.support.tgi_server import FakeTgi

from .conftest import expect_status

GREEDY = pb.SamplingParams(temperature=0.0, max_new_tokens=12)


async def test_generate_greedy_with_the_default_model(operator):
    resp = await operator.generation.Generate(
        pb.GenerateRequest(prompt="The capital of France is", sampling=GREEDY, include_token_ids=True)
    )
    assert "Paris" in resp.text
    s = resp.summary
    assert s.model == "smollm2-135m-instruct" and s.adapter_version_id == ""
    assert s.finish_reason in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP)
    assert s.usage.prompt_tokens > 3 and 0 < s.usage.completion_tokens <= 12
    assert s.usage.total_tokens == s.usage.prompt_tokens + s.usage.completion_tokens
    assert len(resp.token_ids) == s.usage.completion_tokens
    assert s.timings.time_to_first_token_ms > 0 and s.timings.total_ms >= s.timings.time_to_first_token_ms


async def test_stream_sends_tokens_as_they_come_then_the_summary(operator):
    req = dict(
        prompt="Write a haiku about the sea.", sampling=pb.SamplingParams(temperature=0.0, max_new_tokens=16)
    )
    unary = await operator.generation.Generate(pb.GenerateRequest(**req))
    chunks = [c async for c in operator.generation.GenerateStream(pb.GenerateStreamRequest(**req))]
    assert len(chunks) > 3
    assert [c.HasField("summary") for c in chunks].count(True) == 1 and chunks[-1].HasField("summary")
    assert "".join(c.text for c in chunks) == unary.text


async def test_chat_input_uses_the_chat_template(operator):
    chat = pb.Chat(
        messages=[
            pb.ChatMessage(role=pb.CHAT_ROLE_SYSTEM, content="Answer with one word."),
            pb.ChatMessage(role=pb.CHAT_ROLE_USER, content="What is the capital of France?"),
        ]
    )
    resp = await operator.generation.Generate(pb.GenerateRequest(chat=chat, sampling=GREEDY))
    assert "Paris" in resp.text


@pytest.mark.parametrize(
    ("request_", "code", "field"),
    [
        (pb.GenerateRequest(prompt=""), "INVALID_ARGUMENT", "prompt"),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(temperature=3.0)),
            "INVALID_ARGUMENT",
            "sampling.temperature",
        ),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(top_p=0.0)),
            "INVALID_ARGUMENT",
            "sampling.top_p",
        ),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(top_k=-1)),
            "INVALID_ARGUMENT",
            "sampling.top_k",
        ),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(max_new_tokens=100_000)),
            "INVALID_ARGUMENT",
            "sampling.max_new_tokens",
        ),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(stop=["x"] * 9)),
            "INVALID_ARGUMENT",
            "sampling.stop",
        ),
        (
            pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(repetition_penalty=0.0)),
            "INVALID_ARGUMENT",
            "sampling.repetition_penalty",
        ),
        (pb.GenerateRequest(prompt="word " * 3000), "INVALID_ARGUMENT", "prompt"),
        (
            pb.GenerateRequest(chat=pb.Chat(messages=[pb.ChatMessage(content="x")])),
            "INVALID_ARGUMENT",
            "chat.messages[0].role",
        ),
        (pb.GenerateRequest(prompt="hi", model="gpt-17"), "NOT_FOUND", "gpt-17"),
    ],
)
async def test_bad_input_names_the_problem(operator, request_, code, field):
    details = await expect_status(operator.generation.Generate(request_), getattr(grpc.StatusCode, code))
    assert field in details


async def test_cancelled_stream_frees_its_batch_slot(operator, host):
    engine = host.servicers["generation"].core.backend.engine
    call = operator.generation.GenerateStream(
        pb.GenerateStreamRequest(
            prompt="Count to a thousand:", sampling=pb.SamplingParams(max_new_tokens=400)
        )
    )
    got = 0
    async for _ in call:
        got += 1
        if got == 2:
            break
    call.cancel()
    for _ in range(100):
        if engine.active_count == 0:
            break
        await asyncio.sleep(0.02)
    assert engine.active_count == 0


async def test_per_tenant_concurrency_limit(operator, host, monkeypatch):
    limiter = host.servicers["generation"].core.limiter
    monkeypatch.setattr(limiter, "limit", 1)
    refused = []
    acquire = limiter.acquire

    def counting_acquire(tenant_id):
        try:
            acquire(tenant_id)
        except Exception:
            refused.append(tenant_id)
            raise

    monkeypatch.setattr(limiter, "acquire", counting_acquire)
    slow = operator.generation.GenerateStream(
        pb.GenerateStreamRequest(
            prompt="Count from 1 to 500: 1, 2, 3, 4,",
            sampling=pb.SamplingParams(temperature=0.0, max_new_tokens=300),
        ),
        timeout=120,
    )
    await slow.read()  # first chunk: the request is in flight
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await operator.generation.Generate(pb.GenerateRequest(prompt="hi", sampling=GREEDY))
    error = info.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit is 1" in error.details()
    trailers = dict(error.trailing_metadata() or ())
    assert trailers.get("retry-after-ms") == "100"  # transient: a slot frees when a request ends
    assert len(refused) > 1  # the SDK waited for the hint and tried again before giving up
    slow.cancel()
    for _ in range(100):
        if not limiter.inflight:
            break
        await asyncio.sleep(0.02)
    ok = await operator.generation.Generate(pb.GenerateRequest(prompt="hi", sampling=GREEDY))
    assert ok.summary.usage.completion_tokens > 0


async def test_list_models_reports_the_weights_hash(operator):
    resp = await operator.generation.ListGenerationModels(pb.ListGenerationModelsRequest())
    (model,) = resp.models
    assert model.name == "smollm2-135m-instruct" and model.is_default and model.backend == "local"
    assert len(model.weights_sha256) == 64 and model.max_context_length >= 2048


class OneAdapter:
    """An adapter source holding a single generation adapter version (stands in for the registry)."""

    def __init__(self, version_id: str, base_model: str) -> None:
        self.resolution = SimpleNamespace(version_id=version_id, kind="generation", base_model=base_model)

    async def start(self) -> None:
        pass

    async def resolve(self, tenant_id, ref, *, request_id=""):
        return self.resolution

    @asynccontextmanager
    async def acquire(self, tenant_id, version_id):
        yield version_id


async def test_tgi_backend_speaks_the_wire_format_with_adapter_id():
    server = FakeTgi()
    url = await server.start()
    backend = TgiBackend(url, model="remote-llm")
    core = GenerationCore(
        generation_settings(backend="tgi"), backend, adapters=OneAdapter("ver-123", "remote-llm")
    )
    try:
        inp = GenerationInput(
            prompt="Hello",
            adapter_ref="bot@production",
            max_new_tokens=5,
            temperature=0.5,
            top_p=0.9,
            seed=3,
            stop=["word3"],
        )
        chunks = [c async for c in core.stream("acme", inp)]
        body = server.requests[-1]
        assert body["inputs"] == "Hello"
        params = body["parameters"]
        assert params["adapter_id"] == "ver-123" and params["max_new_tokens"] == 5
        assert params["temperature"] == 0.5 and params["top_p"] == 0.9 and params["seed"] == 3
        assert params["stop"] == ["word3"] and params["do_sample"] is True
        assert "".join(c.text for c in chunks) == " word0 word1 word2 word3"
        summary = chunks[-1].summary
        assert summary.finish_reason == "stop_sequence" and summary.completion_tokens == 4
        assert summary.adapter_version_id == "ver-123" and summary.model == "remote-llm"

        greedy = [
            c
            async for c in core.stream(
                "acme", GenerationInput(prompt="Hi", temperature=0.0, max_new_tokens=2)
            )
        ]
        assert "adapter_id" not in server.requests[-1]["parameters"]
        assert server.requests[-1]["parameters"]["do_sample"] is False
        assert greedy[-1].summary.finish_reason == "length"
    finally:
        await backend.close()
        await server.stop()


async def test_tgi_backend_maps_server_errors():
    from lorag.common.errors import InvalidArgument, Unavailable
    from lorag.generation.backends import BackendRequest
    from lorag.generation.engine import SamplingParams

    server = FakeTgi()
    url = await server.start()
    backend = TgiBackend(url)
    try:
        with pytest.raises(InvalidArgument):
            [
                e
                async for e in backend.stream(
                    BackendRequest(prompt="", adapter=BASE, params=SamplingParams())
                )
            ]
    finally:
        await backend.close()
        await server.stop()
    down = TgiBackend(url)  # server stopped: nothing listens there any more
    with pytest.raises(Unavailable):
        [e async for e in down.stream(BackendRequest(prompt="x", adapter=BASE, params=SamplingParams()))]
    await down.close()
