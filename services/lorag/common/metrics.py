"""Prometheus metrics of every service, with bounded label values.

Every metric is a prometheus-client metric in this process's default registry (what the in-process
host serves on ``LORAG_METRICS_PORT`` and what tests read). Inside a Ray worker the same records
are mirrored to :mod:`ray.util.metrics`, which Ray's metrics agent exports on the node's metrics
export port next to Ray Serve's own ``ray_serve_*`` series (Ray prefixes them ``ray_``; the scrape
config in ``deploy/prometheus/`` strips the prefix again, so both hosts yield the same names).

Names follow ``lorag_<svc>_<what>_<unit>``. Label values that come from callers are bounded:
:func:`tenant_label` keeps an allow-list (``LORAG_METRICS_TENANTS``) or the first
``LORAG_METRICS_MAX_TENANTS`` tenants a process sees and maps every other tenant to ``other``;
:func:`adapter_label` does the same for adapter version ids.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("lorag.metrics")

OTHER = "other"
BASE_ADAPTER = "base"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOKEN_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


# -- bounded label values ---------------------------------------------------------------------
class LabelCap:
    """Keeps the values of one label bounded: an allow-list, or the first ``limit`` values seen.

    With an allow-list, every value outside it is ``other``. Without one, the first ``limit``
    distinct values a process sees keep their own label and later ones are ``other`` (a value,
    once admitted, stays admitted, so a series never changes its label).
    """

    def __init__(self, *, limit: int, allow: Iterable[str] = ()) -> None:
        self.limit = max(0, int(limit))
        self.allow = frozenset(v for v in allow if v)
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if not value:
            return OTHER
        if self.allow:
            return value if value in self.allow else OTHER
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


_tenants = LabelCap(limit=100)
_adapters = LabelCap(limit=200)


def configure_labels(*, tenants: Sequence[str] = (), max_tenants: int = 100, max_adapters: int = 200) -> None:
    """Set the label bounds of this process (called once at start-up from the settings)."""
    global _tenants, _adapters
    _tenants = LabelCap(limit=max_tenants, allow=tenants)
    _adapters = LabelCap(limit=max_adapters)


def tenant_label(tenant_id: str) -> str:
    """The ``tenant`` label value of a tenant id (``other`` beyond the configured bound)."""
    return _tenants(tenant_id)


def adapter_label(version_id: str) -> str:
    """The ``adapter`` label value of an adapter version id (``base`` for the base model)."""
    return _adapters(version_id) if version_id else BASE_ADAPTER


# -- metric families mirrored to Ray ----------------------------------------------------------
_ray_export = False
_families: list[_Family] = []


class _Child:
    __slots__ = ("_family", "_prom", "_tags")

    def __init__(self, family: _Family, values: tuple[str, ...]) -> None:
        self._family = family
        self._prom = family._prom.labels(*values) if values else family._prom
        self._tags = dict(zip(family.labelnames, values, strict=True))

    def inc(self, amount: float = 1.0) -> None:
        self._prom.inc(amount)
        if _ray_export and amount > 0:
            self._family._ray_metric().inc(amount, tags=self._tags)

    def set(self, value: float) -> None:
        self._prom.set(value)
        if _ray_export:
            self._family._ray_metric().set(value, tags=self._tags)

    def observe(self, value: float) -> None:
        self._prom.observe(value)
        if _ray_export:
            self._family._ray_metric().observe(value, tags=self._tags)


class _Family:
    """One metric: a prometheus-client metric plus, in Ray workers, its ray.util.metrics twin."""

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(buckets) if buckets else None
        if kind == "counter":
            self._prom = Counter(name, documentation, self.labelnames)
        elif kind == "gauge":
            self._prom = Gauge(name, documentation, self.labelnames)
        else:
            self._prom = Histogram(name, documentation, self.labelnames, buckets=self.buckets)
        self._children: dict[tuple[str, ...], _Child] = {}
        self._ray: Any = None
        self._lock = threading.Lock()
        _families.append(self)

    def labels(self, *values: str, **named: str) -> _Child:
        if named:
            values = tuple(str(named[n]) for n in self.labelnames)
        else:
            values = tuple(str(v) for v in values)
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._children.get(values)
                if child is None:
                    child = self._children[values] = _Child(self, values)
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def _ray_metric(self) -> Any:
        if self._ray is None:
            with self._lock:
                if self._ray is None:
                    from ray.util import metrics as ray_metrics

                    # prometheus-client exposes counters with the `_total` suffix; keep the same name.
                    name = self.name + "_total" if self.kind == "counter" else self.name
                    if self.kind == "counter":
                        self._ray = ray_metrics.Counter(name, self.documentation, tag_keys=self.labelnames)
                    elif self.kind == "gauge":
                        self._ray = ray_metrics.Gauge(name, self.documentation, tag_keys=self.labelnames)
                    else:
                        self._ray = ray_metrics.Histogram(
                            name,
                            self.documentation,
                            boundaries=list(self.buckets or ()),
                            tag_keys=self.labelnames,
                        )
        return self._ray


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> _Family:
    """A counter; ``name`` without the ``_total`` suffix (prometheus-client adds it)."""
    return _Family("counter", name.removesuffix("_total"), documentation, labelnames)


def gauge(name: str, documentation: str, labelnames: Sequence[str] = ()) -> _Family:
    return _Family("gauge", name, documentation, labelnames)


def histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    buckets: Sequence[float] = LATENCY_BUCKETS,
) -> _Family:
    return _Family("histogram", name, documentation, labelnames, buckets)


def in_ray_worker() -> bool:
    """True in a Ray worker process (a Serve replica), where Ray's agent exports metrics."""
    if "ray" not in sys.modules:
        return False
    try:
        from ray._private import worker

        return worker.global_worker.connected and worker.global_worker.mode == worker.WORKER_MODE
    except Exception:  # noqa: BLE001 - any doubt means: not a Ray worker
        return False


def enable_ray_export() -> bool:
    """Mirror every record of this process to ray.util.metrics (no-op outside a Ray worker)."""
    global _ray_export
    if not _ray_export and in_ray_worker():
        _ray_export = True
        log.info("metrics are exported through Ray's metrics agent")
    return _ray_export


def serve_http(port: int, *, host: str = "127.0.0.1") -> tuple[Any, int]:
    """Serve this process's registry on ``host:port`` (0 picks a port); (server, bound port)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server, server.server_address[1]


# -- the catalogue ------------------------------------------------------------------------------
# RPC plumbing (recorded by lorag.common.rpc for every call of every service).
RPC_REQUESTS = counter(
    "lorag_rpc_requests_total",
    "gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
)
RPC_LATENCY = histogram(
    "lorag_rpc_latency_seconds",
    "Wall-clock time to handle a gRPC call (to the last message for streams).",
    ["service", "method"],
)

# Load and quotas (recorded by lorag.common.ratelimit for every refused call).
RATE_LIMIT_REJECTIONS = counter(
    "lorag_rate_limit_rejections_total",
    "Calls refused with RESOURCE_EXHAUSTED by a per-tenant limit (limit: requests_per_s, concurrency).",
    ["service", "tenant", "limit"],
)
AUTH_LOCKOUT_REJECTIONS = counter(
    "lorag_rate_limit_auth_lockout_rejections_total",
    "Calls refused because their peer address failed authentication too often (registry not asked).",
    ["service"],
)
AUTH_LOCKOUTS = counter(
    "lorag_rate_limit_auth_lockouts_total",
    "Peer addresses locked out after reaching the failed-authentication limit within the window.",
)

# Usage accounting (the same records feed the registry's usage table, see lorag.common.usage).
USAGE_REQUESTS = counter(
    "lorag_usage_requests_total",
    "Authenticated requests per tenant and service (what GetUsage reports).",
    ["service", "tenant"],
)
USAGE_TOKENS = counter(
    "lorag_usage_tokens_total",
    "Tokens processed per tenant and service; direction is input or output.",
    ["service", "tenant", "direction"],
)

# Embedding.
EMBEDDING_TEXTS = counter("lorag_embedding_texts_total", "Texts embedded.", ["tenant", "model"])
EMBEDDING_TOKENS = counter("lorag_embedding_tokens_total", "Tokens embedded.", ["tenant", "model"])
EMBEDDING_BATCH_SIZE = histogram(
    "lorag_embedding_batch_size_texts", "Texts per model forward batch.", ["model"], buckets=SIZE_BUCKETS
)

# Retrieval.
RETRIEVAL_SEARCH_LATENCY = histogram(
    "lorag_retrieval_search_latency_seconds", "Search time (embedding the query included), by mode.", ["mode"]
)
RETRIEVAL_RESULTS = histogram(
    "lorag_retrieval_results_count", "Hits returned per search.", ["mode"], buckets=SIZE_BUCKETS
)
RETRIEVAL_CHUNKS_STORED = gauge(
    "lorag_retrieval_chunks_stored",
    "Chunks stored per tenant (as of its last ingest, delete or stats).",
    ["tenant"],
)
RETRIEVAL_INGESTED_CHUNKS = counter(
    "lorag_retrieval_ingested_chunks_total", "Chunks written by ingest.", ["tenant"]
)
RETRIEVAL_INGESTED_DOCUMENTS = counter(
    "lorag_retrieval_ingested_documents_total",
    "Documents ingested, by outcome (indexed, failed).",
    ["outcome"],
)
RETRIEVAL_STORE_FAILURES = counter(
    "lorag_retrieval_store_failures_total",
    "Milvus calls that failed (connection refused, timeouts, server errors), by operation.",
    ["operation"],
)
RETRIEVAL_INGEST_LATENCY = histogram(
    "lorag_retrieval_ingest_latency_seconds", "Time of one ingest request (all its documents)."
)

# Reranking.
RERANKING_PAIRS = counter(
    "lorag_reranking_pairs_total", "(query, passage) pairs scored.", ["tenant", "adapter"]
)

# Generation.
GENERATION_REQUESTS = counter(
    "lorag_generation_requests_total",
    "Generation requests, by tenant, adapter version and finish reason.",
    ["tenant", "adapter", "finish_reason"],
)
GENERATION_PROMPT_TOKENS = counter(
    "lorag_generation_prompt_tokens_total", "Prompt tokens.", ["tenant", "adapter"]
)
GENERATION_GENERATED_TOKENS = counter(
    "lorag_generation_generated_tokens_total", "Generated tokens.", ["tenant", "adapter"]
)
GENERATION_TTFT = histogram(
    "lorag_generation_time_to_first_token_seconds",
    "Time from request to the first generated text.",
    ["adapter"],
    buckets=LATENCY_BUCKETS,
)
GENERATION_INTER_TOKEN = histogram(
    "lorag_generation_inter_token_latency_seconds",
    "Time between two streamed pieces of a request.",
    buckets=TOKEN_LATENCY_BUCKETS,
)
GENERATION_DECODE_STEPS = counter(
    "lorag_generation_decode_steps_total", "Batched decode steps of the engine."
)
GENERATION_BATCH_ROWS = counter(
    "lorag_generation_batch_rows_total",
    "Rows over all decode steps (rate / rate of decode steps = mean batch occupancy).",
)
GENERATION_BATCH_CAPACITY = gauge("lorag_generation_batch_capacity_rows", "Largest batch of the engine.")
GENERATION_INFLIGHT = gauge("lorag_generation_inflight_requests", "Generation requests in progress.")

# Adapter cache (generation and reranking replicas).
ADAPTER_CACHE_LOOKUPS = counter(
    "lorag_adapter_cache_lookups_total",
    "Loaded-adapter lookups, by result (hit, miss).",
    ["service", "result"],
)
ADAPTER_CACHE_EVICTIONS = counter("lorag_adapter_cache_evictions_total", "Adapters evicted.", ["service"])
ADAPTER_CACHE_LOAD_LATENCY = histogram(
    "lorag_adapter_cache_load_latency_seconds",
    "Download, verification and load of one adapter version.",
    ["service"],
    buckets=LOAD_BUCKETS,
)
ADAPTER_CACHE_LOAD_FAILURES = counter(
    "lorag_adapter_cache_load_failures_total", "Adapter loads that failed, by reason.", ["service", "reason"]
)
ADAPTER_CACHE_LOADED = gauge("lorag_adapter_cache_loaded_adapters", "Adapter versions loaded.", ["service"])
ADAPTER_CACHE_BYTES = gauge("lorag_adapter_cache_used_bytes", "Bytes of loaded adapters.", ["service"])
ADAPTER_CACHE_INVALIDATIONS = counter(
    "lorag_adapter_cache_invalidations_total",
    "Registry changes applied to cached resolutions (hot swaps).",
    ["service"],
)

# Adapter registry.
ADAPTERS_UPLOADS = counter(
    "lorag_adapters_uploads_total",
    "Adapter version uploads, by outcome (created, duplicate, rejected).",
    ["tenant", "outcome"],
)
ADAPTERS_VALIDATION_FAILURES = counter(
    "lorag_adapters_validation_failures_total", "Rejected adapter uploads, by reason.", ["reason"]
)
ADAPTERS_ALIAS_CHANGES = counter(
    "lorag_adapters_alias_changes_total",
    "Alias moves, by action (set, delete, rollback) and alias.",
    ["tenant", "alias", "action"],
)

# Training (recorded by the training pipeline).
TRAINING_JOBS = gauge("lorag_training_jobs", "Training jobs in each phase.", ["phase"])
TRAINING_PHASE_TRANSITIONS = counter(
    "lorag_training_phase_transitions_total",
    "Training jobs entering a phase (failed, succeeded, ...).",
    ["phase"],
)

# RAG orchestration (recorded by the rag service).
RAG_ANSWERS = counter(
    "lorag_rag_answers_total", "Answers given, by tenant and outcome.", ["tenant", "outcome"]
)
RAG_REJECTIONS = counter(
    "lorag_rag_negative_rejections_total",
    "Questions declined for lack of supporting context, by reason.",
    ["tenant", "reason"],
)
RAG_STAGE_LATENCY = histogram(
    "lorag_rag_stage_latency_seconds",
    "Time of each orchestration stage (embed, search, rerank, generate).",
    ["stage"],
)
