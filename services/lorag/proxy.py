"""What lorag runs inside Ray Serve's gRPC proxy, however Serve was started.

The Serve config's ``grpc_options.grpc_servicer_functions`` (``deploy/serve.yaml``, the Helm
chart's serveConfigV2, ``lorag serve``) names this module's ``add_*Servicer_to_server`` functions,
not the generated ones. Ray's proxy actor imports and calls each of them in its own process while
it builds its gRPC server. That is the one place where lorag code runs in the proxy in every kind
of deployment: under KubeRay the Serve controller (and so each proxy) is started by the
dashboard's Serve API, and no job ``runtime_env`` (``worker_process_setup_hook``) reaches it.

Each function registers the generated handlers with request parsers that mark bytes which are not
a valid message (:class:`lorag.common.parsing.ParsingServer`): the replica answers them
INVALID_ARGUMENT naming the request type, after authenticating the caller, as the in-process host
does. The first call in a process also installs :func:`answer_replica_failures_as_unavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lorag.apps import APPS, generated_add_functions, import_object
from lorag.common.parsing import ParsingServer

#: What a caller sees when the replica serving its call died (killed, out of memory, crashed).
REPLICA_GONE = "the replica serving this call stopped; Serve is replacing it: try again"


def answer_replica_failures_as_unavailable() -> None:
    """A call whose replica died is UNAVAILABLE, not INTERNAL (idempotent, once per process).

    Ray Serve's gRPC proxy answers such a call with INTERNAL and the actor's details (pid, node
    IP, actor id, Ray's advice about the OOM killer) as the message. The condition is transient —
    Serve starts a replacement — and the details are internals: the proxy logs them, the caller
    gets UNAVAILABLE with a plain message, so clients (and the SDK's retries of idempotent calls)
    treat it like any other passing outage.
    """
    import grpc
    from ray.exceptions import RayActorError
    from ray.serve._private import proxy

    original = proxy.get_grpc_response_status
    if getattr(original, "lorag_replica_failures", False):
        return

    def get_grpc_response_status(exc: BaseException, request_timeout_s, request_id: str):
        status = original(exc, request_timeout_s, request_id)  # also writes Ray's log line
        if isinstance(exc, RayActorError) and status.code == grpc.StatusCode.INTERNAL:
            return replace(status, code=grpc.StatusCode.UNAVAILABLE, message=REPLICA_GONE)
        return status

    get_grpc_response_status.lorag_replica_failures = True  # type: ignore[attr-defined]
    proxy.get_grpc_response_status = get_grpc_response_status


def _for_proxy(generated: str) -> Callable[[Any, Any], None]:
    def add(servicer: Any, server: Any) -> None:
        answer_replica_failures_as_unavailable()
        import_object(generated)(servicer, ParsingServer(server))

    add.__name__ = add.__qualname__ = generated.rsplit(".", 1)[1]
    add.__doc__ = f"``{generated}`` for Ray Serve's gRPC proxy (see :mod:`lorag.proxy`)."
    return add


#: generated add-function path -> the wrapper the Serve config names (``lorag.proxy.<name>``)
FOR_PROXY: dict[str, Callable[[Any, Any], None]] = {
    path: _for_proxy(path) for path in generated_add_functions(APPS)
}
globals().update({fn.__name__: fn for fn in FOR_PROXY.values()})
