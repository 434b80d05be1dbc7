"""An OpenAI tool-calling loop with every FLORA technique as a function tool (Chat Completions API).

    python examples/openai_loop.py          # offline: a scripted stand-in for the model
    python examples/openai_loop.py --real   # the model itself: pip install openai, set OPENAI_API_KEY

FLORA is the local sandbox unless FLORA_API_KEY is set. The whole integration is the loop in `run`: export the tools
as (strict) function tools, and answer every tool call with the `tool` message `openai_tool_result` makes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from pydantic import SecretStr

from flora_mcp import Settings, Toolkit
from flora_mcp.adapters import openai_tool_result

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4.1")
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
    """The OpenAI client, or the scripted stand-in with the same `chat.completions.create` call."""
    if "--real" in sys.argv:
        import openai

        return openai.AsyncOpenAI()
    from scripted_models import ScriptedOpenAI

    return ScriptedOpenAI()


def show_progress(percent: float, message: str) -> None:
    print(f"   {percent:5.1f}% {message}", file=sys.stderr)


async def run(prompt: str) -> str:
    """Ask the model, run the tools it calls, hand back the results, until it answers."""
    async with flora_settings() as settings, Toolkit(settings) as toolkit:
        client = model_client()
        tools = toolkit.export_tools("openai")
        definitions = toolkit.tool_definitions()  # lets the adapter map an exported name back to its tool
        messages: list[Any] = [{"role": "user", "content": prompt}]
        for _ in range(MAX_TURNS):
            response = await client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
            message = response.choices[0].message
            messages.append(message)
            if not message.tool_calls:
                return str(message.content or "")
            for call in message.tool_calls:
                print(f"-> {call.function.name} {call.function.arguments}")
                result = await openai_tool_result(toolkit, call, tools=definitions, progress=show_progress)
                print(f"   {result['content']}")
                messages.append(result)
        return f"Stopped: the model was still calling tools after {MAX_TURNS} turns."


if __name__ == "__main__":
    print(f"\n{anyio.run(run, PROMPT)}")
