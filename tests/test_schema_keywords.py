"""Explicit schemas using keywords fastjsonschema cannot enforce are refused, never accepted
silently; draft 7 schemas, `$defs` references and keywords used as property names pass."""

from __future__ import annotations

from typing import Any

import pytest

from executor import ContainerConfig, ContainerExecutor, LocalConfig, LocalExecutor, SchemaError
from executor._schema import UNSUPPORTED_KEYWORDS
from executor.testing import FakeEngine


@pytest.mark.parametrize(
    ("schema", "keyword", "where"),
    [
        ({"type": "array", "prefixItems": [{"type": "integer"}]}, "prefixItems", "#/prefixItems"),
        (
            {"properties": {"a": {"type": "object", "unevaluatedProperties": False}}},
            "unevaluatedProperties",
            "#/properties/a/unevaluatedProperties",
        ),
        (
            {"items": {"unevaluatedItems": False}},
            "unevaluatedItems",
            "#/items/unevaluatedItems",
        ),
        (
            {"anyOf": [{}, {"dependentRequired": {"a": ["b"]}}]},
            "dependentRequired",
            "#/anyOf/1/dependentRequired",
        ),
        (
            {"dependentSchemas": {"a": {"required": ["b"]}}},
            "dependentSchemas",
            "#/dependentSchemas",
        ),
        (
            {"$defs": {"node": {"$dynamicAnchor": "node"}}, "$dynamicRef": "#node"},
            "$dynamicAnchor",
            "#/$defs/node/$dynamicAnchor",
        ),
        ({"contains": {"type": "string"}, "minContains": 2}, "minContains", "#/minContains"),
        (
            {"properties": {"a/b": {"not": {"$recursiveRef": "#"}}}},
            "$recursiveRef",
            "#/properties/a~1b/not/$recursiveRef",
        ),
    ],
)
def test_unsupported_keyword_is_refused_with_its_place(
    schema: dict[str, Any], keyword: str, where: str
) -> None:
    """A keyword of draft 2019-09/2020-12 that fastjsonschema ignores is a SchemaError that
    names the keyword, its JSON pointer and what to use instead."""
    with pytest.raises(SchemaError) as info:
        LocalExecutor(lambda x: x, LocalConfig(schema_in=schema))
    message = info.value.message
    assert repr(keyword) in message and f" at {where}," in message
    assert "schema_in" in message and "fastjsonschema" in message
    assert info.value.code == "SCHEMA_INVALID"


def test_refused_in_the_container_executor_too() -> None:
    """ContainerConfig(schema_out=...) is checked the same way, at construction."""
    schema = {"type": "array", "prefixItems": [{"type": "integer"}]}
    config = ContainerConfig("fake/runner:latest", schema_out=schema)
    with pytest.raises(SchemaError, match="schema_out uses 'prefixItems'"):
        ContainerExecutor(config, engine=FakeEngine())


def test_supported_schemas_pass() -> None:
    """Draft 7 keywords, `$defs` with `$ref`, and keyword names used as property names or in
    data (enum, const, default) are fine."""
    schema = {
        "$defs": {"n": {"type": "integer"}},
        "type": "object",
        "properties": {
            "prefixItems": {"$ref": "#/$defs/n"},
            "tuple": {"type": "array", "items": [{"type": "integer"}], "additionalItems": False},
            "mode": {"enum": [{"unevaluatedItems": 1}], "default": {"prefixItems": []}},
        },
        "dependencies": {"a": ["b"]},
    }
    LocalExecutor(lambda x: x, LocalConfig(schema_in=schema, schema_out=schema))


def test_every_refused_keyword_says_what_to_use() -> None:
    """Each refused keyword comes with advice."""
    assert all(advice for advice in UNSUPPORTED_KEYWORDS.values())
