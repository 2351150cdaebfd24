"""Conversions between Python values and shared protobuf types."""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lorag.common.errors import InvalidArgument


def timestamp_pb(value: dt.datetime | None) -> Timestamp | None:
    """A protobuf Timestamp for a datetime (naive values are UTC, as SQLite returns them)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def json_value(message: Message, *, field: str) -> Any:
    """A Struct, Value or ListValue as plain JSON values; INVALID_ARGUMENT naming ``field`` when it
    holds NaN or an infinity (JSON has neither)."""
    try:
        return json_format.MessageToDict(message)
    except ValueError:
        raise InvalidArgument("numbers must be finite (JSON has no NaN or infinity)", field=field) from None
