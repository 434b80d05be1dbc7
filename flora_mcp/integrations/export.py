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
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from flora_mcp.integrations._dialects import (
    expressible,
    gemini_json_string,
    gemini_schema,
    openai_loose_schema,
    openai_strict_schema,
    strict_root,
)
from flora_mcp.integrations.vendor_rules import (
    FORMATS,
    OPENAI_DESCRIPTION_LIMIT,
    name_rule,
    name_valid,
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
        strict = strict_root(schema)
        params = openai_strict_schema(schema, nullable=False) if strict else openai_loose_schema(schema)
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
                    key: gemini_schema(prop) if expressible(prop) else gemini_json_string(prop)
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
            if isinstance(value, str) and not expressible(prop):
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



def _drop_nulls(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_nulls_any(v) for k, v in arguments.items() if v is not None}


def _drop_nulls_any(value: Any) -> Any:
    return _drop_nulls(value) if isinstance(value, Mapping) else value
