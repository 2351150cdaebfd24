"""What the blocking and the asyncio clients share: channel options, metadata, service table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc

DEFAULT_TIMEOUT_S = 30.0

#: Retry UNAVAILABLE (a restarting replica or proxy) with exponential backoff, on every method.
RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


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


class LoragClientError(Exception):
    """A failed call: the gRPC status code and the server's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> LoragClientError:
        return cls(exc.code(), exc.details() or "")


def call_metadata(api_key: str | None, application: str, extra=()) -> list[tuple[str, str]]:
    md = [("application", application)]
    if api_key:
        md.append(("authorization", f"Bearer {api_key}"))
    md.extend(extra)
    return md


class BoundService:
    """A stub whose calls carry the client's metadata and default deadline.

    ``client.admin.WhoAmI(request)`` calls the RPC; keyword ``timeout`` and ``metadata`` override
    or extend the defaults for one call.
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


class ServiceTable:
    """Lazily built bound stubs: ``client.admin``, ``client.embedding``, ... (see SERVICES)."""

    channel: Any
    api_key: str | None
    timeout: float
    _bound: dict[str, BoundService]

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

    def __getattr__(self, name: str) -> BoundService:
        if name in SERVICES:
            return self.service(name)
        raise AttributeError(name)
