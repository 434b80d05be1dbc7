"""A Claude tool-use loop with every FLORA technique as a tool (Anthropic Messages API).

    python examples/anthropic_loop.py          # offline: a scripted stand-in for Claude
    python examples/anthropic_loop.py --real   # Claude itself: pip install anthropic, set ANTHROPIC_API_KEY

FLORA is the local sandbox unless FLORA_API_KEY is set. The whole integration is the loop in `run`: export the tools
in Anthropic's shape, and answer every `tool_use` block with the `tool_result` block `anthropic_tool_result` makes.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from pydantic import SecretStr

from flora_mcp import Settings, Toolkit
from flora_mcp.adapters import anthropic_tool_result

MODEL = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5")
PROMPT = "Make a QR code for https://flora.ai and give it the look of a CCTV camera still."
MAX_TURNS = 10


@asynccontextmanager
async def flora_settings() -> AsyncIterator[Settings]:
    """FLORA itself when FLORA_API_KEY is set (Settings() reads FLORA_*), else the sandbox on loopback."""
    if os.environ.get("FLORA_API_KEY"):
        yield Settings()
        return
    from flora_mcp.sandbox import serve_sandbox

    async with serve_sandbox() as box:
        yield Settings(api_key=SecretStr(box.api_key), base_url=box.base_url, journal=":memory:", poll_interval=0.25)


def model_client() -> Any:
    """The Anthropic client, or the scripted stand-in with the same `messages.create` call."""
    if "--real" in sys.argv:
        import anthropic

        return anthropic.AsyncAnthropic()
    from scripted_models import ScriptedClaude

    return ScriptedClaude()


def show_progress(percent: float, message: str) -> None:
    print(f"   {percent:5.1f}% {message}", file=sys.stderr)


async def run(prompt: str) -> str:
    """Ask the model, run the tools it calls, hand back the results, until it answers."""
    async with flora_settings() as settings, Toolkit(settings) as toolkit:
        client = model_client()
        tools = toolkit.export_tools("anthropic")
        definitions = toolkit.tool_definitions()  # lets the adapter map an exported name back to its tool
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        for _ in range(MAX_TURNS):
            response = await client.messages.create(model=MODEL, max_tokens=2048, tools=tools, messages=messages)
            messages.append({"role": "assistant", "content": response.content})
            if response.stop_reason != "tool_use":
                return "".join(block.text for block in response.content if block.type == "text")
            results = []
            for block in response.content:
                if block.type == "tool_use":
                    print(f"-> {block.name} {json.dumps(block.input)}")
                    result = await anthropic_tool_result(toolkit, block, tools=definitions, progress=show_progress)
                    print("   " + result["content"][0]["text"].replace("\n", "\n   "))
                    results.append(result)
            messages.append({"role": "user", "content": results})
        return f"Stopped: the model was still calling tools after {MAX_TURNS} turns."


if __name__ == "__main__":
    print(f"\n{anyio.run(run, PROMPT)}")
