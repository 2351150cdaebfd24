"""Keyset pagination tokens shared by list RPCs."""

from __future__ import annotations

import base64
import binascii
import json

from lorag.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgument(f"must be between 0 and {MAX_PAGE_SIZE} (got {value})", field="page.page_size")
    return value or DEFAULT_PAGE_SIZE


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def decode_token(token: str) -> str:
    """The last key of the previous page ('' for the first page)."""
    if not token:
        return ""
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
        raise InvalidArgument("malformed page token", field="page.page_token") from None
    if not isinstance(value, str):
        raise InvalidArgument("malformed page token", field="page.page_token")
    return value


def next_token(rows: list, limit: int, key: str) -> str:
    """Token for the page after ``rows`` (empty when the page was not full)."""
    return encode_token(getattr(rows[-1], key)) if len(rows) == limit else ""
