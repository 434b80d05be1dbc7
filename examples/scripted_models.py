"""Scripted stand-ins for Claude and for an OpenAI chat model, so that the examples run offline.

Each has the call shape of the real SDK client (`client.messages.create(...)`, `client.chat.completions.create(...)`)
and answers with the JSON the real API returns, wrapped for attribute access as the SDKs' response objects are. It
does not think: it reads the conversation and follows one plan with the real tool results it is handed - encode the
first URL of the user's message as a QR code, put the QR code through the CCTV camera, then report the URL and cost.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

__all__ = ["ScriptedClaude", "ScriptedOpenAI"]

QR_TOOL = "qr-code-generator"
CCTV_TOOL = "cctv-cam"


def plan(prompt: str, results: Sequence[Mapping[str, Any]], tool_names: set[str]) -> tuple[str, Any]:
    """The next step: ("call", (tool name, arguments)) or ("answer", text).

    Args:
        prompt: The user's message.
        results: The structured results of the tool calls so far, oldest first.
        tool_names: The tools the model was offered.
    """
    missing = {QR_TOOL, CCTV_TOOL} - tool_names
    if missing:
        return "answer", f"I cannot do that: I was not given the tools {', '.join(sorted(missing))}."
    if not results:
        url = re.search(r"https?://\S+", prompt)
        return "call", (QR_TOOL, {"content": url.group(0).rstrip(".,") if url else prompt})
    last = results[-1]
    if last["status"] != "completed":
        return "answer", f"The call failed ({last['status']}): {last.get('error_message', 'no details')}"
    if last["technique"]["slug"] == QR_TOOL:
        return "call", (CCTV_TOOL, {"input_image": last["outputs"][0]["url"]})
    costs = {r["technique"]["slug"]: r.get("charged_cost") or 0.0 for r in results}
    itemized = ", ".join(f"{slug} ${cost:.2f}" for slug, cost in costs.items())
    url = last["outputs"][0]["url"]
    return "answer", f"Done: the QR code, as a CCTV still: {url}\nCost: ${sum(costs.values()):.2f} ({itemized})"


class ScriptedClaude:
    """Stands in for `anthropic.AsyncAnthropic()`: `await client.messages.create(...)` returns a Message."""

    def __init__(self) -> None:
        self.messages = self
        self._ids = itertools.count(1)

    async def create(
        self, *, model: str, max_tokens: int, messages: list[Any], tools: list[dict[str, Any]], **_: Any
    ) -> Any:
        """The next assistant message for the conversation, shaped like the Messages API's response."""
        results = []
        for message in messages:
            blocks = _get(message, "content") if _get(message, "role") == "user" else None
            for block in blocks if isinstance(blocks, list) else []:
                if _get(block, "type") == "tool_result":
                    # The adapter's tool_result holds the summary text, then the structured result as JSON text.
                    results += [data for item in _get(block, "content") if (data := _json_object(_get(item, "text")))]
        step, value = plan(str(_get(messages[0], "content")), results, {t["name"] for t in tools})
        if step == "call":
            name, arguments = value
            content = [
                {"type": "text", "text": f"Calling {name}."},
                {"type": "tool_use", "id": f"toolu_scripted_{next(self._ids)}", "name": name, "input": arguments},
            ]
        else:
            content = [{"type": "text", "text": value}]
        return _sdk_like(
            {
                "id": f"msg_scripted_{next(self._ids)}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": "tool_use" if step == "call" else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        )


class ScriptedOpenAI:
    """Stands in for `openai.AsyncOpenAI()`: `await client.chat.completions.create(...)` returns a ChatCompletion."""

    def __init__(self) -> None:
        self.chat = SimpleNamespace(completions=self)
        self._ids = itertools.count(1)

    async def create(self, *, model: str, messages: list[Any], tools: list[dict[str, Any]], **_: Any) -> Any:
        """The next assistant message for the conversation, shaped like the Chat Completions API's response."""
        results = [
            data
            for message in messages
            if _get(message, "role") == "tool"
            if (data := _json_object(_get(message, "content")))
        ]
        functions = {t["function"]["name"]: t["function"] for t in tools}
        step, value = plan(str(_get(messages[0], "content")), results, set(functions))
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": None, "refusal": None}
        if step == "call":
            name, arguments = value
            if functions[name].get("strict"):
                # Strict mode makes the model send every property, null for the optional ones it leaves out.
                arguments = {key: arguments.get(key) for key in functions[name]["parameters"]["properties"]}
            message["tool_calls"] = [
                {
                    "id": f"call_scripted_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ]
        else:
            message["content"] = value
        return _sdk_like(
            {
                "id": f"chatcmpl-scripted-{next(self._ids)}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if step == "call" else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )


def _sdk_like(data: Any) -> Any:
    """API JSON as the SDKs hand it over: objects with attributes, except a tool call's free-form `input` dict."""
    if isinstance(data, dict):
        return SimpleNamespace(**{k: v if k == "input" else _sdk_like(v) for k, v in data.items()})
    if isinstance(data, list):
        return [_sdk_like(v) for v in data]
    return data


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _json_object(text: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and "status" in data else None
