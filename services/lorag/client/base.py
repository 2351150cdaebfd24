"""What the blocking and the asyncio clients share: channel options, metadata, bound stubs, and the
two runners that turn one description of a call into a blocking or an awaitable one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from lorag.client.errors import LoragClientError
from lorag.client.retries import service_config

DEFAULT_TIMEOUT_S = 30.0
#: Deadline of calls that run as long as their input (ingest, uploads) unless one is given.
LONG_TIMEOUT_S = 3600.0

#: The channel's retry configuration (UNAVAILABLE, idempotent RPCs only; see lorag.client.retries).
RETRY_SERVICE_CONFIG = service_config()


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", RETRY_SERVICE_CONFIG),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


@dataclass(frozen=True)
class ServiceInfo:
    application: str  # Ray Serve application (``application`` metadata)
    stub_path: str  # "module:StubClass"


SERVICES: dict[str, ServiceInfo] = {
    "admin": ServiceInfo("adapters", "lorag.admin.v1.admin_pb2_grpc:AdminServiceStub"),
    "adapters": ServiceInfo("adapters", "lorag.adapters.v1.adapters_pb2_grpc:AdapterServiceStub"),
    "training": ServiceInfo("adapters", "lorag.adapters.v1.training_pb2_grpc:TrainingServiceStub"),
    "embedding": ServiceInfo("embedding", "lorag.embedding.v1.embedding_pb2_grpc:EmbeddingServiceStub"),
    "retrieval": ServiceInfo("retrieval", "lorag.retrieval.v1.retrieval_pb2_grpc:RetrievalServiceStub"),
    "reranking": ServiceInfo("reranking", "lorag.reranking.v1.reranking_pb2_grpc:RerankingServiceStub"),
    "generation": ServiceInfo("generation", "lorag.generation.v1.generation_pb2_grpc:GenerationServiceStub"),
    "rag": ServiceInfo("rag", "lorag.rag.v1.rag_pb2_grpc:RagServiceStub"),
}


def call_metadata(api_key: str | None, application: str, extra=()) -> list[tuple[str, str]]:
    md = [("application", application)]
    if api_key:
        md.append(("authorization", f"Bearer {api_key}"))
    md.extend(extra)
    return md


class BoundService:
    """A stub whose calls carry the client's metadata and default deadline.

    ``client.service("admin").WhoAmI(request)`` calls the RPC and returns what gRPC returns (a
    response, a call object for streams) and raises ``grpc.RpcError``; keyword ``timeout`` and
    ``metadata`` override or extend the defaults for one call.
    """

    def __init__(self, stub: Any, *, api_key: str | None, application: str, timeout: float) -> None:
        self._stub = stub
        self._api_key = api_key
        self._application = application
        self._timeout = timeout

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)

        def invoke(request, *, timeout: float | None = None, metadata=()):
            return method(
                request,
                timeout=self._timeout if timeout is None else timeout,
                metadata=call_metadata(self._api_key, self._application, metadata),
            )

        invoke.__name__ = name
        return invoke


class SyncRunner:
    """Runs calls to completion; gRPC failures become :class:`LoragClientError` subclasses."""

    is_async = False

    def unary(self, method: Callable, request: Any, convert: Callable, *, timeout: float | None = None):
        try:
            response = method(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise LoragClientError.from_rpc_error(exc) from None
        return convert(response)

    def stream(
        self,
        method: Callable,
        request: Any,
        convert: Callable[[Any], Iterable],
        *,
        timeout: float | None = None,
        finish: Callable[[], Iterable] | None = None,
    ):
        """A generator of ``convert(message)`` items (each call gives 0+ items), then ``finish()``.
        Leaving the loop early cancels the call."""

        def generate():
            call = method(request, timeout=timeout)
            try:
                for message in call:
                    yield from convert(message)
                if finish is not None:
                    yield from finish()
            except grpc.RpcError as exc:
                raise LoragClientError.from_rpc_error(exc) from None
            finally:
                call.cancel()

        return generate()

    def pages(self, method: Callable, make_request: Callable[[str], Any], extract: Callable, *, limit=None):
        """Every item over all pages (``extract(response) -> (items, next_token)``), up to ``limit``."""
        items: list = []
        token = ""
        while True:
            page, token = self.unary(method, make_request(token), extract)
            items.extend(page)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if not token:
                return items

    def then(self, value: Any, fn: Callable):
        """``fn(value)``: the next step of a call made of several."""
        return fn(value)


class AsyncRunner:
    """asyncio counterpart of :class:`SyncRunner`: coroutines and async generators."""

    is_async = True

    async def unary(self, method: Callable, request: Any, convert: Callable, *, timeout: float | None = None):
        try:
            response = await method(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise LoragClientError.from_rpc_error(exc) from None
        return convert(response)

    def stream(
        self,
        method: Callable,
        request: Any,
        convert: Callable[[Any], Iterable],
        *,
        timeout: float | None = None,
        finish: Callable[[], Iterable] | None = None,
    ):
        async def generate():
            call = method(request, timeout=timeout)
            try:
                async for message in call:
                    for item in convert(message):
                        yield item
                if finish is not None:
                    for item in finish():
                        yield item
            except grpc.RpcError as exc:
                raise LoragClientError.from_rpc_error(exc) from None
            finally:
                call.cancel()

        return generate()

    async def pages(
        self, method: Callable, make_request: Callable[[str], Any], extract: Callable, *, limit=None
    ):
        items: list = []
        token = ""
        while True:
            page, token = await self.unary(method, make_request(token), extract)
            items.extend(page)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if not token:
                return items

    async def then(self, value: Any, fn: Callable):
        result = fn(await value)
        if hasattr(result, "__await__"):
            result = await result
        return result


class ServiceTable:
    """``client.admin``, ``client.embedding``, ... (see SERVICES) and ``client.service(name)``.

    ``client.<name>`` is the service's high-level API (:mod:`lorag.client.services`); attribute
    names in CamelCase (``client.admin.WhoAmI``) reach the raw bound stub's RPCs.
    """

    channel: Any
    api_key: str | None
    timeout: float
    _bound: dict[str, BoundService]

    def _init_apis(self, runner: SyncRunner | AsyncRunner) -> None:
        from lorag.client import services

        self._bound = {}
        self.admin = services.AdminAPI(self, runner)
        self.adapters = services.AdaptersAPI(self, runner)
        self.training = services.TrainingAPI(self, runner)
        self.embedding = services.EmbeddingAPI(self, runner)
        self.retrieval = services.RetrievalAPI(self, runner)
        self.reranking = services.RerankingAPI(self, runner)
        self.generation = services.GenerationAPI(self, runner)
        self.rag = services.RagAPI(self, runner)

    def service(self, name: str) -> BoundService:
        """The bound stub of service ``name`` (admin, adapters, training, embedding, ...)."""
        if name not in self._bound:
            from lorag.apps import import_object

            info = SERVICES[name]
            stub = import_object(info.stub_path)(self.channel)
            self._bound[name] = BoundService(
                stub, api_key=self.api_key, application=info.application, timeout=self.timeout
            )
        return self._bound[name]
