"""Python SDK for lorag: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

>>> from lorag.client import Client
>>> with Client.from_config() as c:
...     print(c.rag.ask("What does lorag do?").answer)
"""

from lorag.client.aio import AsyncClient
from lorag.client.documents import Document
from lorag.client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FilterError,
    InternalError,
    InvalidArgumentError,
    LoragClientError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from lorag.client.filters import to_filter
from lorag.client.sync import Client
from lorag.client.tls import TLSConfig, TLSConfigError

__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "Client",
    "DeadlineExceededError",
    "Document",
    "FailedPreconditionError",
    "FilterError",
    "InternalError",
    "InvalidArgumentError",
    "LoragClientError",
    "NotFoundError",
    "PermissionDeniedError",
    "TLSConfig",
    "TLSConfigError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "to_filter",
]
