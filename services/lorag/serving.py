"""The Ray Serve host: each lorag service as its own Serve application behind one gRPC proxy.

``lorag serve`` (what ``make run`` runs) calls :func:`start`; the Serve config under ``deploy/``
and the Helm chart describe the same applications through each service's ``deployment:app``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from lorag.apps import APPS, APPS_BY_NAME, AppSpec, grpc_servicer_functions, import_object
from lorag.common.errors import FailedPrecondition
from lorag.common.settings import LoragSettings

log = logging.getLogger("lorag.serving")

TLS_UNSUPPORTED = (
    "LORAG_TLS_CERT_FILE/LORAG_TLS_KEY_FILE apply to the in-process host only: Ray Serve's gRPC "
    "proxy serves plaintext. Terminate TLS in front of it (Helm chart: ingress.tls) and keep the "
    "proxy port inside the cluster network"
)

#: Environment every Ray process gets: no usage reporting, no hub traffic.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def deployment_for(name: str, cls: type | None = None):
    """The Ray Serve deployment of application ``name``.

    ``cls`` defaults to the application's servicer class, unchanged; a service may pass a subclass
    that adds Ray-only decorators (``@serve.multiplexed``, ``@serve.batch``). The deployment keeps
    the servicer's name either way (the Serve config refers to it).
    """
    from ray import serve

    spec = APPS_BY_NAME[name]
    servicer = import_object(spec.servicer)
    return serve.deployment(
        cls or servicer,
        name=servicer.__name__,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=spec.max_ongoing_requests,
    )


def batched_deployment(name: str, servicer_cls: type, settings_cls: type):
    """The deployment of a batched-inference servicer (embedding, reranking).

    Adds ``@serve.batch`` (size and wait from the service settings), sets torch threads from the
    replica's CPU share when the settings leave them open, and loads the default model before the
    replica takes traffic.
    """
    from ray import serve

    from lorag.embedding.models import assigned_cpus, serving_threads

    class BatchedDeployment(servicer_cls):
        def __init__(self) -> None:
            settings = settings_cls()
            if not settings.num_threads and assigned_cpus():
                settings = settings.model_copy(update={"num_threads": serving_threads(assigned_cpus())})
            super().__init__(settings=settings)
            self._serve_batch.set_max_batch_size(settings.batch_max_size)
            self._serve_batch.set_batch_wait_timeout_s(settings.batch_wait_s)
            self.core.info()

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
        async def _serve_batch(self, jobs: list) -> list:
            return await self._run_batch(jobs)

        async def _enqueue(self, job):
            return await self._serve_batch(job)

    BatchedDeployment.__name__ = BatchedDeployment.__qualname__ = f"{servicer_cls.__name__}Deployment"
    return deployment_for(name, BatchedDeployment)


def bind_grpc_to_configured_host() -> None:
    """Bind the Serve gRPC proxy to ``LORAG_GRPC_HOST`` (the worker set-up hook of `lorag serve`).

    Ray's proxy always listens on ``[::]``; the embedded default keeps it on loopback. In a
    cluster (the Helm chart) ``LORAG_GRPC_HOST`` is ``0.0.0.0`` and this changes nothing.
    """
    host = os.environ.get("LORAG_GRPC_HOST", "")
    if not host or host in ("0.0.0.0", "::", "[::]"):
        return
    from ray.serve._private import default_impl

    original = default_impl.add_grpc_address

    def add_grpc_address(server, address: str) -> None:
        if address.startswith("[::]:"):
            address = f"{host}:{address.rsplit(':', 1)[1]}"
        original(server, address)

    default_impl.add_grpc_address = add_grpc_address


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook`` for every process of `lorag serve` (proxies included).

    Only the bind: how the proxy answers (bad request bytes, dead replicas) comes with the
    Serve config's servicer functions (:mod:`lorag.proxy`), which also reach proxies that no
    ``lorag serve`` started (KubeRay).
    """
    bind_grpc_to_configured_host()


@dataclass
class ServeEndpoint:
    grpc_target: str
    applications: tuple[str, ...]


def start(
    settings: LoragSettings,
    *,
    apps: tuple[AppSpec, ...] = APPS,
    http_port: int | None = None,
    num_cpus: int | None = None,
) -> ServeEndpoint:
    """Start local Ray (or join ``RAY_ADDRESS``), the proxies and every application.

    Ray Serve's gRPC proxy has no TLS option, so TLS settings are refused here rather than
    silently served as plaintext: terminate TLS in front of the proxy (the Helm chart's
    ``ingress.tls``) or use the in-process host (:mod:`lorag.common.hosts`).
    """
    if settings.tls_enabled:
        raise FailedPrecondition(TLS_UNSUPPORTED)
    import ray
    from ray import serve
    from ray.serve.config import gRPCOptions

    env = dict(QUIET_ENV)
    # Idle OpenMP workers sleep instead of spinning, so torch replicas keep their event loop responsive.
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    env["RAY_SERVE_GRPC_MAX_MESSAGE_SIZE"] = str(settings.max_message_bytes)
    env["LORAG_DATA_DIR"] = str(settings.data_dir)
    env["LORAG_GRPC_HOST"] = settings.grpc_host
    for key, value in os.environ.items():
        if key.startswith(("LORAG_", "OTEL_")) and key not in env:  # OTEL_*: trace export
            env[key] = value
    os.environ.update(env)  # the local raylet and its workers inherit the driver's environment
    if not ray.is_initialized():
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            # Ray's metrics agent serves ray_* (Serve's and lorag's, see lorag.common.metrics) here.
            _metrics_export_port=settings.metrics_export_port,
            runtime_env={
                "env_vars": env,
                "worker_process_setup_hook": "lorag.serving.setup_worker",
            },
        )
    serve.start(
        http_options={"host": "127.0.0.1", "port": http_port if http_port is not None else 8000},
        grpc_options=gRPCOptions(
            port=settings.grpc_port, grpc_servicer_functions=grpc_servicer_functions(apps)
        ),
    )
    # The same `deployment:app` objects the Serve config under deploy/ imports.
    targets = [
        serve.RunTarget(import_object(spec.import_path), name=spec.name, route_prefix=spec.route_prefix)
        for spec in apps
    ]
    serve.run_many(targets, wait_for_applications_running=True)
    host = "127.0.0.1" if settings.grpc_host in ("0.0.0.0", "::", "") else settings.grpc_host
    return ServeEndpoint(f"{host}:{settings.grpc_port}", tuple(spec.name for spec in apps))


def shutdown() -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
