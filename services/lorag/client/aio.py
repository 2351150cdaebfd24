"""asyncio client."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lorag.client.base import DEFAULT_TIMEOUT_S, AsyncRunner, ServiceTable, call_metadata, channel_options
from lorag.client.tls import TLSConfig


class AsyncClient(ServiceTable):
    """asyncio lorag client: the surface of :class:`lorag.client.Client`, where unary methods
    return awaitables and streaming methods async iterators.

    >>> async with AsyncClient("127.0.0.1:9000", api_key="lrg_...") as c:
    ...     answer = await c.rag.ask("How do I reset my password?")
    ...     async for piece in c.rag.ask_stream("And my username?"):
    ...         ...
    ...     vectors = await c.embedding.embed(["hello"])
    """

    def __init__(
        self,
        target: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        tls: TLSConfig | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        options = channel_options(max_message_bytes)
        if tls is not None:
            credentials = credentials or tls.credentials()
            options += tls.channel_options()
        self.target = target
        self.channel = (
            grpc.aio.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.aio.insecure_channel(target, options=options)
        )
        self.api_key = api_key
        self.timeout = timeout
        self._init_apis(AsyncRunner())

    @classmethod
    def from_config(
        cls,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        **kwargs,
    ) -> AsyncClient:
        """A client for the endpoint and key given, else from the environment or the config file
        (see :mod:`lorag.client.config`)."""
        from lorag.client.config import resolve

        cfg = resolve(endpoint=endpoint, api_key=api_key, timeout=timeout)
        kwargs.setdefault("tls", cfg.tls)
        return cls(cfg.endpoint, cfg.api_key, timeout=cfg.timeout, **kwargs)

    async def health(self, application: str, service: str = "") -> int:
        """The grpc.health.v1 status of ``application`` (1 = SERVING)."""
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
