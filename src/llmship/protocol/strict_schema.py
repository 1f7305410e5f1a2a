"""OpenAI's rules for strict JSON schemas (structured outputs with `strict: true`): the root
is an object, every object lists all its properties in `required` and sets
`additionalProperties: false`, and keywords outside OpenAI's subset are refused. The
messages name the place in the schema as OpenAI's do (`In context=('properties', 'a')`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# Keywords OpenAI refuses in strict schemas (composition, and what its subset leaves out).
NOT_PERMITTED = (
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
)
Context = tuple[str, ...]


def strict_violation(schema: dict[str, Any]) -> str | None:
    """The first rule `schema` breaks, as a sentence, or None when it is a valid strict
    schema."""
    if not _is_object(schema) or "anyOf" in schema:
        found = json.dumps(schema.get("type", "anyOf" if "anyOf" in schema else None))
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: {found}'."
    for context, node in _nodes(schema, ()):
        for keyword in NOT_PERMITTED:
            if keyword in node:
                return f"In context={context}, '{keyword}' is not permitted."
        if not _is_object(node):
            continue
        if node.get("additionalProperties") is not False:
            return (
                f"In context={context}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        properties = node.get("properties") or {}
        required = node.get("required")
        missing = [name for name in properties if name not in (required or [])]
        if not isinstance(required, list) or missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an "
                "array including every key in properties."
                + (f" Missing {missing[0]!r}." if missing else "")
            )
    return None


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return (
        kind == "object" or (isinstance(kind, list) and "object" in kind) or ("properties" in node)
    )


def _nodes(node: Any, context: Context) -> Iterator[tuple[Context, dict[str, Any]]]:
    """Every subschema with its path: properties, items, anyOf members and definitions."""
    if not isinstance(node, dict):
        return
    yield context, node
    for key in ("properties", "$defs", "definitions"):
        for name, child in (node.get(key) or {}).items():
            yield from _nodes(child, (*context, key, name))
    items = node.get("items")
    if isinstance(items, dict):
        yield from _nodes(items, (*context, "items"))
    for key in ("anyOf", "prefixItems"):
        for index, child in enumerate(node.get(key) or []):
            yield from _nodes(child, (*context, key, str(index)))
