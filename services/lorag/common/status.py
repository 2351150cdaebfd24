"""The one place where lorag errors become gRPC status codes."""

from __future__ import annotations

import grpc

from lorag.common.errors import LoragError

GENERIC_INTERNAL = "internal error"


def grpc_status(exc: BaseException, *, trace_id: str = "") -> tuple[grpc.StatusCode, str]:
    """(code, details) for an exception. Unknown exceptions get a generic INTERNAL message."""
    if isinstance(exc, LoragError):
        return grpc.StatusCode[exc.code], exc.message
    suffix = f" (trace id {trace_id})" if trace_id else ""
    return grpc.StatusCode.INTERNAL, GENERIC_INTERNAL + suffix
