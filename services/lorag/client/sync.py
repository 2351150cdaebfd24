"""Blocking client."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lorag.client.base import DEFAULT_TIMEOUT_S, ServiceTable, SyncRunner, call_metadata, channel_options
from lorag.client.tls import TLSConfig


class Client(ServiceTable):
    """Blocking lorag client.

    >>> with Client("127.0.0.1:9000", api_key="lrg_...") as c:
    ...     c.admin.whoami()
    ...     answer = c.rag.ask("How do I reset my password?", adapter="support@production")
    ...     for piece in c.rag.ask_stream("And my username?"):
    ...         print(piece if isinstance(piece, str) else "", end="")
    >>> Client.from_config()          # endpoint/key from $LORAG_ENDPOINT, $LORAG_API_KEY, config file

    ``client.admin``, ``.adapters``, ``.training``, ``.embedding``, ``.retrieval``,
    ``.reranking``, ``.generation`` and ``.rag`` are the services' APIs
    (:mod:`lorag.client.services`): typed results, iterators for streams, exceptions of
    :mod:`lorag.client.errors`. Their CamelCase attributes (``client.admin.WhoAmI(request)``) and
    ``client.service("admin")`` are the raw stubs. Every call sends ``authorization: Bearer
    <api_key>`` and the ``application`` metadata of its service, uses ``timeout`` seconds as its
    deadline, and idempotent calls are retried on UNAVAILABLE (:mod:`lorag.client.retries`).
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
            grpc.secure_channel(target, credentials, options=options)
            if credentials
            else grpc.insecure_channel(target, options=options)
        )
        self.api_key = api_key
        self.timeout = timeout
        self._init_apis(SyncRunner())

    @classmethod
    def from_config(
        cls,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        **kwargs,
    ) -> Client:
        """A client for the endpoint and key given, else from the environment or the config file
        (see :mod:`lorag.client.config`)."""
        from lorag.client.config import resolve

        cfg = resolve(endpoint=endpoint, api_key=api_key, timeout=timeout)
        kwargs.setdefault("tls", cfg.tls)
        return cls(cfg.endpoint, cfg.api_key, timeout=cfg.timeout, **kwargs)

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
