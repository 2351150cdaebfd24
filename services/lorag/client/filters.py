"""A small filter language for metadata conditions, compiled to ``common.v1.Filter``.

A filter is a dict of field -> condition; all conditions must hold:

>>> to_filter({"lang": "en", "year": {"gte": 2020, "lt": 2025}, "tags": {"contains": "faq"}})
>>> to_filter({"lang": ["en", "de"]})            # a list means IN
>>> to_filter({"author": {"exists": True}, "year": {"range": [2019, 2021]}})

Operators: ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``, ``in``, ``not_in`` (or ``nin``),
``contains``, ``exists``, ``range`` (also ``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``). A
``common.v1.Filter`` passes through unchanged. The server compiles it with escaping and adds your
tenant; the SDK only checks the shape, so bad field names still come back as INVALID_ARGUMENT.

The command line writes the same as ``field=value``, ``field!=value``, ``field>=2020`` ... or as a
JSON object (see :func:`parse_expressions`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2

from lorag.client.errors import FilterError
from lorag.common.v1 import common_pb2

OPS: dict[str, int] = {
    "eq": common_pb2.FILTER_OP_EQ,
    "==": common_pb2.FILTER_OP_EQ,
    "ne": common_pb2.FILTER_OP_NE,
    "!=": common_pb2.FILTER_OP_NE,
    "gt": common_pb2.FILTER_OP_GT,
    ">": common_pb2.FILTER_OP_GT,
    "gte": common_pb2.FILTER_OP_GTE,
    ">=": common_pb2.FILTER_OP_GTE,
    "lt": common_pb2.FILTER_OP_LT,
    "<": common_pb2.FILTER_OP_LT,
    "lte": common_pb2.FILTER_OP_LTE,
    "<=": common_pb2.FILTER_OP_LTE,
    "in": common_pb2.FILTER_OP_IN,
    "not_in": common_pb2.FILTER_OP_NOT_IN,
    "nin": common_pb2.FILTER_OP_NOT_IN,
    "contains": common_pb2.FILTER_OP_CONTAINS,
    "exists": common_pb2.FILTER_OP_EXISTS,
    "range": common_pb2.FILTER_OP_RANGE,
}
_LIST_OPS = {common_pb2.FILTER_OP_IN, common_pb2.FILTER_OP_NOT_IN}
_NUMBER_OPS = {
    common_pb2.FILTER_OP_GT,
    common_pb2.FILTER_OP_GTE,
    common_pb2.FILTER_OP_LT,
    common_pb2.FILTER_OP_LTE,
}

FilterLike = Mapping[str, Any] | common_pb2.Filter | None


def _value(field: str, v: Any) -> struct_pb2.Value:
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, int | float):
        return struct_pb2.Value(number_value=float(v))
    if isinstance(v, str):
        return struct_pb2.Value(string_value=v)
    raise FilterError(f"filter {field!r}: values must be strings, numbers or booleans, not {v!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def condition(field: str, op: str | int, value: Any = None) -> common_pb2.FilterCondition:
    """One condition: ``condition("year", "gte", 2020)``; checks the operand count and types."""
    if not isinstance(field, str) or not field:
        raise FilterError("filter field names must be non-empty strings")
    code = op if isinstance(op, int) else OPS.get(str(op).lower())
    if code is None:
        raise FilterError(f"filter {field!r}: unknown operator {op!r}; use one of {', '.join(OPS)}")
    if code == common_pb2.FILTER_OP_EXISTS:
        if value not in (True, None):
            raise FilterError(f"filter {field!r}: 'exists' takes true (use 'not_in' for absence)")
        return common_pb2.FilterCondition(field=field, op=code)
    if code in _LIST_OPS or code == common_pb2.FILTER_OP_RANGE:
        if not isinstance(value, list | tuple | set | frozenset):
            raise FilterError(f"filter {field!r}: {op!r} takes a list, not {value!r}")
        values = list(value)
        if code == common_pb2.FILTER_OP_RANGE:
            if len(values) != 2 or not all(_is_number(v) for v in values) or values[0] > values[1]:
                raise FilterError(f"filter {field!r}: 'range' takes [low, high] numbers with low <= high")
        elif not values:
            raise FilterError(f"filter {field!r}: {op!r} needs at least one value")
    else:
        if code in _NUMBER_OPS and not _is_number(value):
            raise FilterError(f"filter {field!r}: {op!r} compares numbers, not {value!r}")
        values = [value]
    return common_pb2.FilterCondition(field=field, op=code, values=[_value(field, v) for v in values])


def _conditions(field: str, spec: Any) -> Iterable[common_pb2.FilterCondition]:
    if isinstance(spec, Mapping):
        if not spec:
            raise FilterError(f"filter {field!r}: empty condition")
        for op, value in spec.items():
            yield condition(field, op, value)
    elif isinstance(spec, list | tuple | set | frozenset):
        yield condition(field, "in", list(spec))
    else:
        yield condition(field, "eq", spec)


def to_filter(spec: FilterLike) -> common_pb2.Filter:
    """A ``common.v1.Filter`` from a dict (see the module docs), a Filter, or None (match all)."""
    if spec is None:
        return common_pb2.Filter()
    if isinstance(spec, common_pb2.Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise FilterError(f"a filter is a dict of field -> condition, not {type(spec).__name__}")
    return common_pb2.Filter(conditions=[c for field, cond in spec.items() for c in _conditions(field, cond)])


_EXPR = re.compile(r"^\s*(?P<field>[A-Za-z0-9_.\-]+)\s*(?P<op>>=|<=|!=|==|=|>|<|~)\s*(?P<value>.*?)\s*$")
_EXPR_OPS = {
    "=": "eq",
    "==": "eq",
    "!=": "ne",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "~": "contains",
}


def _literal(text: str) -> Any:
    """``2020`` -> 2020, ``true`` -> True, ``"x"`` -> "x", ``[1, 2]`` -> [1, 2]; else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_expressions(expressions: Iterable[str]) -> dict[str, Any]:
    """The filter dict of command-line expressions, all of which must hold.

    Each is a JSON object (``'{"year": {"gte": 2020}}'``) or ``field OP value`` with OP one of
    ``= == != > >= < <=`` or ``~`` (contains); values are read as JSON when they parse
    (``year>=2020``, ``draft=false``, ``lang=["en","de"]`` means IN), else as text (``lang=en``).
    """
    spec: dict[str, Any] = {}

    def add(field: str, op: str, value: Any) -> None:
        entry = spec.setdefault(field, {})
        if op in entry:
            raise FilterError(f"filter {field!r}: {op!r} given twice")
        entry[op] = value

    for text in expressions:
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped)
            except ValueError as exc:
                raise FilterError(f"filter {text!r} is not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise FilterError(f"filter {text!r}: a JSON filter must be an object")
            for field, cond in obj.items():
                if isinstance(cond, dict):
                    for op, value in cond.items():
                        add(field, op, value)
                else:
                    add(field, "in" if isinstance(cond, list) else "eq", cond)
            continue
        m = _EXPR.match(text)
        if not m or not m["value"]:
            raise FilterError(
                f"cannot read filter {text!r}; write field=value, field>=number, field~value "
                'or a JSON object like {"year": {"gte": 2020}}'
            )
        op, value = _EXPR_OPS[m["op"]], _literal(m["value"])
        if op == "eq" and isinstance(value, list):
            op = "in"
        elif op == "ne" and isinstance(value, list):
            op = "not_in"
        add(m["field"], op, value)
    to_filter(spec)  # report shape errors now, not at call time
    return spec
