"""One tool call from an LLM API's response in, the tool-result block for the next request out.

A pipeline's loop becomes a few lines::

    for block in message.content:
        if block.type == "tool_use":
            results.append(await anthropic_tool_result(toolkit, block))
    messages.append({"role": "user", "content": results})

Each helper resolves the exported tool name back to the catalog's (pass `tools=` when `export_name` rewrote any, and
always for Gemini, whose JSON-string inputs need decoding), drops the nulls OpenAI strict mode sends for inputs left
out, calls the `ToolCaller`, and renders its `ToolResult`. Bad input from the model (unparsable JSON, arguments that are
not an object, a failing executor) becomes an error result the model can read and act on, never an exception; only a
block that is not a tool call at all (a pipeline bug) raises `ValueError`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from flora_mcp.core.results import ToolResult
from flora_mcp.core.translator import from_failure, refusal
from flora_mcp.integrations.export import name_map, restore_arguments

__all__ = [
    "AsyncProgressCallback",
    "ProgressCallback",
    "ToolCaller",
    "anthropic_tool_result",
    "gemini_tool_result",
    "openai_tool_result",
]

ProgressCallback = Callable[[float, str], Awaitable[None] | None]
"""What a pipeline may pass for progress (percent 0-100, message): a plain or an async function."""

AsyncProgressCallback = Callable[[float, str], Awaitable[None]]
"""What a `ToolCaller` is given for progress."""


class ToolCaller(Protocol):
    """Anything that runs a catalog tool by name; `flora_mcp.Toolkit` is one."""

    # The executor is handed an async callback only (the adapters wrap a plain one), which is what Toolkit awaits.
    async def call(
        self, name: str, arguments: Mapping[str, Any], *, progress: AsyncProgressCallback | None = None
    ) -> ToolResult:
        """Run the tool `name` with `arguments`; a failed call is a result, not an exception."""
        ...


async def anthropic_tool_result(
    caller: ToolCaller,
    block: Any,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run one Anthropic `tool_use` block and return its `tool_result` block.

    Args:
        caller: The executor (a `Toolkit`).
        block: The `tool_use` content block, as a dict or an SDK object with `.id`, `.name`, `.input`.
        tools: The MCP tool definitions that were exported, to map rewritten names back; not needed for catalog names.
        progress: Called with (percent 0-100, message) while the call waits; plain or async.

    Returns:
        `{"type": "tool_result", "tool_use_id", "content": [summary text, structured JSON text], "is_error"}`, for the
        next user message.

    Raises:
        ValueError: `block` is not a `tool_use` block.
    """
    kind = _get(block, "type")
    block_id = _get(block, "id")
    if kind not in (None, "tool_use") or not isinstance(block_id, str):
        raise ValueError(f"not an Anthropic tool_use block: type={kind!r}, id={block_id!r}")
    result = await _run(caller, "anthropic", str(_get(block, "name")), _get(block, "input"), tools, progress)
    return {
        "type": "tool_result",
        "tool_use_id": block_id,
        "content": [
            {"type": "text", "text": result.summary()},
            {"type": "text", "text": _json(result)},
        ],
        "is_error": result.is_error,
    }


async def openai_tool_result(
    caller: ToolCaller,
    tool_call: Any,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run one OpenAI function call and return the item that answers it.

    Args:
        caller: The executor (a `Toolkit`).
        tool_call: A Chat Completions `message.tool_calls[i]` (`{"id", "type": "function", "function": {"name",
            "arguments"}}`) or a Responses API `function_call` output item (`{"type": "function_call", "call_id",
            "name", "arguments"}`), as a dict or an SDK object.
        tools: The MCP tool definitions that were exported, to map rewritten names back; not needed for catalog names.
        progress: Called with (percent 0-100, message) while the call waits; plain or async.

    Returns:
        Chat Completions: `{"role": "tool", "tool_call_id", "content"}`; Responses API:
        `{"type": "function_call_output", "call_id", "output"}`. The content is the result's structured JSON.

    Raises:
        ValueError: `tool_call` is neither kind of function call.
    """
    kind = _get(tool_call, "type")
    if kind == "function_call":
        call_id, function = _get(tool_call, "call_id"), tool_call
    elif kind in (None, "function") and _get(tool_call, "function") is not None:
        call_id, function = _get(tool_call, "id"), _get(tool_call, "function")
    else:
        raise ValueError(f"not an OpenAI function call: type={kind!r}")
    if not isinstance(call_id, str):
        raise ValueError(f"OpenAI function call without an id: {call_id!r}")
    name = str(_get(function, "name"))
    result = await _run(caller, "openai", name, _get(function, "arguments"), tools, progress)
    if kind == "function_call":
        return {"type": "function_call_output", "call_id": call_id, "output": _json(result)}
    return {"role": "tool", "tool_call_id": call_id, "content": _json(result)}


async def gemini_tool_result(
    caller: ToolCaller,
    function_call: Any,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
    casing: Literal["snake", "camel"] = "snake",
) -> dict[str, Any]:
    """Run one Gemini function call and return the part that answers it.

    Args:
        caller: The executor (a `Toolkit`).
        function_call: The `functionCall` (`{"name", "args", "id"?}`), or the part holding it, as a dict or an SDK
            object.
        tools: The MCP tool definitions that were exported. Pass them: they map rewritten names back and say which
            inputs were sent as JSON strings (free-form objects such as `flora_run_technique`'s `inputs`).
        progress: Called with (percent 0-100, message) while the call waits; plain or async.
        casing: `snake` gives `{"function_response": ...}` (google-genai's field names; the REST API accepts them too,
            as proto JSON takes both spellings), `camel` gives `{"functionResponse": ...}` as in the REST docs.

    Returns:
        A part `{"function_response": {"name", "response", "id"?}}`; `response` holds the structured result under
        `output`, or under `error` when the call failed, the keys Gemini's docs assign to those cases.
    """
    for key in ("function_call", "functionCall"):
        if (inner := _get(function_call, key)) is not None:
            function_call = inner
    name = _get(function_call, "name")
    if not isinstance(name, str):
        raise ValueError(f"not a Gemini function call: name={name!r}")
    args = _get(function_call, "args")
    result = await _run(caller, "gemini", name, {} if args is None else args, tools, progress)
    response: dict[str, Any] = {
        "name": name,
        "response": {"error" if result.is_error else "output": result.structured()},
    }
    if (call_id := _get(function_call, "id")) is not None:
        response["id"] = call_id
    return {"function_response" if casing == "snake" else "functionResponse": response}


async def _run(
    caller: ToolCaller,
    fmt: str,
    name: str,
    arguments: Any,
    tools: Sequence[Mapping[str, Any]] | None,
    progress: ProgressCallback | None,
) -> ToolResult:
    """Resolve the name, parse and restore the arguments, call; whatever goes wrong becomes an error result."""
    tool: Mapping[str, Any] | None = None
    if tools is not None:
        original = name_map(tools, fmt).get(name, name)
        tool = next((t for t in tools if t["name"] == original), None)
        name = original
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return _invalid(name, f"the arguments are not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(arguments, Mapping):
        return _invalid(name, f"the arguments must be a JSON object, not {_json_type(arguments)}")
    try:
        restored = restore_arguments(fmt, tool, arguments)
    except ValueError as exc:
        return _invalid(name, str(exc))
    try:
        return await caller.call(name, restored, progress=_as_async(progress))
    except Exception as exc:
        # The model's loop must go on: an executor that raises still answers the call, as an error it can report.
        # Such an executor cannot say how far it got (a Toolkit never raises), hence no phase.
        return from_failure(name, exc, None)


def _as_async(progress: ProgressCallback | None) -> AsyncProgressCallback | None:
    if progress is None:
        return None

    async def forward(percent: float, message: str) -> None:
        outcome = progress(percent, message)
        if outcome is not None:
            await outcome

    return forward


def _invalid(name: str, message: str) -> ToolResult:
    return refusal(name, None, message,
                   next_step="Call the tool again with the arguments as one JSON object matching its schema.")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list | tuple) else type(value).__name__


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _json(result: ToolResult) -> str:
    return json.dumps(result.structured(), ensure_ascii=False)
