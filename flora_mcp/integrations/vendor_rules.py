"""What each LLM API accepts in tool definitions, and `validate_export`, which lists what a vendor would refuse.

The rules come from each vendor's documentation: tool-name characters and lengths (`name_valid`), the string formats
OpenAI and Gemini accept, OpenAI strict mode's closed schemas (every object `additionalProperties: false`, every
property required, only `type`, `description`, `properties`, `required`, `additionalProperties`, `items` and `enum`),
and Gemini's OpenAPI-subset `Schema` (upper-case types, no `additionalProperties`). `flora_mcp.export` builds
definitions that keep these rules; this module checks them, for tests and as a pipeline's pre-flight check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "FORMATS",
    "GEMINI_FORMATS",
    "OPENAI_DESCRIPTION_LIMIT",
    "OPENAI_FORMATS",
    "name_rule",
    "name_valid",
    "subschemas",
    "validate_export",
]

FORMATS = ("mcp", "anthropic", "openai", "gemini")
OPENAI_DESCRIPTION_LIMIT = 1024

# (allowed characters, maximum length, must start with a letter or `_`), from each vendor's documented name rule.
_NAME_RULES: dict[str, tuple[str, int, bool]] = {
    "mcp": ("A-Za-z0-9_.-", 128, False),
    "anthropic": ("A-Za-z0-9_-", 64, False),
    "openai": ("A-Za-z0-9_-", 64, False),
    "gemini": ("A-Za-z0-9_.-", 64, True),
}
# Formats OpenAI accepts (Structured Outputs guide); anything else, `uri` included, is a 400 in strict mode.
OPENAI_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
GEMINI_FORMATS = frozenset({"enum", "date-time"})


def name_rule(fmt: str) -> tuple[str, int, bool]:
    """One format's tool-name rule.

    Args:
        fmt: One of `FORMATS`.

    Returns:
        (allowed characters as a regex class body, maximum length, whether the first character must be a letter or `_`).

    Raises:
        ValueError: Unknown format.
    """
    try:
        return _NAME_RULES[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}") from None


def name_valid(name: str, fmt: str) -> bool:
    """Whether one API accepts `name` as a tool name.

    Args:
        name: The tool name.
        fmt: One of `FORMATS`.

    Returns:
        True when the name keeps that format's characters, length and first-character rule.
    """
    chars, limit, letter_first = name_rule(fmt)
    first = "[A-Za-z_]" if letter_first else f"[{chars}]"
    return re.fullmatch(f"{first}[{chars}]{{0,{limit - 1}}}", name) is not None


def validate_export(fmt: str, defs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the vendor would refuse in exported definitions (used by tests and by pipelines as a pre-flight check).

    Args:
        fmt: One of `FORMATS`.
        defs: Definitions as returned by `export_tools` (for OpenAI, either API shape).

    Returns:
        One line per problem, prefixed with the tool's name; empty when all is well.
    """
    name_rule(fmt)
    problems: list[str] = []
    seen: set[str] = set()
    for i, d in enumerate(defs):
        fn = d.get("function", d) if fmt == "openai" else d
        name = fn.get("name")
        label = f"{name or f'#{i}'}"
        if not isinstance(name, str) or not name_valid(name, fmt):
            problems.append(f"{label}: name {name!r} is not valid for {fmt}")
        elif name in seen:
            problems.append(f"{label}: name used twice")
        seen.add(str(name))
        problems.extend(f"{label}: {p}" for p in _CHECKS[fmt](d))
    return problems


def subschemas(schema: Any) -> list[dict[str, Any]]:
    """Every schema object in a JSON Schema, itself first.

    Keyword-aware: a property named `format` is not taken for the keyword.

    Args:
        schema: A JSON Schema; anything else yields nothing.

    Returns:
        The schema objects, in document order; changing one changes the schema.
    """
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for key in ("properties", "patternProperties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            for sub in schema[key].values():
                found += subschemas(sub)
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"):
        found += subschemas(schema.get(key))
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key) or []:
            found += subschemas(sub)
    return found


# --- checks per format --------------------------------------------------------------------------------------------

_STRICT_KEYS = frozenset({"type", "description", "properties", "required", "additionalProperties", "items", "enum"})
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_GEMINI_KEYS = frozenset({"type", "description", "properties", "required", "items", "enum", "nullable", "format"})
_GEMINI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"})
# Vertex AI's rule for parameter names; the Gemini API has no stricter one.
_GEMINI_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _keys(d: Mapping[str, Any], allowed: set[str], required: set[str]) -> list[str]:
    extra = sorted(set(d) - allowed)
    missing = sorted(required - set(d))
    return [f"unexpected key {k!r}" for k in extra] + [f"missing key {k!r}" for k in missing]


def _json_schema_problems(schema: Any, where: str) -> list[str]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return [f"{where}: must be a JSON Schema of type object"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"{where}: not a valid Draft 2020-12 schema: {exc.message}"]
    return []


def _check_mcp(d: Mapping[str, Any]) -> list[str]:
    problems = _json_schema_problems(d.get("inputSchema"), "inputSchema")
    if "outputSchema" in d:
        problems += _json_schema_problems(d["outputSchema"], "outputSchema")
    return problems


def _check_anthropic(d: Mapping[str, Any]) -> list[str]:
    return _keys(d, {"name", "description", "input_schema"}, {"name", "input_schema"}) + _json_schema_problems(
        d.get("input_schema"), "input_schema"
    )


def _check_openai(d: Mapping[str, Any]) -> list[str]:
    fn_keys = {"name", "description", "parameters", "strict"}
    if "function" in d:  # Chat Completions
        fn = d["function"]
        problems = _keys(d, {"type", "function"}, {"type", "function"}) + _keys(fn, fn_keys, {"name", "parameters"})
    else:  # Responses API
        fn = d
        problems = _keys(d, {"type"} | fn_keys, {"type", "name", "parameters"})
    if d.get("type") != "function":
        problems.append("type must be 'function'")
    if len(str(fn.get("description", ""))) > OPENAI_DESCRIPTION_LIMIT:
        problems.append(f"description longer than {OPENAI_DESCRIPTION_LIMIT} characters")
    params = fn.get("parameters")
    problems += _json_schema_problems(params, "parameters")
    for node in subschemas(params):
        if "format" in node and node["format"] not in OPENAI_FORMATS:
            problems.append(f"format {node['format']!r} is refused by OpenAI")
    if not isinstance(fn.get("strict"), bool):
        problems.append("strict must be set to true or false")
    elif fn["strict"] and isinstance(params, Mapping):
        problems += _strict_problems(params, "parameters")
    return problems


def _strict_problems(schema: Mapping[str, Any], where: str) -> list[str]:
    problems = [f"{where}: keyword {k!r} not allowed in strict mode" for k in sorted(set(schema) - _STRICT_KEYS)]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if not kinds or any(k not in _JSON_TYPES for k in kinds):
        problems.append(f"{where}: type {schema.get('type')!r} is not a JSON type")
    if "null" in kinds and "enum" in schema and None not in schema["enum"]:
        problems.append(f"{where}: nullable enum must list null")
    if "object" in kinds:
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return [*problems, f"{where}: object without properties"]
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        if sorted(schema.get("required", [])) != sorted(props):
            problems.append(f"{where}: every property must be listed in required")
        for key, prop in props.items():
            problems += _strict_problems(prop, f"{where}.{key}")
    if "array" in kinds:
        items = schema.get("items")
        problems += _strict_problems(items, f"{where}[]") if isinstance(items, Mapping) else [f"{where}: no items"]
    return problems


def _check_gemini(d: Mapping[str, Any]) -> list[str]:
    problems = _keys(d, {"name", "description", "parameters"}, {"name"})
    if "parameters" in d:
        params = d["parameters"]
        if not isinstance(params, Mapping) or params.get("type") != "OBJECT":
            return [*problems, "parameters must be of type OBJECT"]
        problems += _gemini_problems(params, "parameters")
    return problems


def _gemini_problems(schema: Any, where: str) -> list[str]:
    if not isinstance(schema, Mapping):
        return [f"{where}: not a schema object"]
    problems = [f"{where}: keyword {k!r} not in Gemini's schema subset" for k in sorted(set(schema) - _GEMINI_KEYS)]
    kind = schema.get("type")
    if kind not in _GEMINI_TYPES:
        problems.append(f"{where}: type {kind!r} is not a Gemini type")
    if "format" in schema and (kind != "STRING" or schema["format"] not in GEMINI_FORMATS):
        problems.append(f"{where}: format {schema['format']!r} is refused by the Gemini API")
    if kind == "OBJECT":
        props = schema.get("properties")
        if not isinstance(props, Mapping) or not props:
            return [*problems, f"{where}: OBJECT needs non-empty properties"]
        problems += [f"{where}: required {r!r} is not a property" for r in schema.get("required", []) if r not in props]
        for key, prop in props.items():
            if not _GEMINI_PARAM.fullmatch(key):
                problems.append(f"{where}: parameter name {key!r} is not valid for Gemini")
            problems += _gemini_problems(prop, f"{where}.{key}")
    if kind == "ARRAY":
        problems += _gemini_problems(schema.get("items"), f"{where}[]")
    return problems


_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "mcp": _check_mcp,
    "anthropic": _check_anthropic,
    "openai": _check_openai,
    "gemini": _check_gemini,
}
