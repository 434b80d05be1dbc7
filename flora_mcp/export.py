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
letters, digits, `_` and `-`) are valid everywhere and stay as they are. `validate_export` lists what a vendor would
refuse in exported definitions; `restore_arguments` turns a vendor's call arguments back into the MCP tool's arguments.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

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

FORMATS = ("mcp", "anthropic", "openai", "gemini")
OPENAI_DESCRIPTION_LIMIT = 1024
NULL_NOTE = "Optional: null leaves it out."

# (allowed characters, maximum length, must start with a letter or `_`), from each vendor's documented name rule.
_NAME_RULES: dict[str, tuple[str, int, bool]] = {
    "mcp": ("A-Za-z0-9_.-", 128, False),
    "anthropic": ("A-Za-z0-9_-", 64, False),
    "openai": ("A-Za-z0-9_-", 64, False),
    "gemini": ("A-Za-z0-9_.-", 64, True),
}
_PRIMITIVES = frozenset({"string", "number", "integer", "boolean"})
_COMPOSITION = frozenset(
    "$ref $defs definitions anyOf oneOf allOf not if then else patternProperties prefixItems dependentSchemas"
    " propertyNames unevaluatedProperties unevaluatedItems contains".split()
)
# Formats OpenAI accepts (Structured Outputs guide); anything else, `uri` included, is a 400 in strict mode.
OPENAI_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
GEMINI_FORMATS = frozenset({"enum", "date-time"})
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
    chars, limit, letter_first = _rule(fmt)
    if fmt == "mcp" or _name_valid(name, fmt):
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


def validate_export(fmt: str, defs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the vendor would refuse in exported definitions (used by tests and by pipelines as a pre-flight check).

    Args:
        fmt: One of `FORMATS`.
        defs: Definitions as returned by `export_tools` (for OpenAI, either API shape).

    Returns:
        One line per problem, prefixed with the tool's name; empty when all is well.
    """
    _rule(fmt)
    problems: list[str] = []
    seen: set[str] = set()
    for i, d in enumerate(defs):
        fn = d.get("function", d) if fmt == "openai" else d
        name = fn.get("name")
        label = f"{name or f'#{i}'}"
        if not isinstance(name, str) or not _name_valid(name, fmt):
            problems.append(f"{label}: name {name!r} is not valid for {fmt}")
        elif name in seen:
            problems.append(f"{label}: name used twice")
        seen.add(str(name))
        problems.extend(f"{label}: {p}" for p in _CHECKS[fmt](d))
    return problems


# --- conversion helpers -------------------------------------------------------------------------------------------


def _rule(fmt: str) -> tuple[str, int, bool]:
    try:
        return _NAME_RULES[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}") from None


def _name_valid(name: str, fmt: str) -> bool:
    chars, limit, letter_first = _rule(fmt)
    first = "[A-Za-z_]" if letter_first else f"[{chars}]"
    return re.fullmatch(f"{first}[{chars}]{{0,{limit - 1}}}", name) is not None


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
    for node in _subschemas(out):
        fmt = node.get("format")
        if fmt is not None and fmt not in OPENAI_FORMATS:
            del node["format"]
            node["description"] = _with_notes(node.get("description"), [_NOTES["format"](fmt)])
    return out


def _subschemas(schema: Any) -> list[dict[str, Any]]:
    """Every schema object in a schema, itself first (keyword-aware: a property named `format` is not a keyword)."""
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for key in ("properties", "patternProperties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            for sub in schema[key].values():
                found += _subschemas(sub)
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"):
        found += _subschemas(schema.get(key))
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key) or []:
            found += _subschemas(sub)
    return found


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
    for node in _subschemas(params):
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
