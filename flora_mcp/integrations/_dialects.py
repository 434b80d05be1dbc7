"""JSON Schema rewritten into each vendor's dialect: OpenAI strict and loose, Gemini's OpenAPI subset.

Used by `export.py`, which decides per tool which dialect applies; the rules themselves are in `vendor_rules.py`.
A constraint a dialect cannot carry is not dropped: it becomes a sentence in the description (`NOTES`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from flora_mcp.integrations.vendor_rules import GEMINI_FORMATS, OPENAI_FORMATS, subschemas

NULL_NOTE = "Optional: null leaves it out."
PRIMITIVES = frozenset({"string", "number", "integer", "boolean"})
COMPOSITION = frozenset(
    "$ref $defs definitions anyOf oneOf allOf not if then else patternProperties prefixItems dependentSchemas"
    " propertyNames unevaluatedProperties unevaluatedItems contains".split()
)
NOTES: dict[str, Callable[[Any], str]] = {
    "format": lambda v: f"Format: {v}.",
    "pattern": lambda v: f"Pattern: {v}.",
    "minLength": lambda v: f"At least {v} character{'' if v == 1 else 's'}.",
    "maxLength": lambda v: f"At most {v} character{'' if v == 1 else 's'}.",
    "minimum": lambda v: f"Minimum {v}.",
    "maximum": lambda v: f"Maximum {v}.",
    "exclusiveMinimum": lambda v: f"Greater than {v}.",
    "exclusiveMaximum": lambda v: f"Less than {v}.",
    "multipleOf": lambda v: f"A multiple of {v}.",
    "minItems": lambda v: f"At least {v} item{'' if v == 1 else 's'}.",
    "maxItems": lambda v: f"At most {v} item{'' if v == 1 else 's'}.",
    "uniqueItems": lambda v: "Items must be unique." if v else "",
    "default": lambda v: f"Default: {json.dumps(v)}.",
}


def base_type(schema: Mapping[str, Any]) -> str | None:
    """The one non-null JSON type of a schema, or None when it has none or several."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 and isinstance(kinds[0], str) else None
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def expressible(schema: Any) -> bool:
    """Whether a schema fits both OpenAI strict mode and Gemini's subset: typed, closed objects, no composition."""
    if not isinstance(schema, Mapping) or COMPOSITION & schema.keys():
        return False
    kind = base_type(schema)
    if kind == "object":
        props = schema.get("properties")
        return (
            isinstance(props, Mapping)
            and bool(props)
            and schema.get("additionalProperties", False) is False
            and all(expressible(p) for p in props.values())
        )
    if kind == "array":
        return expressible(schema.get("items"))
    return kind in PRIMITIVES


def strict_root(schema: Mapping[str, Any]) -> bool:
    props = schema.get("properties") or {}
    return (
        not COMPOSITION & schema.keys()
        and schema.get("additionalProperties", False) is False
        and all(expressible(p) for p in props.values())
    )


def with_notes(description: Any, notes: list[str]) -> str:
    return " ".join(part for part in [str(description or "").strip(), *notes] if part)


def constraint_notes(schema: Mapping[str, Any], keep: frozenset[str] = frozenset()) -> list[str]:
    return [
        note for key, render in NOTES.items() if key in schema and key not in keep and (note := render(schema[key]))
    ]


def enum_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def openai_strict_schema(schema: Mapping[str, Any], *, nullable: bool) -> dict[str, Any]:
    kind = base_type(schema)
    assert kind is not None  # only called on expressible schemas
    out: dict[str, Any] = {"type": [kind, "null"] if nullable else kind}
    notes = constraint_notes(schema)
    if nullable:
        notes.append(NULL_NOTE)
    if description := with_notes(schema.get("description"), notes):
        out["description"] = description
    if kind == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required", []))
        out["properties"] = {k: openai_strict_schema(p, nullable=k not in required) for k, p in props.items()}
        out["required"] = list(props)
        out["additionalProperties"] = False
    elif kind == "array":
        out["items"] = openai_strict_schema(schema["items"], nullable=False)
    elif (values := enum_values(schema)) is not None:
        out["enum"] = values + [None] if nullable and None not in values else values
    return out


def openai_loose_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as given, with the formats OpenAI refuses even outside strict mode moved into descriptions."""
    out = copy.deepcopy(dict(schema))
    for node in subschemas(out):
        fmt = node.get("format")
        if fmt is not None and fmt not in OPENAI_FORMATS:
            del node["format"]
            node["description"] = with_notes(node.get("description"), [NOTES["format"](fmt)])
    return out


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    kind = base_type(schema)
    assert kind is not None  # only called on expressible schemas
    out: dict[str, Any] = {"type": kind.upper()}
    keep = frozenset({"format"}) if kind == "string" and schema.get("format") in GEMINI_FORMATS else frozenset()
    notes = constraint_notes(schema, keep)
    values = enum_values(schema)
    if values is not None and not (kind == "string" and all(isinstance(v, str) for v in values)):
        notes.append(f"One of: {', '.join(json.dumps(v) for v in values)}.")
        values = None
    if description := with_notes(schema.get("description"), notes):
        out["description"] = description
    if isinstance(schema.get("type"), list) and "null" in schema["type"]:
        out["nullable"] = True
    if keep:
        out["format"] = schema["format"]
    if kind == "object":
        props = schema["properties"]
        out["properties"] = {k: gemini_schema(p) for k, p in props.items()}
        if required := [k for k in props if k in set(schema.get("required", []))]:
            out["required"] = required
    elif kind == "array":
        out["items"] = gemini_schema(schema["items"])
    elif values is not None:
        out["format"] = "enum"
        out["enum"] = values
    return out


def gemini_json_string(schema: Mapping[str, Any]) -> dict[str, Any]:
    if base_type(schema) == "object":
        note = 'Send it as a JSON object written as a string, e.g. {"name": "value"}.'
    else:
        note = "Send the value as JSON text in a string."
    return {"type": "STRING", "description": with_notes(schema.get("description"), [note])}
