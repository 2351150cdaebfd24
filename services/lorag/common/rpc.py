"""RPC plumbing shared by every servicer, identical under both hosts.

A servicer method decorated with :func:`rpc` runs the same way in a plain ``grpc.aio`` server
and behind Ray Serve's gRPC proxy. The wrapper authenticates the caller, checks its role, the
message size and the deadline, records metrics, and turns errors into gRPC statuses through
:func:`lorag.common.status.grpc_status` (the one mapping). Unknown errors become a generic
INTERNAL status carrying only a trace id; the details go to the log.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from lorag.common import errors, metrics, telemetry
from lorag.common.auth import Authenticator, load_key_hasher, require_role
from lorag.common.db import Database
from lorag.common.logging import configure as configure_logging
from lorag.common.logging import log_context
from lorag.common.metrics import RPC_LATENCY, RPC_REQUESTS
from lorag.common.parsing import MalformedRequest
from lorag.common.ratelimit import AuthFailures, Slot, TenantLimits, peer_address
from lorag.common.settings import LoragSettings, load_settings
from lorag.common.status import grpc_status, retry_metadata
from lorag.common.tenancy import Principal, Role, TenantStore
from lorag.common.usage import UsageRecorder

log = logging.getLogger("lorag.rpc")

#: gRPC rounds a client's timeout up to its clock granularity, so a deadline of 0 (or one that
#: passed in flight) arrives with a fraction of a millisecond left. Nothing useful runs in that.
MIN_CLIENT_BUDGET_S = 0.001


@dataclass
class Runtime:
    """Process-wide state every servicer needs: settings, registry, authenticator, usage, limits."""

    settings: LoragSettings
    db: Database
    tenants: TenantStore
    auth: Authenticator
    usage: UsageRecorder
    limits: TenantLimits = field(default_factory=TenantLimits)  # build() reads them from the settings

    _instances: ClassVar[dict[str, Runtime]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def build(cls, settings: LoragSettings) -> Runtime:
        db = Database(settings.resolved_registry_url)
        tenants = TenantStore(db, load_key_hasher(settings))
        return cls(
            settings=settings,
            db=db,
            tenants=tenants,
            auth=Authenticator(
                tenants, ttl_s=settings.auth_cache_ttl_s, failures=AuthFailures.from_settings(settings)
            ),
            usage=UsageRecorder(db, flush_interval_s=settings.usage_flush_s),
            limits=TenantLimits.from_settings(settings, quota_lookup=_quota_lookup(tenants)),
        )

    def close(self) -> None:
        """Write the usage counters still pending, then close the registry's connections."""
        self.usage.close()
        self.db.dispose()

    @classmethod
    def shared(cls, settings: LoragSettings | None = None) -> Runtime:
        """One runtime per registry URL and process (replicas of several services share it)."""
        settings = settings or load_settings()
        key = settings.resolved_registry_url
        with cls._lock:
            if key not in cls._instances:
                configure_logging(settings.log_level, json_lines=settings.log_json)
                configure_metrics(settings)
                cls._instances[key] = cls.build(settings)
            return cls._instances[key]


def _quota_lookup(tenants: TenantStore) -> Callable[[str], int]:
    """A tenant's ``max_requests_per_minute`` from the registry (0: the platform default)."""

    def lookup(tenant_id: str) -> int:
        try:
            return tenants.get_tenant(tenant_id).max_requests_per_minute
        except errors.NotFound:
            return 0

    return lookup


def configure_metrics(settings: LoragSettings) -> None:
    """Label bounds from the settings; in a Ray worker, export through Ray's metrics agent."""
    metrics.configure_labels(
        tenants=settings.metrics_tenant_list,
        max_tenants=settings.metrics_max_tenants,
        max_adapters=settings.metrics_max_adapters,
    )
    metrics.enable_ray_export()


@dataclass
class Call:
    """What a handler gets besides the request: the caller and the call's limits."""

    service: str
    method: str
    principal: Principal | None
    trace_id: str
    deadline: float  # time.monotonic() value
    grpc_context: Any = field(repr=False)
    slot: Slot | None = field(default=None, repr=False)  # place in the tenant's concurrency limit

    @property
    def tenant_id(self) -> str:
        assert self.principal is not None
        return self.principal.tenant_id

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def metadata(self, key: str) -> str | None:
        for k, v in self.grpc_context.invocation_metadata() or ():
            if k.lower() == key:
                return v.decode() if isinstance(v, bytes) else v
        return None


def rpc(role: Role | None = Role.USER, *, concurrent: bool = True) -> Callable:
    """Decorate a servicer method ``async def Method(self, request, call: Call)``.

    ``role`` is the least role allowed to call it (``None``: no authentication, e.g. health).
    Every authenticated call counts against its tenant's request rate (lorag.common.ratelimit);
    while it runs it also holds one of the tenant's concurrent places unless ``concurrent`` is
    False (long-lived watch streams, idle most of the time). Async generator methods become
    server-streaming handlers; for client-streaming RPCs the request argument is the async
    iterator of incoming messages.
    """

    def decorate(fn: Callable) -> Callable:
        name = fn.__name__
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def stream_wrapper(self, request, grpc_context=None):
                started = time.perf_counter()
                call = None
                span, ctx = self._lorag_span(name, grpc_context)
                try:
                    with telemetry.activate(ctx):
                        call = await self._lorag_begin(name, request, grpc_context, role, span, concurrent)
                        agen = fn(self, _parsed_stream(request), call)
                    while True:
                        remaining = call.remaining()
                        if remaining <= 0:
                            await agen.aclose()
                            raise errors.DeadlineExceeded("deadline exceeded")
                        try:
                            with telemetry.activate(ctx):  # current while the handler runs, not across yields
                                item = await asyncio.wait_for(agen.__anext__(), remaining)
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            raise errors.DeadlineExceeded("deadline exceeded") from None
                        yield item
                except (asyncio.CancelledError, GeneratorExit):
                    self._lorag_record(name, _cancel_code(call), started, call, span)
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status below
                    with telemetry.activate(ctx):
                        code, details = self._lorag_fail(name, exc, call, span)
                    self._lorag_record(name, code, started, call, span)
                    if grpc_context is None:  # called through a handle, not over gRPC
                        raise
                    trailing = retry_metadata(exc, remaining_s=_left(call, grpc_context))
                    await _abort(grpc_context, code, details, trailing)
                    raise _Aborted(details) from None
                else:
                    self._lorag_record(name, grpc.StatusCode.OK, started, call, span)

            return _finish(stream_wrapper, role)

        @functools.wraps(fn)
        async def unary_wrapper(self, request, grpc_context=None):
            started = time.perf_counter()
            call = None
            span, ctx = self._lorag_span(name, grpc_context)
            try:
                with telemetry.activate(ctx):
                    call = await self._lorag_begin(name, request, grpc_context, role, span, concurrent)
                    remaining = call.remaining()
                    if remaining <= 0:
                        raise errors.DeadlineExceeded("deadline exceeded")
                    try:
                        response = await asyncio.wait_for(fn(self, _parsed_stream(request), call), remaining)
                    except TimeoutError:
                        raise errors.DeadlineExceeded("deadline exceeded") from None
            except asyncio.CancelledError:
                self._lorag_record(name, _cancel_code(call), started, call, span)
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status below
                with telemetry.activate(ctx):
                    code, details = self._lorag_fail(name, exc, call, span)
                self._lorag_record(name, code, started, call, span)
                if grpc_context is None:  # called through a handle, not over gRPC
                    raise
                trailing = retry_metadata(exc, remaining_s=_left(call, grpc_context))
                await _abort(grpc_context, code, details, trailing)
                return self._lorag_output_type(name)()
            self._lorag_record(name, grpc.StatusCode.OK, started, call, span)
            return response

        return _finish(unary_wrapper, role)

    return decorate


def _left(call: Call | None, grpc_context: Any) -> float | None:
    """Seconds the call has left: its own deadline, else the client's (None when unknown)."""
    if call is not None:
        return call.remaining()
    time_remaining = getattr(grpc_context, "time_remaining", None)
    return time_remaining() if callable(time_remaining) else None


def _cancel_code(call: Call | None) -> grpc.StatusCode:
    """A call cancelled by the transport: past its deadline, or cancelled by the client."""
    if call is not None and call.remaining() <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _finish(wrapper: Callable, role: Role | None) -> Callable:
    # Ray Serve passes the context only to methods whose signature names `grpc_context`;
    # inspect.signature would follow __wrapped__ to the handler's (request, call) signature.
    del wrapper.__wrapped__
    wrapper._lorag_rpc = role  # type: ignore[attr-defined]
    return wrapper


class _Aborted(Exception):
    """Raised after the status was set on a context that has no ``abort`` (Ray Serve's)."""


async def _abort(
    grpc_context: Any, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()
) -> None:
    """Give the client ``code``: ``abort`` on grpc.aio contexts, set code/details elsewhere."""
    if trailing:
        grpc_context.set_trailing_metadata(list(trailing))  # Ray Serve's context needs a list
    abort = getattr(grpc_context, "abort", None)
    if abort is not None and inspect.iscoroutinefunction(abort):
        await abort(code, details)  # raises grpc.aio.AbortError
    grpc_context.set_code(code)
    grpc_context.set_details(details)


def all_services(cls: type) -> list[ServiceDescriptor]:
    """Proto services implemented by a servicer class (its own and inherited)."""
    seen: list[ServiceDescriptor] = []
    for klass in reversed(cls.__mro__):
        for svc in klass.__dict__.get("SERVICES", ()):
            if svc not in seen:
                seen.append(svc)
    return seen


def _unimplemented(svc: ServiceDescriptor, method: MethodDescriptor, capability: str) -> Callable:
    message = f"{svc.name}.{method.name} is not available: {capability}"

    if method.server_streaming:

        async def handler(self, request, call):
            raise errors.Unimplemented(message)
            yield  # pragma: no cover - makes this an async generator

    else:

        async def handler(self, request, call):
            raise errors.Unimplemented(message)

    handler.__name__ = handler.__qualname__ = method.name
    return rpc(Role.USER)(handler)


class ServicerBase:
    """Base of every servicer. Subclasses set ``SERVICES`` to the proto services they implement.

    RPCs of those services that the subclass does not define answer UNIMPLEMENTED with
    ``PENDING`` naming the missing capability. Every servicer also answers the standard
    ``grpc.health.v1.Health/Check`` for the services it hosts (used behind Ray Serve's proxy).
    """

    SERVICES: ClassVar[tuple[ServiceDescriptor, ...]] = ()
    PENDING: ClassVar[str] = "this capability is not part of this deployment"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for svc in cls.__dict__.get("SERVICES", ()):
            for method in svc.methods:
                if not hasattr(cls, method.name):
                    setattr(cls, method.name, _unimplemented(svc, method, cls.PENDING))

    def __init__(self, runtime: Runtime | None = None) -> None:
        self.runtime = runtime or Runtime.shared()
        self._methods: dict[str, tuple[ServiceDescriptor, MethodDescriptor]] = {}
        for svc in all_services(type(self)):
            for method in svc.methods:
                self._methods[method.name] = (svc, method)

    # -- health (grpc.health.v1) ----------------------------------------------------------
    async def Check(self, request, grpc_context=None):  # noqa: N802 - gRPC method name
        from grpc_health.v1 import health_pb2

        if isinstance(request, MalformedRequest):  # behind Ray Serve's proxy (lorag.proxy)
            error = request.error()
            if grpc_context is None:
                raise error
            await _abort(grpc_context, grpc.StatusCode.INVALID_ARGUMENT, error.message)
            return health_pb2.HealthCheckResponse()
        names = {svc.full_name for svc in all_services(type(self))}
        if request.service and request.service not in names:
            if grpc_context is None:
                raise errors.NotFound(f"unknown service {request.service!r}")
            await _abort(grpc_context, grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
            return health_pb2.HealthCheckResponse()
        status = health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse(status=status)

    # -- plumbing used by the rpc wrapper --------------------------------------------------
    def _lorag_labels(self, name: str) -> tuple[str, str]:
        svc, _ = self._methods.get(name, (None, None))
        service = svc.full_name.split(".")[1] if svc is not None else type(self).__name__
        return service, name

    def _lorag_output_type(self, name: str) -> type:
        _, method = self._methods[name]
        return message_factory.GetMessageClass(method.output_type)

    def _lorag_span(self, name: str, grpc_context: Any):
        """The RPC's SERVER span, child of the caller's ``traceparent`` metadata when it sent one."""
        metadata = list(grpc_context.invocation_metadata() or ()) if grpc_context else []
        svc, _ = self._methods.get(name, (None, None))
        full = svc.full_name if svc is not None else type(self).__name__
        return telemetry.start_server_span(
            f"{full}/{name}",
            carrier=metadata or None,
            **{"rpc.system": "grpc", "rpc.service": full, "rpc.method": name},
        )

    async def _lorag_begin(
        self,
        name: str,
        request: Any,
        grpc_context: Any,
        role: Role | None,
        span: Any,
        concurrent: bool = True,
    ) -> Call:
        settings = self.runtime.settings
        metadata = list(grpc_context.invocation_metadata() or ()) if grpc_context else []
        trace_id = telemetry.span_trace_id(span)
        service, _ = self._lorag_labels(name)
        log_context.set({"service": service, "method": name, "trace_id": trace_id})
        budget = settings.request_timeout_s
        time_remaining = getattr(grpc_context, "time_remaining", None)
        if callable(time_remaining):
            client_budget = time_remaining()
            if client_budget is not None:
                budget = min(budget, client_budget if client_budget >= MIN_CLIENT_BUDGET_S else 0.0)
        call = Call(
            service=service,
            method=name,
            principal=None,
            trace_id=trace_id,
            deadline=time.monotonic() + budget,
            grpc_context=grpc_context,
        )
        if role is not None:
            peer = peer_address(grpc_context.peer()) if hasattr(grpc_context, "peer") else ""
            call.principal = await self.runtime.auth.authenticate(metadata, peer=peer, service=service)
            log_context.set({**(log_context.get() or {}), "tenant": call.principal.tenant_id})
            span.set_attribute("lorag.tenant", call.principal.tenant_id)
            await self.runtime.limits.admit(call.principal.tenant_id, service=service)
            require_role(call.principal, role)
        if isinstance(request, MalformedRequest):
            raise request.error()
        size = request.ByteSize() if hasattr(request, "ByteSize") else 0
        if size > settings.max_message_bytes:
            raise errors.ResourceExhausted(
                f"request is {size} bytes; the limit is {settings.max_message_bytes} bytes "
                "(LORAG_MAX_MESSAGE_BYTES)"
            )
        if concurrent and call.principal is not None:  # last: nothing after it may fail
            call.slot = self.runtime.limits.enter(call.principal.tenant_id, service=service)
        return call

    def _lorag_fail(
        self, name: str, exc: BaseException, call: Call | None, span: Any
    ) -> tuple[grpc.StatusCode, str]:
        trace_id = telemetry.span_trace_id(span) or (call.trace_id if call else "")
        expected = isinstance(exc, errors.LoragError)
        if isinstance(exc, errors.ResourceExhausted) and exc.retry_after_s is not None:
            # A limit that refuses thousands of calls a second must not flood the log (it is counted).
            log.debug("rpc refused: %s", exc, extra={"fields": {"code": exc.code}})
        elif expected:
            log.info("rpc failed: %s", exc, extra={"fields": {"code": exc.code}})
        else:
            log.error("unhandled error in %s", name, exc_info=exc)
        telemetry.fail(span, exc, expected=expected)
        return grpc_status(exc, trace_id=trace_id)

    def _lorag_record(
        self, name: str, code: grpc.StatusCode, started: float, call: Call | None, span: Any
    ) -> None:
        if call is not None and call.slot is not None:
            call.slot.release()
        service, method = self._lorag_labels(name)
        RPC_REQUESTS.labels(service, method, code.name).inc()
        RPC_LATENCY.labels(service, method).observe(time.perf_counter() - started)
        if call is not None and call.principal is not None:
            self.runtime.usage.request(call.principal.tenant_id, service, ok=code == grpc.StatusCode.OK)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.end()


def _parsed_stream(request: Any) -> Any:
    """Client streams: every message is checked as it arrives (unary requests pass unchanged)."""
    if isinstance(request, MalformedRequest) or not hasattr(request, "__aiter__"):
        return request

    async def checked():
        async for item in request:
            if isinstance(item, MalformedRequest):
                raise item.error()
            yield item

    return checked()


async def aiter_limited(stream: AsyncIterator[Any], *, max_messages: int) -> AsyncIterator[Any]:
    """Iterate a client stream, failing with RESOURCE_EXHAUSTED past ``max_messages``."""
    count = 0
    async for item in stream:
        count += 1
        if count > max_messages:
            raise errors.ResourceExhausted(f"stream has more than {max_messages} messages")
        yield item
