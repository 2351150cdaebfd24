"""Observability over real gRPC: one trace across retrieval -> embedding, the in-process metrics
port, usage accounting that agrees with the metrics, and the shipped alert rules/dashboard."""

import asyncio
import contextvars
import json
import pickle
import re
import secrets
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client.parser import text_string_to_metric_families

from lorag.admin.v1 import admin_pb2
from lorag.apps import APPS_BY_NAME
from lorag.client import AsyncClient
from lorag.common import metrics, telemetry
from lorag.common.hosts import start_inprocess
from lorag.embedding.v1 import embedding_pb2
from lorag.retrieval.embedders import ServeEmbedder
from lorag.retrieval.servicer import RetrievalServicer
from lorag.retrieval.settings import RetrievalSettings
from lorag.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.support.prometheus import promtool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/lorag-rules.yaml"
DASHBOARD = ROOT / "deploy/grafana/lorag-dashboard.json"


# -- alert rules and dashboard ---------------------------------------------------------------------
def test_alert_rules_pass_promtool_check_and_their_unit_tests():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(RULES.with_name("lorag-rules.test.yaml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = promtool("check", "config", str(RULES.with_name("prometheus.yaml")))
    assert config.returncode == 0, config.stdout + config.stderr


def _referenced_metrics(text: str) -> set[str]:
    names = set(re.findall(r"\blorag_[a-z0-9_]+", text))
    return {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}


def test_dashboard_and_rules_only_use_metrics_lorag_defines():
    defined = {f.name for f in metrics._families}
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 30
    used = _referenced_metrics("\n".join(exprs)) | _referenced_metrics(RULES.read_text())
    assert used - defined == set()
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("per-tenant usage", "adapter cache", "hot swap", "requests, errors, duration"):
        assert topic in titles


# -- one trace: client -> retrieval -> embedding ------------------------------------------------------
class ProcessBoundaryHandle:
    """Calls a servicer method the way a DeploymentHandle does: pickled arguments, and a fresh
    context in which nothing of the caller's contextvars (current span, log fields) survives."""

    def __init__(self, target) -> None:
        self.target = target

    def __getattr__(self, name: str):
        method = getattr(self.target, name)

        class Method:
            @staticmethod
            async def remote(*args, **kwargs):
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
                task = asyncio.get_running_loop().create_task(
                    method(*args, **kwargs), context=contextvars.Context()
                )
                return pickle.loads(pickle.dumps(await task))

        return Method()


@pytest.fixture
def spans():
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = telemetry._provider
    telemetry.use_provider(provider)
    yield provider, exporter
    if previous is not None:
        telemetry.use_provider(previous)


@pytest.fixture
async def user_key(operator):
    tid = f"obs-{secrets.token_hex(4)}"
    resp = await operator.admin.CreateTenant(
        admin_pb2.CreateTenantRequest(tenant_id=tid, create_admin_key=True)
    )
    return tid, resp.admin_api_key


async def test_one_trace_covers_client_retrieval_and_embedding(spans, host, user_key, tmp_path):
    provider, exporter = spans
    embedding = host.servicers["embedding"]
    embedder = ServeEmbedder()
    embedder._handle = ProcessBoundaryHandle(embedding)  # the Ray hop, without Ray
    retrieval = RetrievalServicer(
        host.servicers["embedding"].runtime, settings=RetrievalSettings(data_dir=tmp_path), embedder=embedder
    )
    server = grpc.aio.server()
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(retrieval, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    tenant, key = user_key
    try:
        async with AsyncClient(f"127.0.0.1:{port}", key, timeout=60) as client:
            doc = retrieval_pb2.DocumentInput(doc_id="d1", text="Tracing follows a request across services.")
            async for _ in client.retrieval.Upsert(retrieval_pb2.UpsertRequest(documents=[doc])):
                pass
            exporter.clear()
            with provider.get_tracer("test-client").start_as_current_span(
                "client", kind=SpanKind.CLIENT
            ) as root:
                carrier = {}
                TraceContextTextMapPropagator().inject(carrier)
                resp = await client.retrieval.Search(
                    retrieval_pb2.SearchRequest(query_text="how are requests traced?", top_k=1),
                    metadata=tuple(carrier.items()),
                )
        assert resp.hits[0].chunk.doc_id == "d1"
    finally:
        await server.stop(0)
        retrieval.close()

    finished = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == root.get_span_context().trace_id
    ]
    by_id = {s.context.span_id: s for s in finished}

    def parent(s):
        return by_id[s.parent.span_id]

    rpc = next(s for s in finished if s.name == "lorag.retrieval.v1.RetrievalService/Search")
    assert rpc.kind == SpanKind.SERVER and rpc.parent.span_id == root.get_span_context().span_id
    assert rpc.attributes["lorag.tenant"] == tenant and rpc.attributes["rpc.grpc.status_code"] == 0
    remote = [s for s in finished if s.name == "embedding/embed_internal"]
    assert remote, [s.name for s in finished]
    for hop in remote:  # embedding's span -> retrieval's "embed" stage -> ... -> the RPC span
        caller = parent(hop)
        assert caller.name == "embed" and caller.attributes["lorag.embedder"] == "serve"
        chain = [caller]
        while chain[-1] is not rpc:
            chain.append(parent(chain[-1]))
        assert "search" in [s.name for s in chain]
        inner = [s for s in finished if s.parent is not None and s.parent.span_id == hop.context.span_id]
        assert [s.name for s in inner] == ["embed"]  # the embedding service's own stage span


async def test_internal_errors_carry_the_trace_id_of_the_rpc_span(spans, host, user_key, monkeypatch):
    provider, exporter = spans
    _, key = user_key
    embedding = host.servicers["embedding"]

    def boom(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(embedding.core, "prepare", boom)
    async with AsyncClient(host.target, key, timeout=30) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.embedding.Embed(
                embedding_pb2.EmbedRequest(texts=["x"], input_type=embedding_pb2.INPUT_TYPE_QUERY)
            )
    assert info.value.code() == grpc.StatusCode.INTERNAL and "secret" not in info.value.details()
    span = next(s for s in exporter.get_finished_spans() if s.name.endswith("EmbeddingService/Embed"))
    assert format(span.context.trace_id, "032x") in info.value.details()
    assert not span.status.is_ok


# -- metrics port and usage accounting ---------------------------------------------------------------
def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_port_and_usage_accounting_agree(runtime, operator, user_key):
    tenant, key = user_key
    metrics.configure_labels(tenants=[tenant])
    apps = (APPS_BY_NAME["embedding"], APPS_BY_NAME["adapters"])
    host = await start_inprocess(runtime, apps=apps, metrics_port=0)
    try:
        before = _scrape(host.metrics_port)
        usage_before = await _usage(host, key)
        tokens = 0
        async with AsyncClient(host.target, key, timeout=60) as client:
            for texts in (["one text"], ["two texts", "for the same tenant"]):
                resp = await client.embedding.Embed(
                    embedding_pb2.EmbedRequest(texts=texts, input_type=embedding_pb2.INPUT_TYPE_PASSAGE)
                )
                tokens += resp.usage.prompt_tokens
            with pytest.raises(grpc.aio.AioRpcError):
                await client.embedding.Embed(embedding_pb2.EmbedRequest(texts=["no input type"]))
        after = _scrape(host.metrics_port)
        usage = await _usage(host, key)
    finally:
        await host.stop(0)
        metrics.configure_labels()

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert tokens > 0
    assert delta("lorag_rpc_requests_total", service="embedding", method="Embed", code="OK") == 2
    assert (
        delta("lorag_rpc_requests_total", service="embedding", method="Embed", code="INVALID_ARGUMENT") == 1
    )
    assert delta("lorag_usage_requests_total", service="embedding", tenant=tenant) == 3
    assert delta("lorag_usage_tokens_total", service="embedding", tenant=tenant, direction="input") == tokens
    model = next(
        dict(k[1])["model"]
        for k in after
        if k[0] == "lorag_embedding_tokens_total" and ("tenant", tenant) in k[1]
    )
    assert delta("lorag_embedding_tokens_total", tenant=tenant, model=model) == tokens
    assert delta("lorag_embedding_texts_total", tenant=tenant, model=model) == 3
    assert delta("lorag_embedding_batch_size_texts_count", model=model) >= 1
    # the registry's usage table says the same
    emb = usage["embedding"]
    emb_before = usage_before.get("embedding", admin_pb2.UsageRecord())
    assert emb.requests - emb_before.requests == 3
    assert emb.errors - emb_before.errors == 1
    assert emb.input_tokens - emb_before.input_tokens == tokens
    assert emb.output_tokens == 0


async def _usage(host, key) -> dict[str, admin_pb2.UsageRecord]:
    async with AsyncClient(host.target, key, timeout=30) as client:
        resp = await client.admin.GetUsage(admin_pb2.GetUsageRequest())
    assert resp.days or not resp.totals
    return {r.service: r for r in resp.totals}


async def test_usage_of_another_tenant_is_not_found_for_admins(host, user_key, operator):
    _, key = user_key
    async with AsyncClient(host.target, key, timeout=30) as client:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.admin.GetUsage(admin_pb2.GetUsageRequest(tenant_id="default"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.admin.GetUsage(admin_pb2.GetUsageRequest(start_date="2026-13-01"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    resp = await operator.admin.GetUsage(admin_pb2.GetUsageRequest(tenant_id="default"))
    assert resp.tenant_id == "default"
