"""Structured filters -> Milvus boolean expressions, with strict escaping and a field allow-list.

Clients never send expression text. A filter is a list of conditions ``(field, op, values)``
whose parts are checked one by one and rendered from fixed templates:

* field names match a strict grammar and resolve either to a built-in column (``doc_id``,
  ``title``, ``chunk_index``, ``created_at``, ``updated_at``) or to a key path inside the JSON
  ``metadata`` column (``lang``, ``source.kind`` or explicitly ``metadata.lang``). Column names
  the engine uses internally (``tenant_id``, ``chunk_id``, ``text``, vectors) are rejected, as
  are keys outside the configured allow-list;
* string values are escaped (backslash and double quote) and may not contain control characters;
  numbers must be finite; lists and objects are refused;
* every expression sent to Milvus starts with ``tenant_id == "<tenant>"`` and the client's part
  is wrapped in parentheses (:func:`tenant_expr`).

Milvus Lite does not accept filter templates (``filter_params``), so values are rendered into the
expression; the escaping here is what keeps them literals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lorag.common.errors import InvalidArgument

MAX_CONDITIONS = 32
MAX_IN_VALUES = 100
MAX_STRING_VALUE_CHARS = 1024
MAX_FIELD_CHARS = 64

#: Built-in columns a filter may name, with the kind of value they hold.
BUILTIN_FIELDS: dict[str, str] = {
    "doc_id": "string",
    "title": "string",
    "chunk_index": "integer",
    "created_at": "number",
    "updated_at": "number",
}
#: Columns of the collection that are never filterable (tenancy and engine internals).
RESERVED_FIELDS = frozenset(
    {
        "tenant_id",
        "chunk_id",
        "text",
        "dense",
        "sparse",
        "metadata",
        "doc_metadata",
        "doc_chunk_count",
        "content_sha256",
        "span_start",
        "span_end",
        "$meta",
    }
)
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists", "range")

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FIELD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_SAFE_INT = 2**53


@dataclass(frozen=True)
class Condition:
    """One filter condition on plain Python values (str, int, float, bool; None is refused)."""

    field: str
    op: str
    values: tuple[Any, ...] = ()


# -- literals ------------------------------------------------------------------------------------
def quote_string(value: str, *, field: str = "value") -> str:
    """A double-quoted Milvus string literal; control characters are refused, quotes escaped."""
    if not isinstance(value, str):
        raise InvalidArgument(f"must be a string (got {_kind(value)})", field=field)
    for ch in value:
        code = ord(ch)
        if code < 32 or code == 127 or 0xD800 <= code <= 0xDFFF:
            raise InvalidArgument("control characters are not allowed", field=field)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def number_literal(value: Any, *, field: str = "value", integer: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"must be a number (got {_kind(value)})", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument("must be a finite number", field=field)
    if isinstance(value, float) and value.is_integer() and abs(value) < _MAX_SAFE_INT:
        value = int(value)
    if integer and not isinstance(value, int):
        raise InvalidArgument(f"must be a whole number (got {value!r})", field=field)
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise InvalidArgument("is out of the 64-bit integer range", field=field)
        return str(value)
    return repr(float(value))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _literal(value: Any, *, field: str, kind: str | None = None) -> str:
    """Render a scalar; ``kind`` (for built-in columns) fixes the accepted type."""
    if kind == "string":
        return quote_string(value, field=field)
    if kind == "integer":
        return number_literal(value, field=field, integer=True)
    if kind == "number":
        return number_literal(value, field=field)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_literal(value, field=field)
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE_CHARS:
            raise InvalidArgument(f"at most {MAX_STRING_VALUE_CHARS} characters", field=field)
        return quote_string(value, field=field)
    raise InvalidArgument(f"must be a string, number or boolean (got {_kind(value)})", field=field)


# -- fields --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    expr: str  # what the expression compares: `doc_id` or `metadata["a"]["b"]`
    kind: str | None  # built-in value kind, or None for JSON metadata
    is_json: bool


def resolve_field(name: str, *, json_column: str, allowed_keys: frozenset[str] | None, path: str) -> _Target:
    if not isinstance(name, str) or not name:
        raise InvalidArgument("is required", field=path)
    if len(name) > MAX_FIELD_CHARS + len("metadata.") or not _FIELD_RE.fullmatch(name):
        raise InvalidArgument(
            f"unknown field {name[:80]!r}: use a built-in field ({', '.join(BUILTIN_FIELDS)}) or a "
            "metadata key of letters, digits, '_' and '-' ('.' for nesting), 1-64 characters",
            field=path,
        )
    if name in BUILTIN_FIELDS:
        return _Target(name, BUILTIN_FIELDS[name], False)
    explicit = name.startswith("metadata.")
    key_path = name[len("metadata.") :] if explicit else name
    if not explicit and (name in RESERVED_FIELDS or name.split(".")[0] in RESERVED_FIELDS):
        raise InvalidArgument(f"unknown field {name!r}: reserved name", field=path)
    segments = key_path.split(".")
    if not key_path or len(key_path) > MAX_FIELD_CHARS or not all(_SEGMENT_RE.fullmatch(s) for s in segments):
        raise InvalidArgument(f"unknown field {name!r}: malformed metadata key path", field=path)
    if segments[0] == "tenant_id":
        raise InvalidArgument(f"unknown field {name!r}: reserved name", field=path)
    if allowed_keys is not None and segments[0] not in allowed_keys:
        raise InvalidArgument(
            f"unknown field {name!r}: filterable metadata keys are {', '.join(sorted(allowed_keys))}",
            field=path,
        )
    expr = json_column + "".join(f"[{quote_string(s, field=path)}]" for s in segments)
    return _Target(expr, None, True)


# -- compiler ------------------------------------------------------------------------------------
def compile_filter(
    conditions: Sequence[Condition],
    *,
    json_column: str = "metadata",
    allowed_keys: Iterable[str] | None = None,
    path: str = "filter",
) -> str:
    """The conjunction of ``conditions`` as a Milvus expression ('' when there are none)."""
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidArgument(
            f"at most {MAX_CONDITIONS} conditions (got {len(conditions)})", field=f"{path}.conditions"
        )
    allowed = frozenset(allowed_keys) if allowed_keys else None
    parts = [
        _compile_one(c, json_column=json_column, allowed=allowed, path=f"{path}.conditions[{i}]")
        for i, c in enumerate(conditions)
    ]
    return " and ".join(f"({p})" for p in parts)


def _compile_one(c: Condition, *, json_column: str, allowed: frozenset[str] | None, path: str) -> str:
    target = resolve_field(c.field, json_column=json_column, allowed_keys=allowed, path=f"{path}.field")
    op = c.op
    values = tuple(c.values)
    vpath = f"{path}.values"
    if op not in OPS:
        raise InvalidArgument(f"unknown operator {op!r}", field=f"{path}.op")

    def need(n: int) -> None:
        if len(values) != n:
            raise InvalidArgument(f"operator {op} takes {n} value(s) (got {len(values)})", field=vpath)

    x = target.expr
    if op in ("eq", "ne"):
        need(1)
        lit = _literal(values[0], field=f"{vpath}[0]", kind=target.kind)
        return f"{x} {'==' if op == 'eq' else '!='} {lit}"
    if op in ("gt", "gte", "lt", "lte"):
        need(1)
        if target.kind == "string":
            raise InvalidArgument(
                f"operator {op} needs a numeric field; {c.field!r} is a string", field=vpath
            )
        lit = number_literal(values[0], field=f"{vpath}[0]", integer=target.kind == "integer")
        return f"{x} {_CMP[op]} {lit}"
    if op == "range":
        need(2)
        if target.kind == "string":
            raise InvalidArgument(
                f"operator range needs a numeric field; {c.field!r} is a string", field=vpath
            )
        lo = number_literal(values[0], field=f"{vpath}[0]")
        hi = number_literal(values[1], field=f"{vpath}[1]")
        if float(values[0]) > float(values[1]):
            raise InvalidArgument("range low bound is above the high bound", field=vpath)
        return f"{x} >= {lo} and {x} <= {hi}"
    if op in ("in", "not_in"):
        if not 1 <= len(values) <= MAX_IN_VALUES:
            raise InvalidArgument(
                f"operator {op} takes 1-{MAX_IN_VALUES} values (got {len(values)})", field=vpath
            )
        kinds = {_kind(v) for v in values}
        if len(kinds) > 1:
            raise InvalidArgument(
                f"values must all have one type (got {', '.join(sorted(kinds))})", field=vpath
            )
        lits = [_literal(v, field=f"{vpath}[{i}]", kind=target.kind) for i, v in enumerate(values)]
        if target.is_json:  # JSON paths take no `in`: spell it out as a disjunction
            inner = " or ".join(f"{x} == {lit}" for lit in lits)
        else:
            inner = f"{x} in [{', '.join(lits)}]"
        return inner if op == "in" else f"not ({inner})"
    if op == "contains":
        need(1)
        if not target.is_json:
            raise InvalidArgument(
                f"operator contains needs a metadata list field, not {c.field!r}", field=vpath
            )
        lit = _literal(values[0], field=f"{vpath}[0]")
        if lit.startswith("-"):  # Milvus parses no signed literal as json_contains' argument
            lit = f"({lit})"
        return f"json_contains({x}, {lit})"
    # exists
    need(0)
    if not target.is_json:
        raise InvalidArgument(f"operator exists needs a metadata field, not {c.field!r}", field=vpath)
    return f"exists {x}"


_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def tenant_expr(tenant_id: str, user_expr: str = "") -> str:
    """Every expression sent to Milvus: the tenant first, the client's part in parentheses."""
    if not tenant_id:
        raise ValueError("tenant_id is required")
    base = f"tenant_id == {quote_string(tenant_id, field='tenant_id')}"
    return f"{base} and ({user_expr})" if user_expr else base
