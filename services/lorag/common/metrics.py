"""Per-RPC Prometheus metrics shared by every service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RPC_REQUESTS = Counter(
    "lorag_rpc_requests_total",
    "gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
)
RPC_LATENCY = Histogram(
    "lorag_rpc_latency_seconds",
    "Wall-clock time to handle a gRPC call (to the last message for streams).",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
