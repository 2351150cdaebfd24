"""Errors of calls to other applications through Ray Serve DeploymentHandles.

A domain error raised in a remote replica reaches the caller wrapped in Ray's task error (whose
text carries a traceback with pids, hosts and paths). :func:`domain_error` finds the original
:class:`~lorag.common.errors.LoragError` so the caller can pass it on unchanged; anything else
means the service could not answer and becomes UNAVAILABLE naming it. No ray import here.
"""

from __future__ import annotations

import sys

from lorag.common import errors


def domain_error(exc: BaseException, *, service: str) -> errors.LoragError:
    """The LoragError behind ``exc``, or UNAVAILABLE naming ``service``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        inner = getattr(cause, "cause", None)  # ray.exceptions.RayTaskError keeps the original here
        if isinstance(inner, errors.LoragError):
            return inner
        if isinstance(cause, errors.LoragError) and inner is None:
            return cause
        cause = inner if isinstance(inner, BaseException) else cause.__cause__
    return errors.Unavailable(f"the {service} service is unavailable")


def inside_serve_replica() -> bool:
    """Whether this code runs in a Ray Serve replica (without importing ray when it is absent)."""
    if "ray" not in sys.modules:
        return False
    try:
        from ray import serve

        serve.get_replica_context()
    except Exception:  # noqa: BLE001 - not in a replica (RayServeException) or Serve not usable
        return False
    return True
