"""asyncio client."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lorag.client.base import (
    DEFAULT_TIMEOUT_S,
    BoundService,
    ServiceTable,
    call_metadata,
    channel_options,
)


class AsyncClient(ServiceTable):
    """asyncio lorag client; same surface as :class:`lorag.client.Client`, calls are awaitable."""

    def __init__(
        self,
        target: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        options = channel_options(max_message_bytes)
        self.channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.aio.insecure_channel(target, options=options)
        )
        self.api_key = api_key
        self.timeout = timeout
        self._bound: dict[str, BoundService] = {}

    async def health(self, application: str, service: str = "") -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        resp = await stub.Check(
            health_pb2.HealthCheckRequest(service=service),
            timeout=self.timeout,
            metadata=call_metadata(None, application),
        )
        return resp.status

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
