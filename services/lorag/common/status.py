"""The one place where lorag errors become gRPC status codes."""

from __future__ import annotations

import grpc

from lorag.common.errors import LoragError

GENERIC_INTERNAL = "internal error"
REGISTRY_UNAVAILABLE = "the registry database is unavailable; try again"


def _registry_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLAlchemy's way of saying the database cannot be reached right now.

    A stopped, restarting or unreachable database raises ``OperationalError`` (connect refused,
    connection lost, server shutting down) or ``InterfaceError``, or an error that invalidated
    the connection; the pool reconnects on a later call (pre-ping), so the caller may retry.
    """
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - sqlalchemy ships with lorag
        return False
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def grpc_status(exc: BaseException, *, trace_id: str = "") -> tuple[grpc.StatusCode, str]:
    """(code, details) for an exception. Unknown exceptions get a generic INTERNAL message."""
    if isinstance(exc, LoragError):
        return grpc.StatusCode[exc.code], exc.message
    if _registry_unavailable(exc):
        return grpc.StatusCode.UNAVAILABLE, REGISTRY_UNAVAILABLE
    suffix = f" (trace id {trace_id})" if trace_id else ""
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL + suffix
