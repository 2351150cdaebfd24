"""Conversions between Python values and shared protobuf types."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp_pb(value: dt.datetime | None) -> Timestamp | None:
    """A protobuf Timestamp for a datetime (naive values are UTC, as SQLite returns them)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts
