"""The one place where lorag errors become gRPC status codes (and their trailing metadata)."""

from __future__ import annotations

import math

import grpc

from lorag.common.errors import LoragError, ResourceExhausted

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


#: Trailing metadata key: milliseconds after which the same request may succeed (any client).
RETRY_AFTER_KEY = "retry-after-ms"
#: gRPC's retry pushback (gRFC A6): clients whose retry policy covers the code wait this long
#: before their next attempt; a negative value tells them not to retry at all.
PUSHBACK_KEY = "grpc-retry-pushback-ms"
#: Longest wait the server asks gRPC's automatic retries to make; longer hints are the caller's.
MAX_PUSHBACK_S = 10.0


def grpc_status(exc: BaseException, *, trace_id: str = "") -> tuple[grpc.StatusCode, str]:
    """(code, details) for an exception. Unknown exceptions get a generic INTERNAL message."""
    if isinstance(exc, LoragError):
        return grpc.StatusCode[exc.code], exc.message
    if _registry_unavailable(exc):
        return grpc.StatusCode.UNAVAILABLE, REGISTRY_UNAVAILABLE
    suffix = f" (trace id {trace_id})" if trace_id else ""
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL + suffix


def retry_metadata(exc: BaseException, *, remaining_s: float | None = None) -> tuple[tuple[str, str], ...]:
    """Trailing metadata of a failed call: the retry hints of RESOURCE_EXHAUSTED.

    A limit that clears with time (``retry_after_s``) sends ``retry-after-ms`` and, when a retry
    fits in the call's ``remaining_s`` and :data:`MAX_PUSHBACK_S` (and the error allows automatic
    retries), the same value as ``grpc-retry-pushback-ms``. Every other RESOURCE_EXHAUSTED (sizes,
    stored quotas, a wait longer than the call has left, an authentication lockout) sends
    ``grpc-retry-pushback-ms: -1``: repeating it at once cannot help.
    """
    if not isinstance(exc, ResourceExhausted):
        return ()
    hint = exc.retry_after_s
    if hint is None:
        return ((PUSHBACK_KEY, "-1"),)
    ms = str(max(1, math.ceil(hint * 1000)))
    fits = exc.auto_retry and hint <= MAX_PUSHBACK_S and (remaining_s is None or hint < remaining_s)
    return ((RETRY_AFTER_KEY, ms), (PUSHBACK_KEY, ms if fits else "-1"))
