"""Debian's Prometheus scrapes a running `lorag serve` (Ray Serve) with the shipped scrape config
and alert rules; after real traffic the key lorag and Ray Serve series exist with their labels."""

import json
import secrets
import time
from pathlib import Path

import pytest
import yaml

from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.embedding.v1 import embedding_pb2
from lorag.retrieval.v1 import retrieval_pb2
from tests.support.prometheus import start_prometheus

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy/prometheus/prometheus.yaml"
RULES = ROOT / "deploy/prometheus/lorag-rules.yaml"
DASHBOARD = ROOT / "deploy/grafana/lorag-dashboard.json"


@pytest.fixture(scope="module")
def prometheus(platform):
    config = yaml.safe_load(CONFIG.read_text())
    config.pop("rule_files", None)
    config["global"].update(scrape_interval="2s", evaluation_interval="5s")
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{platform.metrics_port}"]}]
    server = start_prometheus(config, rule_files=[RULES])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traffic(platform):
    """A tenant that embeds, ingests (retrieval -> embedding through a handle) and searches."""
    tenant = f"e2e-obs-{secrets.token_hex(3)}"
    with Client(platform.target, platform.operator_key, timeout=120) as op:
        key = op.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id=tenant, create_admin_key=True)
        ).admin_api_key
    tokens = 0
    with Client(platform.target, key, timeout=120) as c:
        for texts in (["metrics from every replica"], ["reach", "one port per node"]):
            resp = c.embedding.Embed(
                embedding_pb2.EmbedRequest(texts=texts, input_type=embedding_pb2.INPUT_TYPE_PASSAGE)
            )
            tokens += resp.usage.prompt_tokens
        doc = retrieval_pb2.DocumentInput(doc_id="obs", text="Prometheus scrapes the Ray node's export port.")
        list(c.retrieval.Upsert(retrieval_pb2.UpsertRequest(documents=[doc])))
        hits = c.retrieval.Search(
            retrieval_pb2.SearchRequest(query_text="which port is scraped?", top_k=1)
        ).hits
        assert hits and hits[0].chunk.doc_id == "obs"
    return tenant, key, tokens


def _one(server, expr: str) -> dict:
    result = server.wait_for(expr)
    assert result, f"no samples for {expr}\n{server.log()[-2000:]}"
    return result[0]


def test_key_series_reach_prometheus_with_their_labels(prometheus, traffic):
    tenant, _, tokens = traffic
    rpc = _one(
        prometheus,
        'sum by (service, method, code) (lorag_rpc_requests_total{service="embedding", method="Embed", '
        'code="OK"}) >= 2',
    )
    assert rpc["metric"] == {"service": "embedding", "method": "Embed", "code": "OK"}
    tok = _one(prometheus, f'sum by (tenant) (lorag_embedding_tokens_total{{tenant="{tenant}"}}) >= {tokens}')
    assert tok["metric"] == {"tenant": tenant}
    usage = _one(
        prometheus,
        f'sum by (service, tenant) (lorag_usage_requests_total{{tenant="{tenant}", service="retrieval"}})'
        " >= 2",
    )
    assert usage["metric"]["service"] == "retrieval"
    search = _one(prometheus, "sum by (mode) (lorag_retrieval_search_latency_seconds_count) >= 1")
    assert search["metric"]["mode"] in ("dense", "sparse", "hybrid")
    _one(prometheus, f'lorag_retrieval_chunks_stored{{tenant="{tenant}"}} >= 1')
    ingested = _one(prometheus, f'lorag_retrieval_ingested_chunks_total{{tenant="{tenant}"}}')
    assert ingested["metric"]["job"] == "lorag" and "WorkerId" in ingested["metric"]  # one series per replica
    # Ray Serve's own series come through the same port
    serve = _one(
        prometheus,
        'sum by (deployment) (ray_serve_deployment_request_counter_total{deployment="EmbeddingServicer"})',
    )
    assert float(serve["value"][1]) >= 2
    # the relabeling left no lorag series under Ray's prefix
    assert prometheus.query('count({__name__=~"ray_lorag_.+"})') == []


def test_usage_api_agrees_with_the_metrics(platform, prometheus, traffic):
    tenant, key, tokens = traffic
    _one(prometheus, f'sum(lorag_usage_tokens_total{{tenant="{tenant}", service="embedding"}}) >= {tokens}')
    deadline = time.monotonic() + 30  # replicas add their counts to the registry every few seconds
    with Client(platform.target, key, timeout=60) as c:
        while True:
            totals = {r.service: r for r in c.admin.GetUsage(admin_pb2.GetUsageRequest()).totals}
            if "retrieval" in totals and totals.get("embedding") and totals["embedding"].requests >= 2:
                break
            assert time.monotonic() < deadline, totals
            time.sleep(1)
    emb = totals["embedding"]
    metric = prometheus.query(f'sum(lorag_usage_tokens_total{{tenant="{tenant}", service="embedding"}})')
    # ingest and search embed through the embedding app too, under the same tenant
    assert emb.input_tokens == float(metric[0]["value"][1]) > tokens
    assert emb.requests == 2


def test_rules_load_and_dashboard_queries_parse(prometheus):
    groups = prometheus.api("rules")["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {"LoragHighErrorRate", "LoragMilvusUnavailable", "LoragTrainingFailures"} <= names
    assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$service", ".*")
                .replace("$tenant", ".*")
            )
            prometheus.query(expr)  # raises unless Prometheus accepts the query


def test_one_trace_spans_the_proxy_retrieval_replica_and_embedding_replica(platform, traffic, otlp_collector):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _, key, _ = traffic
    with TracerProvider().get_tracer("e2e-client").start_as_current_span("client") as root:
        carrier = {}
        TraceContextTextMapPropagator().inject(carrier)
        with Client(platform.target, key, timeout=120) as c:
            c.retrieval.Search(
                retrieval_pb2.SearchRequest(query_text="where do traces go?", top_k=1),
                metadata=tuple(carrier.items()),
            )
    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = otlp_collector.trace(
        trace_id, until=lambda ss: any(s.name == "embedding/embed_internal" for s in ss), timeout=60
    )
    by_id = {s.span_id: s for s in spans}
    rpc = next(s for s in spans if s.name == "lorag.retrieval.v1.RetrievalService/Search")
    assert rpc.parent_span_id == format(root.get_span_context().span_id, "016x")
    hops = [s for s in spans if s.name == "embedding/embed_internal"]
    assert hops, sorted(s.name for s in spans)
    for hop in hops:  # embedding replica's span -> retrieval replica's `embed` -> ... -> the RPC span
        node = by_id[hop.parent_span_id]
        assert node.name == "embed" and node.attributes["lorag.embedder"] == "serve"
        while node is not rpc:
            node = by_id[node.parent_span_id]
