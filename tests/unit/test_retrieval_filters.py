"""Filter compiler: structured conditions become safe Milvus expressions, hostile input never escapes.

Compiled expressions are parsed back with Milvus Lite's own expression parser, so the tests see
what the engine would see: the tenant condition first, and every client value as one literal.
"""

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from milvus_lite.search.filter import ast as mast
from milvus_lite.search.filter import parse_expr

from lorag.common.errors import InvalidArgument
from lorag.retrieval.filters import Condition, compile_filter, tenant_expr


def compile1(field, op, *values, **kw):
    return compile_filter([Condition(field, op, tuple(values))], **kw)


def walk(node):
    """Every AST node below ``node`` (dataclass fields and tuples)."""
    yield node
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from walk(getattr(node, f.name))
    elif isinstance(node, tuple):
        for x in node:
            yield from walk(x)


def field_refs(ast):
    return {n.name for n in walk(ast) if isinstance(n, mast.FieldRef)}


def string_literals(ast):
    return [n.value for n in walk(ast) if isinstance(n, mast.StringLit)]


def test_tenant_condition_comes_first_and_client_part_is_parenthesised():
    expr = tenant_expr("acme", compile1("lang", "eq", "en"))
    ast = parse_expr(expr)
    assert isinstance(ast, mast.And)
    first = ast.operands[0]
    assert isinstance(first, mast.CmpOp) and first.op == "=="
    assert first.left == mast.FieldRef("tenant_id", first.left.pos) and first.right.value == "acme"
    assert expr == 'tenant_id == "acme" and ((metadata["lang"] == "en"))'


@pytest.mark.parametrize(
    ("field", "op", "values", "expected"),
    [
        ("lang", "eq", ("en",), 'metadata["lang"] == "en"'),
        ("metadata.lang", "ne", ("en",), 'metadata["lang"] != "en"'),
        ("source.kind", "eq", ("web",), 'metadata["source"]["kind"] == "web"'),
        ("year", "gte", (2020.0,), 'metadata["year"] >= 2020'),
        ("score", "lt", (0.25,), 'metadata["score"] < 0.25'),
        ("year", "range", (2000, 2010), 'metadata["year"] >= 2000 and metadata["year"] <= 2010'),
        ("lang", "in", ("en", "de"), 'metadata["lang"] == "en" or metadata["lang"] == "de"'),
        ("lang", "not_in", ("fr",), 'not (metadata["lang"] == "fr")'),
        ("tags", "contains", ("ai",), 'json_contains(metadata["tags"], "ai")'),
        ("scores", "contains", (-1,), 'json_contains(metadata["scores"], (-1))'),
        ("scores", "contains", (-1.5,), 'json_contains(metadata["scores"], (-1.5))'),
        ("draft", "eq", (True,), 'metadata["draft"] == true'),
        ("reviewed", "exists", (), 'exists metadata["reviewed"]'),
        ("doc_id", "in", ("a", "b"), 'doc_id in ["a", "b"]'),
        ("chunk_index", "lte", (3.0,), "chunk_index <= 3"),
        ("created_at", "gt", (1.7e12,), "created_at > 1700000000000"),
        ("title", "eq", ("Intro",), 'title == "Intro"'),
    ],
)
def test_each_operator_compiles_to_a_parsable_expression(field, op, values, expected):
    expr = compile1(field, op, *values)
    assert expr == f"({expected})"
    parse_expr(tenant_expr("t1", expr))  # the engine's parser accepts it


@pytest.mark.parametrize(
    "hostile",
    [
        'en" or tenant_id != "x',
        "en' or 1==1 or '",
        'x") or (1 == 1',
        "back\\",
        '\\" or tenant_id == "other',
        '"]) or true or (["',
        'a\\\\" or true or "',
        "ünïcødé ✓ 日本語",
    ],
)
def test_string_values_stay_one_literal(hostile):
    ast = parse_expr(tenant_expr("acme", compile1("lang", "eq", hostile)))
    assert field_refs(ast) == {"tenant_id", "metadata"}
    assert string_literals(ast) == ["acme", hostile]
    assert [n.path for n in walk(ast) if isinstance(n, mast.PathAccess)] == [("lang",)]
    assert isinstance(ast, mast.And) and len(ast.operands) == 2  # tenant AND (one comparison)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, exclude_categories=["Cs", "Cc"]), max_size=60))
def test_any_printable_string_round_trips_as_a_literal(value):
    ast = parse_expr(tenant_expr("acme", compile1("doc_id", "in", value, "x")))
    assert string_literals(ast) == ["acme", value, "x"]
    assert field_refs(ast) == {"tenant_id", "doc_id"}


@pytest.mark.parametrize(
    ("field", "why"),
    [
        ("tenant_id", "reserved"),
        ("metadata.tenant_id", "reserved"),
        ("tenant_id.x", "reserved"),
        ("text", "reserved"),
        ("dense", "reserved"),
        ("chunk_id", "reserved"),
        ("$meta", "unknown field"),
        ('a"]) or (1==1', "unknown field"),
        ("lang or 1==1", "unknown field"),
        ("a..b", "malformed"),
        ("_private", "unknown field"),
        ("x" * 80, "unknown field"),
        ("", "required"),
    ],
)
def test_bad_or_reserved_fields_are_invalid_argument_naming_the_field(field, why):
    with pytest.raises(InvalidArgument) as info:
        compile1(field, "eq", "v")
    assert str(info.value).startswith("filter.conditions[0].field: ")
    assert why in str(info.value)


def test_allow_list_rejects_unknown_metadata_keys():
    assert compile1("lang", "eq", "en", allowed_keys=["lang", "year"])
    with pytest.raises(InvalidArgument, match=r"unknown field 'colour'.*lang, year"):
        compile1("colour", "eq", "red", allowed_keys=["lang", "year"])
    # built-in fields stay usable with an allow-list
    assert compile1("doc_id", "eq", "a", allowed_keys=["lang"]) == '(doc_id == "a")'


@pytest.mark.parametrize(
    ("field", "op", "values", "message"),
    [
        ("lang", "eq", (), "takes 1 value"),
        ("lang", "eq", ("a", "b"), "takes 1 value"),
        ("lang", "eq", (None,), "must be a string, number or boolean (got null)"),
        ("lang", "eq", (["a"],), "got list"),
        ("lang", "eq", ({"a": 1},), "got object"),
        ("year", "gt", ("2020",), "must be a number (got string)"),
        ("year", "gt", (float("nan"),), "finite"),
        ("year", "lt", (float("inf"),), "finite"),
        ("doc_id", "gt", ("a",), "needs a numeric field"),
        ("doc_id", "eq", (3,), "must be a string (got number)"),
        ("chunk_index", "eq", (1.5,), "whole number"),
        ("chunk_index", "eq", (True,), "got boolean"),
        ("year", "range", (5, 1), "low bound is above"),
        ("year", "range", (1,), "takes 2 value"),
        ("lang", "in", (), "1-100 values"),
        ("lang", "in", tuple(str(i) for i in range(101)), "1-100 values"),
        ("lang", "in", ("a", 1), "one type"),
        ("doc_id", "contains", ("a",), "metadata list field"),
        ("reviewed", "exists", ("x",), "takes 0 value"),
        ("lang", "eq", ("line\nbreak",), "control characters"),
        ("lang", "eq", ("nul\x00",), "control characters"),
        ("lang", "like", ("a%",), "unknown operator"),
    ],
)
def test_wrong_values_are_invalid_argument(field, op, values, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)) as info:
        compile1(field, op, *values)
    assert str(info.value).startswith("filter.conditions[0].")


def test_at_most_32_conditions():
    conds = [Condition("lang", "eq", ("en",))] * 33
    with pytest.raises(InvalidArgument, match="at most 32 conditions"):
        compile_filter(conds)
    assert compile_filter(conds[:32]).count(" and ") == 31


def test_conditions_are_a_conjunction_each_in_parentheses():
    expr = compile_filter([Condition("lang", "in", ("en", "de")), Condition("year", "gte", (2020,))])
    assert expr == '(metadata["lang"] == "en" or metadata["lang"] == "de") and (metadata["year"] >= 2020)'
    ast = parse_expr(tenant_expr("t", expr))
    assert isinstance(ast, mast.And) and len(ast.operands) == 2  # tenant AND (client conjunction)


def test_list_documents_filters_address_document_metadata():
    assert compile1("lang", "eq", "en", json_column="doc_metadata") == '(doc_metadata["lang"] == "en")'
