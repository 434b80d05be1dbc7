from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flora_mcp.core.results import OUTPUT_SCHEMA
from flora_mcp.integrations._dialects import NULL_NOTE
from flora_mcp.integrations.export import (
    FORMATS,
    OPENAI_DESCRIPTION_LIMIT,
    anthropic_tools,
    export_name,
    export_tools,
    gemini_name,
    gemini_tools,
    mcp_tools,
    name_map,
    openai_tools,
    restore_arguments,
    validate_export,
)

LONG_NAME = "product-photo-relight-with-soft-studio-shadows-2"
assert len(LONG_NAME) == 48


def technique(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "title": name.replace("-", " ").title(),
        "description": f"Runs the {name} technique. Costs $0.05 per run.",
        "inputSchema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
        "outputSchema": OUTPUT_SCHEMA,
        "annotations": {"readOnlyHint": False, "openWorldHint": True},
        "_meta": {"flora/technique_id": f"tech_{name}"},
    }


IMAGE = {"type": "string", "format": "uri", "description": "Input Image (image URL). A public https URL."}
TOOLS: list[dict[str, Any]] = [
    technique(
        "cctv-cam",
        {"input_image": IMAGE, "caption": {"type": "string", "description": "Text burnt into the frame."}},
        ["input_image"],
    ),
    technique(
        "style-blend",
        {
            "images": {"type": "array", "items": IMAGE, "minItems": 1, "description": "Images (image URLs)."},
            "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9"], "description": "Aspect ratio."},
            "prompt": {"type": "string", "description": "What to make.", "maxLength": 2000},
        },
        ["images", "prompt"],
    ),
    technique(LONG_NAME, {"product_image": IMAGE}, ["product_image"]),
    {
        "name": "flora_get_run",
        "title": "Get run",
        "description": "Status and outputs of a run.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string", "description": "The run id."},
                "wait_seconds": {"type": "number", "minimum": 0, "maximum": 50, "description": "How long to wait."},
            },
            "required": ["run_id"],
            "additionalProperties": False,
        },
        "outputSchema": OUTPUT_SCHEMA,
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "flora_run_technique",
        "title": "Run technique",
        "description": "Runs any technique by id.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "technique_id": {"type": "string", "description": "Technique id or slug."},
                "inputs": {
                    "type": "object",
                    "description": "Input values by input id.",
                    "additionalProperties": {
                        "anyOf": [{"type": "string", "format": "uri"}, {"type": "array", "items": {"type": "string"}}]
                    },
                },
            },
            "required": ["technique_id", "inputs"],
            "additionalProperties": False,
        },
    },
    {
        "name": "flora_whoami",
        "title": "Who am I",
        "description": "The account behind the API key.",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
    },
]
BY_NAME = {tool["name"]: tool for tool in TOOLS}

# The vendors' documented name rules, written out independently of the module under test.
NAME_RULES = {
    "mcp": re.compile(r"[A-Za-z0-9_.-]{1,128}"),
    "anthropic": re.compile(r"[a-zA-Z0-9_-]{1,64}"),
    "openai": re.compile(r"[a-zA-Z0-9_-]{1,64}"),
    "gemini": re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"),
}
STRICT_KEYWORDS = {"type", "description", "properties", "required", "additionalProperties", "items", "enum"}
GEMINI_KEYWORDS = {"type", "description", "properties", "required", "items", "enum", "nullable", "format"}


def schemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema node in an exported schema (these have only properties/items/additionalProperties nesting)."""
    yield schema
    for prop in schema.get("properties", {}).values():
        yield from schemas(prop)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from schemas(schema[key])


def exported_name(fmt: str, d: dict[str, Any]) -> str:
    return str(d["function"]["name"] if fmt == "openai" else d["name"])


def openai_by_name(api: str = "chat") -> dict[str, dict[str, Any]]:
    defs = openai_tools(TOOLS, api=api)  # type: ignore[arg-type]
    return {(d["function"] if api == "chat" else d)["name"]: (d["function"] if api == "chat" else d) for d in defs}


# --- every format -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_passes_its_own_validator(fmt: str) -> None:
    assert validate_export(fmt, export_tools(TOOLS, fmt)) == []


def test_openai_responses_shape_passes_the_validator() -> None:
    assert validate_export("openai", openai_tools(TOOLS, api="responses")) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_names_are_valid_and_catalog_names_are_kept(fmt: str) -> None:
    names = [exported_name(fmt, d) for d in export_tools(TOOLS, fmt)]
    assert names == [tool["name"] for tool in TOOLS]
    assert all(NAME_RULES[fmt].fullmatch(name) for name in names)
    assert LONG_NAME in names


@pytest.mark.parametrize("fmt", FORMATS)
def test_input_order_is_kept_and_one_definition_per_tool(fmt: str) -> None:
    assert len(export_tools(TOOLS, fmt)) == len(TOOLS)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        export_tools(TOOLS, "cohere")
    with pytest.raises(ValueError, match="unknown format"):
        validate_export("cohere", [])


@pytest.mark.parametrize(
    ("fmt", "where"),
    [
        pytest.param("mcp", lambda d: d["inputSchema"], id="mcp"),
        pytest.param("anthropic", lambda d: d["input_schema"], id="anthropic"),
        pytest.param("openai", lambda d: d["function"]["parameters"], id="openai-chat"),
    ],
)
def test_exported_parameters_are_valid_draft_2020_12_schemas(fmt: str, where: Any) -> None:
    for d in export_tools(TOOLS, fmt):
        Draft202012Validator.check_schema(where(d))


def test_openai_responses_parameters_are_valid_draft_2020_12_schemas() -> None:
    for d in openai_tools(TOOLS, api="responses"):
        Draft202012Validator.check_schema(d["parameters"])


# --- MCP and Anthropic --------------------------------------------------------------------------------------------


def test_mcp_export_is_a_deep_copy_of_the_input() -> None:
    exported = mcp_tools(TOOLS)
    assert exported == TOOLS
    exported[0]["inputSchema"]["properties"]["caption"]["description"] = "changed"
    assert BY_NAME["cctv-cam"]["inputSchema"]["properties"]["caption"]["description"] == "Text burnt into the frame."


def test_anthropic_tool_has_name_description_and_input_schema_only() -> None:
    tool = anthropic_tools(TOOLS)[0]
    assert tool == {
        "name": "cctv-cam",
        "description": BY_NAME["cctv-cam"]["description"],
        "input_schema": BY_NAME["cctv-cam"]["inputSchema"],
    }
    assert tool["input_schema"] is not BY_NAME["cctv-cam"]["inputSchema"]


def test_description_falls_back_to_the_title() -> None:
    tool = {"name": "t", "title": "The title", "inputSchema": {"type": "object", "properties": {}}}
    assert anthropic_tools([tool])[0]["description"] == "The title"


# --- OpenAI -------------------------------------------------------------------------------------------------------


def test_openai_chat_and_responses_shapes() -> None:
    chat = openai_tools(TOOLS[:1])[0]
    flat = openai_tools(TOOLS[:1], api="responses")[0]
    assert chat["type"] == "function" and set(chat) == {"type", "function"}
    assert set(chat["function"]) == {"name", "description", "parameters", "strict"}
    assert flat == {"type": "function", **chat["function"]}
    with pytest.raises(ValueError, match="OpenAI API"):
        openai_tools(TOOLS, api="assistants")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["cctv-cam", "style-blend", LONG_NAME, "flora_get_run", "flora_whoami"])
def test_openai_strict_tools_meet_every_strict_mode_rule(name: str) -> None:
    fn = openai_by_name()[name]
    assert fn["strict"] is True
    for node in schemas(fn["parameters"]):
        assert set(node) <= STRICT_KEYWORDS
        if "object" in node["type"]:
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])


@pytest.mark.parametrize(
    ("tool", "prop", "expected_type", "notes"),
    [
        pytest.param("cctv-cam", "input_image", "string", ["Format: uri."], id="required-uri"),
        pytest.param("cctv-cam", "caption", ["string", "null"], [NULL_NOTE], id="optional-string"),
        pytest.param("style-blend", "images", "array", ["At least 1 item."], id="array-min-items"),
        pytest.param("style-blend", "prompt", "string", ["At most 2000 characters."], id="max-length"),
        pytest.param("style-blend", "aspect_ratio", ["string", "null"], [NULL_NOTE], id="optional-enum"),
        pytest.param("flora_get_run", "wait_seconds", ["number", "null"], ["Minimum 0.", "Maximum 50."], id="range"),
    ],
)
def test_openai_strict_property_mapping(tool: str, prop: str, expected_type: Any, notes: list[str]) -> None:
    node = openai_by_name()[tool]["parameters"]["properties"][prop]
    assert node["type"] == expected_type
    original = BY_NAME[tool]["inputSchema"]["properties"][prop]["description"]
    assert node["description"].startswith(original)
    for note in notes:
        assert note in node["description"]


def test_openai_strict_moves_constraints_out_of_array_items() -> None:
    items = openai_by_name()["style-blend"]["parameters"]["properties"]["images"]["items"]
    assert items == {"type": "string", "description": IMAGE["description"] + " Format: uri."}


def test_openai_optional_enum_allows_null() -> None:
    node = openai_by_name()["style-blend"]["parameters"]["properties"]["aspect_ratio"]
    assert node["enum"] == ["1:1", "16:9", None]


def test_openai_free_form_object_makes_the_tool_non_strict_with_its_schema_kept() -> None:
    fn = openai_by_name()["flora_run_technique"]
    assert fn["strict"] is False
    params = fn["parameters"]
    original = BY_NAME["flora_run_technique"]["inputSchema"]
    assert params["required"] == original["required"]
    assert params["properties"]["inputs"]["type"] == "object"
    value_schema = params["properties"]["inputs"]["additionalProperties"]["anyOf"][0]
    assert value_schema == {"type": "string", "description": "Format: uri."}  # uri is refused even when not strict
    assert original["properties"]["inputs"]["additionalProperties"]["anyOf"][0]["format"] == "uri"  # input untouched


def test_openai_strict_call_with_nulls_round_trips_to_a_valid_mcp_call() -> None:
    fn = openai_by_name()["style-blend"]
    sent = {"images": ["https://x.test/a.png"], "aspect_ratio": None, "prompt": "a cat"}
    Draft202012Validator(fn["parameters"]).validate(sent)
    restored = restore_arguments("openai", BY_NAME["style-blend"], sent)
    assert restored == {"images": ["https://x.test/a.png"], "prompt": "a cat"}
    Draft202012Validator(BY_NAME["style-blend"]["inputSchema"]).validate(restored)


def test_openai_strict_schema_demands_every_property() -> None:
    fn = openai_by_name()["cctv-cam"]
    assert not Draft202012Validator(fn["parameters"]).is_valid({"input_image": "https://x.test/a.png"})
    assert Draft202012Validator(fn["parameters"]).is_valid({"input_image": "https://x.test/a.png", "caption": None})


def test_openai_long_description_is_cut_to_the_limit() -> None:
    tool = {**TOOLS[0], "description": "x" * 3000}
    fn = openai_tools([tool])[0]["function"]
    assert len(fn["description"]) == OPENAI_DESCRIPTION_LIMIT
    assert fn["description"].endswith("...")


def test_openai_tool_without_inputs_is_a_closed_empty_object() -> None:
    params = openai_by_name()["flora_whoami"]["parameters"]
    assert params == {"type": "object", "properties": {}, "required": [], "additionalProperties": False}


# --- Gemini -------------------------------------------------------------------------------------------------------


def gemini_by_name() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in gemini_tools(TOOLS)}


def test_gemini_schemas_use_only_the_openapi_subset() -> None:
    for declaration in gemini_tools(TOOLS):
        assert set(declaration) <= {"name", "description", "parameters"}
        if "parameters" not in declaration:
            continue
        for node in schemas(declaration["parameters"]):
            assert set(node) <= GEMINI_KEYWORDS, node
            assert "additionalProperties" not in node
            assert node["type"] in {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
            assert node.get("format") in (None, "enum", "date-time")


def test_gemini_technique_tool_mapping() -> None:
    params = gemini_by_name()["style-blend"]["parameters"]
    assert params["required"] == ["images", "prompt"]
    images = params["properties"]["images"]
    assert images["type"] == "ARRAY" and images["items"]["type"] == "STRING"
    assert "At least 1 item." in images["description"]
    assert "Format: uri." in images["items"]["description"]
    assert params["properties"]["aspect_ratio"] == {
        "type": "STRING",
        "description": "Aspect ratio.",
        "format": "enum",
        "enum": ["1:1", "16:9"],
    }


def test_gemini_free_form_object_becomes_a_json_string() -> None:
    inputs = gemini_by_name()["flora_run_technique"]["parameters"]["properties"]["inputs"]
    assert inputs["type"] == "STRING"
    assert inputs["description"].startswith("Input values by input id.")
    assert "JSON object" in inputs["description"]


def test_gemini_tool_without_inputs_has_no_parameters() -> None:
    assert gemini_by_name()["flora_whoami"] == {
        "name": "flora_whoami",
        "description": "The account behind the API key.",
    }


def test_gemini_json_string_inputs_round_trip_to_a_valid_mcp_call() -> None:
    sent = {"technique_id": "tech_1", "inputs": '{"input_image": "https://x.test/a.png", "tags": ["a", "b"]}'}
    restored = restore_arguments("gemini", BY_NAME["flora_run_technique"], sent)
    assert restored == {"technique_id": "tech_1", "inputs": {"input_image": "https://x.test/a.png", "tags": ["a", "b"]}}
    Draft202012Validator(BY_NAME["flora_run_technique"]["inputSchema"]).validate(restored)


def test_gemini_bad_json_string_names_the_input() -> None:
    with pytest.raises(ValueError, match="inputs: not valid JSON"):
        restore_arguments("gemini", BY_NAME["flora_run_technique"], {"technique_id": "t", "inputs": "{oops"})


def test_gemini_object_sent_as_object_is_accepted_as_is() -> None:
    restored = restore_arguments("gemini", BY_NAME["flora_run_technique"], {"technique_id": "t", "inputs": {"a": "b"}})
    assert restored["inputs"] == {"a": "b"}


# --- names --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "expected"),
    [
        pytest.param("gemini", "cctv-cam", "cctv-cam", id="gemini-keeps-dashes"),
        pytest.param("gemini", "flora.get_run", "flora.get_run", id="gemini-keeps-dots"),
        pytest.param("gemini", "3d-model", "_3d-model", id="gemini-needs-letter-first"),
        pytest.param("gemini", "-x", "_-x", id="gemini-dash-first"),
        pytest.param("gemini", "a b/c", "a_b_c", id="gemini-bad-chars"),
        pytest.param("openai", "flora.get_run", "flora_get_run", id="openai-no-dots"),
        pytest.param("anthropic", "3d-model", "3d-model", id="anthropic-digit-first-ok"),
        pytest.param("anthropic", "tool:x", "tool_x", id="anthropic-no-colons"),
        pytest.param("mcp", "flora.get run", "flora.get run", id="mcp-as-given"),
    ],
)
def test_export_name(fmt: str, name: str, expected: str) -> None:
    assert export_name(name, fmt) == expected


def test_gemini_name_is_export_name_for_gemini() -> None:
    assert gemini_name("3d-model") == export_name("3d-model", "gemini") == "_3d-model"


@pytest.mark.parametrize("fmt", ["anthropic", "openai", "gemini"])
def test_over_long_names_are_cut_and_stay_distinct(fmt: str) -> None:
    a, b = "x" * 70 + "a", "x" * 70 + "b"
    assert len(export_name(a, fmt)) == 64
    assert export_name(a, fmt) != export_name(b, fmt)
    assert NAME_RULES[fmt].fullmatch(export_name(a, fmt))


def test_name_map_resolves_rewritten_names_back() -> None:
    tools = [{**TOOLS[3], "name": "flora.get_run"}, TOOLS[0]]
    assert name_map(tools, "openai") == {"flora_get_run": "flora.get_run", "cctv-cam": "cctv-cam"}
    assert openai_tools(tools)[0]["function"]["name"] == "flora_get_run"


def test_names_that_collide_after_rewriting_are_refused() -> None:
    tools = [{**TOOLS[0], "name": "a.b"}, {**TOOLS[0], "name": "a_b"}]
    with pytest.raises(ValueError, match="both export to openai"):
        openai_tools(tools)
    assert gemini_tools(tools)  # Gemini keeps both as they are


# --- the validator catches what vendors refuse --------------------------------------------------------------------


def _openai_def() -> dict[str, Any]:
    return copy.deepcopy(openai_tools(TOOLS[:1])[0])


def _gemini_def() -> dict[str, Any]:
    return copy.deepcopy(gemini_tools(TOOLS[:1])[0])


def _set(d: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node = d
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("fmt", "bad", "problem"),
    [
        pytest.param(
            "anthropic", {"name": "a.b", "input_schema": {"type": "object"}}, "not valid", id="anthropic-name"
        ),
        pytest.param("anthropic", {"name": "a", "input_schema": {"type": "array"}}, "type object", id="anthropic-root"),
        pytest.param(
            "mcp", {"name": "a", "inputSchema": {"type": "object", "required": "x"}}, "Draft 2020-12", id="mcp-schema"
        ),
        pytest.param(
            "openai",
            _set(_openai_def(), ["function", "parameters", "additionalProperties"], None),
            "additionalProperties must be false",
            id="openai-open-object",
        ),
        pytest.param(
            "openai",
            _set(_openai_def(), ["function", "parameters", "required"], ["input_image"]),
            "every property",
            id="openai-optional-property",
        ),
        pytest.param(
            "openai",
            _set(_openai_def(), ["function", "parameters", "properties", "input_image", "format"], "uri"),
            "format 'uri'",
            id="openai-uri-format",
        ),
        pytest.param(
            "openai",
            _set(_openai_def(), ["function", "parameters", "properties", "input_image", "minLength"], 1),
            "not allowed in strict mode",
            id="openai-strict-keyword",
        ),
        pytest.param("openai", _set(_openai_def(), ["function", "strict"], None), "strict must be set", id="no-strict"),
        pytest.param(
            "openai", _set(_openai_def(), ["function", "description"], "x" * 1025), "longer than", id="openai-desc"
        ),
        pytest.param(
            "gemini",
            _set(_gemini_def(), ["parameters", "additionalProperties"], False),
            "'additionalProperties' not in Gemini",
            id="gemini-additional-properties",
        ),
        pytest.param(
            "gemini", _set(_gemini_def(), ["parameters", "type"], "object"), "type OBJECT", id="gemini-lowercase"
        ),
        pytest.param(
            "gemini",
            _set(_gemini_def(), ["parameters", "properties", "input_image", "format"], "uri"),
            "format 'uri'",
            id="gemini-uri-format",
        ),
        pytest.param(
            "gemini",
            _set(_gemini_def(), ["parameters", "properties", "input_image", "anyOf"], []),
            "'anyOf' not in Gemini",
            id="gemini-any-of",
        ),
        pytest.param(
            "gemini",
            {"name": "t", "parameters": {"type": "OBJECT", "properties": {}}},
            "non-empty properties",
            id="gemini-empty-object",
        ),
        pytest.param("gemini", {"name": "1t"}, "not valid for gemini", id="gemini-name"),
    ],
)
def test_validator_reports_what_the_vendor_refuses(fmt: str, bad: dict[str, Any], problem: str) -> None:
    problems = validate_export(fmt, [bad])
    assert any(problem in p for p in problems), problems


def test_validator_reports_duplicate_names() -> None:
    defs = anthropic_tools(TOOLS[:1]) * 2
    assert validate_export("anthropic", defs) == ["cctv-cam: name used twice"]


# --- restoring arguments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_nulls_mean_leave_it_out_in_every_format(fmt: str) -> None:
    sent = {"input_image": "https://x.test/a.png", "caption": None, "nested": {"a": None, "b": 1}}
    assert restore_arguments(fmt, BY_NAME["cctv-cam"], sent) == {
        "input_image": "https://x.test/a.png",
        "nested": {"b": 1},
    }


def test_restore_arguments_does_not_change_its_input() -> None:
    sent = {"input_image": "https://x.test/a.png", "caption": None}
    restore_arguments("openai", None, sent)
    assert sent == {"input_image": "https://x.test/a.png", "caption": None}
