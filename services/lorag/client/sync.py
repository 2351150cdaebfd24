"""Blocking client."""

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


class Client(ServiceTable):
    """Blocking lorag client.

    >>> with Client("127.0.0.1:9000", api_key="lrg_...") as c:
    ...     c.admin.WhoAmI(admin_pb2.WhoAmIRequest())

    Every call sends ``authorization: Bearer <api_key>`` and the ``application`` metadata of its
    service, uses ``timeout`` seconds as its deadline and is retried on UNAVAILABLE.
    """

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
            grpc.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.insecure_channel(target, options=options)
        )
        self.api_key = api_key
        self.timeout = timeout
        self._bound: dict[str, BoundService] = {}

    def health(self, application: str, service: str = "") -> int:
        """The grpc.health.v1 status of ``application`` (1 = SERVING)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        resp = stub.Check(
            health_pb2.HealthCheckRequest(service=service),
            timeout=self.timeout,
            metadata=call_metadata(None, application),
        )
        return resp.status

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
