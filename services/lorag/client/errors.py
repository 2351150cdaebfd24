"""Exceptions of the SDK: one class per gRPC status code, all subclasses of LoragClientError.

>>> try:
...     client.adapters.get("no-such-adapter")
... except NotFoundError as exc:
...     print(exc.code.name, exc.message)
NOT_FOUND adapter not found

Only the high-level methods (``client.adapters.get(...)``) raise these; the raw stubs
(``client.service("adapters").GetAdapter(request)``) raise ``grpc.RpcError`` as gRPC does.
"""

from __future__ import annotations

import grpc

#: Trailing metadata key of the server's retry hint, in milliseconds (lorag.common.status).
RETRY_AFTER_KEY = "retry-after-ms"


class LoragClientError(Exception):
    """A failed call: the gRPC status ``code`` and the server's ``message``.

    ``LoragClientError.from_rpc_error(exc)`` returns the subclass registered for the code (e.g.
    :class:`NotFoundError`); ``rpc_error`` keeps the original ``grpc.RpcError`` when there was one.
    Subclasses may be built from a message alone: ``NotFoundError("adapter not found")``.
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        code: grpc.StatusCode | str,
        message: str | None = None,
        *,
        rpc_error: grpc.RpcError | None = None,
    ) -> None:
        if isinstance(code, str) and message is None:
            code, message = self.default_code, code
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message or ""
        self.rpc_error = rpc_error

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> LoragClientError:
        """The exception for a failed gRPC call, of the class registered for its code."""
        code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        return BY_CODE.get(code, LoragClientError)(code, details or "", rpc_error=exc)


class InvalidArgumentError(LoragClientError):
    """The request is malformed; the message names the field."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(LoragClientError):
    """No such object in your tenant (foreign objects look the same)."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(LoragClientError):
    """The object exists already."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(LoragClientError):
    """The API key's role is too low for this call."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(LoragClientError):
    """Missing, malformed, unknown or revoked API key."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(LoragClientError):
    """A quota, rate or size limit was reached.

    ``retry_after_s`` is the server's hint (trailing metadata ``retry-after-ms``) when waiting
    that long may let the same call through (rate and concurrency limits), else None. Idempotent
    calls were already retried after the hint within their deadline (see lorag.client.retries).
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def retry_after_s(self) -> float | None:
        trailing = getattr(self.rpc_error, "trailing_metadata", None)
        for key, value in (trailing() if callable(trailing) else None) or ():
            if key == RETRY_AFTER_KEY:
                try:
                    return max(0.0, int(value) / 1000)
                except ValueError:
                    return None
        return None


class FailedPreconditionError(LoragClientError):
    """The system is not in a state that allows the call (e.g. wrong base model)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(LoragClientError):
    """A concurrent change aborted the call; it may be tried again."""

    default_code = grpc.StatusCode.ABORTED


class OutOfRangeError(LoragClientError):
    """A position (page token, revision) is out of range."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class UnavailableError(LoragClientError):
    """The server, or a service behind it, cannot be reached right now."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(LoragClientError):
    """The call did not finish within its deadline."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(LoragClientError):
    """The call was cancelled."""

    default_code = grpc.StatusCode.CANCELLED


class UnimplementedError(LoragClientError):
    """The server does not offer this method (the message names the capability)."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


class DataLossError(LoragClientError):
    """Data was lost or corrupted (e.g. a download failed its hash check)."""

    default_code = grpc.StatusCode.DATA_LOSS


class InternalError(LoragClientError):
    """The server failed; its message carries a trace id for the logs."""

    default_code = grpc.StatusCode.INTERNAL


class UnknownError(LoragClientError):
    """The call failed for a reason the server did not name."""

    default_code = grpc.StatusCode.UNKNOWN


#: gRPC status code -> exception class: the one place the SDK maps codes.
BY_CODE: dict[grpc.StatusCode, type[LoragClientError]] = {
    klass.default_code: klass
    for klass in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        UnauthenticatedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnavailableError,
        DeadlineExceededError,
        CancelledError,
        UnimplementedError,
        DataLossError,
        InternalError,
        UnknownError,
    )
}


class FilterError(InvalidArgumentError, ValueError):
    """A filter the SDK cannot turn into a ``common.v1.Filter`` (raised before any call)."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)
