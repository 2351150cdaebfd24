"""Request parsing that marks undecodable bytes instead of failing inside grpc.

Light on purpose (grpc, protobuf, :mod:`lorag.common.errors`): Ray Serve's gRPC proxy process
imports it through :mod:`lorag.proxy`, and a :class:`MalformedRequest` made there is pickled to the
replica, which answers for it (:mod:`lorag.common.rpc`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from lorag.common import errors


class MalformedRequest:
    """Stands in for request bytes that are not a valid message (see :func:`parse_or_mark`); the
    RPC wrapper answers INVALID_ARGUMENT for it once the caller is authenticated."""

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name = type_name
        self.reason = reason

    def error(self) -> errors.InvalidArgument:
        return errors.InvalidArgument(
            f"is not a valid {self.type_name} message ({self.reason})", field="request"
        )


def parse_or_mark(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A request parser that returns a :class:`MalformedRequest` instead of raising (a raising
    parser makes grpc answer UNKNOWN with the exception's class in the details)."""
    message_type = getattr(deserialize, "__self__", None)
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    type_name = descriptor.full_name if descriptor is not None else "request"

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            reason = str(exc).rsplit(": ", 1)[-1] or "malformed"
            return MalformedRequest(type_name, reason)

    return parse


class ParsingServer:
    """What the generated ``add_*Servicer_to_server`` functions register on: the same handlers on
    ``server``, with request parsers that mark undecodable bytes (invalid wire format, invalid
    UTF-8 in a string field) so that the RPC wrapper answers INVALID_ARGUMENT instead of UNKNOWN.

    ``server`` is the in-process host's ``grpc.aio`` server, or Ray Serve's gRPC proxy server
    (through :mod:`lorag.proxy`), which keeps the request parsers it is given.
    """

    def __init__(self, server: Any) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        """Ignored: the generated code registers the same handlers again by service name below."""

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        parsed = {
            name: h._replace(request_deserializer=parse_or_mark(h.request_deserializer))
            for name, h in handlers.items()
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, parsed),))
        self._server.add_registered_method_handlers(service, parsed)
