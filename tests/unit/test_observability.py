"""Bounded metric labels, the metric catalogue, trace context carriers and log lines."""

import asyncio
import contextvars
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from lorag.common import metrics, telemetry
from lorag.common.errors import NotFound
from lorag.common.logging import JsonFormatter, log_context
from lorag.common.metrics import OTHER, LabelCap


def test_allow_list_keeps_listed_tenants_and_folds_the_rest():
    cap = LabelCap(limit=1000, allow=["acme", "globex"])
    assert [cap(t) for t in ("acme", "globex", "initech", "")] == ["acme", "globex", OTHER, OTHER]


def test_first_n_tenants_keep_their_label_for_good():
    cap = LabelCap(limit=2)
    assert [cap(t) for t in ("a", "b", "c", "a", "d", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]


def test_configured_bounds_apply_to_tenant_and_adapter_labels():
    try:
        metrics.configure_labels(tenants=["t1"], max_adapters=1)
        assert metrics.tenant_label("t1") == "t1"
        assert metrics.tenant_label("t2") == OTHER
        assert metrics.adapter_label("") == metrics.BASE_ADAPTER
        assert metrics.adapter_label("av_1") == "av_1"
        assert metrics.adapter_label("av_2") == OTHER
    finally:
        metrics.configure_labels()


def test_catalogue_names_follow_the_convention_and_count_in_the_default_registry():
    for family in metrics._families:
        assert family.name.startswith("lorag_"), family.name
        if family.kind == "counter":
            assert not family.name.endswith("_total")
    before = REGISTRY.get_sample_value("lorag_reranking_pairs_total", {"tenant": "x", "adapter": "base"}) or 0
    metrics.RERANKING_PAIRS.labels("x", "base").inc(3)
    metrics.RERANKING_PAIRS.labels(tenant="x", adapter="base").inc(2)
    assert (
        REGISTRY.get_sample_value("lorag_reranking_pairs_total", {"tenant": "x", "adapter": "base"})
        == before + 5
    )
    assert not metrics.enable_ray_export()  # not a Ray worker: nothing is mirrored


@pytest.fixture
def spans():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = telemetry._provider
    telemetry.use_provider(provider)
    yield exporter
    if previous is not None:
        telemetry.use_provider(previous)


class _Servicer:
    class _Svc:
        full_name = "lorag.demo.v1.DemoService"

    SERVICES = (_Svc,)

    @telemetry.internal
    async def work_internal(self, tenant_id: str, n: int) -> str:
        with telemetry.span("step", n=n):
            return (log_context.get() or {}).get("tenant", "")

    @telemetry.internal
    async def stream_internal(self, n: int):
        for i in range(n):
            with telemetry.span("piece", i=i):
                yield i


async def _in_fresh_context(coro):
    """Run ``coro`` as another process would: no context inherited from the caller."""
    return await asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def test_internal_method_continues_the_callers_trace_from_the_carrier(spans):
    servicer = _Servicer()
    with telemetry.span("caller") as caller:
        carrier = telemetry.inject()
    assert set(carrier) == {"traceparent"}
    tenant = await _in_fresh_context(servicer.work_internal("acme", 2, trace_context=carrier))
    assert tenant == "acme"  # log lines of the callee carry the tenant it was given
    by_name = {s.name: s for s in spans.get_finished_spans()}
    server, step = by_name["demo/work_internal"], by_name["step"]
    assert server.context.trace_id == caller.get_span_context().trace_id
    assert server.parent.span_id == caller.get_span_context().span_id
    assert step.parent.span_id == server.context.span_id
    assert step.attributes["lorag.n"] == 2


async def test_streaming_internal_method_keeps_one_span_across_yields(spans):
    servicer = _Servicer()
    with telemetry.span("caller"):
        carrier = telemetry.inject()

    async def consume():
        return [i async for i in servicer.stream_internal(3, trace_context=carrier)]

    assert await _in_fresh_context(consume()) == [0, 1, 2]
    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.name == "demo/stream_internal")
    pieces = [s for s in finished if s.name == "piece"]
    assert len(pieces) == 3 and all(p.parent.span_id == server.context.span_id for p in pieces)


async def test_tenant_travels_in_the_carrier_and_errors_mark_the_span(spans):
    servicer = _Servicer()

    class Failing(_Servicer):
        @telemetry.internal
        async def fail_internal(self):
            raise NotFound("nope")

    token = log_context.set({"tenant": "globex"})
    try:
        carrier = telemetry.inject()
    finally:
        log_context.reset(token)
    assert carrier[telemetry.TENANT_KEY] == "globex"
    assert await _in_fresh_context(servicer.work_internal("", 1, trace_context=carrier)) == "globex"
    with pytest.raises(NotFound):
        await Failing().fail_internal()
    failed = next(s for s in spans.get_finished_spans() if s.name == "demo/fail_internal")
    assert not failed.status.is_ok


def test_log_lines_carry_the_current_trace_id(spans):
    record = logging.LogRecord("lorag.test", logging.INFO, __file__, 1, "hello", None, None)
    with telemetry.span("op") as s:
        line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == format(s.get_span_context().trace_id, "032x")


def test_trace_ids_exist_without_an_exporter():
    telemetry.configure()  # the environment names no exporter: nothing recorded, ids still made
    with telemetry.span("op") as s:
        assert not s.is_recording()
        assert telemetry.trace_id() == format(s.get_span_context().trace_id, "032x") != "0" * 32
