"""The catalog's MCP tool definitions in the shape each LLM API's tool calling takes.

Input everywhere is MCP tool definitions as plain dicts (`name`, `title`, `description`, `inputSchema`, ...). Output:

- `mcp`: the definitions as given, deep-copied.
- `anthropic`: `{name, description, input_schema}`; the input schema is passed through (Claude takes JSON Schema).
- `openai`: function tools, Chat Completions shape or the Responses API's flat shape. A tool whose schema fits strict
  mode is sent with `strict: true`: every object closed with `additionalProperties: false`, every property in
  `required`, optional inputs typed `[T, "null"]` with "null leaves it out" in their description, and every constraint
  keyword (`format`, `minItems`, `minimum`, ...) moved into the description, because strict mode rejects `format: uri`
  and older snapshots rejected the length and range keywords. A tool whose schema cannot be strict (a free-form object,
  such as `flora_run_technique`'s `inputs`, or `anyOf`/`$ref`) is sent with `strict: false` and its schema kept, with
  only the formats OpenAI refuses moved into descriptions.
- `gemini`: function declarations whose `parameters` is the OpenAPI-subset `Schema` with upper-case `Type` names
  (`STRING`, `OBJECT`, ...), using only `type`, `description`, `properties`, `required`, `items`, `enum`, `nullable`
  and `format` (`enum`, `date-time`); other constraints move into descriptions. An input the subset cannot express
  (a free-form object, for one, since Gemini refuses an OBJECT without properties) becomes a STRING holding JSON, which
  `restore_arguments` decodes. A tool without inputs gets no `parameters`.

Names that a vendor refuses are rewritten by `export_name` and mapped back by `name_map`; catalog names (lowercase
letters, digits, `_` and `-`) are valid everywhere and stay as they are. `validate_export` (defined in
`flora_mcp.integrations.vendor_rules`, each vendor's rules) lists what a vendor would refuse in exported definitions;
`restore_arguments` turns a vendor's call arguments back into the MCP tool's arguments.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from flora_mcp.integrations.vendor_rules import (
    FORMATS,
    GEMINI_FORMATS,
    OPENAI_DESCRIPTION_LIMIT,
    OPENAI_FORMATS,
    name_rule,
    name_valid,
    subschemas,
    validate_export,
)

__all__ = [
    "FORMATS",
    "OPENAI_DESCRIPTION_LIMIT",
    "anthropic_tools",
    "export_name",
    "export_tools",
    "gemini_name",
    "gemini_tools",
    "mcp_tools",
    "name_map",
    "openai_tools",
    "restore_arguments",
    "validate_export",
]

NULL_NOTE = "Optional: null leaves it out."
_PRIMITIVES = frozenset({"string", "number", "integer", "boolean"})
_COMPOSITION = frozenset(
    "$ref $defs definitions anyOf oneOf allOf not if then else patternProperties prefixItems dependentSchemas"
    " propertyNames unevaluatedProperties unevaluatedItems contains".split()
)
_NOTES: dict[str, Callable[[Any], str]] = {
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


def export_name(name: str, fmt: str) -> str:
    """The tool name to send to one API: `name` itself when valid there, else a valid, stable rewrite of it.

    Args:
        name: The MCP tool name.
        fmt: One of `FORMATS`; MCP names are returned unchanged.

    Returns:
        Invalid characters replaced by `_`, a `_` prefix where Gemini needs a leading letter or `_`, and an over-long
        name cut with a short hash of the original appended so that distinct names stay distinct.
    """
    chars, limit, letter_first = name_rule(fmt)
    if fmt == "mcp" or name_valid(name, fmt):
        return name
    out = re.sub(f"[^{chars}]", "_", name) or "_"
    if letter_first and not re.match(r"[A-Za-z_]", out):
        out = "_" + out
    if len(out) > limit:
        out = out[: limit - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return out


def gemini_name(name: str) -> str:
    """The function name Gemini gets for an MCP tool name (see `export_name`).

    Args:
        name: The MCP tool name.

    Returns:
        A name Gemini accepts; catalog names come back unchanged.
    """
    return export_name(name, "gemini")


def name_map(tools: Sequence[Mapping[str, Any]], fmt: str) -> dict[str, str]:
    """Exported name -> MCP tool name, to resolve a vendor's call back to the tool.

    Args:
        tools: MCP tool definitions.
        fmt: One of `FORMATS`.

    Returns:
        The mapping for every tool.

    Raises:
        ValueError: Two tools would share one exported name.
    """
    out: dict[str, str] = {}
    for tool in tools:
        name = str(tool["name"])
        exported = export_name(name, fmt)
        if out.get(exported, name) != name:
            raise ValueError(f"tools {out[exported]!r} and {name!r} both export to {fmt} as {exported!r}")
        out[exported] = name
    return out


def export_tools(tools: Sequence[Mapping[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """Tool definitions for one API, with each format's defaults (OpenAI: Chat Completions shape).

    Args:
        tools: MCP tool definitions.
        fmt: One of `FORMATS`.

    Returns:
        One definition per tool, in order.

    Raises:
        ValueError: Unknown format, or two tools that would share one exported name.
    """
    if fmt == "mcp":
        return mcp_tools(tools)
    if fmt == "anthropic":
        return anthropic_tools(tools)
    if fmt == "openai":
        return openai_tools(tools)
    if fmt == "gemini":
        return gemini_tools(tools)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def mcp_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """MCP tool definitions, as given (deep copies).

    Args:
        tools: MCP tool definitions.

    Returns:
        Copies the caller may change freely.
    """
    return [copy.deepcopy(dict(tool)) for tool in tools]


def anthropic_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic Messages API tools: `{name, description, input_schema}`.

    Args:
        tools: MCP tool definitions.

    Returns:
        One tool per definition; `input_schema` is the input schema as given.
    """
    names = _exported_names(tools, "anthropic")
    return [
        {"name": names[i], "description": _description(tool), "input_schema": copy.deepcopy(dict(tool["inputSchema"]))}
        for i, tool in enumerate(tools)
    ]


def openai_tools(
    tools: Sequence[Mapping[str, Any]], *, api: Literal["chat", "responses"] = "chat"
) -> list[dict[str, Any]]:
    """OpenAI function tools, strict where the schema allows it.

    Args:
        tools: MCP tool definitions.
        api: `chat` for Chat Completions (`{"type": "function", "function": {...}}`), `responses` for the Responses
            API's flat `{"type": "function", "name": ..., "parameters": ..., "strict": ...}`.

    Returns:
        One function tool per definition; `strict` is always set, since the Responses API defaults it to true.
    """
    if api not in ("chat", "responses"):
        raise ValueError(f"unknown OpenAI API {api!r}; expected 'chat' or 'responses'")
    names = _exported_names(tools, "openai")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        schema = tool["inputSchema"]
        strict = _strict_root(schema)
        params = _openai_strict(schema, nullable=False) if strict else _openai_loose(schema)
        description = _description(tool)
        if len(description) > OPENAI_DESCRIPTION_LIMIT:
            description = description[: OPENAI_DESCRIPTION_LIMIT - 3] + "..."
        function = {"name": names[i], "description": description, "parameters": params, "strict": strict}
        out.append({"type": "function", "function": function} if api == "chat" else {"type": "function", **function})
    return out


def gemini_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Gemini function declarations with `parameters` in the OpenAPI-subset schema (upper-case types).

    Args:
        tools: MCP tool definitions.

    Returns:
        One declaration per definition, to put under `tools[].functionDeclarations` (REST) or
        `Tool(function_declarations=...)` (google-genai).
    """
    names = _exported_names(tools, "gemini")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        declaration: dict[str, Any] = {"name": names[i], "description": _description(tool)}
        schema = tool["inputSchema"]
        props = schema.get("properties") or {}
        if props:
            required = set(schema.get("required", []))
            declaration["parameters"] = {
                "type": "OBJECT",
                "properties": {
                    key: _gemini(prop) if _expressible(prop) else _gemini_json_string(prop)
                    for key, prop in props.items()
                },
                **({"required": [key for key in props if key in required]} if required & set(props) else {}),
            }
        out.append(declaration)
    return out


def restore_arguments(fmt: str, tool: Mapping[str, Any] | None, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The MCP tool's arguments from a vendor's call: nulls dropped, Gemini's JSON-string inputs decoded.

    A null always means "leave it out": strict mode makes the model send one for every optional input it skips,
    and no catalog input accepts null.

    Args:
        fmt: One of `FORMATS`.
        tool: The MCP tool definition, needed to decode Gemini's JSON-string inputs; None skips decoding.
        arguments: The arguments as the model sent them.

    Returns:
        Arguments for `Toolkit.call`.

    Raises:
        ValueError: A JSON-string input is not valid JSON; the message names the input.
    """
    out = _drop_nulls(arguments)
    if fmt == "gemini" and tool is not None:
        for key, prop in (tool["inputSchema"].get("properties") or {}).items():
            value = out.get(key)
            if isinstance(value, str) and not _expressible(prop):
                try:
                    out[key] = _drop_nulls_any(json.loads(value))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{key}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    return out


# --- conversion helpers -------------------------------------------------------------------------------------------


def _exported_names(tools: Sequence[Mapping[str, Any]], fmt: str) -> list[str]:
    name_map(tools, fmt)  # refuse collisions before building anything
    return [export_name(str(tool["name"]), fmt) for tool in tools]


def _description(tool: Mapping[str, Any]) -> str:
    return str(tool.get("description") or tool.get("title") or "")


def _base_type(schema: Mapping[str, Any]) -> str | None:
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


def _expressible(schema: Any) -> bool:
    """Whether a schema fits both OpenAI strict mode and Gemini's subset: typed, closed objects, no composition."""
    if not isinstance(schema, Mapping) or _COMPOSITION & schema.keys():
        return False
    kind = _base_type(schema)
    if kind == "object":
        props = schema.get("properties")
        return (
            isinstance(props, Mapping)
            and bool(props)
            and schema.get("additionalProperties", False) is False
            and all(_expressible(p) for p in props.values())
        )
    if kind == "array":
        return _expressible(schema.get("items"))
    return kind in _PRIMITIVES


def _strict_root(schema: Mapping[str, Any]) -> bool:
    props = schema.get("properties") or {}
    return (
        not _COMPOSITION & schema.keys()
        and schema.get("additionalProperties", False) is False
        and all(_expressible(p) for p in props.values())
    )


def _with_notes(description: Any, notes: list[str]) -> str:
    return " ".join(part for part in [str(description or "").strip(), *notes] if part)


def _notes(schema: Mapping[str, Any], keep: frozenset[str] = frozenset()) -> list[str]:
    return [
        note for key, render in _NOTES.items() if key in schema and key not in keep and (note := render(schema[key]))
    ]


def _enum(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _openai_strict(schema: Mapping[str, Any], *, nullable: bool) -> dict[str, Any]:
    kind = _base_type(schema)
    assert kind is not None  # only called on expressible schemas
    out: dict[str, Any] = {"type": [kind, "null"] if nullable else kind}
    notes = _notes(schema)
    if nullable:
        notes.append(NULL_NOTE)
    if description := _with_notes(schema.get("description"), notes):
        out["description"] = description
    if kind == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required", []))
        out["properties"] = {k: _openai_strict(p, nullable=k not in required) for k, p in props.items()}
        out["required"] = list(props)
        out["additionalProperties"] = False
    elif kind == "array":
        out["items"] = _openai_strict(schema["items"], nullable=False)
    elif (values := _enum(schema)) is not None:
        out["enum"] = values + [None] if nullable and None not in values else values
    return out


def _openai_loose(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as given, with the formats OpenAI refuses even outside strict mode moved into descriptions."""
    out = copy.deepcopy(dict(schema))
    for node in subschemas(out):
        fmt = node.get("format")
        if fmt is not None and fmt not in OPENAI_FORMATS:
            del node["format"]
            node["description"] = _with_notes(node.get("description"), [_NOTES["format"](fmt)])
    return out


def _gemini(schema: Mapping[str, Any]) -> dict[str, Any]:
    kind = _base_type(schema)
    assert kind is not None  # only called on expressible schemas
    out: dict[str, Any] = {"type": kind.upper()}
    keep = frozenset({"format"}) if kind == "string" and schema.get("format") in GEMINI_FORMATS else frozenset()
    notes = _notes(schema, keep)
    values = _enum(schema)
    if values is not None and not (kind == "string" and all(isinstance(v, str) for v in values)):
        notes.append(f"One of: {', '.join(json.dumps(v) for v in values)}.")
        values = None
    if description := _with_notes(schema.get("description"), notes):
        out["description"] = description
    if isinstance(schema.get("type"), list) and "null" in schema["type"]:
        out["nullable"] = True
    if keep:
        out["format"] = schema["format"]
    if kind == "object":
        props = schema["properties"]
        out["properties"] = {k: _gemini(p) for k, p in props.items()}
        if required := [k for k in props if k in set(schema.get("required", []))]:
            out["required"] = required
    elif kind == "array":
        out["items"] = _gemini(schema["items"])
    elif values is not None:
        out["format"] = "enum"
        out["enum"] = values
    return out


def _gemini_json_string(schema: Mapping[str, Any]) -> dict[str, Any]:
    if _base_type(schema) == "object":
        note = 'Send it as a JSON object written as a string, e.g. {"name": "value"}.'
    else:
        note = "Send the value as JSON text in a string."
    return {"type": "STRING", "description": _with_notes(schema.get("description"), [note])}


def _drop_nulls(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_nulls_any(v) for k, v in arguments.items() if v is not None}


def _drop_nulls_any(value: Any) -> Any:
    return _drop_nulls(value) if isinstance(value, Mapping) else value
