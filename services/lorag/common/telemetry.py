"""OpenTelemetry tracing: a span per RPC and per stage, W3C trace context carried across hops.

* Every RPC gets a SERVER span whose parent is the caller's ``traceparent`` metadata
  (:mod:`lorag.common.rpc` does this). Code inside opens stage spans with
  ``with telemetry.span("embed", model=name): ...``.
* Calls to another deployment's ``*_internal`` method pass ``trace_context=telemetry.inject()``;
  the method, decorated with :func:`internal`, runs in a SERVER span that continues the caller's
  trace (and logs under the caller's tenant). In-process calls need nothing: the context flows
  through contextvars.
* Export is configured by the standard environment: ``OTEL_TRACES_EXPORTER`` (``otlp``,
  ``console`` or ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf`` default, or ``grpc``),
  ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``,
  ``OTEL_RESOURCE_ATTRIBUTES``. Without an exporter nothing is recorded or sent, but trace ids
  still exist (from the caller or freshly made), so log lines and error messages carry them.

lorag keeps its own TracerProvider instead of the process-global one, so it never fights with
Ray Serve's optional tracing (``RAY_SERVE_TRACING_*``) over who owns the global provider.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lorag.common.logging import log_context

log = logging.getLogger("lorag.telemetry")

TRACER_NAME = "lorag"
#: Key of the caller's tenant in a carrier (for log lines and usage attribution, never for access).
TENANT_KEY = "lorag-tenant"
_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_lock = threading.Lock()


# -- set-up ---------------------------------------------------------------------------------------
def _exporter_from_env() -> SpanExporter | None:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not name:
        name = "otlp" if endpoint else "none"
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console, none); tracing is off", name)
        return None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    ).lower() or "http/protobuf"
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("the OTLP exporter for %s is not installed; tracing is off", protocol)
        return None
    return OTLPSpanExporter()  # endpoint, headers, timeout and compression come from OTEL_* env


def configure(*, exporter: SpanExporter | None = None, service_name: str = "") -> TracerProvider:
    """Build this process's tracer provider (from the environment unless ``exporter`` is given)."""
    global _provider, _tracer
    with _lock:
        exporter = exporter or _exporter_from_env()
        attrs = {"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name or "lorag"}
        resource = Resource.create(attrs)
        if exporter is None:
            # Ids are still generated and propagated; nothing is recorded.
            provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
        else:
            provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
            provider.add_span_processor(BatchSpanProcessor(exporter))
        old, _provider, _tracer = _provider, provider, provider.get_tracer(TRACER_NAME)
    if old is not None:
        old.shutdown()
    return provider


def use_provider(provider: TracerProvider) -> None:
    """Record with ``provider`` (tests pass one with an in-memory exporter)."""
    global _provider, _tracer
    with _lock:
        _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)


def tracer() -> trace.Tracer:
    if _tracer is None:
        configure()
    assert _tracer is not None
    return _tracer


def shutdown() -> None:
    """Flush and stop the exporter (at process exit)."""
    if _provider is not None:
        _provider.shutdown()


# -- spans ----------------------------------------------------------------------------------------
def _attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        name = key if "." in key else f"lorag.{key}"
        out[name] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


@contextlib.contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[trace.Span]:
    """A child span of the current one, current while the block runs: ``with span("embed"):``.

    Keyword attributes without a dot are recorded as ``lorag.<key>``. An exception escaping the
    block marks the span as an error.
    """
    with tracer().start_as_current_span(name, kind=kind, attributes=_attributes(attributes)) as s:
        yield s


def start_span(name: str, **attributes: Any) -> trace.Span:
    """A child span of the current one that is NOT made current; the caller ends it.

    For spans that outlive a ``yield`` of an async generator (a context made current there could
    not be restored in the consumer's next step).
    """
    return tracer().start_span(name, attributes=_attributes(attributes))


def start_server_span(
    name: str, *, carrier: Mapping[str, Any] | list | None = None, **attributes: Any
) -> tuple[trace.Span, otel_context.Context]:
    """A SERVER span continuing ``carrier``'s trace (or the current one); (span, its context).

    The caller ends the span; :func:`activate` makes it current for a stretch of code.
    """
    parent = extract(carrier) if carrier else otel_context.get_current()
    s = tracer().start_span(name, context=parent, kind=SpanKind.SERVER, attributes=_attributes(attributes))
    return s, trace.set_span_in_context(s, parent)


@contextlib.contextmanager
def activate(ctx: otel_context.Context) -> Iterator[None]:
    """Make ``ctx`` current for the block (attach and detach in the same frame)."""
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def fail(s: trace.Span, exc: BaseException, *, expected: bool) -> None:
    """Mark ``s`` as failed; unexpected errors also get the exception event."""
    if not expected:
        s.record_exception(exc)
    s.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def trace_id() -> str:
    """Hex trace id of the current span; empty when there is none."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def span_trace_id(s: trace.Span) -> str:
    ctx = s.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


# -- propagation ----------------------------------------------------------------------------------
def inject(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context (W3C ``traceparent``/``tracestate``) and tenant, as a plain dict.

    Pass it to another deployment's ``*_internal`` method as ``trace_context=``; it pickles, so
    it travels through DeploymentHandles.
    """
    carrier = {} if carrier is None else carrier
    _propagator.inject(carrier)
    tenant = (log_context.get() or {}).get("tenant")
    if tenant:
        carrier[TENANT_KEY] = tenant
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> otel_context.Context:
    """The context a carrier (dict, or gRPC metadata pairs) describes; empty when it has none."""
    if not carrier:
        return otel_context.Context()
    if not isinstance(carrier, Mapping):
        carrier = {str(k).lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in carrier}
    return _propagator.extract(carrier, context=otel_context.Context())


@contextlib.contextmanager
def continued(
    carrier: Mapping[str, str] | None, name: str, *, tenant: str = "", **attributes: Any
) -> Iterator[trace.Span]:
    """Run the block in a SERVER span continuing ``carrier``'s trace (``inject()`` on the other
    side), or the current trace when the carrier has none; log lines carry its trace id and the
    tenant (``tenant``, else the carrier's)."""
    parent = carrier if carrier and carrier.get("traceparent") else None
    s, ctx = start_server_span(name, carrier=parent, **attributes)
    fields = {**(log_context.get() or {}), "trace_id": span_trace_id(s)}
    tenant = tenant or (carrier or {}).get(TENANT_KEY, "")
    if tenant:
        fields["tenant"] = tenant
    log_token = log_context.set(fields)
    try:
        with activate(ctx):
            yield s
    except BaseException as exc:
        fail(s, exc, expected=_is_expected(exc))
        raise
    finally:
        log_context.reset(log_token)
        s.end()


def _is_expected(exc: BaseException) -> bool:
    from lorag.common.errors import LoragError

    return isinstance(exc, LoragError | GeneratorExit)


def internal(fn: Callable) -> Callable:
    """Decorate an ``*_internal`` method (coroutine or async generator) of a servicer.

    The method accepts an extra keyword ``trace_context`` (what :func:`inject` returned on the
    caller's side) and runs in a SERVER span ``<service>/<method>`` that continues that trace; in
    the same process, without ``trace_context``, the span continues the current trace. A
    ``tenant_id`` argument, when the method has one, is the tenant of its log lines and usage.
    """
    signature = inspect.signature(fn)
    takes_tenant = "tenant_id" in signature.parameters

    def _setup(self, args, kwargs) -> tuple[dict[str, str], str, str]:
        carrier = dict(kwargs.pop("trace_context", None) or {})
        tenant = ""
        if takes_tenant:
            tenant = signature.bind_partial(self, *args, **kwargs).arguments.get("tenant_id") or ""
        return carrier, tenant, _service_of(self)

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def gen_wrapper(self, *args, **kwargs):
            carrier, tenant, service = _setup(self, args, kwargs)
            parent = carrier if carrier.get("traceparent") else None
            s, ctx = start_server_span(f"{service}/{fn.__name__}", carrier=parent, service=service)
            fields = {**(log_context.get() or {}), "trace_id": span_trace_id(s)}
            tenant = tenant or carrier.get(TENANT_KEY, "")
            if tenant:
                fields["tenant"] = tenant
            agen = fn(self, *args, **kwargs)
            try:
                while True:
                    # Current only while the body runs, never across a yield to the consumer.
                    token, log_token = otel_context.attach(ctx), log_context.set(fields)
                    try:
                        item = await agen.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        log_context.reset(log_token)
                        otel_context.detach(token)
                    yield item
            except BaseException as exc:
                fail(s, exc, expected=_is_expected(exc))
                raise
            finally:
                await agen.aclose()
                s.end()

        return gen_wrapper

    @functools.wraps(fn)
    async def wrapper(self, *args, **kwargs):
        carrier, tenant, service = _setup(self, args, kwargs)
        with continued(carrier, f"{service}/{fn.__name__}", tenant=tenant, service=service):
            return await fn(self, *args, **kwargs)

    return wrapper


def _service_of(obj: Any) -> str:
    services = getattr(type(obj), "SERVICES", ())
    if services:
        return services[0].full_name.split(".")[1]
    return type(obj).__name__
