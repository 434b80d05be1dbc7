"""FLORA_TECHNIQUES and FLORA_QUERY end to end: from the environment, through the sandbox, to tools/list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from flora_mcp.config import Settings
from flora_mcp.core.toolkit import Toolkit
from flora_mcp.sandbox import Sandbox
from tests.support import TEST_KEY, mcp_client

RUN_TOOLS = {"flora_get_run", "flora_list_runs", "flora_spend"}


async def listed_names(box: Sandbox, monkeypatch: pytest.MonkeyPatch, **env: str) -> set[str]:
    """Tool names an MCP client sees with these FLORA_* variables set."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(api_key=TEST_KEY, base_url=box.base_url, journal=":memory:", tools_mode="full",
                        catalog_cache="off")
    async with Toolkit(settings) as kit:
        async with mcp_client(kit) as client:
            return {t.name for t in (await client.list_tools()).tools} - RUN_TOOLS


@pytest.fixture
async def box(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    for name in ("FLORA_TECHNIQUES", "FLORA_QUERY", "FLORA_TOOLS_MODE"):
        monkeypatch.delenv(name, raising=False)
    yield sandbox


def slugs(box: Sandbox, keep: Any = lambda t: True) -> set[str]:
    return {t.slug or "soft-focus" for t in box.state.catalog.techniques if keep(t)}


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("cctv-*", {"cctv-cam"}, id="one glob"),
    pytest.param("CCTV-*, qr-*", {"cctv-cam", "qr-code-generator"}, id="case and spaces do not matter"),
    pytest.param("*-image,!color-*", {"add-text-to-image"}, id="include then exclude"),
    pytest.param("soft-focus", {"soft-focus"}, id="a technique without slug, by its tool name"),
    pytest.param("tech_117b2683113d", {"cctv-cam"}, id="by technique id"),
    pytest.param("nothing-like-this-*", set(), id="no match: only the run tools"),
])
@pytest.mark.anyio
async def test_flora_techniques_keeps_what_its_globs_say(box: Sandbox, monkeypatch: pytest.MonkeyPatch,
                                                         spec: str, expected: set[str]) -> None:
    assert await listed_names(box, monkeypatch, FLORA_TECHNIQUES=spec) == expected


@pytest.mark.anyio
async def test_only_exclusions_keep_everything_else(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    names = await listed_names(box, monkeypatch, FLORA_TECHNIQUES="!*-text,!flaky-*")
    assert names == slugs(box) - {"find-and-replace-text", "split-text", "flaky-provider"}
    assert "add-text-to-image" in names


@pytest.mark.anyio
async def test_excluded_techniques_schemas_are_never_fetched(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    await listed_names(box, monkeypatch, FLORA_TECHNIQUES="cctv-*,change-*")
    fetched = {r.path.rsplit("/", 1)[-1] for r in box.requests_for("get_technique")}
    assert fetched == {"cctv-cam", "change-image-ar"}  # both are summary items in the list; nothing else was fetched


@pytest.mark.anyio
async def test_flora_query_is_sent_to_flora_and_narrows_the_tools(box: Sandbox,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    names = await listed_names(box, monkeypatch, FLORA_QUERY="image")
    expected = slugs(box, lambda t: t.matches("image"))
    assert names == expected and 0 < len(expected) < len(box.state.catalog.techniques)
    pages = box.requests_for("list_techniques")
    assert pages and all(r.query.get("query") == "image" for r in pages)


@pytest.mark.anyio
async def test_query_and_globs_together(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    names = await listed_names(box, monkeypatch, FLORA_QUERY="image", FLORA_TECHNIQUES="!cctv-*")
    assert names == slugs(box, lambda t: t.matches("image")) - {"cctv-cam"}
