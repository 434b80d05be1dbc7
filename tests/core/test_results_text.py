"""Every output URL reaches the model's text, not only `structuredContent`: many clients give the model the text alone.

The truth is the sandbox's own record of the runs' outputs; the text checked is `ToolResult.summary()` and the MCP
`TextContent` of the same call, for a run with several outputs and for a multiple-value call of several such runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import mcp.types as types
import pytest

from flora_mcp.core.catalog import Catalog
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import mcp_client, settings_for

TECHNIQUE = "split-text"
PARTS = "alpha\nbeta\ngamma"


def output_urls(sandbox: Sandbox) -> set[str]:
    """Every output URL of every run the sandbox made, as its run objects give them."""
    return {f"{sandbox.origin}/files/{o.path}" for run in sandbox.runs for o in run.outputs}


def mcp_text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.fixture
async def multiple_kit(sandbox: Sandbox) -> AsyncIterator[Toolkit]:
    """A toolkit whose split-text takes a list of texts (one run per text); the runs are the sandbox's own."""
    async with Toolkit(settings_for(sandbox)) as kit:
        technique = kit.catalog.tools[TECHNIQUE].technique
        ios = [io.model_copy(update={"allow_multiple": io.id == "text"}) for io in technique.inputs or []]
        kit.set_catalog(Catalog.from_techniques([technique.model_copy(update={"inputs": ios})]))
        yield kit


@pytest.mark.anyio
async def test_a_run_with_several_outputs_names_every_url_in_its_text(sandbox: Sandbox, toolkit: Toolkit) -> None:
    result = await toolkit.call(TECHNIQUE, {"text": PARTS})
    assert result.status == "completed", result.summary()
    urls = output_urls(sandbox)
    assert len(urls) == 3
    assert {o.url for o in result.outputs} == urls
    text = result.summary()
    missing = [url for url in urls if url not in text]
    assert not missing, text


@pytest.mark.anyio
async def test_the_mcp_text_of_a_run_names_every_url(sandbox: Sandbox, toolkit: Toolkit) -> None:
    async with mcp_client(toolkit) as client:
        result = await client.call_tool(TECHNIQUE, {"text": PARTS})
    assert result.is_error is False
    urls = output_urls(sandbox)
    assert len(urls) == 3
    assert {o["url"] for o in (result.structured_content or {})["outputs"]} == urls
    text = mcp_text(result)
    assert [url for url in urls if url not in text] == [], text


@pytest.mark.anyio
async def test_a_multiple_value_call_names_every_url_of_every_run(sandbox: Sandbox, multiple_kit: Toolkit) -> None:
    result = await multiple_kit.call(TECHNIQUE, {"text": [PARTS, "one\ntwo", "solo"]})
    assert result.status == "completed", result.summary()
    assert len(sandbox.runs) == 3
    urls = output_urls(sandbox)
    assert len(urls) == 3 + 2 + 1
    assert {o.url for o in result.outputs} == urls
    text = result.summary()
    assert [url for url in urls if url not in text] == [], text
    assert all(run.run_id in text for run in sandbox.runs), text


@pytest.mark.anyio
async def test_the_mcp_text_of_a_multiple_value_call_names_every_url(sandbox: Sandbox,
                                                                     multiple_kit: Toolkit) -> None:
    async with mcp_client(multiple_kit) as client:
        result = await client.call_tool(TECHNIQUE, {"text": [PARTS, "one\ntwo"]})
    assert result.is_error is False
    urls = output_urls(sandbox)
    assert len(urls) == 3 + 2
    assert {o["url"] for o in (result.structured_content or {})["outputs"]} == urls
    text = mcp_text(result)
    assert [url for url in urls if url not in text] == [], text
