from __future__ import annotations

import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flora_mcp.core.results import OutputFile, TechniqueRef, ToolResult
from flora_mcp.integrations.adapters import (
    AsyncProgressCallback,
    ToolCaller,
    anthropic_tool_result,
    gemini_tool_result,
    openai_tool_result,
)
from flora_mcp.integrations.export import gemini_tools, openai_tools

CCTV: dict[str, Any] = {
    "name": "cctv-cam",
    "title": "CCTV Cam",
    "description": "Turns a photo into a CCTV still. Costs $0.05 per run.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "input_image": {"type": "string", "format": "uri", "description": "Input Image (image URL)."},
            "caption": {"type": "string", "description": "Text burnt into the frame."},
        },
        "required": ["input_image"],
        "additionalProperties": False,
    },
}
RUN_TECHNIQUE: dict[str, Any] = {
    "name": "flora_run_technique",
    "description": "Runs any technique by id.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "technique_id": {"type": "string"},
            "inputs": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["technique_id", "inputs"],
        "additionalProperties": False,
    },
}
TOOLS = [CCTV, RUN_TECHNIQUE]
IMAGE = "https://x.test/in.png"

COMPLETED = ToolResult(
    tool="cctv-cam",
    status="completed",
    run_id="run_1",
    technique=TechniqueRef(technique_id="tech_1", slug="cctv-cam", name="CCTV Cam"),
    outputs=[OutputFile(output_id="out_1", type="image", url="https://cdn.test/out.png")],
    charged_cost=0.05,
    next_step="Show the output URL to the user.",
)
FAILED = ToolResult(tool="cctv-cam", status="failed", run_id="run_2", error_code="nsfw", error_message="Refused.")


class RecordingCaller:
    """A `ToolCaller` that records each call and answers with a fixed result (or raises)."""

    def __init__(self, result: ToolResult = COMPLETED, error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.calls: list[tuple[str, dict[str, Any], AsyncProgressCallback | None]] = []

    async def call(
        self, name: str, arguments: Mapping[str, Any], *, progress: AsyncProgressCallback | None = None
    ) -> ToolResult:
        self.calls.append((name, dict(arguments), progress))
        if progress is not None:
            await progress(50.0, "running")
        if self.error is not None:
            raise self.error
        return self.result


def caller(**kwargs: Any) -> RecordingCaller:
    fake = RecordingCaller(**kwargs)
    _: ToolCaller = fake  # the fake satisfies the protocol the real Toolkit implements
    return fake


# --- Anthropic ----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_anthropic_tool_use_becomes_a_tool_result_with_summary_and_json() -> None:
    fake = caller()
    block = {"type": "tool_use", "id": "toolu_1", "name": "cctv-cam", "input": {"input_image": IMAGE}}
    out = await anthropic_tool_result(fake, block)
    assert fake.calls == [("cctv-cam", {"input_image": IMAGE}, None)]
    assert out["type"] == "tool_result"
    assert out["tool_use_id"] == "toolu_1"
    assert out["is_error"] is False
    summary, structured = out["content"]
    assert summary == {"type": "text", "text": COMPLETED.summary()}
    assert "https://cdn.test/out.png" in summary["text"]
    assert json.loads(structured["text"]) == COMPLETED.structured()


@pytest.mark.anyio
async def test_anthropic_sdk_object_block_and_null_inputs_dropped() -> None:
    fake = caller()
    block = SimpleNamespace(
        type="tool_use", id="toolu_2", name="cctv-cam", input={"input_image": IMAGE, "caption": None}
    )
    out = await anthropic_tool_result(fake, block)
    assert fake.calls[0][1] == {"input_image": IMAGE}
    assert out["tool_use_id"] == "toolu_2"


@pytest.mark.anyio
async def test_anthropic_failed_run_is_an_error_result() -> None:
    out = await anthropic_tool_result(caller(result=FAILED), {"id": "toolu_3", "name": "cctv-cam", "input": {}})
    assert out["is_error"] is True
    assert "nsfw" in out["content"][0]["text"]


@pytest.mark.anyio
async def test_anthropic_input_that_is_not_an_object_is_an_error_result_without_a_call() -> None:
    fake = caller()
    out = await anthropic_tool_result(fake, {"type": "tool_use", "id": "toolu_4", "name": "cctv-cam", "input": [1]})
    assert fake.calls == []
    assert out["is_error"] is True
    assert json.loads(out["content"][1]["text"])["error_code"] == "invalid_arguments"
    assert "not an array" in out["content"][0]["text"]


@pytest.mark.anyio
async def test_anthropic_block_that_is_not_a_tool_use_is_a_pipeline_bug() -> None:
    with pytest.raises(ValueError, match="not an Anthropic tool_use block"):
        await anthropic_tool_result(caller(), {"type": "text", "text": "hi"})


# --- OpenAI -------------------------------------------------------------------------------------------------------


def chat_call(arguments: str, name: str = "cctv-cam") -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}


def responses_call(arguments: str, name: str = "cctv-cam") -> dict[str, Any]:
    return {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": name, "arguments": arguments}


@pytest.mark.anyio
async def test_openai_chat_tool_call_drops_strict_mode_nulls() -> None:
    fake = caller()
    out = await openai_tool_result(fake, chat_call(json.dumps({"input_image": IMAGE, "caption": None})))
    assert fake.calls == [("cctv-cam", {"input_image": IMAGE}, None)]
    assert out == {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(COMPLETED.structured())}


@pytest.mark.anyio
async def test_openai_responses_function_call_becomes_function_call_output() -> None:
    fake = caller()
    out = await openai_tool_result(fake, responses_call(json.dumps({"input_image": IMAGE})))
    assert fake.calls[0][:2] == ("cctv-cam", {"input_image": IMAGE})
    assert out["type"] == "function_call_output"
    assert out["call_id"] == "call_9"
    assert json.loads(out["output"]) == COMPLETED.structured()


@pytest.mark.anyio
async def test_openai_sdk_objects_are_read_by_attribute() -> None:
    fake = caller()
    chat = SimpleNamespace(
        id="call_2", type="function", function=SimpleNamespace(name="cctv-cam", arguments='{"input_image": "u"}')
    )
    flat = SimpleNamespace(type="function_call", call_id="call_3", name="cctv-cam", arguments='{"input_image": "u"}')
    assert (await openai_tool_result(fake, chat))["tool_call_id"] == "call_2"
    assert (await openai_tool_result(fake, flat))["call_id"] == "call_3"
    assert [c[1] for c in fake.calls] == [{"input_image": "u"}, {"input_image": "u"}]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param('{"input_image": ', "not valid JSON", id="truncated-json"),
        pytest.param("{'input_image': 'u'}", "not valid JSON", id="python-repr"),
        pytest.param('["u"]', "must be a JSON object, not an array", id="array"),
        pytest.param('"u"', "must be a JSON object, not a string", id="string"),
        pytest.param("null", "must be a JSON object, not null", id="null"),
    ],
)
@pytest.mark.parametrize("shape", [chat_call, responses_call], ids=["chat", "responses"])
@pytest.mark.anyio
async def test_openai_bad_arguments_become_an_error_result(arguments: str, message: str, shape: Any) -> None:
    fake = caller()
    out = await openai_tool_result(fake, shape(arguments))
    assert fake.calls == []
    payload = json.loads(out.get("content") or out["output"])
    assert payload["status"] == "invalid"
    assert payload["error_code"] == "invalid_arguments"
    assert message in payload["error_message"]
    assert payload["next_step"]


@pytest.mark.anyio
async def test_openai_empty_arguments_mean_no_arguments() -> None:
    fake = caller()
    await openai_tool_result(fake, chat_call(""))
    assert fake.calls[0][1] == {}


@pytest.mark.anyio
async def test_openai_rewritten_name_resolves_back_with_tools() -> None:
    fake = caller()
    tools = [{**CCTV, "name": "flora.cctv"}]
    exported = openai_tools(tools)[0]["function"]["name"]
    assert exported == "flora_cctv"
    await openai_tool_result(fake, chat_call('{"input_image": "u"}', name=exported), tools=tools)
    assert fake.calls[0][0] == "flora.cctv"


@pytest.mark.anyio
async def test_openai_item_that_is_not_a_function_call_is_a_pipeline_bug() -> None:
    with pytest.raises(ValueError, match="not an OpenAI function call"):
        await openai_tool_result(caller(), {"type": "message", "content": "hi"})


@pytest.mark.anyio
async def test_openai_strict_round_trip_from_exported_schema_to_a_valid_mcp_call() -> None:
    fake = caller()
    fn = openai_tools([CCTV])[0]["function"]
    sent = {"input_image": IMAGE, "caption": None}
    Draft202012Validator(fn["parameters"]).validate(sent)  # what strict mode makes the model send
    await openai_tool_result(fake, chat_call(json.dumps(sent), name=fn["name"]), tools=[CCTV])
    Draft202012Validator(CCTV["inputSchema"]).validate(fake.calls[0][1])


# --- Gemini -------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_gemini_function_call_becomes_a_function_response_with_output() -> None:
    fake = caller()
    out = await gemini_tool_result(fake, {"name": "cctv-cam", "args": {"input_image": IMAGE}})
    assert fake.calls[0][:2] == ("cctv-cam", {"input_image": IMAGE})
    assert out == {"function_response": {"name": "cctv-cam", "response": {"output": COMPLETED.structured()}}}


@pytest.mark.anyio
async def test_gemini_failure_goes_under_error_and_camel_case_is_available() -> None:
    out = await gemini_tool_result(
        caller(result=FAILED), {"id": "fc_7", "name": "cctv-cam", "args": {}}, casing="camel"
    )
    assert out == {"functionResponse": {"name": "cctv-cam", "response": {"error": FAILED.structured()}, "id": "fc_7"}}


@pytest.mark.anyio
async def test_gemini_json_string_inputs_are_decoded_with_tools() -> None:
    fake = caller()
    declaration = {d["name"]: d for d in gemini_tools(TOOLS)}["flora_run_technique"]
    assert declaration["parameters"]["properties"]["inputs"]["type"] == "STRING"
    call = {"name": "flora_run_technique", "args": {"technique_id": "tech_1", "inputs": '{"input_image": "u"}'}}
    await gemini_tool_result(fake, call, tools=TOOLS)
    assert fake.calls[0][1] == {"technique_id": "tech_1", "inputs": {"input_image": "u"}}
    Draft202012Validator(RUN_TECHNIQUE["inputSchema"]).validate(fake.calls[0][1])


@pytest.mark.anyio
async def test_gemini_bad_json_string_is_an_error_response_naming_the_input() -> None:
    fake = caller()
    call = {"name": "flora_run_technique", "args": {"technique_id": "t", "inputs": "{input_image: u}"}}
    out = await gemini_tool_result(fake, call, tools=TOOLS)
    assert fake.calls == []
    error = out["function_response"]["response"]["error"]
    assert error["status"] == "invalid"
    assert error["error_message"].startswith("inputs: not valid JSON")


@pytest.mark.anyio
async def test_gemini_rewritten_name_resolves_back_and_answers_under_the_called_name() -> None:
    fake = caller()
    tools = [{**CCTV, "name": "3d-cam"}]
    exported = gemini_tools(tools)[0]["name"]
    assert exported == "_3d-cam"
    out = await gemini_tool_result(fake, {"name": exported, "args": {"input_image": "u"}}, tools=tools)
    assert fake.calls[0][0] == "3d-cam"
    assert out["function_response"]["name"] == exported


@pytest.mark.anyio
async def test_gemini_sdk_part_with_function_call_and_no_args() -> None:
    fake = caller()
    part = SimpleNamespace(function_call=SimpleNamespace(name="flora_whoami", args=None, id=None))
    out = await gemini_tool_result(fake, part)
    assert fake.calls[0][:2] == ("flora_whoami", {})
    assert "id" not in out["function_response"]


# --- every adapter ------------------------------------------------------------------------------------------------


async def _anthropic(fake: RecordingCaller, **kw: Any) -> Any:
    return await anthropic_tool_result(fake, {"id": "t", "name": "cctv-cam", "input": {"input_image": "u"}}, **kw)


async def _openai(fake: RecordingCaller, **kw: Any) -> Any:
    return await openai_tool_result(fake, chat_call('{"input_image": "u"}'), **kw)


async def _gemini(fake: RecordingCaller, **kw: Any) -> Any:
    return await gemini_tool_result(fake, {"name": "cctv-cam", "args": {"input_image": "u"}}, **kw)


ADAPTERS = [
    pytest.param(_anthropic, id="anthropic"),
    pytest.param(_openai, id="openai"),
    pytest.param(_gemini, id="gemini"),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.anyio
async def test_an_executor_that_raises_still_answers_the_call(adapter: Any, caplog: pytest.LogCaptureFixture) -> None:
    out = await adapter(caller(error=RuntimeError("connection reset")))
    text = json.dumps(out)
    assert "tool_error" in text
    assert "RuntimeError: connection reset" in text
    assert "tool cctv-cam raised" in caplog.text


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.anyio
async def test_async_progress_reaches_the_pipeline(adapter: Any) -> None:
    seen: list[tuple[float, str]] = []

    async def progress(percent: float, message: str) -> None:
        seen.append((percent, message))

    await adapter(caller(), progress=progress)
    assert seen == [(50.0, "running")]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.anyio
async def test_plain_progress_function_is_accepted_too(adapter: Any) -> None:
    seen: list[tuple[float, str]] = []
    await adapter(caller(), progress=lambda percent, message: seen.append((percent, message)))
    assert seen == [(50.0, "running")]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.anyio
async def test_results_are_json_serialisable(adapter: Any) -> None:
    json.dumps(await adapter(caller()))
