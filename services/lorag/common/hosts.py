"""The in-process host: every servicer in one ``grpc.aio`` server on one port.

Used by integration tests and by single-process embedding of lorag. It runs the very servicer
classes that Ray Serve runs, with the standard health service and server reflection.

With ``LORAG_TLS_CERT_FILE`` and ``LORAG_TLS_KEY_FILE`` the port speaks TLS only; adding
``LORAG_TLS_CLIENT_CA_FILE`` makes it require and verify a client certificate signed by that CA
(mutual TLS). The API key is still required on every call: a certificate proves the client
machine, the key decides the tenant and role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lorag.apps import APPS, AppSpec, import_object
from lorag.common import metrics
from lorag.common.errors import FailedPrecondition
from lorag.common.parsing import ParsingServer
from lorag.common.rpc import Runtime, all_services
from lorag.common.settings import LoragSettings


@dataclass
class InProcessHost:
    server: grpc.aio.Server
    port: int
    servicers: dict[str, object] = field(default_factory=dict)
    health: health.aio.HealthServicer | None = None
    metrics_port: int | None = None
    tls: bool = False
    mutual_tls: bool = False
    _metrics_server: Any = field(default=None, repr=False)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float | None = 1.0) -> None:
        await self.server.stop(grace)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read the {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise FailedPrecondition(f"the {what} {path} is not PEM")
    return data


def server_credentials(settings: LoragSettings) -> grpc.ServerCredentials | None:
    """TLS (or mutual TLS) credentials from the settings; None when TLS is off."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    chain = _read_pem(settings.tls_cert_file, "TLS certificate (LORAG_TLS_CERT_FILE)")
    key = _read_pem(settings.tls_key_file, "TLS private key (LORAG_TLS_KEY_FILE)")
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = _read_pem(settings.tls_client_ca_file, "client CA bundle (LORAG_TLS_CLIENT_CA_FILE)")
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def start_inprocess(
    runtime: Runtime,
    *,
    apps: tuple[AppSpec, ...] = APPS,
    host: str | None = None,
    port: int = 0,
    metrics_port: int | None = None,
) -> InProcessHost:
    """Start a grpc.aio server hosting ``apps``; ``port=0`` picks a free port.

    Prometheus metrics are served on ``metrics_port`` (default ``LORAG_METRICS_PORT``; unset:
    not served; 0: any free port, see ``InProcessHost.metrics_port``).
    """
    settings = runtime.settings
    credentials = server_credentials(settings)  # before anything starts: a bad file fails fast
    limit = settings.max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ]
    )
    servicers: dict[str, object] = {}
    names: list[str] = []
    for spec in apps:
        servicer = import_object(spec.servicer)(runtime)
        servicers[spec.name] = servicer
        for add in spec.add_functions:
            import_object(add)(servicer, ParsingServer(server))
        names.extend(svc.full_name for svc in all_services(type(servicer)))
    for servicer in servicers.values():
        attach = getattr(servicer, "attach_local_services", None)
        if attach is not None:  # the orchestrator calls its siblings in this process
            attach(servicers)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = f"{host or settings.grpc_host}:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    await server.start()
    result = InProcessHost(
        server=server,
        port=bound,
        servicers=servicers,
        health=health_servicer,
        tls=credentials is not None,
        mutual_tls=settings.tls_client_ca_file is not None,
    )
    metrics_port = settings.metrics_port if metrics_port is None else metrics_port
    if metrics_port is not None:
        result._metrics_server, result.metrics_port = metrics.serve_http(
            metrics_port, host=settings.metrics_host
        )
    return result
