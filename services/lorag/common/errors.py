"""The one error tree of lorag.

Core code raises these; :mod:`lorag.common.status` maps them to gRPC status codes in one place.
This module imports nothing from grpc so that core logic stays free of transport concerns.
"""

from __future__ import annotations


class LoragError(Exception):
    """Base of every error a client may see. ``code`` names the gRPC status code."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class InvalidArgument(LoragError):
    """The request is malformed; ``field`` names the offending field when there is one."""

    code = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message, field=field)


class NotFound(LoragError):
    """The object does not exist in the caller's tenant (also used for foreign objects)."""

    code = "NOT_FOUND"


class AlreadyExists(LoragError):
    code = "ALREADY_EXISTS"


class PermissionDenied(LoragError):
    """The caller is authenticated but its role does not allow the call."""

    code = "PERMISSION_DENIED"


class Unauthenticated(LoragError):
    code = "UNAUTHENTICATED"


class ResourceExhausted(LoragError):
    """A size, rate or quota limit was hit; the message names the limit.

    ``retry_after_s`` is set when waiting that long may let the same request through (rate and
    concurrency limits); it reaches the client as trailing metadata (see lorag.common.status).
    ``auto_retry=False`` keeps gRPC clients from repeating the call by themselves after the wait
    (a failed-authentication lockout: the same bad key would only fail again).
    """

    code = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retry_after_s: float | None = None,
        auto_retry: bool = True,
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s
        self.auto_retry = auto_retry


class FailedPrecondition(LoragError):
    code = "FAILED_PRECONDITION"


class Aborted(LoragError):
    code = "ABORTED"


class Unavailable(LoragError):
    """A dependency is down; the client may retry."""

    code = "UNAVAILABLE"


class DeadlineExceeded(LoragError):
    code = "DEADLINE_EXCEEDED"


class Cancelled(LoragError):
    code = "CANCELLED"


class OutOfRange(LoragError):
    """A position (revision, offset) outside what the server can serve."""

    code = "OUT_OF_RANGE"


class DataLoss(LoragError):
    """Stored data failed an integrity check (e.g. a downloaded file's hash)."""

    code = "DATA_LOSS"


class Unimplemented(LoragError):
    """The RPC exists in the contract but its capability is not available in this deployment."""

    code = "UNIMPLEMENTED"
